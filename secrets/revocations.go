package secrets

import (
	"container/heap"
	"context"
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

// RevocationStore keeps revoked token IDs where minters and verifiers in
// other processes see them: a [Minter] with [WithRevocationStore] records
// each token it revokes there, and a [Verifier] with the same store
// rejects them, whichever process minted them. The Redis store of
// authz/redisstore is one. The in-process [Revocations] list still works
// alongside: a minter records a revocation in both.
//
// Implementations must be safe for concurrent use and honour ctx.
type RevocationStore interface {
	// RevokeToken records id as revoked; the store may forget it after
	// until (the token's expiry plus the largest verifier leeway).
	RevokeToken(ctx context.Context, id string, until time.Time) error
	// TokenRevoked reports whether id is revoked. An error (the store
	// is unreachable or slow) makes Verify reject the token: a verifier
	// that cannot tell whether a token was revoked does not accept it.
	TokenRevoked(ctx context.Context, id string) (bool, error)
}

// DefaultRevocationTimeout bounds a [RevocationStore] lookup made by
// [Verifier.Verify], which has no context of its own; use
// [Verifier.VerifyContext] to choose the bound.
const DefaultRevocationTimeout = time.Second
