package authz

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultStoreMargin is how long past its deadline a [MemoryStore] keeps a
// task's state, so an ended task is still known as ended to whoever holds
// its tokens.
const DefaultStoreMargin = time.Minute

// MemoryStore is a [Store] in this process: the guards given the same
// MemoryStore share task state as replicas sharing Redis would, and it is
// what the conformance suite of authztest checks redisstore against. A
// single guard needs none ([WithStore] is for sharing state). Create it
// with [NewMemoryStore]; it is safe for concurrent use, starts no
// goroutine and needs no closing. The zero MemoryStore is not usable.
//
// It pushes changes to its subscribers synchronously: when [Task.End]
// returns on one guard, the other guards sharing the store have ended
// their copies of the task and run their end hooks.
type MemoryStore struct {
	now    func() time.Time
	margin time.Duration

	// mu guards the fields below it.
	mu    sync.Mutex
	tasks map[string]*memTask
	subs  []*memSub
	ops   int // operations since the last sweep of expired tasks
}

// memTask is one task's state in a MemoryStore.
type memTask struct {
	deadline time.Time
	ended    bool
	taint    Taint
	sources  map[string]struct{}
	version  uint64
	budgets  map[string]int
	spent    map[string]int
	calls    map[string]int
	tat      map[string]time.Time // GCRA theoretical arrival time per limiter key
	grants   map[string]string    // standing approvals: digest → by
}

type memSub struct {
	sink      StoreSink
	cancelled atomic.Bool
}

// NewMemoryStore returns an empty MemoryStore. now is its clock, for rate
// limits and expiry; nil means time.Now. Tasks are forgotten
// [DefaultStoreMargin] after their deadline.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{now: now, margin: DefaultStoreMargin, tasks: map[string]*memTask{}}
}

var errNilStore = errors.New("authz: MemoryStore not built with NewMemoryStore")

