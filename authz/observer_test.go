package authz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eventLog is an Observer that records every event.
type eventLog struct {
	ObserverFuncs
	mu        sync.Mutex
	decisions []DecisionEvent
	leases    []LeaseEvent
}

func (l *eventLog) OnDecision(_ context.Context, e DecisionEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.decisions = append(l.decisions, e)
}

func (l *eventLog) OnLease(_ context.Context, e LeaseEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases = append(l.leases, e)
}

func (l *eventLog) take() []DecisionEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.decisions
	l.decisions = nil
	return out
}

const observedPolicy = `
rules:
  - name: fetch
    tools: [http.fetch]
    effect: allow
    when: intent == "read"
  - name: no-export
    tools: [http.fetch]
    effect: deny
    when: intent == "export"
  - name: review-delete
    tools: [db.delete]
    effect: ask
    when: "true"
`

// secretArg is an argument value that no event may carry.
const secretArg = "hunter2-SECRET-ARGUMENT"

func TestObserverCheck(t *testing.T) {
	t.Parallel()
	var log eventLog
	g, _ := mustGuard(t, observedPolicy, WithObserver(&log))
	ctx, task := begin(t, g, TaskSpec{Agent: Agent{ID: "spiffe://test/researcher"}, Clearance: Internal})

	d := g.Check(ctx, Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/?q=" + secretArg,
		Sensitivity: Internal, Args: map[string]any{"q": secretArg}})
	require.Equal(t, Allow, d.Effect)
	g.Check(ctx, Call{Tool: "http.fetch", Intent: "export", Destination: "https://example.org/"})
	g.Check(context.Background(), Call{Tool: "http.fetch", Intent: "read"})

	got := log.take()
	require.Len(t, got, 3)
	e := got[0]
	assert.Equal(t, OpCheck, e.Op)
	assert.Equal(t, "http.fetch", e.Tool)
	assert.Equal(t, "read", e.Intent)
	assert.Equal(t, Internal, e.Sensitivity)
	assert.Equal(t, Allow, e.Effect)
	assert.Equal(t, "fetch", e.Rule)
	assert.Equal(t, d.PolicyVersion, e.PolicyVersion)
	assert.NotEmpty(t, e.PolicyVersion)
	assert.Equal(t, task.ID(), e.Task)
	assert.Equal(t, "spiffe://test/researcher", e.Agent)
	assert.False(t, e.Start.IsZero())
	assert.GreaterOrEqual(t, e.Latency.Nanoseconds(), int64(0))
	assert.Equal(t, ApprovalNone, e.Approval)

	assert.Equal(t, Deny, got[1].Effect)
	assert.Equal(t, "no-export", got[1].Rule)

	assert.Equal(t, RuleNoTask, got[2].Rule)
	assert.Empty(t, got[2].Task)
	assert.Empty(t, got[2].Agent)

	for _, e := range got {
		assert.NotContains(t, fmt.Sprintf("%+v", e), secretArg)
	}
}

func TestObserverExplainAndVisibleMakeNoEvents(t *testing.T) {
	t.Parallel()
	var log eventLog
	g, _ := mustGuard(t, observedPolicy, WithObserver(&log))
	ctx, _ := begin(t, g, TaskSpec{})
	g.Explain(ctx, Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"})
	g.Visible(ctx, []string{"http.fetch", "db.delete"})
	assert.Empty(t, log.take())
}

func TestObserverAuthorizeOneEventWithFinalDecision(t *testing.T) {
	t.Parallel()
	var log eventLog
	g, _ := mustGuard(t, observedPolicy, WithObserver(&log))
	ctx, task := begin(t, g, TaskSpec{})

	require.NoError(t, g.Authorize(ctx, Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}))
	err := g.Authorize(ctx, Call{Tool: "http.fetch", Intent: "export", Destination: "https://example.org/"})
	require.ErrorIs(t, err, ErrDenied)

	got := log.take()
	require.Len(t, got, 2, "one event per Authorize, none for its internal check")
	assert.Equal(t, OpAuthorize, got[0].Op)
	assert.Equal(t, Allow, got[0].Effect)
	assert.Equal(t, "fetch", got[0].Rule)
	assert.Equal(t, task.ID(), got[0].Task)
	assert.Equal(t, "spiffe://test/agent", got[0].Agent)
	assert.Equal(t, OpAuthorize, got[1].Op)
	assert.Equal(t, Deny, got[1].Effect)
	assert.Equal(t, "no-export", got[1].Rule)
}

