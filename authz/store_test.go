package authz_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

// faultStore is a Store under the test's control: it wraps a shared
// MemoryStore and can fail, stall, drop pushed changes and drop its
// subscription.
type faultStore struct {
	*authz.MemoryStore
	f *faults

	mu    sync.Mutex
	sinks []*faultSink
}

// faults are shared by the replicas of one backend.
type faults struct {
	fail  atomic.Bool  // every call fails
	stall atomic.Bool  // every call waits for its context
	drop  atomic.Bool  // pushed changes are lost
	calls atomic.Int64 // Authorize calls
}

var errStoreDown = errors.New("store down")

func (s *faultStore) check(ctx context.Context) error {
	if s.f.stall.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if s.f.fail.Load() {
		return errStoreDown
	}
	return nil
}

func (s *faultStore) Begin(ctx context.Context, chain []authz.StoreTask) ([]authz.TaskState, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s.MemoryStore.Begin(ctx, chain)
}

func (s *faultStore) Authorize(ctx context.Context, op *authz.StoreOp) (authz.StoreResult, error) {
	s.f.calls.Add(1)
	if err := s.check(ctx); err != nil {
		return authz.StoreResult{}, err
	}
	return s.MemoryStore.Authorize(ctx, op)
}

func (s *faultStore) Observe(ctx context.Context, chain []string, t authz.Taint) ([]authz.TaskState, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s.MemoryStore.Observe(ctx, chain, t)
}

func (s *faultStore) End(ctx context.Context, id string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.MemoryStore.End(ctx, id)
}

func (s *faultStore) State(ctx context.Context, ids []string) ([]authz.TaskState, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s.MemoryStore.State(ctx, ids)
}

func (s *faultStore) Subscribe(sink authz.StoreSink) (func(), error) {
	fs := &faultSink{sink: sink, f: s.f}
	cancel, err := s.MemoryStore.Subscribe(fs)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.sinks = append(s.sinks, fs)
	s.mu.Unlock()
	return cancel, nil
}

// subscribed tells every sink of s that its subscription went down or up.
func (s *faultStore) subscribed(live bool) {
	s.mu.Lock()
	sinks := append([]*faultSink(nil), s.sinks...)
	s.mu.Unlock()
	for _, fs := range sinks {
		fs.sink.Subscribed(live)
	}
}

type faultSink struct {
	sink authz.StoreSink
	f    *faults
}

func (fs *faultSink) TaskChanged(st authz.TaskState) {
	if !fs.f.drop.Load() && !fs.f.fail.Load() {
		fs.sink.TaskChanged(st)
	}
}

func (fs *faultSink) Subscribed(live bool) { fs.sink.Subscribed(live) }

// faultBackend is one MemoryStore with replicas under shared faults.
type faultBackend struct {
	mem      *authz.MemoryStore
	f        *faults
	mu       sync.Mutex
	replicas []*faultStore
}

func newFaultBackend() *faultBackend {
	return &faultBackend{mem: authz.NewMemoryStore(nil), f: &faults{}}
}

func (b *faultBackend) replica(*testing.T) authz.Store {
	s := &faultStore{MemoryStore: b.mem, f: b.f}
	b.mu.Lock()
	b.replicas = append(b.replicas, s)
	b.mu.Unlock()
	return s
}

// outage makes the store fail and drops every subscription until heal.
func (b *faultBackend) outage(*testing.T) (heal func()) {
	b.f.fail.Store(true)
	b.each(func(s *faultStore) { s.subscribed(false) })
	return func() {
		b.f.fail.Store(false)
		b.each(func(s *faultStore) { s.subscribed(true) })
	}
}

func (b *faultBackend) each(f func(*faultStore)) {
	b.mu.Lock()
	rs := append([]*faultStore(nil), b.replicas...)
	b.mu.Unlock()
	for _, s := range rs {
		f(s)
	}
}

func TestMemoryStoreConformance(t *testing.T) {
	authztest.StoreConformance(t, func(t *testing.T) authztest.StoreBackend {
		b := newFaultBackend()
		return authztest.StoreBackend{Replica: b.replica, Break: b.outage}
	})
}

const sharedPolicy = `
rules:
  - name: db
    tools: ["db.*"]
    effect: allow
    when: "true"
  - name: export
    tools: [mail.send]
    effect: allow
    when: intent == "export"
  - name: no-export-after-confidential
    tools: [mail.send]
    effect: deny
    when: intent == "export" && task.taint.sensitivity >= CONFIDENTIAL
`