// Begin implements [Store.Begin].
func (m *MemoryStore) Begin(ctx context.Context, chain []StoreTask) ([]TaskState, error) {
	if m == nil || m.tasks == nil {
		return nil, errNilStore
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked()
	out := make([]TaskState, len(chain))
	for i, st := range chain {
		mt := m.tasks[st.ID]
		if mt == nil {
			mt = &memTask{deadline: st.Deadline, budgets: maps.Clone(st.Budgets)}
			m.tasks[st.ID] = mt
		}
		out[i] = mt.state(st.ID)
	}
	return out, nil
}

// Authorize implements [Store.Authorize].
func (m *MemoryStore) Authorize(ctx context.Context, op *StoreOp) (StoreResult, error) {
	if m == nil || m.tasks == nil {
		return StoreResult{}, errNilStore
	}
	if err := ctx.Err(); err != nil {
		return StoreResult{}, err
	}
	if op == nil || len(op.Chain) == 0 {
		return StoreResult{}, errors.New("authz: store: empty operation")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	chain := make([]*memTask, len(op.Chain))
	for i, st := range op.Chain {
		mt := m.tasks[st.ID]
		switch {
		case mt == nil || !now.Before(mt.deadline.Add(m.margin)):
			return StoreResult{Outcome: StoreUnknown, Failed: i}, nil
		case mt.ended:
			return StoreResult{Outcome: StoreEnded, Failed: i}, nil
		}
		chain[i] = mt
	}
	for i, mt := range chain {
		if mt.version > op.Chain[i].TaintVersion {
			res := StoreResult{Outcome: StoreStale, State: make([]TaskState, len(chain))}
			for j, x := range chain {
				res.State[j] = x.state(op.Chain[j].ID)
			}
			return res, nil
		}
	}
	own := chain[len(chain)-1]
	var by string
	if a := op.Approval; a != nil && !a.Granted {
		var ok bool
		if by, ok = own.grants[a.Digest]; !ok {
			return StoreResult{Outcome: StoreApprovalNeeded}, nil
		}
	}
	for i, l := range op.Limits {
		if l.Task < 0 || l.Task >= len(chain) || l.Rate <= 0 || l.Per <= 0 || l.Burst <= 0 {
			return StoreResult{}, fmt.Errorf("authz: store: invalid limit %d", i)
		}
		if wait := gcraWait(chain[l.Task].tat[l.Key], now, l); wait > 0 {
			return StoreResult{Outcome: StoreRateLimited, Failed: i, RetryAfter: wait}, nil
		}
	}
	for i, b := range op.Budgets {
		if b.Task < 0 || b.Task >= len(chain) {
			return StoreResult{}, fmt.Errorf("authz: store: invalid budget %d", i)
		}
		mt := chain[b.Task]
		if max, ok := mt.budgets[b.Pattern]; !ok || mt.spent[b.Pattern] >= max {
			return StoreResult{Outcome: StoreBudgetSpent, Failed: i}, nil
		}
	}
	// Commit.
	for _, l := range op.Limits {
		mt := chain[l.Task]
		if mt.tat == nil {
			mt.tat = map[string]time.Time{}
		}
		mt.tat[l.Key] = gcraNext(mt.tat[l.Key], now, l)
	}
	for _, b := range op.Budgets {
		mt := chain[b.Task]
		if mt.spent == nil {
			mt.spent = map[string]int{}
		}
		mt.spent[b.Pattern]++
	}
	res := StoreResult{Outcome: StoreOK, Calls: make([]int, len(chain)), ApprovedBy: by}
	for i, mt := range chain {
		if mt.calls == nil {
			mt.calls = map[string]int{}
		}
		mt.calls[op.Tool]++
		res.Calls[i] = mt.calls[op.Tool]
	}
	if a := op.Approval; a != nil && a.Granted && a.ForTask {
		if own.grants == nil {
			own.grants = map[string]string{}
		}
		own.grants[a.Digest] = a.By
	}
	return res, nil
}

// gcraWait returns how long a call must wait for a token of limit l whose
// theoretical arrival time is tat: 0 when one is available now. It is the
// generic cell rate algorithm, equivalent to a bucket of l.Burst tokens,
// full at first, refilled at l.Rate per l.Per.
func gcraWait(tat, now time.Time, l StoreLimit) time.Duration {
	interval := l.Per / time.Duration(l.Rate)
	tolerance := interval * time.Duration(l.Burst-1)
	if tat.Before(now) {
		return 0
	}
	if wait := tat.Sub(now) - tolerance; wait > 0 {
		return wait
	}
	return 0
}

// gcraNext returns the theoretical arrival time after a token is taken.
func gcraNext(tat, now time.Time, l StoreLimit) time.Time {
	if tat.Before(now) {
		tat = now
	}
	return tat.Add(l.Per / time.Duration(l.Rate))
}

// Observe implements [Store.Observe].
func (m *MemoryStore) Observe(ctx context.Context, chain []string, taint Taint) ([]TaskState, error) {
	if m == nil || m.tasks == nil {
		return nil, errNilStore
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	out := make([]TaskState, len(chain))
	var changed []TaskState
	for i, id := range chain {
		mt := m.tasks[id]
		if mt == nil {
			out[i] = TaskState{ID: id}
			continue
		}
		if !mt.ended && mt.merge(taint) {
			mt.version++
			changed = append(changed, mt.state(id))
		}
		out[i] = mt.state(id)
	}
	subs := m.subs
	m.mu.Unlock()
	publish(subs, changed)
	return out, nil
}

// merge adds taint to mt's and reports whether anything changed.
func (mt *memTask) merge(taint Taint) bool {
	changed := false
	if taint.Sensitivity > mt.taint.Sensitivity {
		mt.taint.Sensitivity, changed = taint.Sensitivity, true
	}
	if taint.Untrusted && !mt.taint.Untrusted {
		mt.taint.Untrusted, changed = true, true
	}
	for _, src := range taint.Sources {
		if len(mt.taint.Sources) >= maxTaintSources {
			break
		}
		if _, seen := mt.sources[src]; seen || src == "" {
			continue
		}
		if mt.sources == nil {
			mt.sources = map[string]struct{}{}
		}
		mt.sources[src] = struct{}{}
		// Copy on write: states handed out share the old slice.
		mt.taint.Sources = append(slices.Clip(mt.taint.Sources), src)
		changed = true
	}
	return changed
}

// End implements [Store.End].
func (m *MemoryStore) End(ctx context.Context, id string) error {
	if m == nil || m.tasks == nil {
		return errNilStore
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	mt := m.tasks[id]
	if mt == nil || mt.ended {
		m.mu.Unlock()
		return nil
	}
	mt.ended = true
	mt.spent, mt.calls, mt.tat, mt.grants = nil, nil, nil, nil
	st := mt.state(id)
	subs := m.subs
	m.mu.Unlock()
	publish(subs, []TaskState{st})
	return nil
}

// State implements [Store.State].
func (m *MemoryStore) State(ctx context.Context, ids []string) ([]TaskState, error) {
	if m == nil || m.tasks == nil {
		return nil, errNilStore
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]TaskState, len(ids))
	for i, id := range ids {
		if mt := m.tasks[id]; mt != nil {
			out[i] = mt.state(id)
		} else {
			out[i] = TaskState{ID: id}
		}
	}
	return out, nil
}

// Subscribe implements [Store.Subscribe]. The subscription is live at
// once: Subscribed(true) is called before Subscribe returns. Changes are
// pushed synchronously by the call that made them. After cancel returns no
// new call of the sink starts; one already running may finish.
func (m *MemoryStore) Subscribe(sink StoreSink) (func(), error) {
	if m == nil || m.tasks == nil {
		return nil, errNilStore
	}
	if sink == nil {
		return nil, errors.New("authz: store: nil sink")
	}
	s := &memSub{sink: sink}
	m.mu.Lock()
	m.subs = append(slices.Clip(m.subs), s)
	m.mu.Unlock()
	sink.Subscribed(true)
	return func() {
		if s.cancelled.Swap(true) {
			return
		}
		m.mu.Lock()
		m.subs = slices.DeleteFunc(slices.Clone(m.subs), func(x *memSub) bool { return x == s })
		m.mu.Unlock()
	}, nil
}

// publish pushes states to subs; the caller holds no lock.
func publish(subs []*memSub, states []TaskState) {
	for _, st := range states {
		for _, s := range subs {
			if !s.cancelled.Load() {
				s.sink.TaskChanged(st)
			}
		}
	}
}

// sweepLocked forgets expired tasks, every so often. Requires m.mu held.
func (m *MemoryStore) sweepLocked() {
	if m.ops++; m.ops < 1024 {
		return
	}
	m.ops = 0
	now := m.now()
	maps.DeleteFunc(m.tasks, func(_ string, mt *memTask) bool { return !now.Before(mt.deadline.Add(m.margin)) })
}

// state returns mt's state; the caller holds the store's lock.
func (mt *memTask) state(id string) TaskState {
	return TaskState{ID: id, Known: true, Ended: mt.ended, Taint: mt.taint, TaintVersion: mt.version}
}
