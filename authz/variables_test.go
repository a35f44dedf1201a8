package authz

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types/ref"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const variablesPolicy = `variables:
  - name: recipients
    expression: destinations.map(d, d.canonical)
  - name: all_named
    expression: variables.recipients.all(r, r in task.scope.recipients)
  - name: external
    expression: destinations.exists(d, !d.host.endsWith("corp.example"))
rules:
  - name: mail-named
    tools: ["mail.send"]
    effect: allow
    when: variables.all_named
  - name: mail-external-asks
    tools: ["mail.send"]
    effect: ask
    when: variables.external && !variables.all_named
  - name: bind
    tools: ["probe"]
    effect: allow
    when: cel.bind(n, variables.recipients.size(), n == 2 && variables.recipients[n - 1] == "b@corp.example")
`

// countingProgram counts the evaluations of a program.
type countingProgram struct {
	cel.Program
	n *int
}

func (p countingProgram) Eval(vars any) (ref.Val, *cel.EvalDetails, error) {
	*p.n++
	return p.Program.Eval(vars)
}

// countVariables makes every variable of p count its evaluations, by name.
func countVariables(p *Policy) map[string]*int {
	counts := map[string]*int{}
	dv := p.rules[0].src.vars
	for i, name := range dv.names {
		counts[name] = new(int)
		dv.progs[i].prg = countingProgram{dv.progs[i].prg, counts[name]}
	}
	return counts
}

func TestVariables(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, variablesPolicy)
	counts := countVariables(p)
	g, err := New(WithPolicy(p))
	require.NoError(t, err)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"},
		Scope: map[string][]string{"recipients": {"a@corp.example", "b@corp.example"}}})
	require.NoError(t, err)
	defer task.End()
	mail := func(to ...string) Decision {
		for _, n := range counts {
			*n = 0
		}
		return g.Check(ctx, Call{Tool: "mail.send", Intent: "write", Destination: to[0], Destinations: to[1:]})
	}
	d := mail("a@corp.example", "b@corp.example")
	assert.Equal(t, Allow, d.Effect)
	assert.Equal(t, map[string]int{"recipients": 1, "all_named": 1, "external": 1}, derefCounts(counts),
		"each variable once per call, though two rules and another variable read them")
	d = mail("a@corp.example", "m@evil.example")
	assert.Equal(t, Ask, d.Effect)
	assert.Equal(t, "mail-external-asks", d.Rule)
	d = mail("c@corp.example")
	assert.Equal(t, RuleNoMatch, d.Rule)
	assert.Equal(t, 1, *counts["external"])

	for _, n := range counts {
		*n = 0
	}
	assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "probe", Intent: "read", Destination: "a@corp.example", Destinations: []string{"b@corp.example"}}).Effect, "cel.bind")
	assert.Equal(t, map[string]int{"recipients": 1, "all_named": 0, "external": 0}, derefCounts(counts), "only what the rule reads")

	// A sub-task's call is decided for each task view: once per view.
	cctx, child, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "b"}, Scope: map[string][]string{"recipients": {"a@corp.example"}}})
	require.NoError(t, err)
	defer child.End()
	for _, n := range counts {
		*n = 0
	}
	assert.Equal(t, Allow, g.Check(cctx, Call{Tool: "mail.send", Intent: "write", Destination: "a@corp.example"}).Effect)
	assert.Equal(t, 2, *counts["all_named"])
	assert.Equal(t, Ask, g.Check(cctx, Call{Tool: "mail.send", Intent: "write", Destination: "b@corp.example", Destinations: []string{"x@evil.example"}}).Effect)
	d = g.Check(cctx, Call{Tool: "mail.send", Intent: "write", Destination: "b@corp.example"})
	assert.Equal(t, RuleNoMatch, d.Rule, "b is in the parent's scope only: the sub-task's own view decides")

	assert.Equal(t, []string{"mail.send", "probe"}, g.Visible(ctx, []string{"mail.send", "probe"}), "rules over variables are undecided for Visible")
}

func derefCounts(c map[string]*int) map[string]int {
	out := map[string]int{}
	for k, v := range c {
		out[k] = *v
	}
	return out
}

func TestVariableRuntimeErrorDenies(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `variables:
  - name: iban
    expression: args.iban
rules:
  - name: pay
    tools: ["bank.transfer"]
    effect: allow
    when: variables.iban == "DE89370400440532013000"
`)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "bank.transfer", Intent: "write", Args: map[string]any{"iban": "DE89370400440532013000"}}).Effect)
	d := g.Check(ctx, Call{Tool: "bank.transfer", Intent: "write"})
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, "pay", d.Rule)
	require.Error(t, d.Err)
	assert.Contains(t, d.Err.Error(), "missing key")
}

func TestVariableErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src, want string
	}{
		{"later", `variables:
  - name: a
    expression: variables.b
  - name: b
    expression: "true"
rules: [{name: r, tools: [x], effect: allow, when: variables.a}]
`, `test.yaml:3:26: variable "a": variables.b is declared after this variable`},
		{"itself", `variables:
  - name: a
    expression: variables.a || true
rules: [{name: r, tools: [x], effect: allow, when: variables.a}]
`, `test.yaml:3:26: variable "a": a variable cannot use itself`},
		{"type error", `variables:
  - name: a
    expression: "1 + 'x'"
rules: [{name: r, tools: [x], effect: allow, when: variables.a}]
`, `test.yaml:3:20: variable "a": found no matching overload`},
		{"unknown in rule", `variables:
  - {name: a, expression: "true"}
rules:
  - name: r
    tools: [x]
    effect: allow
    when: variables.b