// sharedGuards returns two guards on one faulty backend, a signing task
// tokens for b, both on clk.
func sharedGuards(t *testing.T, clk *authztest.Clock, opts ...authz.Option) (b *faultBackend, ga, gb *authz.Guard) {
	t.Helper()
	p, err := authz.ParsePolicy("shared.yaml", []byte(sharedPolicy))
	require.NoError(t, err)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	b = newFaultBackend()
	common := append([]authz.Option{authz.WithPolicy(p), authz.WithClock(clk.Now), authz.WithStoreTimeout(50 * time.Millisecond)}, opts...)
	ga, err = authz.New(append(common, authz.WithStore(b.replica(t)), authz.WithName("a"), authz.WithSigningKey("k", priv))...)
	require.NoError(t, err)
	gb, err = authz.New(append(common, authz.WithStore(b.replica(t)), authz.WithName("b"), authz.WithTrustedKey("k", pub))...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ga.Close(); _ = gb.Close() })
	return b, ga, gb
}

func handOver(t *testing.T, ga, gb *authz.Guard) (context.Context, *authz.Task, context.Context, *authz.Task) {
	t.Helper()
	ctxA, ta, err := ga.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "agent"},
		Clearance: authz.Restricted, TTL: time.Hour})
	require.NoError(t, err)
	t.Cleanup(ta.End)
	tok, err := ta.Token("b")
	require.NoError(t, err)
	ctxB, tb, err := gb.Resume(context.Background(), tok)
	require.NoError(t, err)
	t.Cleanup(tb.End)
	return ctxA, ta, ctxB, tb
}

var (
	query  = authz.Call{Tool: "db.query", Intent: "read", Destination: "db://orders"}
	export = authz.Call{Tool: "mail.send", Intent: "export", Destination: "mailto:x@example.org"}
)

func deniedBy(t *testing.T, err error, rule string) {
	t.Helper()
	var de *authz.DeniedError
	if assert.ErrorAs(t, err, &de) {
		assert.Equal(t, rule, de.Decision.Rule, de.Decision.Reason)
	}
}

// A pushed change that never arrives does not let a call through: the
// store tells Authorize the taint it decided on is old, and it decides
// again.
func TestStoreLostTaintPushRedecides(t *testing.T) {
	clk := authztest.NewClock(time.Now())
	b, ga, gb := sharedGuards(t, clk)
	_, ta, ctxB, tb := handOver(t, ga, gb)
	require.NoError(t, gb.Authorize(ctxB, export))

	b.f.drop.Store(true)
	ta.Observe("db://salaries", authz.Confidential, true)
	assert.Equal(t, authz.Public, tb.Taint().Sensitivity, "the push was lost")
	assert.Equal(t, authz.Allow, gb.Check(ctxB, export).Effect, "Check decides on the local view")
	calls := b.f.calls.Load()
	deniedBy(t, gb.Authorize(ctxB, export), "no-export-after-confidential")
	assert.Equal(t, int64(1), b.f.calls.Load()-calls, "one store call: stale; the decision again denies locally")
	assert.Equal(t, authz.Confidential, tb.Taint().Sensitivity, "the view was refreshed")
	assert.Equal(t, authz.Deny, gb.Check(ctxB, export).Effect)
}

// An end whose push was lost is found by the next Authorize, which ends
// the local copy and runs its hooks.
func TestStoreLostEndPush(t *testing.T) {
	clk := authztest.NewClock(time.Now())
	b, ga, gb := sharedGuards(t, clk)
	_, ta, ctxB, tb := handOver(t, ga, gb)
	var hook atomic.Bool
	tb.OnEnd(func() { hook.Store(true) })

	b.f.drop.Store(true)
	ta.End()
	assert.False(t, tb.Ended())
	deniedBy(t, gb.Authorize(ctxB, query), authz.RuleTaskEnded)
	assert.True(t, tb.Ended())
	assert.True(t, hook.Load(), "end hooks ran")
}

// Missed pushes are recovered when the subscription comes back.
func TestStoreResyncAfterReconnect(t *testing.T) {
	clk := authztest.NewClock(time.Now())
	b, ga, gb := sharedGuards(t, clk)
	_, ta, ctxB, tb := handOver(t, ga, gb)
	_, ta2, _, tb2 := handOver(t, ga, gb)

	b.f.drop.Store(true)
	b.each(func(s *faultStore) { s.subscribed(false) })
	ta.Observe("db://salaries", authz.Restricted, false)
	ta2.End()
	assert.Equal(t, authz.Allow, gb.Check(ctxB, export).Effect, "within the staleness bound")
	b.f.drop.Store(false)
	b.each(func(s *faultStore) { s.subscribed(true) })
	assert.Equal(t, authz.Restricted, tb.Taint().Sensitivity)
	assert.True(t, tb.Taint().Untrusted)
	assert.True(t, tb2.Ended())
	d := gb.Check(ctxB, export)
	assert.Equal(t, "no-export-after-confidential", d.Rule)
}

