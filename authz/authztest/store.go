package authztest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskguard/taskguard/authz"
)

// StoreBackend is one shared backing store for [StoreConformance]: what
// several replicas of a service would share.
type StoreBackend struct {
	// Replica opens a new [authz.Store] on the backend, as one replica
	// would (its own connection and subscription). Required. Replica
	// closes what it opens when the test ends (t.Cleanup).
	Replica func(t *testing.T) authz.Store
	// Break, when set, makes the backend unreachable for every replica
	// until heal is called (for Redis: stop or pause the server). The
	// outage subtest is skipped without it.
	Break func(t *testing.T) (heal func())
}

// StoreConformance checks that an [authz.Store] implementation gives
// guards the semantics of shared task state: replicas sharing it enforce
// one rate limit, one budget and one task.calls per task, exactly, under
// concurrent load; a single-use approval is used once and a standing one
// holds on every replica; ending a task on the guard that began it ends
// it on every replica (end hooks run); taint observed on one replica
// denies an export on another at once; many tasks do not mix; and, with
// Break, a store outage denies every Authorize (RuleStore) without
// leaking goroutines and service resumes after it. It also checks the
// Store methods directly against the documented contract.
//
// open is called once per subtest and must return a fresh, empty backend
// (for Redis, a new key prefix is enough). The guards use the real clock;
// waiting for pushed changes is bounded by a few seconds.
func StoreConformance(t *testing.T, open func(t *testing.T) StoreBackend) {
	t.Helper()
	tests := []struct {
		name string
		run  func(*testing.T, StoreBackend)
	}{
		{"Contract", storeContract},
		{"RateLimitAcrossReplicas", storeRateLimit},
		{"BudgetAcrossReplicas", storeBudget},
		{"CallsAcrossReplicas", storeCalls},
		{"Approvals", storeApprovals},
		{"EndEverywhere", storeEnd},
		{"TaintAcrossReplicas", storeTaint},
		{"ManyTasks", storeManyTasks},
		{"Outage", storeOutage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			if b.Replica == nil {
				t.Fatal("authztest: StoreBackend.Replica is nil")
			}
			tc.run(t, b)
		})
	}
}

// storePolicy is the policy of the conformance guards.
const storePolicy = `
rules:
  - name: fetch
    tools: [http.fetch]
    effect: allow
    when: "true"
    limit: {rate: 20/h, burst: 20}
  - name: db
    tools: ["db.*"]
    effect: allow
    when: intent != "delete"
  - name: delete-asks
    tools: [db.delete]
    effect: ask
    when: "true"
  - name: read
    tools: [doc.read]
    effect: allow
    when: intent == "read"
  - name: export
    tools: [mail.send]
    effect: allow
    when: intent == "export"
  - name: no-export-after-confidential
    tools: [mail.send]
    effect: deny
    when: intent == "export" && task.taint.sensitivity >= CONFIDENTIAL
`

// replicaPair is two guards on one backend: a begins tasks and hands them
// to b with task tokens.
type replicaPair struct {
	a, b         *authz.Guard
	appA, appB   *Approver
	storeA, stB  authz.Store
	key          ed25519.PrivateKey
	bName, aName string
}

