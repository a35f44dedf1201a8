package authz

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const askPolicy = `rules:
  - {name: deletes, tools: ["db.*"], effect: ask, when: 'intent == "delete"'}
  - {name: exports, tools: ["db.*"], effect: ask, when: 'intent == "export"'}
`

// An approval that arrives after the task ended, was cancelled or passed
// its deadline, or after the policy changed, denies.
func TestApprovalTooLate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		during func(task *Task, clk *fakeClock, cancel context.CancelFunc, g *Guard)
		rule   string
		reason string
	}{
		{"task ended", func(task *Task, _ *fakeClock, _ context.CancelFunc, _ *Guard) { task.End() }, RuleTaskEnded, "task ended"},
		{"deadline passed", func(_ *Task, clk *fakeClock, _ context.CancelFunc, _ *Guard) { clk.Add(time.Hour) }, RuleTaskEnded, "deadline"},
		{"context cancelled", func(_ *Task, _ *fakeClock, cancel context.CancelFunc, _ *Guard) { cancel() }, RuleApproval, "context"},
		{"policy changed", func(_ *Task, _ *fakeClock, _ context.CancelFunc, g *Guard) {
			p, err := ParsePolicy("new.yaml", []byte(askPolicy+"  - {name: other, tools: [x], effect: allow, when: 'true'}\n"))
			if err == nil {
				_ = g.Update(p)
			}
		}, RuleTaskEnded, "policy changed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var g *Guard
			var task *Task
			var clk *fakeClock
			var cancel context.CancelFunc
			approver := GranterFunc(func(ctx context.Context, c Call, d Decision) (Grant, error) {
				tc.during(task, clk, cancel, g)
				return Grant{Approved: true, ForTask: true, By: "alice"}, nil
			})
			g, clk = mustGuard(t, askPolicy, WithApprover(approver))
			ctx, cancelCtx := context.WithCancel(context.Background())
			defer cancelCtx()
			cancel = cancelCtx
			ctx, tk, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "a"}, TTL: time.Minute})
			require.NoError(t, err)
			task = tk
			defer task.End()

			err = g.Authorize(ctx, Call{Tool: "db.rows", Intent: "delete", Destination: "db://orders"})
			var de *DeniedError
			require.True(t, errors.As(err, &de), "denied: %v", err)
			assert.Equal(t, tc.rule, de.Decision.Rule)
			assert.Contains(t, de.Decision.Reason, tc.reason)
			task.mu.Lock()
			assert.Empty(t, task.grants, "a late approval grants nothing for the task")
			task.mu.Unlock()
		})
	}
}

// The digest covers everything the decision depended on: a grant for one
// call never covers a call that differs in sensitivity, destination,
// arguments or the asking rule.
func TestApprovalDigestCoversTheDecision(t *testing.T) {
	t.Parallel()
	asked := 0
	approver := GranterFunc(func(ctx context.Context, c Call, d Decision) (Grant, error) {
		asked++
		return Grant{Approved: true, ForTask: true, By: "alice"}, nil
	})
	g, _ := mustGuard(t, askPolicy, WithApprover(approver))
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Clearance: Restricted})
	require.NoError(t, err)
	defer task.End()
	base := Call{Tool: "db.rows", Intent: "delete", Destination: "db://orders", Args: map[string]any{"id": 1}}
	require.NoError(t, g.Authorize(ctx, base))
	require.NoError(t, g.Authorize(ctx, base))
	require.Equal(t, 1, asked, "the for-task grant covers the identical call")

	variants := map[string]func(c *Call){
		"sensitivity": func(c *Call) { c.Sensitivity = Restricted },
		"destination": func(c *Call) { c.Destination = "db://customers" },
		"arguments":   func(c *Call) { c.Args = map[string]any{"id": 2} },
		"intent/rule": func(c *Call) { c.Intent = "export" },
	}
	for name, change := range variants {
		c := base
		change(&c)
		d1, d2 := g.Check(ctx, base), g.Check(ctx, c)
		assert.NotEqual(t, d1.Digest, d2.Digest, name)
		before := asked
		require.NoError(t, g.Authorize(ctx, c))
		assert.Equal(t, before+1, asked, "%s: a grant for another call does not cover this one", name)
	}
}

// A tool whose arguments the guard cannot see is approved once at a time.
func TestApprovalOpaqueArgsNeverGrantedForTask(t *testing.T) {
	t.Parallel()
	asked := 0
	approver := GranterFunc(func(ctx context.Context, c Call, d Decision) (Grant, error) {
		asked++
		return Grant{Approved: true, ForTask: true, By: "alice"}, nil
	})
	g, _ := mustGuard(t, askPolicy, WithApprover(approver))
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	type opaque struct{ F func() }
	tool := Tool[opaque]{Name: "db.rows", OpaqueArgs: true, Describe: func(opaque) (Call, error) {
		return Call{Tool: "db.rows", Intent: "delete", Destination: "db://orders"}, nil
	}}
	h := Wrap(g, tool, func(ctx context.Context, in opaque) (string, error) { return "done", nil })
	for range 2 {
		_, err := h(ctx, opaque{})
		require.NoError(t, err)
	}
	assert.Equal(t, 2, asked, "each call of an opaque-argument tool asks")
}
