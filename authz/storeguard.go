package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskguard/taskguard/internal/glob"
)

// DefaultStoreStaleness bounds how old a guard's local view of shared task
// state may grow while its subscription to the store is down, unless
// [WithStoreStaleness] says otherwise.
const DefaultStoreStaleness = 5 * time.Second

// DefaultStoreTimeout bounds each call of a guard into its store, unless
// [WithStoreTimeout] says otherwise.
const DefaultStoreTimeout = time.Second

// maxStoreAttempts bounds the decisions of one Authorize that the store
// finds out of date (each makes one store call).
const maxStoreAttempts = 3

// WithStore keeps the state tasks accumulate (ended, taint, call counts,
// rate limits, budgets, standing approvals) in s, shared with every other
// guard on the same backing store: replicas of a service then enforce one
// rate limit and one budget per task, a task ended on one replica is ended
// on all (their end hooks run), and taint observed on one replica counts on
// every other. See [Store] for what the guard asks of s and when.
//
// [Guard.Check] stays local: it decides on the guard's view of the tasks,
// which s keeps up to date, and denies ([RuleStore]) when that view is
// older than [WithStoreStaleness] without a live subscription.
// [Guard.Authorize] makes one call into s per decision and denies
// (RuleStore) when s fails or does not answer within [WithStoreTimeout];
// once s answers again, service resumes, without a restart. Check does
// not see rate limits and budgets under a store: Authorize enforces them.
// task.calls (and [Task.Calls]) counts, per tool, the calls the store had
// counted at this guard's last Authorize of that tool, calls on other
// guards since then not included; MaxCalls budgets are exact. Without
// WithStore a guard keeps this state in its own process, as a single
// process needs. A nil s is an error; the last WithStore wins. The guard
// subscribes to s in [New]; call [Guard.Close] to unsubscribe.
func WithStore(s Store) Option {
	return func(g *Guard) error {
		if s == nil {
			return errors.New("WithStore: nil store")
		}
		g.store = s
		return nil
	}
}

// WithStoreStaleness sets how long the guard's view of shared task state
// (ended, taint) is trusted after its subscription to the store went down
// (by default [DefaultStoreStaleness]): later, [Guard.Check] denies with
// [RuleStore] until the subscription is back and the view reloaded. It
// has no effect without [WithStore].
func WithStoreStaleness(d time.Duration) Option {
	return func(g *Guard) error {
		if d <= 0 {
			return fmt.Errorf("WithStoreStaleness: %v is not positive", d)
		}
		g.storeStaleness = d
		return nil
	}
}

// WithStoreTimeout bounds each call into the store (by default
// [DefaultStoreTimeout]); a call that does not answer in time denies. It
// has no effect without [WithStore].
func WithStoreTimeout(d time.Duration) Option {
	return func(g *Guard) error {
		if d <= 0 {
			return fmt.Errorf("WithStoreTimeout: %v is not positive", d)
		}
		g.storeTimeout = d
		return nil
	}
}

// Close releases what the guard holds: its subscription to the store of
// [WithStore]. Tasks are not ended. Close is idempotent and safe for
// concurrent use; on a guard without a store it does nothing. After Close
// the guard's view of shared tasks is no longer updated, so Check denies
// once it is stale ([WithStoreStaleness]).
func (g *Guard) Close() error {
	if v := g.view; v != nil {
		v.close()
	}
	return nil
}

// view is a guard's local view of the tasks it holds, kept up to date by
// the store's pushes.
type view struct {
	g *Guard

	// live is set while the subscription is live and the view was
	// reloaded after it last went down; staleSince is when it stopped
	// being (UnixNano, guard clock).
	live       atomic.Bool
	staleSince atomic.Int64
	resync     atomic.Bool // a reload is owed
	subscribed atomic.Bool // the store says the subscription is live

	cancelMu sync.Mutex
	cancel   func()
	closed   bool

	// mu guards the fields below it.
	mu    sync.Mutex
	tasks map[string][]*Task // the guard's tasks by ID (resumed copies share one)
	ends  []string           // ends the store has not taken yet
	taint []pendingTaint     // observations the store has not taken yet
}

type pendingTaint struct {
	chain []string
	taint Taint
}