// A view older than the staleness bound without a subscription denies
// Check; when the subscription is back, Check decides again.
func TestStoreStaleViewDeniesCheck(t *testing.T) {
	clk := authztest.NewClock(time.Now())
	b, ga, gb := sharedGuards(t, clk, authz.WithStoreStaleness(3*time.Second))
	ctxA, _, ctxB, _ := handOver(t, ga, gb)

	b.each(func(s *faultStore) { s.subscribed(false) })
	clk.Advance(3 * time.Second)
	assert.Equal(t, authz.Allow, gb.Check(ctxB, query).Effect, "at the bound")
	clk.Advance(time.Millisecond)
	for _, c := range []struct {
		g   *authz.Guard
		ctx context.Context
	}{{ga, ctxA}, {gb, ctxB}} {
		d := c.g.Check(c.ctx, query)
		assert.Equal(t, authz.Deny, d.Effect)
		assert.Equal(t, authz.RuleStore, d.Rule)
		b.f.fail.Store(true)
		deniedBy(t, c.g.Authorize(c.ctx, query), authz.RuleStore)
		b.f.fail.Store(false)
	}
	b.each(func(s *faultStore) { s.subscribed(true) })
	assert.Equal(t, authz.Allow, gb.Check(ctxB, query).Effect)
	require.NoError(t, gb.Authorize(ctxB, query))
}

// A store that fails or does not answer denies every Authorize with
// RuleStore, leaks nothing, and service resumes when it answers again.
func TestStoreFailureDeniesAndRecovers(t *testing.T) {
	for _, mode := range []string{"error", "timeout"} {
		t.Run(mode, func(t *testing.T) {
			clk := authztest.NewClock(time.Now())
			b, ga, gb := sharedGuards(t, clk)
			ctxA, _, ctxB, _ := handOver(t, ga, gb)
			require.NoError(t, ga.Authorize(ctxA, query))
			before := runtime.NumGoroutine()
			flag := &b.f.fail
			if mode == "timeout" {
				flag = &b.f.stall
			}
			flag.Store(true)
			var wg sync.WaitGroup
			var allowed atomic.Int32
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					g, ctx := ga, ctxA
					if i%2 == 1 {
						g, ctx = gb, ctxB
					}
					err := g.Authorize(ctx, query)
					if err == nil {
						allowed.Add(1)
						return
					}
					deniedBy(t, err, authz.RuleStore)
				}()
			}
			wg.Wait()
			assert.Zero(t, allowed.Load())
			flag.Store(false)
			require.NoError(t, ga.Authorize(ctxA, query))
			require.NoError(t, gb.Authorize(ctxB, query))
			goroutinesBackTo(t, before)
		})
	}
}

// What a guard could not hand the store (an end, an observation) is
// handed over when the store is back, before anything is decided there.
func TestStorePendingChangesAreHandedOver(t *testing.T) {
	clk := authztest.NewClock(time.Now())
	b, ga, gb := sharedGuards(t, clk)
	ctxA, ta, ctxB, _ := handOver(t, ga, gb)
	_, ta2, ctxB2, tb2 := handOver(t, ga, gb)

	b.f.fail.Store(true)
	ta.Observe("db://salaries", authz.Confidential, true)
	ta2.End()
	assert.False(t, tb2.Ended())
	b.f.fail.Store(false)
	// a's next store operation hands both over first.
	require.NoError(t, ga.Authorize(ctxA, query))
	assert.True(t, tb2.Ended())
	deniedBy(t, gb.Authorize(ctxB2, query), authz.RuleTaskEnded)
	deniedBy(t, gb.Authorize(ctxB, export), "no-export-after-confidential")
}

// Begin and Resume fail closed when the store cannot record the task.
func TestStoreBeginFailsClosed(t *testing.T) {
	clk := authztest.NewClock(time.Now())
	b, ga, gb := sharedGuards(t, clk)
	_, ta, err := ga.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "agent"}})
	require.NoError(t, err)
	defer ta.End()
	tok, err := ta.Token("b")
	require.NoError(t, err)
	b.f.fail.Store(true)
	_, _, err = ga.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "agent"}})
	assert.ErrorIs(t, err, errStoreDown)
	_, _, err = gb.Resume(context.Background(), tok)
	assert.ErrorIs(t, err, authz.ErrToken)
}

