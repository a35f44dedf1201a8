package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseArgType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "int", want: "int"},
		{in: " uint ", want: "uint"},
		{in: "double", want: "double"},
		{in: "bool", want: "bool"},
		{in: "string", want: "string"},
		{in: "bytes", want: "bytes"},
		{in: "timestamp", want: "timestamp"},
		{in: "duration", want: "duration"},
		{in: "dyn", want: "dyn"},
		{in: "list(string)", want: "list(string)"},
		{in: "list", want: "list(dyn)"},
		{in: "map", want: "map(string, dyn)"},
		{in: "map(string,int)", want: "map(string, int)"},
		{in: "list( map( string , list(double) ) )", want: "list(map(string, list(double)))"},
		{in: "map(int, map(bool, timestamp))", want: "map(int, map(bool, timestamp))"},
		{in: "", err: "type is empty"},
		{in: "   ", err: "type is empty"},
		{in: "integer", err: `unknown type "integer" at offset 0 (did you mean int or double?)`},
		{in: "float", err: "(did you mean double?)"},
		{in: "list(strng)", err: `unknown type "strng" at offset 5`},
		{in: "list(string", err: "missing ')'"},
		{in: "list(string))", err: "unbalanced ')' at offset 12"},
		{in: "map(string)", err: "map needs a key and a value type"},
		{in: "map(double, int)", err: "map key type double at offset 4: want int, uint, bool or string"},
		{in: "map(list(int), int)", err: "map key type list(int)"},
		{in: "list(int) x", err: `unexpected "x" at offset 10`},
		{in: "list()", err: `unexpected ")" at offset 5`},
		{in: "list(", err: "missing a type at the end"},
		{in: "int,", err: `unexpected "," at offset 3`},
		{in: strings.Repeat("list(", 20) + "int" + strings.Repeat(")", 20), err: "nested deeper than 16"},
		{in: strings.Repeat("x", 2000), err: "type is longer than 1024 bytes"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := parseArgType(tc.in)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got.name)
			again, err := parseArgType(got.name)
			require.NoError(t, err)
			assert.Equal(t, got.name, again.name, "the canonical form parses to itself")
		})
	}
}

// typedPolicy declares payments.send and payments.refund; rules are
// appended to it.
const typedPolicy = `tools:
  payments.send:
    args: {amount: int, to: string, cc: list(string)}
  payments.refund:
    args:
      amount: double
      to: string
      reason: string
rules:
`

func TestTypedRuleLoadErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, rules string
		want        []string // the errors, exactly
	}{
		{
			name: "misspelled argument",
			rules: `  - name: small
    tools: [payments.send]
    effect: allow
    when: args.amout < 100
`,
			want: []string{`p.yaml:13:15: rule "small": when: undefined field 'amout' (tool payments.send declares arguments amount, cc, to; read other arguments with dyn(args).NAME)`},
		},
		{
			name: "argument compared with the wrong type",
			rules: `  - name: small
    tools: [payments.send]
    effect: allow
    when: args.amount > "10"
`,
			want: []string{`p.yaml:13:23: rule "small": when: found no matching overload for '_>_' applied to '(int, string)'`},
		},
		{
			name: "list argument used as a string",
			rules: `  - name: cc
    tools: payments.send
    effect: deny
    when: 'args.cc.endsWith("@evil.example")'
`,
			want: []string{`p.yaml:13:28: rule "cc": when: found no matching overload for 'endsWith' applied to 'list(string).(string)'`},
		},
		{
			name: "argument not common to the glob's tools",
			rules: `  - name: pay
    tools: ["payments.*"]
    effect: allow
    when: args.to.endsWith("@corp.example") && args.reason != ""
`,
			want: []string{`p.yaml:13:52: rule "pay": when: undefined field 'reason' (tools payments.refund, payments.send declare in common arguments amount, to; read other arguments with dyn(args).NAME)`},
		},
		{
			name: "two exact tools",
			rules: `  - name: two
    tools: [payments.send, payments.refund]
    effect: allow
    when: args.to > 1
`,
			want: []string{`p.yaml:13:19: rule "two": when: found no matching overload for '_>_' applied to '(string, int)'`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePolicy("p.yaml", []byte(typedPolicy+tc.rules))
			var got []string
			for _, pe := range policyErrors(t, err) {
				got = append(got, pe.Error())
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestTypedRulesThatLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, tools, when string }{
		{"undeclared tool stays dynamic", "[http.fetch]", "args.anything > 3"},
		{"glob matching no declared tool stays dynamic", `["db.*"]`, "args.anything > 3"},
		{"a rule over a declared and an undeclared tool stays dynamic", "[payments.send, http.fetch]", "args.whatever == 1"},
		{"types that differ are dyn", `["payments.*"]`, `args.amount > 10 && args.amount < 10.5`},
		{"dyn(args) reads any argument", "[payments.send]", `"reason" in dyn(args) || dyn(args).other == 1`},
		{"presence test", "[payments.send]", `!has(args.cc) || args.cc.all(c, c.endsWith("@corp.example"))`},
		{"optional selection", "[payments.send]", `args.?cc.orValue([]).size() < 3`},
		{"double against int literal", "[payments.refund]", `args.amount > 10`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePolicy("p.yaml", []byte(typedPolicy+"  - {name: r, tools: "+tc.tools+", effect: allow, when: '"+tc.when+"'}\n"))
			require.NoError(t, err)
		})
	}
}

func TestToolsBlockErrors(t *testing.T) {
	t.Parallel()
	const rules = "rules:\n  - {name: r, tools: [x], effect: allow, when: 'true'}\n"
	for _, tc := range []struct {
		name, tools string
		want        []string
	}{
		{"unknown type", "tools:\n  a:\n    args: {n: integer}\n",
			[]string{`p.yaml:3:15: tools: a: argument n: type "integer": unknown type "integer" at offset 0 (did you mean int or double?) (want int, uint, double, bool, string, bytes, timestamp, duration, dyn, list(T), map(K, V))`}},
		{"unquoted map type in a flow mapping", "tools:\n  a:\n    args: {m: map(string, int)}\n",
			[]string{
				`p.yaml:3:15: tools: a: argument m: type "map(string": map needs a key and a value type, like map(string, int) (a type with a comma inside {...} must be quoted: "map(string, int)")`,
				`p.yaml:3:27: tools: a: argument name "int)": want a CEL identifier (letters, digits, _; not starting with a digit) (a type with a comma inside {...} must be quoted: "map(string, int)")`,
			}},
		{"missing type", "tools:\n  a:\n    args:\n      n:\n",
			[]string{`p.yaml:4:9: tools: a: argument n: missing type (want int, uint, double, bool, string, bytes, timestamp, duration, dyn, list(T), map(K, V))`}},
		{"number instead of type", "tools:\n  a:\n    args: {n: 5}\n",
			[]string{`p.yaml:3:15: tools: a: argument n: "5" is not a type (want int, uint, double, bool, string, bytes, timestamp, duration, dyn, list(T), map(K, V))`}},
		{"YAML tag", "tools:\n  a:\n    args:\n      n: !int\n",
			[]string{`p.yaml:4:10: tools: a: argument n: YAML read !int as a tag: quote the type`}},
		{"list instead of type", "tools:\n  a:\n    args: {n: [int]}\n",
			[]string{`p.yaml:3:15: tools: a: argument n: want a type name (int, uint, double, bool, string, bytes, timestamp, duration, dyn, list(T), map(K, V)), not a YAML list or mapping`}},
		{"args not a mapping", "tools:\n  a:\n    args: [n]\n",
			[]string{`p.yaml:3:11: tools: a: args must be a mapping from argument name to type, like {amount: int}`}},
		{"declaration not a mapping", "tools:\n  a: int\n",
			[]string{`p.yaml:2:6: tools: a: want a mapping like {args: {amount: int}}`}},
		{"unknown key", "tools:\n  a:\n    args: {}\n    result: string\n",
			[]string{`p.yaml:4:5: tools: a: unknown key "result" (want args)`}},
		{"missing args", "tools:\n  a: {}\n",
			[]string{`p.yaml:2:6: tools: a: missing args`}},
		{"tools not a mapping", "tools: [a, b]\n",
			[]string{`p.yaml:1:8: tools must be a mapping from tool name to {args: {name: type}}`}},
		{"pattern as a tool name", "tools:\n  'payments.*': {args: {}}\n",
			[]string{`p.yaml:2:3: tools: tool "payments.*": a declaration names one tool, not a pattern`}},
		{"duplicate tool", "tools:\n  a: {args: {}}\n  a: {args: {}}\n",
			[]string{`p.yaml:3:3: tools: tool "a" is declared twice`}},
		{"argument name not an identifier", "tools:\n  a: {args: {content-type: string}}\n",
			[]string{`p.yaml:2:14: tools: a: argument name "content-type": want a CEL identifier (letters, digits, _; not starting with a digit)`}},
		{"reserved argument name", "tools:\n  a: {args: {in: string}}\n",
			[]string{`p.yaml:2:14: tools: a: argument name "in" is a CEL reserved word`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePolicy("p.yaml", []byte(tc.tools+rules))
			var got []string
			for _, pe := range policyErrors(t, err) {
				got = append(got, pe.Error())
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestToolsBlockAcrossFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, src string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
		return path
	}
	a := write("a.yaml", "tools:\n  pay: {args: {amount: int}}\nrules:\n  - {name: a, tools: [pay], effect: allow, when: 'args.amount < 5'}\n")
	b := write("b.yaml", "tools:\n  pay: {args: {amount: int}}\nrules:\n  - {name: b, tools: [pay], effect: allow, when: 'args.amount < 7'}\n")
	c := write("c.yaml", "tools:\n  pay: {args: {amount: double, to: string}}\nrules: []\n")

	p, err := LoadPolicyFiles(a, b)
	require.NoError(t, err, "the same declaration in two files")
	assert.Equal(t, map[string]ToolArgs{"pay": {"amount": "int"}}, p.Tools())

	_, err = LoadPolicyFiles(a, c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tool "pay" is declared differently in `+a+`:2:3 and `+c+`:2:3: amount is int in `+a+`:2:3 but double in `+c+`:2:3; to only in `+c+`:2:3`)

	// WithPolicy twice merges the same way.
	pa, err := LoadPolicyFiles(a)
	require.NoError(t, err)
	pc, err := LoadPolicyFiles(c)
	require.NoError(t, err)
	_, err = New(WithPolicy(pa), WithPolicy(pc))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tool "pay" is declared differently`)
}

func TestToolsChangeTheVersion(t *testing.T) {
	t.Parallel()
	const rules = "rules:\n  - {name: r, tools: [pay], effect: allow, when: 'true'}\n"
	plain := mustPolicy(t, rules)
	typed := mustPolicy(t, "tools: {pay: {args: {amount: int}}}\n"+rules)
	other := mustPolicy(t, "tools: {pay: {args: {amount: double}}}\n"+rules)
	assert.NotEqual(t, plain.Version(), typed.Version())
	assert.NotEqual(t, typed.Version(), other.Version())
	assert.Equal(t, typed.Version(), mustPolicy(t, "tools:\n  pay:\n    args:\n      amount: int\n"+rules).Version())
	assert.Nil(t, plain.Tools())
}

func TestTypedArgsAtRunTime(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `tools:
  payments.send:
    args: {amount: int, to: string, cc: list(string)}
  payments.refund:
    args: {amount: double, to: string}
  report.run:
    args: {since: timestamp, window: duration, limit: uint, tags: "map(string, list(int))", blob: bytes, extra: dyn}
rules:
  - name: send
    tools: [payments.send]
    effect: allow
    when: args.amount < 100 && args.to.endsWith("@corp.example") && (!has(args.cc) || args.cc.all(c, c.endsWith("@corp.example")))
  - name: refund
    tools: [payments.refund]
    effect: allow
    when: args.amount + 0.5 < 10.0
  - name: other-payments
    tools: ["payments.*"]
    effect: allow
    when: args.to == "ops@corp.example"
  - name: report
    tools: [report.run]
    effect: allow
    when: >
      args.since < timestamp("2030-01-01T00:00:00Z") && args.window <= duration("1h") &&
      args.limit <= 10u && args.tags["a"][0] > 0 && size(args.blob) < 4
`)
	ctx, _ := begin(t, g, TaskSpec{Agent: Agent{ID: "a"}})
	for _, tc := range []struct {
		name   string
		tool   string
		args   map[string]any
		effect Effect
		rule   string
		reason string
	}{
		{"JSON-decoded arguments", "payments.send", map[string]any{"amount": int64(5), "to": "a@corp.example", "cc": []any{"b@corp.example"}}, Allow, "send", ""},
		{"Go arguments", "payments.send", map[string]any{"amount": 5, "to": "a@corp.example", "cc": []string{"b@corp.example"}}, Allow, "send", ""},
		{"absent optional argument", "payments.send", map[string]any{"amount": 5, "to": "a@corp.example"}, Allow, "send", ""},
		{"null is absent", "payments.send", map[string]any{"amount": 5, "to": "a@corp.example", "cc": nil}, Allow, "send", ""},
		{"rule says no", "payments.send", map[string]any{"amount": 500, "to": "a@corp.example"}, Deny, RuleNoMatch, ""},
		{"absent argument a rule reads", "payments.send", map[string]any{"to": "a@corp.example"}, Deny, "send", "failed to evaluate: missing key"},
		{"string for int", "payments.send", map[string]any{"amount": "5", "to": "a@corp.example"}, Deny, RuleArgs, `argument "amount" of tool payments.send is not of type int`},
		{"float for int", "payments.send", map[string]any{"amount": 5.5, "to": "a@corp.example"}, Deny, RuleArgs, `argument "amount" of tool payments.send is not of type int`},
		{"list element of the wrong type", "payments.send", map[string]any{"amount": 5, "to": "a@corp.example", "cc": []any{"b@corp.example", 3}}, Deny, RuleArgs, `argument "cc" of tool payments.send is not of type list(string)`},
		{"undeclared argument", "payments.send", map[string]any{"amount": 5, "to": "a@corp.example", "bcc": "x@evil.example"}, Deny, RuleArgs, `argument "bcc" is not declared for tool payments.send`},
		{"integer for double", "payments.refund", map[string]any{"amount": int64(9), "to": "x"}, Allow, "refund", ""},
		{"double", "payments.refund", map[string]any{"amount": 9.25, "to": "x"}, Allow, "refund", ""},
		{"undeclared tool matched by a typed glob", "payments.other", map[string]any{"to": "ops@corp.example"}, Allow, "other-payments", ""},
		{"undeclared tool with a mismatching argument", "payments.other", map[string]any{"to": 7}, Deny, "other-payments", "failed to evaluate: type mismatch"},
		{"conversions", "report.run", map[string]any{"since": "2029-05-01T10:00:00Z", "window": "30m", "limit": int64(3),
			"tags": map[string]any{"a": []any{int64(1), int64(2)}}, "blob": "abc", "extra": []any{nil, 1.5}}, Allow, "report", ""},
		{"Go values", "report.run", map[string]any{"since": time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC), "window": time.Minute, "limit": uint(3),
			"tags": map[string][]int{"a": {1}}, "blob": []byte("ab")}, Allow, "report", ""},
		{"negative uint", "report.run", map[string]any{"limit": int64(-1)}, Deny, RuleArgs, "is not of type uint"},
		{"bad timestamp", "report.run", map[string]any{"since": "yesterday"}, Deny, RuleArgs, "is not of type timestamp"},
		{"nested element", "report.run", map[string]any{"tags": map[string]any{"a": []any{"1"}}}, Deny, RuleArgs, "is not of type map(string, list(int))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := g.Check(ctx, Call{Tool: tc.tool, Intent: "write", Args: tc.args})
			assert.Equal(t, tc.effect, d.Effect, d.Reason)
			assert.Equal(t, tc.rule, d.Rule, d.Reason)
			assert.Contains(t, d.Reason, tc.reason)
		})
	}
}

// TestTypedArgsReasonNamesNoValue: a mismatch names the argument and the
// type, never the value.
func TestTypedArgsReasonNamesNoValue(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, "tools: {pay: {args: {to: string}}}\nrules:\n  - {name: r, tools: [pay], effect: allow, when: 'true'}\n")
	ctx, _ := begin(t, g, TaskSpec{Agent: Agent{ID: "a"}})
	d := g.Check(ctx, Call{Tool: "pay", Intent: "write", Args: map[string]any{"to": 42424242}})
	assert.Equal(t, RuleArgs, d.Rule)
	assert.NotContains(t, d.Reason, "42424242")
	x := g.Explain(ctx, Call{Tool: "pay", Intent: "write", Args: map[string]any{"to": "x"}})
	assert.Equal(t, Allow, x.Decision.Effect)
}

func TestTypedArgsDryRunStillDenies(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, "tools: {pay: {args: {to: string}}}\nrules:\n  - {name: r, tools: [pay], effect: deny, when: 'true'}\n", WithDryRun())
	ctx, _ := begin(t, g, TaskSpec{Agent: Agent{ID: "a"}})
	assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "pay", Intent: "write", Args: map[string]any{"to": "x"}}).Effect)
	d := g.Check(ctx, Call{Tool: "pay", Intent: "write", Args: map[string]any{"to": 1}})
	assert.Equal(t, Deny, d.Effect, "a mismatch is a built-in check: dry run does not lift it")
	assert.Equal(t, RuleArgs, d.Rule)
}