func TestObserverApprovalOutcomes(t *testing.T) {
	t.Parallel()
	del := Call{Tool: "db.delete", Intent: "delete", Destination: "db://orders", Args: map[string]any{"id": secretArg}}
	for name, tc := range map[string]struct {
		approver Approver
		end      bool // end the task while the approver decides
		effect   Effect
		rule     string
		outcome  ApprovalOutcome
	}{
		"granted": {approver: ApproverFunc(func(context.Context, Call, Decision) (bool, error) { return true, nil }),
			effect: Allow, rule: "review-delete", outcome: ApprovalGranted},
		"refused": {approver: ApproverFunc(func(context.Context, Call, Decision) (bool, error) { return false, nil }),
			rule: RuleApproval, outcome: ApprovalRefused},
		"failed": {approver: ApproverFunc(func(context.Context, Call, Decision) (bool, error) { return false, errors.New("pager down") }),
			rule: RuleApproval, outcome: ApprovalFailed},
		"panicked": {approver: ApproverFunc(func(context.Context, Call, Decision) (bool, error) { panic("approver bug") }),
			rule: RuleApproval, outcome: ApprovalFailed},
		"no approver": {rule: RuleApproval, outcome: ApprovalNoApprover},
		"too late": {approver: ApproverFunc(func(context.Context, Call, Decision) (bool, error) { return true, nil }),
			end: true, rule: RuleTaskEnded, outcome: ApprovalTooLate},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var log eventLog
			opts := []Option{WithObserver(&log)}
			var task *Task
			if tc.approver != nil {
				a := tc.approver
				if tc.end {
					a = ApproverFunc(func(ctx context.Context, c Call, d Decision) (bool, error) {
						task.End()
						return tc.approver.Approve(ctx, c, d)
					})
				}
				opts = append(opts, WithApprover(a))
			}
			g, _ := mustGuard(t, observedPolicy, opts...)
			var ctx context.Context
			ctx, task = begin(t, g, TaskSpec{})
			err := g.Authorize(ctx, del)
			if tc.effect == Allow {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrDenied)
			}
			got := log.take()
			require.Len(t, got, 1)
			e := got[0]
			assert.Equal(t, OpAuthorize, e.Op)
			assert.Equal(t, tc.effect, e.Effect)
			assert.Equal(t, tc.rule, e.Rule)
			assert.Equal(t, tc.outcome, e.Approval)
			assert.GreaterOrEqual(t, e.Latency, e.ApprovalWait)
			assert.NotContains(t, fmt.Sprintf("%+v", e), secretArg)
		})
	}
}

func TestObserverDescribeAndEnforceDenials(t *testing.T) {
	t.Parallel()
	var log eventLog
	g, _ := mustGuard(t, observedPolicy, WithObserver(&log))
	ctx, task := begin(t, g, TaskSpec{})

	fetch := Wrap(g, Tool[string]{Name: "http.fetch", Intent: "read", Describe: func(u string) (Call, error) {
		if u == "" {
			return Call{}, errors.New("no url")
		}
		return Call{Destination: u}, nil
	}}, func(context.Context, string) (string, error) { return "ok", nil })
	_, err := fetch(ctx, "https://example.org/")
	require.NoError(t, err)
	_, err = fetch(ctx, "")
	require.ErrorIs(t, err, ErrDenied)
	err = g.Deny(ctx, Call{Tool: "fs.read", Intent: "read", Destination: "/etc/passwd"}, RuleEscape, "left its root", nil)
	require.ErrorIs(t, err, ErrDenied)

	got := log.take()
	require.Len(t, got, 3)
	assert.Equal(t, OpAuthorize, got[0].Op)
	assert.Equal(t, Allow, got[0].Effect)
	assert.Equal(t, OpAuthorize, got[1].Op)
	assert.Equal(t, RuleDescribe, got[1].Rule)
	assert.Equal(t, task.ID(), got[1].Task)
	assert.True(t, got[1].Start.IsZero())
	assert.Equal(t, OpEnforce, got[2].Op)
	assert.Equal(t, RuleEscape, got[2].Rule)
	assert.Equal(t, "fs.read", got[2].Tool)
	assert.Equal(t, "spiffe://test/agent", got[2].Agent)
}

