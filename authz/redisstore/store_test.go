package redisstore

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/redistest"
)

// newClient returns a client of srv that honours context deadlines.
func newClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true,
		MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newStore returns a store on srv under a fresh prefix, closed at the end.
func newStore(t testing.TB, srv *redistest.Server, prefix string, opts ...Option) *Store {
	t.Helper()
	s, err := New(newClient(t, srv), append([]Option{WithPrefix(prefix)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func freshPrefix() string { return "t" + rand.Text()[:8] + ":" }

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recSink records what a subscription pushes.
type recSink struct {
	mu     sync.Mutex
	states []authz.TaskState
	live   []bool
	ch     chan struct{}
}

func newRecSink() *recSink { return &recSink{ch: make(chan struct{}, 1024)} }

func (r *recSink) TaskChanged(st authz.TaskState) {
	r.mu.Lock()
	r.states = append(r.states, st)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *recSink) Subscribed(live bool) {
	r.mu.Lock()
	r.live = append(r.live, live)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

// wait waits until cond holds over the recorded calls.
func (r *recSink) wait(t testing.TB, what string, cond func(states []authz.TaskState, live []bool) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok := cond(r.states, r.live)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func lastLive(live []bool) bool { return len(live) > 0 && live[len(live)-1] }

func task(id string, budgets map[string]int) authz.StoreTask {
	return authz.StoreTask{ID: id, Deadline: time.Now().Add(time.Minute), Budgets: budgets}
}

func TestNewRefusesClientIgnoringDeadlines(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	_, err := New(c)
	assert.ErrorContains(t, err, "ContextTimeoutEnabled")
	_, err = New(nil)
	assert.Error(t, err)
	c2 := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer c2.Close()
	for _, o := range []Option{WithPrefix(""), WithPrefix("a{b"), WithMargin(0), WithHeartbeat(time.Hour)} {
		_, err := New(c2, o)
		assert.Error(t, err)
	}
}

func TestBeginAuthorizeState(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv, freshPrefix())
	ctx := tctx(t)
	root, child := task("task_R", map[string]int{"db.*": 2}), task("task_C", nil)
	sts, err := s.Begin(ctx, []authz.StoreTask{root, child})
	require.NoError(t, err)
	require.Len(t, sts, 2)
	assert.Equal(t, authz.TaskState{ID: "task_R", Known: true}, sts[0])
	assert.Equal(t, authz.TaskState{ID: "task_C", Known: true}, sts[1])

	op := &authz.StoreOp{Chain: []authz.StoreTask{root, child}, Tool: "db.get",
		Budgets: []authz.StoreSpend{{Task: 0, Pattern: "db.*"}}}
	for i := 1; i <= 2; i++ {
		r, err := s.Authorize(ctx, op)
		require.NoError(t, err)
		require.Equal(t, authz.StoreOK, r.Outcome)
		assert.Equal(t, []int{i, i}, r.Calls)
	}
	r, err := s.Authorize(ctx, op)
	require.NoError(t, err)
	assert.Equal(t, authz.StoreBudgetSpent, r.Outcome)
	assert.Equal(t, 0, r.Failed)

	// A budget never recorded is spent, not unlimited.
	op.Budgets = []authz.StoreSpend{{Task: 1, Pattern: "nope"}}
	r, err = s.Authorize(ctx, op)
	require.NoError(t, err)
	assert.Equal(t, authz.StoreBudgetSpent, r.Outcome)

	// Begin again leaves the task as it is.
	_, err = s.Begin(ctx, []authz.StoreTask{task("task_R", map[string]int{"db.*": 100})})
	require.NoError(t, err)
	op.Budgets = []authz.StoreSpend{{Task: 0, Pattern: "db.*"}}
	r, err = s.Authorize(ctx, op)
	require.NoError(t, err)
	assert.Equal(t, authz.StoreBudgetSpent, r.Outcome)

	// Unknown tasks.
	r, err = s.Authorize(ctx, &authz.StoreOp{Chain: []authz.StoreTask{root, task("task_X", nil)}, Tool: "t"})
	require.NoError(t, err)
	assert.Equal(t, authz.StoreUnknown, r.Outcome)
	assert.Equal(t, 1, r.Failed)
	got, err := s.State(ctx, []string{"task_X", "task_C"})
	require.NoError(t, err)
	assert.Equal(t, []authz.TaskState{{ID: "task_X"}, {ID: "task_C", Known: true}}, got)

	// Ending the root ends every call of the tree.
	require.NoError(t, s.End(ctx, "task_R"))
	require.NoError(t, s.End(ctx, "task_R"))
	r, err = s.Authorize(ctx, &authz.StoreOp{Chain: []authz.StoreTask{root, child}, Tool: "t"})
	require.NoError(t, err)
	assert.Equal(t, authz.StoreEnded, r.Outcome)
	assert.Equal(t, 0, r.Failed)
}

func TestEndUnknownLeavesTombstone(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv, freshPrefix())
	ctx := tctx(t)
	require.NoError(t, s.End(ctx, "task_G"))
	sts, err := s.Begin(ctx, []authz.StoreTask{task("task_G", nil)})
	require.NoError(t, err)
	assert.True(t, sts[0].Known)
	assert.True(t, sts[0].Ended, "a task ended before it was begun here stays ended")
	ttl, err := s.c.PTTL(ctx, s.key("task_G", "task_G")).Result()
	require.NoError(t, err)
	assert.True(t, ttl > 0 && ttl <= DefaultMargin, "tombstone expires: %v", ttl)
}

func TestKeysExpireWithTheTask(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv, freshPrefix(), WithMargin(2*time.Second))
	ctx := tctx(t)
	tk := authz.StoreTask{ID: "task_E", Deadline: time.Now().Add(time.Second)}
	_, err := s.Begin(ctx, []authz.StoreTask{tk})
	require.NoError(t, err)
	ttl, err := s.c.PTTL(ctx, s.key("task_E", "task_E")).Result()
	require.NoError(t, err)
	assert.True(t, ttl > 2*time.Second && ttl <= 3*time.Second, "ttl %v", ttl)
	r, err := s.Authorize(ctx, &authz.StoreOp{Chain: []authz.StoreTask{tk}, Tool: "t"})
	require.NoError(t, err)
	require.Equal(t, authz.StoreOK, r.Outcome)
	ttl, err = s.c.PTTL(ctx, s.key("task_E", "task_E")).Result()
	require.NoError(t, err)
	assert.True(t, ttl > 2*time.Second && ttl <= 3*time.Second, "ttl after authorize %v", ttl)
}

func TestPastDeadlineIsEnded(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv, freshPrefix())
	ctx := tctx(t)
	tk := authz.StoreTask{ID: "task_D", Deadline: time.Now().Add(-time.Millisecond)}
	_, err := s.Begin(ctx, []authz.StoreTask{tk})
	require.NoError(t, err)
	r, err := s.Authorize(ctx, &authz.StoreOp{Chain: []authz.StoreTask{tk}, Tool: "t"})
	require.NoError(t, err)
	assert.Equal(t, authz.StoreEnded, r.Outcome)
}

func TestRateLimitGCRA(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv, freshPrefix())
	ctx := tctx(t)
	root, child := task("task_R", nil), task("task_C", nil)
	_, err := s.Begin(ctx, []authz.StoreTask{root, child})
	require.NoError(t, err)
	op := &authz.StoreOp{Chain: []authz.StoreTask{root, child}, Tool: "http.get",
		Limits: []authz.StoreLimit{
			{Task: 1, Key: "fetch 3/1h", Rate: 3, Per: time.Hour, Burst: 3},
			{Task: 0, Key: "fetch 5/1h", Rate: 5, Per: time.Hour, Burst: 5},
		}}
	for range 3 {
		r, err := s.Authorize(ctx, op)
		require.NoError(t, err)
		require.Equal(t, authz.StoreOK, r.Outcome)
	}
	r, err := s.Authorize(ctx, op)
	require.NoError(t, err)
	assert.Equal(t, authz.StoreRateLimited, r.Outcome)
	assert.Equal(t, 0, r.Failed)
	assert.InDelta(t, 20*time.Minute, r.RetryAfter, float64(time.Minute))
	// The refused call took nothing from the root's limit: two more fit.
	op.Limits = op.Limits[1:]
	for range 2 {
		r, err := s.Authorize(ctx, op)
		require.NoError(t, err)
		require.Equal(t, authz.StoreOK, r.Outcome)
	}
	r, err = s.Authorize(ctx, op)
	require.NoError(t, err)
	assert.Equal(t, authz.StoreRateLimited, r.Outcome)
	assert.Equal(t, 5, mustCalls(t, s, ctx, root, "http.get"))
}

func mustCalls(t *testing.T, s *Store, ctx context.Context, root authz.StoreTask, tool string) int {
	t.Helper()
	n, err := s.c.HGet(ctx, s.key(root.ID, root.ID), "c:"+tool).Int()
	require.NoError(t, err)
	return n
}

func TestRateLimitRefills(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv, freshPrefix())
	ctx := tctx(t)
	tk := task("task_R", nil)
	_, err := s.Begin(ctx, []authz.StoreTask{tk})
	require.NoError(t, err)
	op := &authz.StoreOp{Chain: []authz.StoreTask{tk}, Tool: "t",
		Limits: []authz.StoreLimit{{Task: 0, Key: "k", Rate: 20, Per: time.Second, Burst: 1}}}
	r, err := s.Authorize(ctx, op)
	require.NoError(t, err)
	require.Equal(t, authz.StoreOK, r.Outcome)
	r, err = s.Authorize(ctx, op)
	require.NoError(t, err)
	require.Equal(t, authz.StoreRateLimited, r.Outcome)
	require.Greater(t, r.RetryAfter, time.Duration(0))
	require.LessOrEqual(t, r.RetryAfter, 50*time.Millisecond)
	time.Sleep(r.RetryAfter + 5*time.Millisecond) // the server's clock decides
	r, err = s.Authorize(ctx, op)
	require.NoError(t, err)
	assert.Equal(t, authz.StoreOK, r.Outcome)
}

