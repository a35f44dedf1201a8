package redisstore

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
	"github.com/taskguard/taskguard/internal/redistest"
)

// replicaPolicy is the policy every replica in these tests enforces.
const replicaPolicy = `
rules:
  - name: fetch
    tools: [http.fetch]
    effect: allow
    when: "true"
    limit: {rate: 30/h, burst: 30}
  - name: db
    tools: ["db.*"]
    effect: allow
    when: intent == "read"
  - name: delete-asks
    tools: [db.delete]
    effect: ask
    when: "true"
  - name: export
    tools: [mail.send]
    effect: allow
    when: intent == "export"
  - name: no-export-after-confidential
    tools: [mail.send]
    effect: deny
    when: task.taint.sensitivity >= CONFIDENTIAL
`

var replicaSpec = authz.TaskSpec{
	Agent:     authz.Agent{ID: "spiffe://test/agent"},
	Intents:   []string{"read", "delete", "export"},
	Clearance: authz.Restricted,
	TTL:       time.Minute,
}

var (
	dbRead = authz.Call{Tool: "db.query", Intent: "read", Destination: "db://orders"}
	fetch  = authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}
	export = authz.Call{Tool: "mail.send", Intent: "export", Destination: "mailto:x@example.org"}
	del    = authz.Call{Tool: "db.delete", Intent: "delete", Destination: "db://orders", Args: map[string]any{"id": "7"}}
)

// replica is one process of the service: its own client, store and guard.
type replica struct {
	name   string
	client *redis.Client
	store  *Store
	guard  *authz.Guard
	app    *authztest.Approver
	proxy  *faultProxy // nil when the replica talks to Redis directly
}

// replicaSet is several replicas sharing one Redis and one signing key:
// replica 0 begins tasks and hands them to the others with task tokens.
type replicaSet struct {
	rs  []*replica
	pub ed25519.PublicKey
}

type setOpts struct {
	proxied   bool // each replica reaches Redis through its own fault proxy
	guardOpts []authz.Option
	approvers []*authztest.Approver
}

func newReplicaSet(t testing.TB, srv *redistest.Server, n int, o setOpts) *replicaSet {
	t.Helper()
	p, err := authz.ParsePolicy("replicas.yaml", []byte(replicaPolicy))
	require.NoError(t, err)
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	prefix := freshPrefix()
	set := &replicaSet{pub: pub}
	for i := range n {
		r := &replica{name: fmt.Sprintf("replica-%d", i), app: authztest.NewApprover()}
		if i < len(o.approvers) {
			r.app = o.approvers[i]
		}
		addr := srv.Addr()
		if o.proxied {
			r.proxy = startProxy(t, addr)
			addr = r.proxy.Addr()
		}
		r.client = redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true,
			DialTimeout: time.Second, DialerRetries: 1, PoolSize: 32})
		r.store, err = New(r.client, WithPrefix(prefix), WithHeartbeat(50*time.Millisecond))
		require.NoError(t, err)
		opts := []authz.Option{authz.WithPolicy(p), authz.WithStore(r.store), authz.WithApprover(r.app),
			authz.WithName(r.name), authz.WithTrustedKey("k", pub), authz.WithStoreTimeout(5 * time.Second)}
		if i == 0 {
			opts = append(opts, authz.WithSigningKey("k", priv))
		}
		r.guard, err = authz.New(append(opts, o.guardOpts...)...)
		require.NoError(t, err)
		t.Cleanup(func() {
			_ = r.guard.Close()
			_ = r.store.Close()
			_ = r.client.Close()
		})
		set.rs = append(set.rs, r)
	}
	for _, r := range set.rs {
		waitLive(t, r)
	}
	return set
}

// waitLive waits until r's guard trusts its view (a Check of a fresh
// task is not denied by RuleStore).
func waitLive(t testing.TB, r *replica) {
	t.Helper()
	ctx, task, err := r.guard.Begin(context.Background(), replicaSpec)
	require.NoError(t, err)
	defer task.End()
	eventually(t, r.name+" live", func() bool { return r.guard.Check(ctx, dbRead).Rule != authz.RuleStore })
}

// shared is one task as every replica holds it.
type shared struct {
	ctxs  []context.Context
	tasks []*authz.Task
}

// begin starts a task on replica 0 and resumes it on every other.
func (set *replicaSet) begin(t testing.TB, spec authz.TaskSpec) shared {
	t.Helper()
	sh, err := set.beginErr(t, spec)
	require.NoError(t, err)
	return sh
}

// tryBegin is begin, reporting failure instead of failing the test.
func (set *replicaSet) tryBegin(t testing.TB, spec authz.TaskSpec) (shared, bool) {
	sh, err := set.beginErr(t, spec)
	return sh, err == nil
}

