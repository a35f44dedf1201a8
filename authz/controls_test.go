package authz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShadowRules(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: allow-all, tools: ["*"], effect: allow, when: "true"}
  - {name: new-deny, tools: ["http.*"], effect: deny, when: 'destination.host == "evil.example"', mode: shadow}
  - {name: new-ask, tools: ["http.*"], effect: ask, when: 'intent == "write"', mode: shadow}
  - {name: broken, tools: ["http.*"], effect: allow, when: 'args.missing == 1', mode: shadow}
`)
	ctx, _ := begin(t, g, TaskSpec{})
	d := g.Check(ctx, Call{Tool: "http.post", Intent: "write", Destination: "https://evil.example/"})
	assert.Equal(t, Allow, d.Effect, "shadow rules never change the decision")
	assert.Equal(t, "allow-all", d.Rule)
	require.Len(t, d.Shadow, 3)
	assert.Equal(t, ShadowOutcome{Rule: "new-deny", Effect: Deny}, d.Shadow[0])
	assert.Equal(t, ShadowOutcome{Rule: "new-ask", Effect: Ask}, d.Shadow[1])
	assert.Equal(t, "broken", d.Shadow[2].Rule)
	assert.Error(t, d.Shadow[2].Err, "a failing shadow rule is reported, not enforced")

	d = g.Check(ctx, Call{Tool: "fs.read", Intent: "read"})
	assert.Empty(t, d.Shadow)
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: deny-evil, tools: ["*"], effect: deny, when: 'destination.host == "evil.example"'}
  - {name: reads, tools: ["*"], effect: allow, when: 'intent == "read"'}
`, WithDryRun())
	ctx, _ := begin(t, g, TaskSpec{Intents: []string{"read", "write"}})
	d := g.Check(ctx, Call{Tool: "http.get", Intent: "read", Destination: "https://evil.example/"})
	assert.Equal(t, Allow, d.Effect)
	assert.Equal(t, RuleDryRun, d.Rule)
	assert.Equal(t, []ShadowOutcome{{Rule: "deny-evil", Effect: Deny}}, d.Shadow)
	d = g.Check(ctx, Call{Tool: "http.get", Intent: "write"})
	assert.Equal(t, []ShadowOutcome{{Rule: RuleNoMatch, Effect: Deny}}, d.Shadow)
	assert.Equal(t, "reads", g.Check(ctx, Call{Tool: "x", Intent: "read"}).Rule, "allowed calls are untouched")
	// Built-in checks still enforce.
	assert.Equal(t, Deny, g.Check(ctx, Call{Tool: "x", Intent: "delete"}).Effect)
	assert.Equal(t, Deny, g.Check(context.Background(), Call{Tool: "x", Intent: "read"}).Effect)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	g, clk := mustGuard(t, `
rules:
  - name: fetch
    tools: ["http.*"]
    effect: allow
    when: "true"
    limit: {rate: 2/m, burst: 2}
  - {name: other, tools: ["fs.*"], effect: allow, when: "true"}
`)
	ctx, task := begin(t, g, TaskSpec{TTL: time.Hour})
	other, _ := begin(t, g, TaskSpec{TTL: time.Hour})
	call := Call{Tool: "http.get", Intent: "read"}
	require.NoError(t, g.Authorize(ctx, call))
	assert.Equal(t, Allow, g.Check(ctx, call).Effect, "Check does not take tokens")
	require.NoError(t, g.Authorize(ctx, call))
	err := g.Authorize(ctx, call)
	var de *DeniedError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, "fetch", de.Decision.Rule)
	assert.Contains(t, de.Decision.Reason, "retry in 30s")
	assert.Equal(t, Deny, g.Check(ctx, call).Effect)
	assert.NoError(t, g.Authorize(other, call), "limits are per task")
	assert.NoError(t, g.Authorize(ctx, Call{Tool: "fs.read", Intent: "read"}), "limits are per rule")

	clk.Add(30 * time.Second)
	assert.NoError(t, g.Authorize(ctx, call), "a token refills at 2/m")
	assert.Error(t, g.Authorize(ctx, call))
	assert.Equal(t, 3, task.Calls()["http.get"])

	task.End()
	task.mu.Lock()
	assert.Nil(t, task.limiters, "limiters are released at the end")
	task.mu.Unlock()
}