// startView subscribes g to its store.
func (g *Guard) startView() error {
	v := &view{g: g, tasks: map[string][]*Task{}}
	v.staleSince.Store(g.now().UnixNano())
	g.view = v
	cancel, err := g.store.Subscribe(viewSink{v})
	if err != nil {
		return fmt.Errorf("WithStore: subscribe: %w", err)
	}
	v.cancelMu.Lock()
	v.cancel = cancel
	v.cancelMu.Unlock()
	return nil
}

// close cancels the subscription. cancel is called without cancelMu held:
// a store's cancel may wait for a sink call in progress, and that call
// (reload) takes cancelMu.
func (v *view) close() {
	v.cancelMu.Lock()
	if v.closed {
		v.cancelMu.Unlock()
		return
	}
	v.closed = true
	cancel := v.cancel
	v.cancelMu.Unlock()
	if cancel != nil {
		cancel()
	}
	v.markStale()
}

// fresh reports whether decisions may rely on the view at now.
func (v *view) fresh(now time.Time) bool {
	return v.live.Load() || now.UnixNano()-v.staleSince.Load() <= int64(v.g.storeStaleness)
}

func (v *view) markStale() {
	if v.live.CompareAndSwap(true, false) {
		v.staleSince.Store(v.g.now().UnixNano())
	}
}

// add makes t part of the view.
func (v *view) add(t *Task) {
	v.mu.Lock()
	v.tasks[t.id] = append(v.tasks[t.id], t)
	v.mu.Unlock()
}

// remove drops t from the view.
func (v *view) remove(t *Task) {
	v.mu.Lock()
	l := slices.DeleteFunc(v.tasks[t.id], func(x *Task) bool { return x == t })
	if len(l) == 0 {
		delete(v.tasks, t.id)
	} else {
		v.tasks[t.id] = l
	}
	v.mu.Unlock()
}

// apply brings the guard's copies of the task of st up to date.
func (v *view) apply(st TaskState) {
	if st.ID == "" || !st.Known {
		return
	}
	v.mu.Lock()
	ts := slices.Clone(v.tasks[st.ID])
	v.mu.Unlock()
	for _, t := range ts {
		if st.Ended {
			t.end(false)
			continue
		}
		t.applyTaint(st.Taint, st.TaintVersion)
	}
}

// reload fetches the state of every task the guard holds, applies it, and
// hands the store what it has not taken yet. On success the view is live.
func (v *view) reload(ctx context.Context) error {
	if err := v.flush(ctx); err != nil {
		return err
	}
	v.mu.Lock()
	ids := make([]string, 0, len(v.tasks))
	for id := range v.tasks {
		ids = append(ids, id)
	}
	v.mu.Unlock()
	if len(ids) > 0 {
		ctx, cancel := context.WithTimeout(ctx, v.g.storeTimeout)
		states, err := v.g.store.State(ctx, ids)
		cancel()
		if err != nil {
			return err
		}
		for _, st := range states {
			v.apply(st)
		}
	}
	v.cancelMu.Lock()
	defer v.cancelMu.Unlock()
	switch {
	case v.closed:
	case v.subscribed.Load():
		v.resync.Store(false)
		v.live.Store(true)
	default:
		// Fresh as of now, though nothing keeps it so: the next
		// Authorize reloads again.
		v.staleSince.Store(v.g.now().UnixNano())
	}
	return nil
}

// flush hands the store the ends and observations it has not taken yet.
func (v *view) flush(ctx context.Context) error {
	v.mu.Lock()
	ends, taints := v.ends, v.taint
	v.ends, v.taint = nil, nil
	v.mu.Unlock()
	if len(ends) == 0 && len(taints) == 0 {
		return nil
	}
	requeue := func(i, j int) {
		v.mu.Lock()
		v.ends = append(ends[i:], v.ends...)
		v.taint = append(taints[j:], v.taint...)
		v.mu.Unlock()
	}
	for i, id := range ends {
		ctx, cancel := context.WithTimeout(ctx, v.g.storeTimeout)
		err := v.g.store.End(ctx, id)
		cancel()
		if err != nil {
			requeue(i, 0)
			return err
		}
	}
	for j, p := range taints {
		ctx, cancel := context.WithTimeout(ctx, v.g.storeTimeout)
		states, err := v.g.store.Observe(ctx, p.chain, p.taint)
		cancel()
		if err != nil {
			requeue(len(ends), j)
			return err
		}
		for _, st := range states {
			v.apply(st)
		}
	}
	return nil
}

