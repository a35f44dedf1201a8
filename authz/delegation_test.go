package authz

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// delegationPolicy grants by agent and by label, the two things a sub-task
// could try to change to widen its authority.
const delegationPolicy = `rules:
  - name: admins-delete
    tools: ["db.*"]
    effect: allow
    when: intent == "delete" && agent.id == "admin"
  - name: workspace-files
    tools: ["fs.*"]
    effect: allow
    when: has(task.labels.workdir) && destination.path.within(task.labels.workdir)
  - name: tenant-reads
    tools: ["crm.read"]
    effect: allow
    when: task.labels.tenant == "acme"
  - name: reads
    tools: ["web.*", "crm.read"]
    effect: allow
    when: intent == "read"
  - name: deletes-asked-of-interns
    tools: ["db.*"]
    effect: ask
    when: intent == "delete" && agent.id == "intern"
  - name: web-limit
    tools: ["web.*"]
    effect: allow
    when: intent == "search"
    limit: {rate: 2/h, burst: 2}
`

// A sub-task's call must be allowed for the sub-task and for each ancestor:
// another agent ID or an added label widens nothing.
func TestDelegationOnlyNarrows(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		parent, child TaskSpec
		call          Call
		want          Effect
		rule          string
	}{
		{
			name:   "a sub-agent with an identity the rules grant more",
			parent: TaskSpec{Agent: Agent{ID: "intern"}},
			child:  TaskSpec{Agent: Agent{ID: "admin"}},
			call:   Call{Tool: "db.rows", Intent: "delete", Destination: "db://orders"},
			want:   Ask, rule: "deletes-asked-of-interns",
		},
		{
			name:   "a sub-agent of an agent no rule grants",
			parent: TaskSpec{Agent: Agent{ID: "guest"}},
			child:  TaskSpec{Agent: Agent{ID: "admin"}},
			call:   Call{Tool: "db.rows", Intent: "delete", Destination: "db://orders"},
			want:   Deny, rule: RuleNoMatch,
		},
		{
			name:   "a workdir label the parent never had",
			parent: TaskSpec{Agent: Agent{ID: "a"}},
			child:  TaskSpec{Agent: Agent{ID: "a"}, Labels: map[string]string{"workdir": "/"}},
			call:   Call{Tool: "fs.read", Intent: "read", Destination: "/etc/shadow"},
			want:   Deny, rule: RuleNoMatch,
		},
		{
			name:   "a tenant label the parent never had",
			parent: TaskSpec{Agent: Agent{ID: "a"}},
			child:  TaskSpec{Agent: Agent{ID: "a"}, Labels: map[string]string{"tenant": "acme"}},
			call:   Call{Tool: "crm.read", Intent: "export", Destination: "db://crm"},
			want:   Deny, rule: "tenant-reads", // the parent has no tenant: the rule fails, which denies
		},
		{
			name:   "a narrower workdir is still allowed",
			parent: TaskSpec{Agent: Agent{ID: "a"}, Labels: map[string]string{"workdir": "/ws"}},
			child:  TaskSpec{Agent: Agent{ID: "b"}},
			call:   Call{Tool: "fs.read", Intent: "read", Destination: "/ws/notes.txt"},
			want:   Allow, rule: "workspace-files",
		},
		{
			name:   "what both may do is allowed",
			parent: TaskSpec{Agent: Agent{ID: "planner"}},
			child:  TaskSpec{Agent: Agent{ID: "researcher"}},
			call:   Call{Tool: "web.fetch", Intent: "read", Destination: "https://example.org/"},
			want:   Allow, rule: "reads",
		},
		{
			name:   "an ask of the child stays an ask when the parent allows",
			parent: TaskSpec{Agent: Agent{ID: "admin"}},
			child:  TaskSpec{Agent: Agent{ID: "intern"}},
			call:   Call{Tool: "db.rows", Intent: "delete", Destination: "db://orders"},
			want:   Ask, rule: "deletes-asked-of-interns",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, _ := mustGuard(t, delegationPolicy)
			ctx, parent, err := g.Begin(context.Background(), tc.parent)
			require.NoError(t, err)
			defer parent.End()
			cctx, _, err := g.Begin(ctx, tc.child)
			require.NoError(t, err)
			d := g.Check(cctx, tc.call)
			assert.Equal(t, tc.want, d.Effect, d.Reason)
			assert.Equal(t, tc.rule, d.Rule)
			if tc.want != Allow && d.Rule != "deletes-asked-of-interns" || tc.name == "a sub-agent with an identity the rules grant more" {
				assert.Contains(t, d.Reason, parent.ID(), "the reason names the ancestor that decided")
			}
		})
	}
}