func TestLimitParsing(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, `
rules:
  - {name: a, tools: [x], effect: allow, when: "true", limit: {rate: 100/1h}}
  - {name: b, tools: [x], effect: ask, when: "true", limit: {rate: 5/30s, burst: 3}, mode: shadow}
`)
	assert.Equal(t, &Limit{Rate: 100, Per: time.Hour, Burst: 1}, p.Rules()[0].Limit)
	assert.Equal(t, &Limit{Rate: 5, Per: 30 * time.Second, Burst: 3}, p.Rules()[1].Limit)
	assert.Equal(t, Shadow, p.Rules()[1].Mode)
	for _, bad := range []string{
		"{rate: 10}", "{rate: x/m}", "{rate: 0/m}", "{rate: 10/fortnight}", "{rate: 10/m, burst: -1}",
		"{burst: 3}", "{rate: 10/m, extra: 1}", "10/m",
	} {
		_, err := ParsePolicy("p.yaml", []byte("rules:\n- {name: a, tools: [x], effect: allow, when: 'true', limit: "+bad+"}\n"))
		assert.ErrorContains(t, err, "limit", bad)
	}
	_, err := ParsePolicy("p.yaml", []byte("rules:\n- {name: a, tools: [x], effect: deny, when: 'true', limit: {rate: 1/m}}\n"))
	assert.ErrorContains(t, err, "only allow and ask")
	_, err = ParsePolicy("p.yaml", []byte("rules:\n- {name: a, tools: [x], effect: deny, when: 'true', mode: loud}\n"))
	assert.ErrorContains(t, err, "mode")
}

func TestBudgets(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: all, tools: ["*"], effect: allow, when: "true"}
  - {name: deletes, tools: [db.delete], effect: allow, when: 'task.calls[?"db.delete"].orValue(0) < 5'}