// ready prepares the view for a store operation: anything owed to the
// store is handed over and a reload owed is done.
func (v *view) ready(ctx context.Context) error {
	if v.resync.Load() {
		return v.reload(ctx)
	}
	return v.flush(ctx)
}

// viewSink is what the store pushes to.
type viewSink struct{ v *view }

// TaskChanged implements [StoreSink].
func (s viewSink) TaskChanged(st TaskState) { s.v.apply(st) }

// Subscribed implements [StoreSink].
func (s viewSink) Subscribed(live bool) {
	v := s.v
	v.subscribed.Store(live)
	v.resync.Store(true)
	if !live {
		v.markStale()
		return
	}
	if err := v.reload(context.Background()); err != nil {
		v.logStoreError("reloading the view of shared tasks", err)
	}
}

func (v *view) logStoreError(what string, err error) {
	if l := v.g.logger; l != nil {
		l.Error("taskguard: store: "+what, "error", err.Error())
	}
}

// storeEnd tells the store that t ended, or queues it when the store
// cannot be reached.
func (v *view) storeEnd(t *Task) {
	ctx, cancel := context.WithTimeout(context.Background(), v.g.storeTimeout)
	err := v.g.store.End(ctx, t.id)
	cancel()
	if err != nil {
		v.logStoreError("ending task "+t.id, err)
		v.mu.Lock()
		v.ends = append(v.ends, t.id)
		v.mu.Unlock()
	}
}

// storeObserve hands an observation of t's chain to the store, or queues
// it when the store cannot be reached; Authorize hands it over before its
// next decision.
func (v *view) storeObserve(t *Task, taint Taint) {
	chain := t.chainIDs()
	ctx, cancel := context.WithTimeout(context.Background(), v.g.storeTimeout)
	states, err := v.g.store.Observe(ctx, chain, taint)
	cancel()
	if err != nil {
		v.logStoreError("observing for task "+t.id, err)
		v.mu.Lock()
		v.taint = append(v.taint, pendingTaint{chain: chain, taint: taint})
		v.mu.Unlock()
		return
	}
	for _, st := range states {
		v.apply(st)
	}
}

// chain returns t and its ancestors, root first.
func (t *Task) chain() []*Task {
	var c []*Task
	for x := t; x != nil; x = x.parent {
		c = append(c, x)
	}
	slices.Reverse(c)
	return c
}

func (t *Task) chainIDs() []string {
	var ids []string
	for _, x := range t.chain() {
		ids = append(ids, x.id)
	}
	return ids
}

// storeTask returns t as the store sees it.
func (t *Task) storeTask() StoreTask {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := StoreTask{ID: t.id, Deadline: t.deadline, TaintVersion: t.taintVersion}
	if len(t.budgets) > 0 {
		st.Budgets = make(map[string]int, len(t.budgets))
		for _, b := range t.budgets {
			st.Budgets[b.pattern] = b.max
		}
	}
	return st
}

// applyTaint merges taint, which the store reports at version, into t's.
func (t *Task) applyTaint(taint Taint, version uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return
	}
	t.mergeLocked("", taint.Sensitivity, !taint.Untrusted)
	for _, src := range taint.Sources {
		t.mergeLocked(src, Public, true)
	}
	if version > t.taintVersion {
		t.taintVersion = version
	}
}

// beginShared records the chain of a new or resumed task in the store and
// brings the local copies up to date. It fails when the store cannot be
// reached or a task of the chain has ended.
func (g *Guard) beginShared(ctx context.Context, t *Task) error {
	chain := t.chain()
	sts := make([]StoreTask, len(chain))
	for i, x := range chain {
		sts[i] = x.storeTask()
	}
	sctx, cancel := context.WithTimeout(ctx, g.storeTimeout)
	states, err := g.store.Begin(sctx, sts)
	cancel()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if len(states) != len(chain) {
		return fmt.Errorf("store: %d states for a chain of %d", len(states), len(chain))
	}
	for i, st := range states {
		if st.Ended {
			return fmt.Errorf("task %s has ended", chain[i].id)
		}
		if !st.Known {
			return fmt.Errorf("store: task %s is unknown to the store", chain[i].id)
		}
		chain[i].applyTaint(st.Taint, st.TaintVersion)
	}
	return nil
}