func TestApprovals(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv, freshPrefix())
	ctx := tctx(t)
	tk := task("task_A", nil)
	_, err := s.Begin(ctx, []authz.StoreTask{tk})
	require.NoError(t, err)
	op := func(a *authz.StoreApproval) *authz.StoreOp {
		return &authz.StoreOp{Chain: []authz.StoreTask{tk}, Tool: "db.delete", Approval: a}
	}
	r, err := s.Authorize(ctx, op(&authz.StoreApproval{Digest: "d1"}))
	require.NoError(t, err)
	assert.Equal(t, authz.StoreApprovalNeeded, r.Outcome)

	// A single-use grant is used by its call and leaves nothing behind.
	r, err = s.Authorize(ctx, op(&authz.StoreApproval{Digest: "d1", Granted: true, By: "alice"}))
	require.NoError(t, err)
	require.Equal(t, authz.StoreOK, r.Outcome)
	r, err = s.Authorize(ctx, op(&authz.StoreApproval{Digest: "d1"}))
	require.NoError(t, err)
	assert.Equal(t, authz.StoreApprovalNeeded, r.Outcome)

	// A for-task grant stands for the same digest only.
	r, err = s.Authorize(ctx, op(&authz.StoreApproval{Digest: "d2", Granted: true, ForTask: true, By: "bob"}))
	require.NoError(t, err)
	require.Equal(t, authz.StoreOK, r.Outcome)
	for range 2 {
		r, err = s.Authorize(ctx, op(&authz.StoreApproval{Digest: "d2"}))
		require.NoError(t, err)
		require.Equal(t, authz.StoreOK, r.Outcome)
		assert.Equal(t, "bob", r.ApprovedBy)
	}
	r, err = s.Authorize(ctx, op(&authz.StoreApproval{Digest: "d3"}))
	require.NoError(t, err)
	assert.Equal(t, authz.StoreApprovalNeeded, r.Outcome)
}