`)
	ctx, task := begin(t, g, TaskSpec{MaxCalls: map[string]int{"db.delete": 2, "http.*": 3}})
	del := Call{Tool: "db.delete", Intent: "delete"}
	require.NoError(t, g.Authorize(ctx, del))
	require.NoError(t, g.Authorize(ctx, del))
	d := g.Check(ctx, del)
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, RuleBudget, d.Rule)
	assert.ErrorIs(t, g.Authorize(ctx, del), ErrDenied)
	assert.Equal(t, 2, task.Calls()["db.delete"])

	// A glob budget spans tools; a sub-task spends its parent's budget too.
	sub, _, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "sub"}})
	require.NoError(t, err)
	require.NoError(t, g.Authorize(ctx, Call{Tool: "http.get", Intent: "read"}))
	require.NoError(t, g.Authorize(sub, Call{Tool: "http.post", Intent: "read"}))
	require.NoError(t, g.Authorize(sub, Call{Tool: "http.get", Intent: "read"}))
	assert.ErrorIs(t, g.Authorize(ctx, Call{Tool: "http.put", Intent: "read"}), ErrDenied)
	assert.ErrorIs(t, g.Authorize(sub, Call{Tool: "http.put", Intent: "read"}), ErrDenied)
	assert.NoError(t, g.Authorize(ctx, Call{Tool: "fs.read", Intent: "read"}))

	_, _, err = g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, MaxCalls: map[string]int{"bad pattern": 1}})
	assert.Error(t, err)
	_, _, err = g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, MaxCalls: map[string]int{"x": -1}})
	assert.Error(t, err)
}

func TestBudgetUnderConcurrency(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	ctx, task := begin(t, g, TaskSpec{MaxCalls: map[string]int{"x": 50}})
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if g.Authorize(ctx, Call{Tool: "x", Intent: "read"}) == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 50, ok.Load(), "the budget is exact under concurrency")
	assert.Equal(t, 50, task.Calls()["x"])
}

func TestExplain(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: reads, tools: ["*"], effect: allow, when: 'intent == "read"'}
  - {name: no-private, tools: ["http.*"], effect: deny, when: destination.private, reason: private}
  - {name: needs-arg, tools: ["http.*"], effect: allow, when: 'args.x == 1'}
  - {name: trial, tools: ["http.*"], effect: ask, when: "true", mode: shadow}
  - {name: other-tool, tools: ["fs.*"], effect: allow, when: "true"}
`)
	ctx, _ := begin(t, g, TaskSpec{Intents: []string{"read"}})
	call := Call{Tool: "http.get", Intent: "read", Destination: "http://10.0.0.1/"}
	x := g.Explain(ctx, call)
	assert.Equal(t, g.Check(ctx, call), x.Decision, "Explain decides like Check")
	assert.Equal(t, "no-private", x.Decision.Rule)
	var names []string
	outcomes := map[string]Outcome{}
	for _, r := range x.Rules {
		names = append(names, r.Rule)
		outcomes[r.Rule] = r.Outcome
	}
	assert.Equal(t, []string{"trial", "no-private", "reads", "needs-arg"}, names, "applicable rules in evaluation order")
	assert.Equal(t, map[string]Outcome{"trial": Matched, "no-private": Matched, "reads": Matched, "needs-arg": Errored}, outcomes)
	assert.NotEmpty(t, x.Invariants)
	for _, c := range x.Invariants {
		assert.True(t, c.Passed, c.Name)
	}
	s := x.String()
	assert.Contains(t, s, "decision: deny by no-private (private)")
	assert.Contains(t, s, "rule needs-arg (allow) errored")
	assert.Contains(t, s, "test.yaml:")

	x = g.Explain(ctx, Call{Tool: "http.get", Intent: "write"})
	assert.Equal(t, RuleIntent, x.Decision.Rule)
	last := x.Invariants[len(x.Invariants)-1]
	assert.Equal(t, InvariantCheck{Name: RuleIntent, Passed: false, Detail: `intent "write" is not declared by the task`}, last)
	for _, r := range x.Rules {
		assert.Equal(t, Skipped, r.Outcome)
	}
	assert.Len(t, x.Rules, 4)
}

func TestVisible(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: reads, tools: ["http.get", "fs.read"], effect: allow, when: 'intent == "read"'}
  - {name: review, tools: ["fs.write"], effect: ask, when: "true"}
  - {name: never, tools: ["shell.exec"], effect: allow, when: "false"}
  - {name: blocked, tools: ["net.raw"], effect: allow, when: "true"}
  - {name: block-raw, tools: ["net.*"], effect: deny, when: "true"}
  - {name: trial, tools: ["db.query"], effect: allow, when: "true", mode: shadow}