// authorizeShared is Authorize under a store.
func (g *Guard) authorizeShared(ctx context.Context, c Call, ap *approvalObservation) (Decision, error) {
	var grant *StoreApproval // the approver's grant, once asked
	if err := g.view.ready(ctx); err != nil {
		d := Decision{Effect: Deny, PolicyVersion: g.policyVersion()}
		if t, ok := TaskFrom(ctx); ok {
			d.Task = t.id
		}
		return g.denyStore(ctx, c, d, "the store did not answer while the guard caught up with it", err)
	}
	for attempt := 0; ; attempt++ {
		t, _ := TaskFrom(ctx)
		var op storeOp
		if t != nil && t.guard == g {
			op.tasks = t.chain()
			op.Chain = make([]StoreTask, len(op.tasks))
			for i, x := range op.tasks {
				op.Chain[i] = x.storeTask() // versions before the decision reads the taint
			}
		}
		d := g.decide(ctx, c, true, nil, &op)
		switch d.Effect {
		case Allow, Ask:
		default:
			return d, &DeniedError{Decision: d, Tool: c.Tool}
		}
		if attempt == maxStoreAttempts {
			return g.denyStore(ctx, c, d, "the task's taint kept changing during the decision", nil)
		}
		if d.Effect == Ask {
			switch {
			case grant != nil && grant.Digest == d.Digest:
				op.Approval = grant
			case opaqueArgs(ctx):
				// No standing approval covers opaque arguments: ask now.
				out, _ := g.approveObserved(ctx, c, d, ap)
				if out.Effect != Allow {
					return out, &DeniedError{Decision: out, Tool: c.Tool}
				}
				grant = &StoreApproval{Digest: d.Digest, Granted: true, By: out.ApprovedBy}
				op.Approval = grant
			default:
				op.Approval = &StoreApproval{Digest: d.Digest}
			}
		}
		sctx, cancel := context.WithTimeout(ctx, g.storeTimeout)
		res, err := g.store.Authorize(sctx, &op.StoreOp)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				d.Effect, d.Rule, d.Reason, d.Err = Deny, RuleContext, "context is done", ctx.Err()
				return d, &DeniedError{Decision: d, Tool: c.Tool}
			}
			return g.denyStore(ctx, c, d, "the store failed", err)
		}
		switch res.Outcome {
		case StoreOK:
			if len(res.Calls) == len(op.tasks) {
				for i, x := range op.tasks {
					x.setCalls(c.Tool, res.Calls[i])
				}
			}
			if d.Effect != Ask {
				return d, nil
			}
			out := d
			out.Effect = Allow
			if a := op.Approval; a != nil && a.Granted {
				out.ApprovedBy, out.Reason = a.By, "approved: "+d.Reason
			} else {
				// A standing approval, recorded by this guard or another.
				out.ApprovedBy, out.Reason = res.ApprovedBy, "approved for the task by "+res.ApprovedBy+": "+d.Reason
				ap.outcome = ApprovalGranted
				if g.logger != nil {
					g.auditApproval(ctx, &c, &d, &out)
				}
			}
			return out, nil
		case StoreStale:
			for _, st := range res.State {
				g.view.apply(st)
			}
			continue
		case StoreApprovalNeeded:
			if op.Approval == nil || op.Approval.Granted {
				return g.denyStore(ctx, c, d, "the store asked for an approval it was given", nil)
			}
			out, forTask := g.approveObserved(ctx, c, d, ap)
			if out.Effect != Allow {
				return out, &DeniedError{Decision: out, Tool: c.Tool}
			}
			grant = &StoreApproval{Digest: d.Digest, Granted: true, ForTask: forTask, By: out.ApprovedBy}
			continue
		case StoreEnded:
			if res.Failed >= 0 && res.Failed < len(op.tasks) {
				op.tasks[res.Failed].end(false)
			}
			d.Effect, d.Rule, d.Reason, d.Err = Deny, RuleTaskEnded, "task has ended", nil
			return g.denied(ctx, c, d)
		case StoreUnknown:
			return g.denyStore(ctx, c, d, "the store does not know the task (it expired or the store lost it)", nil)
		case StoreRateLimited:
			if res.Failed >= 0 && res.Failed < len(op.limits) {
				ld := op.limits[res.Failed]
				d.Effect, d.Rule, d.Err = Deny, ld.r.Name, nil
				d.Reason = rateReason(ld, res.RetryAfter, ld.t != t)
				return g.denied(ctx, c, d)
			}
			return g.denyStore(ctx, c, d, "the store refused a rate limit it was not given", nil)
		case StoreBudgetSpent:
			reason := "a call budget of the task is spent"
			if res.Failed >= 0 && res.Failed < len(op.Budgets) {
				b := op.Budgets[res.Failed]
				reason = fmt.Sprintf("call budget for %q of task %s is spent", b.Pattern, op.Chain[b.Task].ID)
			}
			d.Effect, d.Rule, d.Reason, d.Err = Deny, RuleBudget, reason, nil
			return g.denied(ctx, c, d)
		default:
			return g.denyStore(ctx, c, d, fmt.Sprintf("the store answered with unknown outcome %d", res.Outcome), nil)
		}
	}
}