func TestObserveStaleAndEvents(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := freshPrefix()
	a, b := newStore(t, srv, prefix), newStore(t, srv, prefix)
	sink := newRecSink()
	cancel, err := b.Subscribe(sink)
	require.NoError(t, err)
	defer cancel()
	sink.wait(t, "subscribed", func(_ []authz.TaskState, live []bool) bool { return lastLive(live) })

	ctx := tctx(t)
	root, child := task("task_R", nil), task("task_C", nil)
	_, err = a.Begin(ctx, []authz.StoreTask{root, child})
	require.NoError(t, err)
	weird := "src with\x00 bytes:\xff 12:"
	sts, err := a.Observe(ctx, []string{"task_R", "task_C"},
		authz.Taint{Sensitivity: authz.Confidential, Untrusted: true, Sources: []string{"http.fetch", weird, "http.fetch"}})
	require.NoError(t, err)
	want := authz.Taint{Sensitivity: authz.Confidential, Untrusted: true, Sources: []string{"http.fetch", weird}}
	for i, st := range sts {
		assert.Equal(t, uint64(1), st.TaintVersion, i)
		assert.Equal(t, want, st.Taint, i)
	}
	// The same taint again changes nothing and publishes nothing.
	sts, err = a.Observe(ctx, []string{"task_R", "task_C"}, authz.Taint{Sensitivity: authz.Internal, Sources: []string{"http.fetch"}})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), sts[1].TaintVersion)

	sink.wait(t, "both taint events", func(st []authz.TaskState, _ []bool) bool { return len(st) >= 2 })
	sink.mu.Lock()
	assert.ElementsMatch(t, []authz.TaskState{
		{ID: "task_R", Known: true, TaintVersion: 1, Taint: want},
		{ID: "task_C", Known: true, TaintVersion: 1, Taint: want},
	}, sink.states)
	sink.mu.Unlock()

	// A decision made on version 0 is stale and learns the new taint.
	r, err := b.Authorize(ctx, &authz.StoreOp{Chain: []authz.StoreTask{root, child}, Tool: "mail.send"})
	require.NoError(t, err)
	require.Equal(t, authz.StoreStale, r.Outcome)
	require.Len(t, r.State, 2)
	assert.Equal(t, want, r.State[1].Taint)
	root.TaintVersion, child.TaintVersion = 1, 1
	r, err = b.Authorize(ctx, &authz.StoreOp{Chain: []authz.StoreTask{root, child}, Tool: "mail.send"})
	require.NoError(t, err)
	assert.Equal(t, authz.StoreOK, r.Outcome)

	// b never began the tasks: it finds the sub-task's tree through Redis.
	require.Zero(t, b.index.len())
	require.NoError(t, b.End(ctx, "task_C"))
	got, err := b.State(ctx, []string{"task_C", "task_R"})
	require.NoError(t, err)
	assert.True(t, got[0].Ended)
	assert.False(t, got[1].Ended, "ending a sub-task leaves its parent")
	sink.wait(t, "end event", func(st []authz.TaskState, _ []bool) bool {
		return len(st) >= 3 && st[len(st)-1].Ended && st[len(st)-1].ID == "task_C"
	})
	// An ended task takes no more taint.
	sts, err = a.Observe(ctx, []string{"task_R", "task_C"}, authz.Taint{Sensitivity: authz.Restricted})
	require.NoError(t, err)
	assert.Equal(t, authz.Confidential, sts[1].Taint.Sensitivity)
	assert.True(t, sts[1].Ended)
}