`, `test.yaml:7:20: rule "r": when: no variable "b" is declared in this document`},
		{"not a bool in rule", `variables:
  - {name: a, expression: "'x'"}
rules: [{name: r, tools: [x], effect: allow, when: variables.a}]
`, `rule "r": when: expression must be a bool, not string`},
		{"duplicate", `variables:
  - {name: a, expression: "true"}
  - {name: a, expression: "false"}
rules: [{name: r, tools: [x], effect: allow, when: variables.a}]
`, `test.yaml:3:5: variable "a": declared twice`},
		{"bad name", `variables:
  - {name: in, expression: "true"}
rules: [{name: r, tools: [x], effect: allow, when: "true"}]
`, `reserved word`},
		{"missing expression", `variables:
  - {name: a}
rules: [{name: r, tools: [x], effect: allow, when: "true"}]
`, `test.yaml:2:5: variables: each entry needs a name and an expression`},
		{"cost", `variables:
  - name: words
    expression: args.text.split(" ")
  - name: pairs
    expression: variables.words.all(a, variables.words.all(b, a + b != "x"))
rules: [{name: r, tools: [x], effect: allow, when: variables.pairs}]
`, `variable "pairs": worst-case cost`},
		{"cost of a rule counts its variables", `variables:
  - name: big
    expression: args.text.split(" ").all(a, args.text.split(" ").all(b, a != b || a.size() < 3))
rules: [{name: r, tools: [x], effect: allow, when: variables.big}]
`, `worst-case cost`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy("test.yaml", []byte(tc.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestVariablesBelongToTheirDocument(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, src string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600))
	}
	write("a.yaml", `variables: [{name: reads, expression: 'intent == "read"'}]
rules: [{name: a, tools: [x], effect: allow, when: variables.reads}]
`)
	write("b.yaml", `rules: [{name: b, tools: [y], effect: allow, when: variables.reads}]
`)
	_, err := LoadPolicyFiles(filepath.Join(dir, "*.yaml"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "b.yaml:1:")
	assert.Contains(t, err.Error(), "undeclared reference to 'variables'")

	write("b.yaml", `variables: [{name: reads, expression: 'intent == "search"'}]
rules: [{name: b, tools: [y], effect: allow, when: variables.reads}]
`)
	p, err := LoadPolicyFiles(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	g, err := New(WithPolicy(p))
	require.NoError(t, err)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "x", Intent: "read"}).Effect)
	assert.Equal(t, RuleNoMatch, g.Check(ctx, Call{Tool: "x", Intent: "search"}).Rule)
	assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "y", Intent: "search"}).Effect, "b.yaml's own variable of the same name")
}

func TestVariablesInThePolicyVersion(t *testing.T) {
	t.Parallel()
	a := mustPolicy(t, variablesPolicy)
	b := mustPolicy(t, strings.Replace(variablesPolicy, `endsWith("corp.example")`, `endsWith("example")`, 1))
	assert.NotEqual(t, a.Version(), b.Version())
	assert.Equal(t, a.Version(), mustPolicy(t, variablesPolicy).Version())
}

func BenchmarkCheckVariables(b *testing.B) {
	p := mustPolicy(b, variablesPolicy)
	g, err := New(WithPolicy(p))
	require.NoError(b, err)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"},
		Scope: map[string][]string{"recipients": {"a@corp.example", "b@corp.example"}}})
	require.NoError(b, err)
	b.Cleanup(task.End)
	call := Call{Tool: "mail.send", Intent: "write", Destination: "a@corp.example"}
	b.ReportAllocs()
	for b.Loop() {
		if g.Check(ctx, call).Effect != Allow {
			b.Fatal("denied")
		}
	}
}

// BenchmarkCheckVariablesScalar reads two bool variables from two rules:
// the memo of the pooled activation allocates nothing.
func BenchmarkCheckVariablesScalar(b *testing.B) {
	p := mustPolicy(b, `variables:
  - {name: github, expression: 'destination.host == "api.github.com"'}
  - {name: reads, expression: 'intent in ["read", "search"] && variables.github'}
rules:
  - {name: no-secrets, tools: ["http.fetch"], effect: deny, when: '!variables.reads && sensitivity > INTERNAL'}
  - {name: fetch, tools: ["http.fetch"], effect: allow, when: 'variables.reads && variables.github'}
`)
	g, err := New(WithPolicy(p))
	require.NoError(b, err)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Intents: []string{"read"}, Clearance: Internal})
	require.NoError(b, err)
	b.Cleanup(task.End)
	b.ReportAllocs()
	for b.Loop() {
		if g.Check(ctx, benchCall).Effect != Allow {
			b.Fatal("denied")
		}
	}
}

func TestVariablesWithTypedArgs(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `tools:
  pay: {args: {amount: int, to: string}}
variables:
  - {name: small, expression: 'args.amount < 100'}
rules:
  - {name: pay, tools: [pay], effect: allow, when: 'variables.small && args.to == "bob" && args.amount > 0'}
`)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	pay := func(amount int, to string) Decision {
		return g.Check(ctx, Call{Tool: "pay", Intent: "write", Args: map[string]any{"amount": amount, "to": to}})
	}
	assert.Equal(t, Allow, pay(50, "bob").Effect)
	assert.Equal(t, RuleNoMatch, pay(500, "bob").Rule)
	assert.Equal(t, RuleNoMatch, pay(50, "eve").Rule)
	_, err = ParsePolicy("p.yaml", []byte(`tools:
  pay: {args: {amount: int}}
variables: [{name: small, expression: 'args.amount < 100'}]
rules: [{name: pay, tools: [pay], effect: allow, when: 'variables.small && args.nope == 1'}]
`))
	require.Error(t, err, "the rule's args stay typed")
}