// storeOp is a StoreOp on its way through decide, with the tasks and
// rules its indexes stand for.
type storeOp struct {
	StoreOp
	tasks  []*Task        // Chain's tasks
	limits []levelDecider // Limits' rules
}

// fillOp records in s.op the rate limits and budgets the call needs.
func (s *decision) fillOp() {
	op := s.op
	if len(op.tasks) == 0 {
		return
	}
	op.Tool = s.c.Tool
	for _, ld := range s.act.deciders {
		if ld.r.Limit == nil {
			continue
		}
		i := slices.Index(op.tasks, ld.t)
		if i < 0 {
			continue
		}
		l := *ld.r.Limit
		op.Limits = append(op.Limits, StoreLimit{Task: i, Key: ld.r.Name + " " + l.String(), Rate: l.Rate, Per: l.Per, Burst: l.Burst})
		op.limits = append(op.limits, ld)
	}
	for i, x := range op.tasks {
		for _, b := range x.budgets {
			if glob.Match(b.pattern, s.c.Tool) {
				op.Budgets = append(op.Budgets, StoreSpend{Task: i, Pattern: b.pattern})
			}
		}
	}
}

// rateReason explains a rate-limit denial.
func rateReason(ld levelDecider, wait time.Duration, ancestor bool) string {
	if wait >= time.Second {
		wait = wait.Round(time.Second)
	}
	l := ld.r.Limit
	reason := fmt.Sprintf("rate limit %d/%v of rule %s exceeded; retry in %v", l.Rate, l.Per, ld.r.Name, wait.Round(time.Millisecond))
	if ancestor {
		reason = "for ancestor task " + ld.t.id + ": " + reason
	}
	return reason
}

// denyStore denies c with RuleStore.
func (g *Guard) denyStore(ctx context.Context, c Call, d Decision, reason string, err error) (Decision, error) {
	d.Effect, d.Rule, d.Reason, d.Err = Deny, RuleStore, reason, err
	if err != nil {
		d.Reason += ": " + err.Error()
	}
	return g.denied(ctx, c, d)
}

// denied audits a decision the store turned into a deny and returns it
// with the error for it.
func (g *Guard) denied(ctx context.Context, c Call, d Decision) (Decision, error) {
	if g.logger != nil {
		t, _ := TaskFrom(ctx)
		g.audit(ctx, t, &c, &d, 0)
	}
	return d, &DeniedError{Decision: d, Tool: c.Tool}
}

// setCalls raises the count of calls of tool to n, as the store counted
// them.
func (t *Task) setCalls(tool string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done || t.calls[tool] >= n {
		return
	}
	if t.calls == nil {
		t.calls = map[string]int{}
	}
	t.calls[tool] = n
}