func newReplicaPair(t *testing.T, b StoreBackend, appA, appB *Approver) *replicaPair {
	t.Helper()
	p, err := authz.ParsePolicy("conformance.yaml", []byte(storePolicy))
	if err != nil {
		t.Fatalf("authztest: policy: %v", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if appA == nil {
		appA = NewApprover()
	}
	if appB == nil {
		appB = NewApprover()
	}
	rp := &replicaPair{appA: appA, appB: appB, key: priv, aName: "replica-a", bName: "replica-b"}
	rp.storeA, rp.stB = b.Replica(t), b.Replica(t)
	rp.a = newStoreGuard(t, rp.storeA, p, appA, authz.WithName(rp.aName), authz.WithSigningKey("k1", priv))
	rp.b = newStoreGuard(t, rp.stB, p, appB, authz.WithName(rp.bName), authz.WithTrustedKey("k1", pub))
	return rp
}

func newStoreGuard(t *testing.T, s authz.Store, p *authz.Policy, app *Approver, opts ...authz.Option) *authz.Guard {
	t.Helper()
	opts = append(opts, authz.WithStore(s), authz.WithPolicy(p), authz.WithApprover(app),
		authz.WithStoreTimeout(2*time.Second))
	g, err := authz.New(opts...)
	if err != nil {
		t.Fatalf("authztest: guard: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

var storeSpec = authz.TaskSpec{
	Agent:     authz.Agent{ID: "spiffe://authztest/agent"},
	Intents:   []string{"read", "write", "delete", "export"},
	Clearance: authz.Restricted,
	TTL:       time.Minute,
}

// begin starts a task on a and resumes it on b.
func (rp *replicaPair) begin(t *testing.T, spec authz.TaskSpec) (ctxA context.Context, ta *authz.Task, ctxB context.Context, tb *authz.Task) {
	t.Helper()
	ctxA, ta, err := rp.a.Begin(context.Background(), spec)
	if err != nil {
		t.Fatalf("authztest: begin: %v", err)
	}
	t.Cleanup(ta.End)
	ctxB, tb = rp.resume(t, ta)
	return ctxA, ta, ctxB, tb
}

// resume hands ta to b.
func (rp *replicaPair) resume(t *testing.T, ta *authz.Task) (context.Context, *authz.Task) {
	t.Helper()
	tok, err := ta.Token(rp.bName)
	if err != nil {
		t.Fatalf("authztest: token: %v", err)
	}
	ctxB, tb, err := rp.b.Resume(context.Background(), tok)
	if err != nil {
		t.Fatalf("authztest: resume: %v", err)
	}
	t.Cleanup(tb.End)
	return ctxB, tb
}

// eventually waits up to five seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("authztest: %s: not within 5s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hammer runs n Authorize calls of c, alternating between the replicas on
// several goroutines, and returns how many were allowed and the rules of
// the denials.
func hammer(ctxs []context.Context, gs []*authz.Guard, n int, c authz.Call) (int, map[string]int) {
	var allowed atomic.Int64
	var mu sync.Mutex
	denied := map[string]int{}
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				r := i % len(gs)
				err := gs[r].Authorize(ctxs[r], c)
				if err == nil {
					allowed.Add(1)
					continue
				}
				var de *authz.DeniedError
				rule := "error"
				if errors.As(err, &de) {
					rule = de.Decision.Rule
				}
				mu.Lock()
				denied[rule]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return int(allowed.Load()), denied
}

func storeRateLimit(t *testing.T, b StoreBackend) {
	rp := newReplicaPair(t, b, nil, nil)
	ctxA, _, ctxB, _ := rp.begin(t, storeSpec)
	c := authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}
	allowed, denied := hammer([]context.Context{ctxA, ctxB}, []*authz.Guard{rp.a, rp.b}, 120, c)
	if allowed != 20 || denied["fetch"] != 100 {
		t.Errorf("rate limit 20/h burst 20 over two replicas: %d allowed, denials %v; want exactly 20 allowed and 100 denied by fetch", allowed, denied)
	}
}

func storeBudget(t *testing.T, b StoreBackend) {
	rp := newReplicaPair(t, b, nil, nil)
	spec := storeSpec
	spec.MaxCalls = map[string]int{"db.*": 7}
	ctxA, _, ctxB, _ := rp.begin(t, spec)
	c := authz.Call{Tool: "db.query", Intent: "read", Destination: "db://orders"}
	allowed, denied := hammer([]context.Context{ctxA, ctxB}, []*authz.Guard{rp.a, rp.b}, 60, c)
	if allowed != 7 || denied[authz.RuleBudget] != 53 {
		t.Errorf("MaxCalls 7 over two replicas: %d allowed, denials %v; want exactly 7 allowed and 53 denied by %s", allowed, denied, authz.RuleBudget)
	}
	// A sub-task on b spends its parent's budget too: nothing is left.
	sub, _, err := rp.b.Begin(ctxB, authz.TaskSpec{Agent: spec.Agent})
	if err != nil {
		t.Fatalf("begin sub-task: %v", err)
	}
	if err := rp.b.Authorize(sub, c); !isDenied(err, authz.RuleBudget) {
		t.Errorf("sub-task call after the parent's budget is spent: %v; want denied by %s", err, authz.RuleBudget)
	}
}

func storeCalls(t *testing.T, b StoreBackend) {
	rp := newReplicaPair(t, b, nil, nil)
	ctxA, ta, ctxB, tb := rp.begin(t, storeSpec)
	c := authz.Call{Tool: "db.query", Intent: "read", Destination: "db://orders"}
	allowed, denied := hammer([]context.Context{ctxA, ctxB}, []*authz.Guard{rp.a, rp.b}, 40, c)
	if allowed != 40 {
		t.Fatalf("40 calls without limit: %d allowed, denials %v", allowed, denied)
	}
	mustAuthorize(t, rp.b, ctxB, c)
	if n := tb.Calls()["db.query"]; n != 41 {
		t.Errorf("task.calls on replica b after 41 calls over both replicas: %d", n)
	}
	mustAuthorize(t, rp.a, ctxA, c)
	if n := ta.Calls()["db.query"]; n != 42 {
		t.Errorf("task.calls on replica a after 42 calls over both replicas: %d", n)
	}
}

func storeApprovals(t *testing.T, b StoreBackend) {
	appA := NewApprover(authz.Grant{Approved: true, By: "alice"}, authz.Grant{Approved: true, ForTask: true, By: "bob"})
	appB := NewApprover()
	rp := newReplicaPair(t, b, appA, appB)
	ctxA, _, ctxB, _ := rp.begin(t, storeSpec)
	c := authz.Call{Tool: "db.delete", Intent: "delete", Destination: "db://orders", Args: map[string]any{"id": "7"}}

	// A single-use approval on a covers that one call only.
	mustAuthorize(t, rp.a, ctxA, c)
	if err := rp.b.Authorize(ctxB, c); !isDenied(err, authz.RuleApproval) {
		t.Errorf("b after a single-use approval on a: %v; want denied by %s (b's approver refuses)", err, authz.RuleApproval)
	}
	if n := len(appB.Requests()); n != 1 {
		t.Errorf("b's approver was asked %d times; want once", n)
	}
	// A standing approval on a covers the same call on b, without asking.
	mustAuthorize(t, rp.a, ctxA, c)
	if n := len(appA.Requests()); n != 2 {
		t.Errorf("a's approver was asked %d times; want twice", n)
	}
	mustAuthorize(t, rp.b, ctxB, c)
	mustAuthorize(t, rp.a, ctxA, c)
	if n := len(appB.Requests()); n != 1 {
		t.Errorf("b's approver was asked %d times after a standing approval; want once", n)
	}
	if n := len(appA.Requests()); n != 2 {
		t.Errorf("a's approver was asked %d times after a standing approval; want twice", n)
	}
	// Another call (other arguments) is not covered.
	c.Args = map[string]any{"id": "8"}
	if err := rp.b.Authorize(ctxB, c); !isDenied(err, authz.RuleApproval) {
		t.Errorf("b, call with other arguments: %v; want denied by %s", err, authz.RuleApproval)
	}
}

func storeEnd(t *testing.T, b StoreBackend) {
	rp := newReplicaPair(t, b, nil, nil)
	ctxA, ta, ctxB, tb := rp.begin(t, storeSpec)
	subB, sub, err := rp.b.Begin(ctxB, authz.TaskSpec{Agent: storeSpec.Agent})
	if err != nil {
		t.Fatalf("begin sub-task on b: %v", err)
	}
	var hooks atomic.Int32
	tb.OnEnd(func() { hooks.Add(1) })
	sub.OnEnd(func() { hooks.Add(1) })
	c := authz.Call{Tool: "db.query", Intent: "read", Destination: "db://orders"}
	mustAuthorize(t, rp.b, ctxB, c)

	// Ending b's copy ends the copy, not the task.
	_, tb2 := rp.resume(t, ta)
	tb2.End()
	mustAuthorize(t, rp.a, ctxA, c)
	mustAuthorize(t, rp.b, ctxB, c)

	tok, err := ta.Token(rp.bName)
	if err != nil {
		t.Fatal(err)
	}
	ta.End()
	eventually(t, "replica b ends its copy and the sub-task and runs their end hooks", func() bool {
		return tb.Ended() && sub.Ended() && hooks.Load() == 2
	})
	for _, ctx := range []context.Context{ctxB, subB} {
		if d := rp.b.Check(ctx, c); d.Effect != authz.Deny || d.Rule != authz.RuleTaskEnded {
			t.Errorf("Check on b after the end: %v by %s; want deny by %s", d.Effect, d.Rule, authz.RuleTaskEnded)
		}
		if err := rp.b.Authorize(ctx, c); !isDenied(err, authz.RuleTaskEnded) {
			t.Errorf("Authorize on b after the end: %v; want denied by %s", err, authz.RuleTaskEnded)
		}
	}
	if _, _, err := rp.b.Resume(context.Background(), tok); !errors.Is(err, authz.ErrToken) {
		t.Errorf("Resume on b of a token of an ended task: %v; want ErrToken", err)
	}
}

func storeTaint(t *testing.T, b StoreBackend) {
	rp := newReplicaPair(t, b, nil, nil)
	export := authz.Call{Tool: "mail.send", Intent: "export", Destination: "mailto:x@example.org"}
	for _, dir := range []string{"a observes, b exports", "b observes, a exports"} {
		ctxA, ta, ctxB, tb := rp.begin(t, storeSpec)
		obs, exp, ctxExp, gExp := ta, tb, ctxB, rp.b
		if dir != "a observes, b exports" {
			obs, exp, ctxExp, gExp = tb, ta, ctxA, rp.a
		}
		mustAuthorize(t, gExp, ctxExp, export)
		obs.Observe("db://salaries", authz.Confidential, true)
		// At once, with no wait for the push: Authorize must decide on it.
		if err := gExp.Authorize(ctxExp, export); !isDenied(err, "no-export-after-confidential") {
			t.Errorf("%s: %v; want denied by no-export-after-confidential", dir, err)
		}
		eventually(t, dir+": the exporting replica's view gains the taint", func() bool {
			return exp.Taint().Sensitivity == authz.Confidential
		})
		if d := gExp.Check(ctxExp, export); d.Effect != authz.Deny || d.Rule != "no-export-after-confidential" {
			t.Errorf("%s: Check %v by %s; want deny by no-export-after-confidential", dir, d.Effect, d.Rule)
		}
	}
}

func storeManyTasks(t *testing.T, b StoreBackend) {
	rp := newReplicaPair(t, b, nil, nil)
	const tasks = 40
	spec := storeSpec
	spec.MaxCalls = map[string]int{"db.*": 3}
	type pair struct {
		ctxA, ctxB context.Context
	}
	ps := make([]pair, tasks)
	for i := range ps {
		ctxA, ta, ctxB, _ := rp.begin(t, spec)
		ps[i] = pair{ctxA, ctxB}
		if i%2 == 0 {
			ta.Observe("db://salaries", authz.Confidential, true)
		}
	}
	c := authz.Call{Tool: "db.query", Intent: "read", Destination: "db://orders"}
	export := authz.Call{Tool: "mail.send", Intent: "export", Destination: "mailto:x@example.org"}
	var wg sync.WaitGroup
	errs := make([]error, tasks)
	for i := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			allowed, denied := hammer([]context.Context{ps[i].ctxA, ps[i].ctxB}, []*authz.Guard{rp.a, rp.b}, 10, c)
			if allowed != 3 || denied[authz.RuleBudget] != 7 {
				errs[i] = fmt.Errorf("task %d: %d allowed, denials %v; want 3 and 7 by %s", i, allowed, denied, authz.RuleBudget)
				return
			}
			err := rp.b.Authorize(ps[i].ctxB, export)
			switch {
			case i%2 == 0 && !isDenied(err, "no-export-after-confidential"):
				errs[i] = fmt.Errorf("task %d (tainted): export %v; want denied", i, err)
			case i%2 == 1 && err != nil:
				errs[i] = fmt.Errorf("task %d (not tainted): export %v; want allowed", i, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}

func storeOutage(t *testing.T, b StoreBackend) {
	if b.Break == nil {
		t.Skip("authztest: the backend cannot break (StoreBackend.Break is nil)")
	}
	rp := newReplicaPair(t, b, nil, nil)
	ctxA, _, ctxB, _ := rp.begin(t, storeSpec)
	c := authz.Call{Tool: "db.query", Intent: "read", Destination: "db://orders"}
	mustAuthorize(t, rp.a, ctxA, c)
	mustAuthorize(t, rp.b, ctxB, c)
	before := runtime.NumGoroutine()

	heal := b.Break(t)
	allowed, denied := hammer([]context.Context{ctxA, ctxB}, []*authz.Guard{rp.a, rp.b}, 40, c)
	if allowed != 0 || denied[authz.RuleStore] != 40 {
		t.Errorf("during the outage: %d allowed, denials %v; want all 40 denied by %s", allowed, denied, authz.RuleStore)
	}
	heal()
	eventually(t, "service resumes on both replicas after the outage", func() bool {
		return rp.a.Authorize(ctxA, c) == nil && rp.b.Authorize(ctxB, c) == nil
	})
	eventually(t, "no goroutine leaks from the outage", func() bool {
		return runtime.NumGoroutine() <= before+2
	})
}

// storeContract checks the Store methods directly.
func storeContract(t *testing.T, b StoreBackend) {
	s1, s2 := b.Replica(t), b.Replica(t)
	ctx := context.Background()
	sink := newRecordingSink()
	cancel, err := s2.Subscribe(sink)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer cancel()
	eventually(t, "the subscription goes live", func() bool { return sink.live.Load() })

	deadline := time.Now().Add(time.Minute)
	root := authz.StoreTask{ID: "task_root" + rand.Text(), Deadline: deadline, Budgets: map[string]int{"db.*": 2}}
	child := authz.StoreTask{ID: "task_child" + rand.Text(), Deadline: deadline}
	st, err := s1.State(ctx, []string{root.ID})
	if err != nil || len(st) != 1 || st[0].Known || st[0].ID != root.ID {
		t.Fatalf("State of an unknown task: %+v, %v; want one state, not known", st, err)
	}
	st, err = s1.Begin(ctx, []authz.StoreTask{root, child})
	if err != nil || len(st) != 2 || !st[0].Known || !st[1].Known || st[0].Ended || st[0].TaintVersion != 0 {
		t.Fatalf("Begin: %+v, %v; want two known, live, untainted tasks", st, err)
	}
	chain := []authz.StoreTask{root, child}
	ok := func(op authz.StoreOp) authz.StoreResult {
		t.Helper()
		res, err := s1.Authorize(ctx, &op)
		if err != nil {
			t.Fatalf("Authorize: %v", err)
		}
		return res
	}

	// Counting, on every task of the chain.
	res := ok(authz.StoreOp{Chain: chain, Tool: "db.query"})
	if res.Outcome != authz.StoreOK || len(res.Calls) != 2 || res.Calls[0] != 1 || res.Calls[1] != 1 {
		t.Errorf("first call: %+v; want StoreOK with Calls [1 1]", res)
	}
	// Budgets, all or nothing: the spend fails, so the limit and the count do not happen.
	spend := []authz.StoreSpend{{Task: 0, Pattern: "db.*"}}
	limit := []authz.StoreLimit{{Task: 1, Key: "r 3/1h0m0s burst 3", Rate: 3, Per: time.Hour, Burst: 3}}
	for i := range 2 {
		if res := ok(authz.StoreOp{Chain: chain, Tool: "db.query", Budgets: spend, Limits: limit}); res.Outcome != authz.StoreOK {
			t.Fatalf("budgeted call %d: %+v", i, res)
		}
	}
	res = ok(authz.StoreOp{Chain: chain, Tool: "db.query", Budgets: spend, Limits: limit})
	if res.Outcome != authz.StoreBudgetSpent || res.Failed != 0 {
		t.Errorf("third budgeted call of 2: %+v; want StoreBudgetSpent, Failed 0", res)
	}
	res = ok(authz.StoreOp{Chain: chain, Tool: "db.query", Limits: limit})
	if res.Outcome != authz.StoreOK || res.Calls[1] != 4 {
		t.Errorf("third token of a burst of 3 after a failed op: %+v; want StoreOK, Calls [4 4]", res)
	}
	res = ok(authz.StoreOp{Chain: chain, Tool: "db.query", Limits: limit})
	if res.Outcome != authz.StoreRateLimited || res.Failed != 0 || res.RetryAfter <= 0 || res.RetryAfter > 20*time.Minute {
		t.Errorf("fourth token of a burst of 3 at 3/h: %+v; want StoreRateLimited, RetryAfter in (0, 20m]", res)
	}
	// A new key is a new limiter.
	limit[0].Key = "r 4/1h0m0s burst 3"
	if res := ok(authz.StoreOp{Chain: chain, Tool: "db.query", Limits: limit}); res.Outcome != authz.StoreOK {
		t.Errorf("a new limiter key: %+v; want StoreOK", res)
	}

	// Approvals.
	appr := &authz.StoreApproval{Digest: "d1"}
	if res := ok(authz.StoreOp{Chain: chain, Tool: "db.delete", Approval: appr}); res.Outcome != authz.StoreApprovalNeeded {
		t.Errorf("no standing approval: %+v; want StoreApprovalNeeded", res)
	}
	once := &authz.StoreApproval{Digest: "d1", Granted: true, By: "alice"}
	if res := ok(authz.StoreOp{Chain: chain, Tool: "db.delete", Approval: once}); res.Outcome != authz.StoreOK {
		t.Errorf("a granted single-use approval: %+v; want StoreOK", res)
	}
	if res := ok(authz.StoreOp{Chain: chain, Tool: "db.delete", Approval: appr}); res.Outcome != authz.StoreApprovalNeeded {
		t.Errorf("after a single-use approval: %+v; want StoreApprovalNeeded", res)
	}
	standing := &authz.StoreApproval{Digest: "d1", Granted: true, ForTask: true, By: "bob"}
	if res := ok(authz.StoreOp{Chain: chain, Tool: "db.delete", Approval: standing}); res.Outcome != authz.StoreOK {
		t.Errorf("a granted standing approval: %+v; want StoreOK", res)
	}
	if res := ok(authz.StoreOp{Chain: chain, Tool: "db.delete", Approval: appr}); res.Outcome != authz.StoreOK || res.ApprovedBy != "bob" {
		t.Errorf("under a standing approval: %+v; want StoreOK by bob", res)
	}

	// Taint: merged into every task of the chain, versions only on change,
	// pushed to other replicas.
	st, err = s1.Observe(ctx, []string{root.ID, child.ID}, authz.Taint{Sensitivity: authz.Internal, Untrusted: true, Sources: []string{"web"}})
	if err != nil || len(st) != 2 || st[1].TaintVersion == 0 || !st[1].Taint.Untrusted || st[1].Taint.Sensitivity != authz.Internal ||
		len(st[1].Taint.Sources) != 1 {
		t.Fatalf("Observe: %+v, %v", st, err)
	}
	v := st[1].TaintVersion
	st, err = s1.Observe(ctx, []string{root.ID, child.ID}, authz.Taint{Sensitivity: authz.Public, Sources: []string{"web"}})
	if err != nil || st[1].TaintVersion != v {
		t.Errorf("an observation that changes nothing: %+v, %v; want version %d kept", st, err, v)
	}
	eventually(t, "the taint is pushed to the other replica", func() bool {
		s, ok := sink.get(child.ID)
		return ok && s.TaintVersion == v && s.Taint.Sensitivity == authz.Internal
	})
	chain[1].TaintVersion = v - 1
	chain[0].TaintVersion = v
	res = ok(authz.StoreOp{Chain: chain, Tool: "db.query"})
	if res.Outcome != authz.StoreStale || len(res.State) != 2 || res.State[1].TaintVersion != v {
		t.Errorf("a decision on an old taint: %+v; want StoreStale with the chain's state", res)
	}
	chain[1].TaintVersion = v
	chain[0].TaintVersion = 0
	if res := ok(authz.StoreOp{Chain: chain, Tool: "db.query"}); res.Outcome != authz.StoreStale {
		t.Errorf("a decision on an old taint of the root: %+v; want StoreStale", res)
	}
	st, _ = s1.State(ctx, []string{root.ID})
	chain[0].TaintVersion = st[0].TaintVersion
	if res := ok(authz.StoreOp{Chain: chain, Tool: "db.query"}); res.Outcome != authz.StoreOK {
		t.Errorf("a decision on the current taint: %+v; want StoreOK", res)
	}

	// Ends: the root's end fails the child's operations; pushed.
	if err := s1.End(ctx, root.ID); err != nil {
		t.Fatalf("End: %v", err)
	}
	if err := s1.End(ctx, root.ID); err != nil {
		t.Errorf("End twice: %v", err)
	}
	if err := s1.End(ctx, "task_never_begun"); err != nil {
		t.Errorf("End of an unknown task: %v", err)
	}
	res = ok(authz.StoreOp{Chain: chain, Tool: "db.query"})
	if res.Outcome != authz.StoreEnded || res.Failed != 0 {
		t.Errorf("a call under an ended root: %+v; want StoreEnded, Failed 0", res)
	}
	eventually(t, "the end is pushed to the other replica", func() bool {
		s, ok := sink.get(root.ID)
		return ok && s.Ended
	})
	st, err = s2.Begin(ctx, []authz.StoreTask{root})
	if err != nil || !st[0].Ended {
		t.Errorf("Begin of an ended task: %+v, %v; want it still ended", st, err)
	}
	if res := ok(authz.StoreOp{Chain: []authz.StoreTask{{ID: "task_unknown", Deadline: deadline}}, Tool: "x"}); res.Outcome != authz.StoreUnknown || res.Failed != 0 {
		t.Errorf("a call of an unknown task: %+v; want StoreUnknown", res)
	}
	cancel()
	cancel()
}

// recordingSink records what a store pushes.
type recordingSink struct {
	live   atomic.Bool
	mu     sync.Mutex
	states map[string]authz.TaskState
}

func newRecordingSink() *recordingSink {
	return &recordingSink{states: map[string]authz.TaskState{}}
}

func (r *recordingSink) TaskChanged(s authz.TaskState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.states[s.ID]
	if !ok || s.TaintVersion >= old.TaintVersion {
		s.Ended = s.Ended || old.Ended
		r.states[s.ID] = s
	}
}

func (r *recordingSink) Subscribed(live bool) { r.live.Store(live) }

func (r *recordingSink) get(id string) (authz.TaskState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.states[id]
	return s, ok
}

func mustAuthorize(t *testing.T, g *authz.Guard, ctx context.Context, c authz.Call) {
	t.Helper()
	if err := g.Authorize(ctx, c); err != nil {
		t.Errorf("Authorize %s %s: %v", c.Tool, c.Intent, err)
	}
}

func isDenied(err error, rule string) bool {
	var de *authz.DeniedError
	return errors.As(err, &de) && de.Decision.Rule == rule
}