func TestObserverPanicIsRecovered(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var mu sync.Mutex
	var after eventLog
	panicky := ObserverFuncs{
		Decision: func(context.Context, DecisionEvent) { panic("observer bug") },
		Lease:    func(context.Context, LeaseEvent) { panic("observer bug") },
	}
	g, _ := mustGuard(t, observedPolicy, WithObserver(panicky), WithObserver(&after), WithLogger(newTestLogger(&logs, &mu)))
	ctx, _ := begin(t, g, TaskSpec{})
	c := Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}

	assert.Equal(t, Allow, g.Check(ctx, c).Effect)
	assert.NoError(t, g.Authorize(ctx, c))
	g.Observer().OnLease(ctx, LeaseEvent{Kind: LeaseGranted, Lease: "lease_1"})

	assert.Len(t, after.take(), 2, "a panicking observer keeps no other from its events")
	assert.Len(t, after.leases, 1)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 3, strings.Count(logs.String(), "taskguard observer panicked"))
}

func TestObserverOrderAndValidation(t *testing.T) {
	t.Parallel()
	var order []string
	rec := func(name string) Observer {
		return ObserverFuncs{Decision: func(context.Context, DecisionEvent) { order = append(order, name) }}
	}
	g, _ := mustGuard(t, observedPolicy, WithObserver(rec("a")), WithObserver(rec("b")), WithObserver(rec("c")))
	ctx, _ := begin(t, g, TaskSpec{})
	g.Check(ctx, Call{Tool: "http.fetch", Intent: "read"})
	assert.Equal(t, []string{"a", "b", "c"}, order)

	_, err := New(WithObserver(nil))
	require.ErrorContains(t, err, "WithObserver: nil observer")
}

func TestObserverOfGuardWithout(t *testing.T) {
	t.Parallel()
	var zero Guard
	require.NotNil(t, zero.Observer())
	zero.Observer().OnDecision(context.Background(), DecisionEvent{})
	g, _ := mustGuard(t, observedPolicy)
	require.NotNil(t, g.Observer())
	g.Observer().OnLease(context.Background(), LeaseEvent{})
}

// An observer may call back into the guard and the task: it is never
// called while a lock is held (this would deadlock otherwise).
func TestObserverMayReenter(t *testing.T) {
	t.Parallel()
	var g *Guard
	var task *Task
	calls := 0
	reenter := ObserverFuncs{Decision: func(ctx context.Context, e DecisionEvent) {
		calls++
		_ = task.Taint()
		task.Observe("observer", Public, true)
		_ = g.Visible(ctx, []string{"http.fetch"})
		_ = g.Explain(ctx, Call{Tool: "http.fetch", Intent: "read"})
	}}
	g, _ = mustGuard(t, observedPolicy, WithObserver(reenter),
		WithApprover(ApproverFunc(func(context.Context, Call, Decision) (bool, error) { return true, nil })))
	var ctx context.Context
	ctx, task = begin(t, g, TaskSpec{})
	g.Check(ctx, Call{Tool: "http.fetch", Intent: "read"})
	require.NoError(t, g.Authorize(ctx, Call{Tool: "db.delete", Intent: "delete"}))
	task.End()
	g.Check(ctx, Call{Tool: "http.fetch", Intent: "read"})
	assert.Equal(t, 3, calls)
}