`)
	all := []string{"http.get", "fs.read", "fs.write", "shell.exec", "net.raw", "db.query", "unknown"}
	ctx, _ := begin(t, g, TaskSpec{})
	assert.Equal(t, []string{"http.get", "fs.read", "fs.write"}, g.Visible(ctx, all))
	scoped, task := begin(t, g, TaskSpec{Tools: []string{"fs.*"}, MaxCalls: map[string]int{"fs.read": 1}})
	assert.Equal(t, []string{"fs.read", "fs.write"}, g.Visible(scoped, all))
	require.NoError(t, g.Authorize(scoped, Call{Tool: "fs.read", Intent: "read"}))
	assert.Equal(t, []string{"fs.write"}, g.Visible(scoped, all), "a spent budget hides the tool")
	task.End()
	assert.Empty(t, g.Visible(scoped, all))
	assert.Empty(t, g.Visible(context.Background(), all))
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `rules: [{name: v1, tools: [x], effect: allow, when: "true"}]`)
	ctx, _ := begin(t, g, TaskSpec{})
	v1 := g.Policy().Version()
	d := g.Check(ctx, Call{Tool: "x", Intent: "read"})
	assert.Equal(t, "v1", d.Rule)
	assert.Equal(t, v1, d.PolicyVersion)

	require.NoError(t, g.Update(mustPolicy(t, `rules: [{name: v2, tools: [x], effect: deny, when: "true"}]`)))
	d = g.Check(ctx, Call{Tool: "x", Intent: "read"})
	assert.Equal(t, "v2", d.Rule)
	assert.NotEqual(t, v1, d.PolicyVersion)
	assert.Error(t, g.Update(nil))
	assert.Equal(t, "v2", g.Check(ctx, Call{Tool: "x", Intent: "read"}).Rule, "a failed update leaves the policy in force")
}

func TestUpdateRacesWithCheck(t *testing.T) {
	t.Parallel()
	p1 := mustPolicy(t, `rules: [{name: one, tools: ["*"], effect: allow, when: "true"}]`)
	p2 := mustPolicy(t, `rules: [{name: two, tools: ["*"], effect: deny, when: "true"}]`)
	g, err := New(WithPolicy(p1))
	require.NoError(t, err)
	ctx, _ := begin(t, g, TaskSpec{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := g.Check(ctx, Call{Tool: fmt.Sprint("t", bad.Load()%3), Intent: "read"})
				ok := d.Rule == "one" && d.Effect == Allow && d.PolicyVersion == p1.Version() ||
					d.Rule == "two" && d.Effect == Deny && d.PolicyVersion == p2.Version()
				if !ok {
					bad.Add(1)
				}
			}
		})
	}
	for i := range 2000 {
		require.NoError(t, g.Update([]*Policy{p1, p2}[i%2]))
	}
	close(stop)
	wg.Wait()
	assert.Zero(t, bad.Load())
}

// recordingGranter answers from a script and records what it was asked.
type recordingGranter struct {
	mu      sync.Mutex
	answers []Grant
	asked   []Decision
}

func (r *recordingGranter) Grant(_ context.Context, _ Call, d Decision) (Grant, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, d)
	if len(r.answers) == 0 {
		return Grant{}, errors.New("no scripted answer")
	}
	a := r.answers[0]
	r.answers = r.answers[1:]
	return a, nil
}

func (r *recordingGranter) Approve(ctx context.Context, c Call, d Decision) (bool, error) {
	gr, err := r.Grant(ctx, c, d)
	return gr.Approved, err
}

func (r *recordingGranter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.asked)
}

func TestApprovalsBoundToTheCall(t *testing.T) {
	t.Parallel()
	const policy = `rules: [{name: review, tools: [db.delete], effect: ask, when: "true"}]`
	del := func(id int) Call {
		return Call{Tool: "db.delete", Intent: "delete", Destination: "db://orders", Args: map[string]any{"id": id}}
	}

	t.Run("single use", func(t *testing.T) {
		ap := &recordingGranter{answers: []Grant{{Approved: true, By: "alice"}, {Approved: true, By: "bob"}}}
		g, _ := mustGuard(t, policy, WithApprover(ap))
		ctx, _ := begin(t, g, TaskSpec{})
		require.NoError(t, g.Authorize(ctx, del(1)))
		require.NoError(t, g.Authorize(ctx, del(1)))
		assert.Equal(t, 2, ap.count(), "a single-use approval is asked again for the same call")
		assert.ErrorIs(t, g.Authorize(ctx, del(1)), ErrDenied, "no more answers")
	})
	t.Run("for the task", func(t *testing.T) {
		ap := &recordingGranter{answers: []Grant{{Approved: true, ForTask: true, By: "alice"}}}
		g, _ := mustGuard(t, policy, WithApprover(ap))
		ctx, _ := begin(t, g, TaskSpec{})
		require.NoError(t, g.Authorize(ctx, del(1)))
		require.NoError(t, g.Authorize(ctx, del(1)), "the standing grant covers the identical call")
		assert.Equal(t, 1, ap.count())
		// Replays: a changed argument, another task, a new policy version.
		assert.ErrorIs(t, g.Authorize(ctx, del(2)), ErrDenied)
		other, _ := begin(t, g, TaskSpec{})
		assert.ErrorIs(t, g.Authorize(other, del(1)), ErrDenied)
		require.NoError(t, g.Update(mustPolicy(t, `rules: [{name: review, tools: [db.delete], effect: ask, when: "true", reason: v2}]`)))
		assert.ErrorIs(t, g.Authorize(ctx, del(1)), ErrDenied)
		assert.Equal(t, 4, ap.count())
		digests := map[string]bool{}
		for _, d := range ap.asked {
			assert.Len(t, d.Digest, 64)
			digests[d.Digest] = true
		}
		assert.Len(t, digests, 4, "each replay has its own digest")
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		slow := ApproverFunc(func(ctx context.Context, c Call, d Decision) (bool, error) {
			<-release // ignores ctx on purpose
			return true, nil
		})
		g, _ := mustGuard(t, policy, WithApprover(slow), WithApprovalTimeout(20*time.Millisecond))
		ctx, _ := begin(t, g, TaskSpec{})
		err := g.Authorize(ctx, del(1))
		close(release)
		var de *DeniedError
		require.ErrorAs(t, err, &de)
		assert.Contains(t, de.Decision.Reason, "no answer within 20ms")
	})
	t.Run("approval is audited with who", func(t *testing.T) {
		var buf strings.Builder
		var mu sync.Mutex
		ap := GranterFunc(func(context.Context, Call, Decision) (Grant, error) {
			return Grant{Approved: true, By: "alice@example.org"}, nil
		})
		g, _ := mustGuard(t, policy, WithApprover(ap), WithLogger(newTestLogger(&buf, &mu)))
		ctx, _ := begin(t, g, TaskSpec{})
		require.NoError(t, g.Authorize(ctx, del(1)))
		mu.Lock()
		defer mu.Unlock()
		assert.Contains(t, buf.String(), `"approved_by":"alice@example.org"`)
		assert.Contains(t, buf.String(), `"digest":"`)
	})
	t.Run("unbindable arguments deny", func(t *testing.T) {
		g, _ := mustGuard(t, policy, WithApprover(ApproverFunc(func(context.Context, Call, Decision) (bool, error) { return true, nil })))
		ctx, _ := begin(t, g, TaskSpec{})
		d := g.Check(ctx, Call{Tool: "db.delete", Intent: "delete", Args: map[string]any{"f": make(chan int)}})
		assert.Equal(t, Deny, d.Effect)
	})
}