func TestStoreOptions(t *testing.T) {
	for name, o := range map[string]authz.Option{
		"nil store":          authz.WithStore(nil),
		"zero staleness":     authz.WithStoreStaleness(0),
		"negative staleness": authz.WithStoreStaleness(-time.Second),
		"zero timeout":       authz.WithStoreTimeout(0),
	} {
		_, err := authz.New(o)
		assert.Error(t, err, name)
	}
	var zero authz.MemoryStore
	_, err := zero.Begin(context.Background(), nil)
	assert.Error(t, err)
	_, err = authz.New(authz.WithStore(&zero))
	assert.Error(t, err, "a store that cannot subscribe")
	g, err := authz.New()
	require.NoError(t, err)
	assert.NoError(t, g.Close())
	assert.NoError(t, g.Close())
}

// goroutinesBackTo waits up to a second for the number of goroutines to
// fall back to n.
func goroutinesBackTo(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); runtime.NumGoroutine() > n; {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// When the subscription stays down but the store answers, Authorize
// reloads the view, and Check trusts it for another staleness bound.
func TestStoreReloadWithoutSubscription(t *testing.T) {
	clk := authztest.NewClock(time.Now())
	b, ga, gb := sharedGuards(t, clk, authz.WithStoreStaleness(time.Second))
	_, ta, ctxB, _ := handOver(t, ga, gb)
	b.each(func(s *faultStore) { s.subscribed(false) })
	b.f.drop.Store(true)
	clk.Advance(2 * time.Second)
	assert.Equal(t, authz.RuleStore, gb.Check(ctxB, query).Rule)
	require.NoError(t, gb.Authorize(ctxB, query))
	assert.Equal(t, authz.Allow, gb.Check(ctxB, query).Effect, "reloaded by Authorize")
	ta.Observe("db://salaries", authz.Confidential, true)
	deniedBy(t, gb.Authorize(ctxB, export), "no-export-after-confidential")
	clk.Advance(2 * time.Second)
	assert.Equal(t, authz.RuleStore, gb.Check(ctxB, query).Rule)
}

// decisionLog records observed decisions.
type decisionLog struct {
	mu sync.Mutex
	ds []authz.DecisionEvent
}

func (l *decisionLog) OnDecision(_ context.Context, e authz.DecisionEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ds = append(l.ds, e)
}

func (l *decisionLog) OnLease(context.Context, authz.LeaseEvent) {}

func (l *decisionLog) take() []authz.DecisionEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	ds := l.ds
	l.ds = nil
	return ds
}

// Observers see one event per Authorize under a store too, with the final
// decision: the store's denial, or a standing approval recorded by
// another guard.
func TestStoreObservedAuthorize(t *testing.T) {
	p, err := authz.ParsePolicy("p.yaml", []byte(`
rules:
  - {name: db, tools: ["db.query"], effect: allow, when: "true"}
  - {name: del, tools: ["db.delete"], effect: ask, when: "true"}
`))
	require.NoError(t, err)
	b := newFaultBackend()
	var log decisionLog
	app := authztest.NewApprover(authz.Grant{Approved: true, ForTask: true, By: "alice"})
	g, err := authz.New(authz.WithPolicy(p), authz.WithStore(b.replica(t)), authz.WithObserver(&log), authz.WithApprover(app))
	require.NoError(t, err)
	defer g.Close()
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "agent"}})
	require.NoError(t, err)
	defer task.End()

	require.NoError(t, g.Authorize(ctx, query))
	b.f.fail.Store(true)
	deniedBy(t, g.Authorize(ctx, query), authz.RuleStore)
	b.f.fail.Store(false)
	del := authz.Call{Tool: "db.delete", Intent: "delete", Destination: "db://orders"}
	require.NoError(t, g.Authorize(ctx, del))
	require.NoError(t, g.Authorize(ctx, del))
	ds := log.take()
	require.Len(t, ds, 4)
	assert.Equal(t, authz.Allow, ds[0].Effect)
	assert.Equal(t, authz.Deny, ds[1].Effect)
	assert.Equal(t, authz.RuleStore, ds[1].Rule)
	for i, d := range ds[2:] {
		assert.Equal(t, authz.Allow, d.Effect, i)
		assert.Equal(t, authz.ApprovalGranted, d.Approval, i)
	}
	assert.Len(t, app.Requests(), 1, "the standing approval covers the second call")
}
