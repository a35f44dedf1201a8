package authz

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const scopePolicy = `rules:
  - name: mail-named-recipients
    tools: ["mail.send"]
    effect: allow
    when: destinations.all(d, d.canonical in task.scope.recipients)
  - name: pay-named-payees
    tools: ["bank.transfer"]
    effect: allow
    when: has(task.scope.payees) && args.iban in task.scope["payees"]
  - name: post-named-channels
    tools: ["chat.post"]
    effect: allow
    when: args.channel in task.scope.channels
`

func scopeTask(t *testing.T, g *Guard, scope map[string][]string) (context.Context, *Task) {
	t.Helper()
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Scope: scope})
	require.NoError(t, err)
	t.Cleanup(task.End)
	return ctx, task
}

func TestScopeMembershipIsExact(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, scopePolicy)
	ctx, task := scopeTask(t, g, map[string][]string{
		"recipients": {" bob@CORP.example ", "mailto:carol@corp.example", "https://Hooks.Example.org:443/in"},
		"payees":     {"DE89370400440532013000"},
	})
	assert.Equal(t, map[string][]string{
		"recipients": {"bob@corp.example", "carol@corp.example", "https://hooks.example.org/in"},
		"payees":     {"DE89370400440532013000"},
	}, task.Scope(), "destinations canonical, anything else exact")

	mail := func(to ...string) Decision {
		return g.Check(ctx, Call{Tool: "mail.send", Intent: "write", Destination: to[0], Destinations: to[1:]})
	}
	assert.Equal(t, Allow, mail("bob@corp.example", "carol@CORP.example", "https://hooks.example.org/in").Effect)
	for _, to := range [][]string{
		{"bob@corp.example", "mallory@evil.example"},
		{"bob@corp.example.evil.example"},
		{"Bob@corp.example"}, // the local part is compared exactly
		{"bob@corp.example", "https://hooks.example.org/in/x"},
	} {
		assert.Equal(t, RuleNoMatch, mail(to...).Rule, "%q", to)
	}
	pay := func(iban string) Decision {
		return g.Check(ctx, Call{Tool: "bank.transfer", Intent: "write", Args: map[string]any{"iban": iban}})
	}
	assert.Equal(t, Allow, pay("DE89370400440532013000").Effect)
	assert.Equal(t, RuleNoMatch, pay("DE8937040044053201300").Rule, "a prefix is not a member")
	assert.Equal(t, RuleNoMatch, pay("de89370400440532013000").Rule, "values other than destinations are exact")

	d := g.Check(ctx, Call{Tool: "chat.post", Intent: "write", Args: map[string]any{"channel": "#general"}})
	assert.Equal(t, Deny, d.Effect)
	require.Error(t, d.Err, "a scope key the task lacks is a missing key, which denies")
	assert.Contains(t, d.Err.Error(), "missing key")

	// A task without scope: has() is false, the rule does not match.
	ctx2, _ := scopeTask(t, g, nil)
	assert.Equal(t, RuleNoMatch, g.Check(ctx2, Call{Tool: "bank.transfer", Intent: "write", Args: map[string]any{"iban": "x"}}).Rule)
}

func TestScopeBounds(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, scopePolicy)
	many := make([]string, MaxInputSize+1)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	for _, tc := range []struct {
		name  string
		scope map[string][]string
		err   string
	}{
		{"empty key", map[string][]string{"": {"x"}}, "scope key"},
		{"empty value", map[string][]string{"payees": {"  "}}, "scope payees: empty value"},
		{"long value", map[string][]string{"payees": {strings.Repeat("x", MaxInputSize+1)}}, "longer than"},
		{"too many values", map[string][]string{"payees": many[:600], "hosts": many[600:]}, "more than 1024 values in all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Scope: tc.scope})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
	_, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Scope: map[string][]string{"payees": many[:MaxInputSize]}})
	require.NoError(t, err, "exactly MaxInputSize values")
	task.End()
}

