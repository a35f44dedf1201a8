package secrets

import (
	"container/heap"
	"sync"
	"time"
)

// Revocations is an in-memory list of revoked token IDs. An entry is kept
// until one minute (the largest verifier leeway) past the expiry given to
// Add and dropped by a later Add, so memory is bounded by the tokens
// revoked within their lifetime.
//
// Revocations is safe for concurrent use. Use [NewRevocations]; the zero
// value is an empty list on time.Now, and a nil *Revocations is an empty
// list that ignores Add.
type Revocations struct {
	now func() time.Time

	// mu guards ids and byExp.
	mu sync.RWMutex
	// ids maps a revoked ID to the expiry it is kept until, grace included.
	ids map[string]time.Time
	// byExp orders the entries of ids by expiry; it may hold stale
	// duplicates, which prune skips.
	byExp revocationHeap
}

// NewRevocations returns an empty list on the clock now (nil means
// time.Now). now must be safe for concurrent use.
func NewRevocations(now func() time.Time) *Revocations {
	if now == nil {
		now = time.Now
	}
	return &Revocations{now: now, ids: make(map[string]time.Time)}
}

// Add revokes id until expiresAt plus one minute; a zero expiresAt keeps
// it for as long as the list lives. Adding an ID again keeps the later
// expiry. Add also drops entries that are past their time. An empty id is
// ignored.
func (r *Revocations) Add(id string, expiresAt time.Time) {
	if r == nil || id == "" {
		return
	}
	now := r.clock()()
	until := expiresAt.Add(maxLeeway)
	if expiresAt.IsZero() {
		until = time.Time{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(now)
	if r.ids == nil {
		r.ids = make(map[string]time.Time)
	}
	old, ok := r.ids[id]
	switch {
	case ok && old.IsZero():
		return
	case ok && !until.IsZero() && !until.After(old):
		return
	}
	r.ids[id] = until
	if !until.IsZero() {
		heap.Push(&r.byExp, revocation{id: id, until: until})
	}
}

// pruneLocked drops the entries whose time is before now. Requires r.mu
// held for writing.
func (r *Revocations) pruneLocked(now time.Time) {
	for len(r.byExp) > 0 && r.byExp[0].until.Before(now) {
		e := heap.Pop(&r.byExp).(revocation)
		if until, ok := r.ids[e.id]; ok && until.Equal(e.until) {
			delete(r.ids, e.id)
		}
	}
}

func (r *Revocations) clock() func() time.Time {
	if r.now == nil {
		return time.Now
	}
	return r.now
}

// Revoked reports whether id is on the list.
func (r *Revocations) Revoked(id string) bool {
	if r == nil {
		return false
	}
	r.mu.RLock()
	_, ok := r.ids[id]
	r.mu.RUnlock()
	return ok
}

// Len returns the number of IDs on the list, including any past their
// time that no Add has dropped yet.
func (r *Revocations) Len() int {
	if r == nil {
		return 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.ids)
}

type revocation struct {
	id    string
	until time.Time
}

// revocationHeap is a min-heap of revocations by until, for container/heap.
type revocationHeap []revocation

func (h revocationHeap) Len() int           { return len(h) }
func (h revocationHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h revocationHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *revocationHeap) Push(x any)        { *h = append(*h, x.(revocation)) }
func (h *revocationHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = revocation{}
	*h = old[:len(old)-1]
	return e
}