func TestOperationAndOutcomeStrings(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "check", OpCheck.String())
	assert.Equal(t, "authorize", OpAuthorize.String())
	assert.Equal(t, "enforce", OpEnforce.String())
	assert.Equal(t, "operation(0)", Operation(0).String())
	for o, s := range map[ApprovalOutcome]string{ApprovalNone: "none", ApprovalGranted: "granted", ApprovalRefused: "refused",
		ApprovalNoApprover: "no-approver", ApprovalFailed: "failed", ApprovalTooLate: "too-late", 9: "approval(9)"} {
		assert.Equal(t, s, o.String())
	}
	for k, s := range map[LeaseEventKind]string{LeaseGranted: "granted", LeaseRevoked: "revoked", LeaseExpired: "expired", 0: "lease(0)"} {
		assert.Equal(t, s, k.String())
	}
}

// observedBenchGuard is benchGuard's guard of 50 rules with opts, and a
// task whose context allows benchCall.
func observedBenchGuard(tb testing.TB, opts ...Option) (*Guard, context.Context) {
	tb.Helper()
	g, err := New(append([]Option{WithPolicy(benchPolicy(tb, 50))}, opts...)...)
	require.NoError(tb, err)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{
		Agent: Agent{ID: "spiffe://bench/agent"}, Intents: []string{"read", "search"}, Clearance: Internal})
	require.NoError(tb, err)
	tb.Cleanup(task.End)
	require.Equal(tb, Allow, g.Check(ctx, benchCall).Effect)
	return g, ctx
}

// BenchmarkObserver is Check and Authorize with an observer that does
// nothing: the cost of making the events (compare BenchmarkCheck and
// BenchmarkAuthorize).
func BenchmarkObserver(b *testing.B) {
	nop := WithObserver(ObserverFuncs{Decision: func(context.Context, DecisionEvent) {}})
	b.Run("check", func(b *testing.B) {
		g, ctx := observedBenchGuard(b, nop)
		b.ReportAllocs()
		for b.Loop() {
			if g.Check(ctx, benchCall).Effect != Allow {
				b.Fatal("denied")
			}
		}
	})
	b.Run("authorize", func(b *testing.B) {
		g, ctx := observedBenchGuard(b, nop)
		b.ReportAllocs()
		for b.Loop() {
			if err := g.Authorize(ctx, benchCall); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Under a shared store Authorize takes another path; it reports the same
// events.
func TestObserverWithStore(t *testing.T) {
	t.Parallel()
	var log eventLog
	clk := newFakeClock()
	g, err := New(WithPolicy(mustPolicy(t, observedPolicy)), WithClock(clk.Now), WithStore(NewMemoryStore(clk.Now)),
		WithObserver(&log), WithApprover(ApproverFunc(func(context.Context, Call, Decision) (bool, error) { return true, nil })))
	require.NoError(t, err)
	ctx, task := begin(t, g, TaskSpec{})

	require.NoError(t, g.Authorize(ctx, Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}))
	require.ErrorIs(t, g.Authorize(ctx, Call{Tool: "http.fetch", Intent: "export", Destination: "https://example.org/"}), ErrDenied)
	require.NoError(t, g.Authorize(ctx, Call{Tool: "db.delete", Intent: "delete", Destination: "db://orders"}))

	got := log.take()
	require.Len(t, got, 3)
	for _, e := range got {
		assert.Equal(t, OpAuthorize, e.Op)
		assert.Equal(t, task.ID(), e.Task)
	}
	assert.Equal(t, []string{"fetch", "no-export", "review-delete"}, []string{got[0].Rule, got[1].Rule, got[2].Rule})
	assert.Equal(t, []Effect{Allow, Deny, Allow}, []Effect{got[0].Effect, got[1].Effect, got[2].Effect})
	assert.Equal(t, ApprovalGranted, got[2].Approval)
	assert.Equal(t, ApprovalNone, got[0].Approval)
}