func TestScopeSubTasksOnlyNarrow(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, scopePolicy)
	ctx, _ := scopeTask(t, g, map[string][]string{
		"recipients": {"bob@corp.example", "carol@corp.example"},
		"payees":     {"DE89370400440532013000"},
	})
	for _, tc := range []struct {
		scope map[string][]string
		err   string
	}{
		{map[string][]string{"recipients": {"mallory@evil.example"}}, `sub-task scope recipients: "mallory@evil.example" is not in the parent's scope`},
		{map[string][]string{"channels": {"#general"}}, `sub-task scope key "channels" is not in the parent's scope`},
	} {
		_, _, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "b"}, Scope: tc.scope})
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.err)
	}
	cctx, child, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "b"}, Scope: map[string][]string{"recipients": {"bob@CORP.example"}}})
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{"recipients": {"bob@corp.example"}, "payees": {"DE89370400440532013000"}}, child.Scope(),
		"narrowed where given, inherited elsewhere")
	mail := func(to string) Effect {
		return g.Check(cctx, Call{Tool: "mail.send", Intent: "write", Destination: to}).Effect
	}
	assert.Equal(t, Allow, mail("bob@corp.example"))
	assert.Equal(t, Deny, mail("carol@corp.example"), "in the parent's scope, not the sub-task's")
	_, _, err = g.Begin(cctx, TaskSpec{Agent: Agent{ID: "c"}, Scope: map[string][]string{"recipients": {"carol@corp.example"}}})
	require.Error(t, err, "a grandchild narrows its own parent, not the root")
}

func TestScopeTravelsInTokens(t *testing.T) {
	t.Parallel()
	agent, tools, _, _ := tokenGuards(t)
	ctx, task, err := agent.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "spiffe://example.org/planner"},
		Scope: map[string][]string{"recipients": {"Bob@CORP.example"}}})
	require.NoError(t, err)
	defer task.End()
	_, child, err := agent.Begin(ctx, TaskSpec{Agent: Agent{ID: "spiffe://example.org/planner"}, Scope: map[string][]string{"recipients": {}}})
	require.NoError(t, err)
	tok, err := child.Token("tools")
	require.NoError(t, err)
	_, remote, err := tools.Resume(context.Background(), tok)
	require.NoError(t, err)
	defer remote.End()
	assert.Equal(t, map[string][]string{"recipients": {}}, remote.Scope())
	assert.Equal(t, map[string][]string{"recipients": {"Bob@corp.example"}}, task.Scope())
}

// TestScopeRuleCost loads a rule over every destination against a scope
// list: `in` on a scope list is estimated as one map lookup, so the rule is
// well within the limit under the input bounds (MaxDestinations
// destinations, MaxInputSize scope values), where a plain list would cost
// one unit per element per destination.
func TestScopeRuleCost(t *testing.T) {
	t.Parallel()
	const rule = `destinations.all(d, d.canonical in task.scope.recipients && d.host in task.scope["hosts"])`
	_, err := NewPolicy("p", Rule{Name: "r", Tools: []string{"*"}, Effect: Allow, When: rule})
	require.NoError(t, err)
	env, err := celEnv()
	require.NoError(t, err)
	ast, iss := env.Compile(rule)
	require.NoError(t, iss.Err())
	est, err := env.EstimateCost(ast, costEstimator{})
	require.NoError(t, err)
	assert.Less(t, est.Max, uint64(20*(MaxDestinations+1)), "a few units per destination")
	// The same membership in a list that is not a scope list is linear.
	ast, iss = env.Compile(`destinations.all(d, d.canonical in task.tools)`)
	require.NoError(t, iss.Err())
	est, err = env.EstimateCost(ast, costEstimator{})
	require.NoError(t, err)
	assert.Greater(t, est.Max, uint64(MaxInputSize*(MaxDestinations+1)))
}

// BenchmarkCheckScope decides a mail to n recipients against the task's
// scope of 1000 recipients.
func BenchmarkCheckScope(b *testing.B) {
	recipients := make([]string, 1000)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("user%d@corp.example", i)
	}
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("destinations=%d", n), func(b *testing.B) {
			g, ctx := guardFor(b, TaskSpec{Agent: Agent{ID: "a"}, Scope: map[string][]string{"recipients": recipients}},
				Rule{Name: "mail", Tools: []string{"mail.send"}, Effect: Allow, When: `destinations.all(d, d.canonical in task.scope.recipients)`})
			call := Call{Tool: "mail.send", Intent: "write", Destination: recipients[999], Destinations: recipients[:n-1]}
			b.ReportAllocs()
			for b.Loop() {
				if g.Check(ctx, call).Effect != Allow {
					b.Fatal("denied")
				}
			}
		})
	}
}