func (set *replicaSet) beginErr(t testing.TB, spec authz.TaskSpec) (shared, error) {
	ctx, task, err := set.rs[0].guard.Begin(context.Background(), spec)
	if err != nil {
		return shared{}, err
	}
	t.Cleanup(task.End)
	sh := shared{ctxs: []context.Context{ctx}, tasks: []*authz.Task{task}}
	for _, r := range set.rs[1:] {
		tok, err := task.Token(r.name)
		if err != nil {
			return shared{}, err
		}
		c, rt, err := r.guard.Resume(context.Background(), tok)
		if err != nil {
			return shared{}, err
		}
		t.Cleanup(rt.End)
		sh.ctxs, sh.tasks = append(sh.ctxs, c), append(sh.tasks, rt)
	}
	return sh, nil
}

// hammer runs n Authorize calls of c spread over the replicas on workers
// goroutines and returns the allowed count and the denials by rule.
func (set *replicaSet) hammer(sh shared, n, workers int, c authz.Call) (int, map[string]int) {
	var allowed atomic.Int64
	var mu sync.Mutex
	denied := map[string]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				r := i % len(set.rs)
				if rule, ok := authorize(set.rs[r].guard, sh.ctxs[r], c); ok {
					allowed.Add(1)
				} else {
					mu.Lock()
					denied[rule]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return int(allowed.Load()), denied
}

// authorize returns whether g allowed c, or the rule that denied it.
func authorize(g *authz.Guard, ctx context.Context, c authz.Call) (string, bool) {
	err := g.Authorize(ctx, c)
	if err == nil {
		return "", true
	}
	var de *authz.DeniedError
	if errors.As(err, &de) {
		return de.Decision.Rule, false
	}
	return "error: " + err.Error(), false
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReplicasRateLimitExact(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	set := newReplicaSet(t, srv, 3, setOpts{})
	sh := set.begin(t, replicaSpec)
	allowed, denied := set.hammer(sh, 300, 24, fetch)
	assert.Equal(t, 30, allowed, "the limit of 30/h holds across three replicas")
	assert.Equal(t, map[string]int{"fetch": 270}, denied)

	// A sub-task begun on replica 2 draws from its own bucket and from
	// its parent's, which is empty.
	subCtx, sub, err := set.rs[2].guard.Begin(sh.ctxs[2], authz.TaskSpec{Agent: replicaSpec.Agent})
	require.NoError(t, err)
	defer sub.End()
	rule, ok := authorize(set.rs[2].guard, subCtx, fetch)
	assert.False(t, ok)
	assert.Equal(t, "fetch", rule)
}

func TestReplicasBudgetAndCallsExact(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	set := newReplicaSet(t, srv, 3, setOpts{})
	spec := replicaSpec
	spec.MaxCalls = map[string]int{"db.*": 25}
	sh := set.begin(t, spec)
	allowed, denied := set.hammer(sh, 120, 24, dbRead)
	assert.Equal(t, 25, allowed)
	assert.Equal(t, map[string]int{authz.RuleBudget: 95}, denied)
	id := sh.tasks[0].ID()
	n, err := set.rs[1].client.HGet(context.Background(), set.rs[1].store.key(id, id), "c:db.query").Int()
	require.NoError(t, err)
	assert.Equal(t, 25, n, "task.calls counts every authorized call once")
	// Each replica's copy learnt the count at its last allowed call.
	var most int
	for _, tk := range sh.tasks {
		most = max(most, tk.Calls()["db.query"])
	}
	assert.Equal(t, 25, most)
}

func TestReplicasSingleUseApproval(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	apps := []*authztest.Approver{
		authztest.NewApprover(authz.Grant{Approved: true, By: "alice"},
			authz.Grant{Approved: true, ForTask: true, By: "bob"}),
		authztest.NewApprover(), // refuses
		authztest.NewApprover(), // refuses
	}
	set := newReplicaSet(t, srv, 3, setOpts{approvers: apps})
	sh := set.begin(t, replicaSpec)

	require.NoError(t, set.rs[0].guard.Authorize(sh.ctxs[0], del), "alice approves once")
	for i := 1; i < 3; i++ {
		rule, ok := authorize(set.rs[i].guard, sh.ctxs[i], del)
		assert.False(t, ok, "the single-use approval is spent: replica %d asks again", i)
		assert.Equal(t, authz.RuleApproval, rule)
		assert.Len(t, apps[i].Requests(), 1)
	}

	// A for-task approval given on replica 0 stands on the others.
	require.NoError(t, set.rs[0].guard.Authorize(sh.ctxs[0], del), "bob approves for the task")
	for i := 1; i < 3; i++ {
		require.NoError(t, set.rs[i].guard.Authorize(sh.ctxs[i], del))
		assert.Len(t, apps[i].Requests(), 1, "replica %d did not ask again", i)
	}
	other := del
	other.Args = map[string]any{"id": "8"}
	_, ok := authorize(set.rs[1].guard, sh.ctxs[1], other)
	assert.False(t, ok, "the standing approval covers only the exact call")
}

func TestReplicasEndEverywhere(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	set := newReplicaSet(t, srv, 3, setOpts{})
	var lat []time.Duration
	for range 20 {
		sh := set.begin(t, replicaSpec)
		var mu sync.Mutex
		ended := map[int]time.Time{}
		for i, tk := range sh.tasks[1:] {
			tk.OnEnd(func() {
				mu.Lock()
				ended[i+1] = time.Now()
				mu.Unlock()
			})
		}
		// A sub-task on replica 2 ends with the task.
		_, sub, err := set.rs[2].guard.Begin(sh.ctxs[2], authz.TaskSpec{Agent: replicaSpec.Agent})
		require.NoError(t, err)
		start := time.Now()
		sh.tasks[0].End()
		eventually(t, "every replica ran the end hooks", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(ended) == 2 && sub.Ended()
		})
		for _, at := range ended {
			lat = append(lat, at.Sub(start))
		}
		for i, r := range set.rs {
			d := r.guard.Check(sh.ctxs[i], dbRead)
			assert.Equal(t, authz.RuleTaskEnded, d.Rule)
			rule, _ := authorize(r.guard, sh.ctxs[i], dbRead)
			assert.Equal(t, authz.RuleTaskEnded, rule)
		}
	}
	slices.Sort(lat)
	t.Logf("End seen by the other replicas (hooks run): median %v, max %v over %d", lat[len(lat)/2], lat[len(lat)-1], len(lat))
}

func TestReplicasTaintDeniesExportElsewhere(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	set := newReplicaSet(t, srv, 3, setOpts{})
	for obs := range 3 {
		sh := set.begin(t, replicaSpec)
		for i, r := range set.rs {
			require.NoError(t, r.guard.Authorize(sh.ctxs[i], export))
		}
		sh.tasks[obs].Observe("db://salaries", authz.Confidential, true)
		// No waiting: every other replica decides on the new taint.
		for i, r := range set.rs {
			rule, ok := authorize(r.guard, sh.ctxs[i], export)
			assert.False(t, ok, "observed on %d, exported on %d", obs, i)
			assert.Equal(t, "no-export-after-confidential", rule)
		}
	}
}

func TestReplicasManyTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of tasks")
	}
	t.Parallel()
	srv := redistest.Start(t)
	// A loaded test machine must not turn slow answers into denials here:
	// this test is about state never mixing between tasks.
	set := newReplicaSet(t, srv, 3, setOpts{guardOpts: []authz.Option{authz.WithStoreTimeout(30 * time.Second)}})
	tasks := 2000
	if raceEnabled {
		tasks = 300 // the race detector slows each call tenfold
	}
	spec := replicaSpec
	spec.TTL = 30 * time.Minute // outlives the test on a slow machine
	spec.MaxCalls = map[string]int{"db.*": 3}
	shs := make([]shared, tasks)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range shs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			shs[i] = set.begin(t, spec)
			if i%2 == 0 {
				shs[i].tasks[i%3].Observe(fmt.Sprintf("db://salaries/%d", i), authz.Confidential, true)
			}
		}()
	}
	wg.Wait()
	errs := make([]error, tasks)
	for i := range shs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sh := shs[i]
			allowed := 0
			var rules []string
			for k := range 5 {
				r := (i + k) % 3
				rule, ok := authorize(set.rs[r].guard, sh.ctxs[r], dbRead)
				if ok {
					allowed++
				}
				rules = append(rules, rule)
			}
			r := (i + 1) % 3
			rule, exported := authorize(set.rs[r].guard, sh.ctxs[r], export)
			src := sh.tasks[r].Taint().Sources
			switch {
			case allowed != 3 || !slices.Equal(rules[3:], []string{authz.RuleBudget, authz.RuleBudget}):
				errs[i] = fmt.Errorf("task %d: %d calls allowed, want 3; rules %q", i, allowed, rules)
			case i%2 == 0 && (exported || !slices.Equal(src, []string{fmt.Sprintf("db://salaries/%d", i)})):
				errs[i] = fmt.Errorf("task %d (tainted): export allowed %v (%s), sources %q", i, exported, rule, src)
			case i%2 == 1 && (!exported || len(src) != 0):
				errs[i] = fmt.Errorf("task %d (clean): export allowed %v (%s), sources %q", i, exported, rule, src)
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
}