// Depth 2: the grandparent's view counts too.
func TestDelegationChecksEveryAncestor(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, delegationPolicy)
	ctx, root, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "guest"}})
	require.NoError(t, err)
	defer root.End()
	ctx, _, err = g.Begin(ctx, TaskSpec{Agent: Agent{ID: "admin"}})
	require.NoError(t, err)
	ctx, _, err = g.Begin(ctx, TaskSpec{Agent: Agent{ID: "admin"}})
	require.NoError(t, err)
	d := g.Check(ctx, Call{Tool: "db.rows", Intent: "delete", Destination: "db://orders"})
	assert.Equal(t, Deny, d.Effect)
	assert.Contains(t, d.Reason, root.ID())

	x := g.Explain(ctx, Call{Tool: "db.rows", Intent: "delete", Destination: "db://orders"})
	tasks := map[string]bool{}
	for _, r := range x.Rules {
		tasks[r.Task] = true
	}
	assert.Len(t, tasks, 3, "Explain traces the rules under each task of the chain")
}

// Rate limits and task.calls count on the task and every ancestor: a
// sub-task spends its parent's, and a fresh sub-task brings no fresh limit.
func TestDelegationSpendsTheParentsQuota(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, delegationPolicy)
	ctx, parent, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer parent.End()
	search := Call{Tool: "web.search", Intent: "search", Destination: "https://example.org/"}
	require.NoError(t, g.Authorize(ctx, search))
	for i := range 2 {
		cctx, child, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: fmt.Sprint("worker", i)}})
		require.NoError(t, err)
		err = g.Authorize(cctx, search)
		if i == 0 {
			require.NoError(t, err, "the parent's second token")
		} else {
			require.ErrorIs(t, err, ErrDenied, "a fresh sub-task brings no fresh limit")
			assert.Contains(t, err.Error(), "rate limit")
		}
		child.End()
	}
	assert.Equal(t, 2, parent.Calls()["web.search"], "the sub-task's call counts on the parent")
	require.ErrorIs(t, g.Authorize(ctx, search), ErrDenied)
}

// A denied limit of an ancestor returns the tokens taken for the others.
func TestDelegationRateLimitAllOrNothing(t *testing.T) {
	t.Parallel()
	g, clk := mustGuard(t, delegationPolicy)
	ctx, parent, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, TTL: 24 * time.Hour})
	require.NoError(t, err)
	defer parent.End()
	search := Call{Tool: "web.search", Intent: "search", Destination: "https://example.org/"}
	require.NoError(t, g.Authorize(ctx, search))
	require.NoError(t, g.Authorize(ctx, search))
	cctx, child, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "w"}})
	require.NoError(t, err)
	require.ErrorIs(t, g.Authorize(cctx, search), ErrDenied, "the parent's limit is spent")
	child.mu.Lock()
	tokens := child.limiters["web-limit"].l.TokensAt(clk.Now())
	child.mu.Unlock()
	assert.InDelta(t, 2, tokens, 0.001, "the token taken from the child was given back")
	clk.Add(30 * time.Minute) // one token back for the parent
	require.NoError(t, g.Authorize(cctx, search))
}

func TestDelegationMergedLabelsBounded(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	labels := map[string]string{}
	for i := range MaxInputSize {
		labels[fmt.Sprint("p", i)] = "x"
	}
	ctx, parent, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Labels: labels})
	require.NoError(t, err)
	defer parent.End()
	_, _, err = g.Begin(ctx, TaskSpec{Agent: Agent{ID: "a"}, Labels: map[string]string{"extra": "1"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "labels")
}