func TestSourcesCapped(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv, freshPrefix())
	ctx := tctx(t)
	_, err := s.Begin(ctx, []authz.StoreTask{task("task_S", nil)})
	require.NoError(t, err)
	var srcs []string
	for i := range 300 {
		srcs = append(srcs, "s"+string(rune('a'+i%26))+time.Duration(i).String())
	}
	sts, err := s.Observe(ctx, []string{"task_S"}, authz.Taint{Sources: srcs})
	require.NoError(t, err)
	assert.Equal(t, srcs[:maxSources], sts[0].Taint.Sources)
}

func TestClose(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s, err := New(newClient(t, srv))
	require.NoError(t, err)
	sink := newRecSink()
	_, err = s.Subscribe(sink)
	require.NoError(t, err)
	sink.wait(t, "subscribed", func(_ []authz.TaskState, live []bool) bool { return lastLive(live) })
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Close(), ErrClosed)
	assert.ErrorIs(t, s.Close(), authz.ErrStoreClosed)
	ctx := tctx(t)
	_, err = s.Begin(ctx, []authz.StoreTask{task("task_Z", nil)})
	assert.ErrorIs(t, err, ErrClosed)
	_, err = s.Authorize(ctx, &authz.StoreOp{Chain: []authz.StoreTask{task("task_Z", nil)}})
	assert.ErrorIs(t, err, ErrClosed)
	_, err = s.Subscribe(sink)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, s.End(ctx, "task_Z"), ErrClosed)
}

func TestBadIDs(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer c.Close()
	s, err := New(c)
	require.NoError(t, err)
	defer s.Close()
	ctx := tctx(t)
	for _, id := range []string{"", "task_{x}", "}"} {
		_, err := s.Begin(ctx, []authz.StoreTask{task(id, nil)})
		assert.ErrorContains(t, err, "brace", id)
		assert.Error(t, s.End(ctx, id))
	}
}