func TestVisibleUnderTaskScope(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: admin-only, tools: ["admin.reset"], effect: allow, when: 'agent.id.startsWith("spiffe://corp/admin/")'}
  - {name: deletes, tools: ["db.delete"], effect: ask, when: 'intent == "delete" && destination.host == "orders"'}
  - {name: prod-freeze, tools: ["deploy"], effect: deny, when: 'task.labels.env == "prod"'}
  - {name: deploy, tools: ["deploy"], effect: allow, when: 'sensitivity <= INTERNAL'}
  - {name: fetch, tools: ["http.get"], effect: allow, when: 'destination.host.glob("*.example.org") && size(args) < 5'}
  - {name: broken, tools: ["calc"], effect: allow, when: 'task.labels.missing == "x"'}
`)
	tools := []string{"admin.reset", "db.delete", "deploy", "http.get", "calc"}
	ctx, _ := begin(t, g, TaskSpec{Agent: Agent{ID: "spiffe://corp/agent/a"}, Intents: []string{"read", "write"},
		Labels: map[string]string{"env": "prod"}})
	assert.Equal(t, []string{"http.get", "calc"}, g.Visible(ctx, tools),
		"not an admin; no delete intent; prod freeze; an erroring rule stays visible (upper bound)")
	ctx, _ = begin(t, g, TaskSpec{Agent: Agent{ID: "spiffe://corp/admin/root"}, Labels: map[string]string{"env": "dev"}})
	assert.Equal(t, tools, g.Visible(ctx, tools), "any intent, dev, admin")
}
