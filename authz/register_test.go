package authz

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type derivedBase struct {
	Tenant string `json:"tenant"`
	Shadow int    `json:"amount"` // shadowed by the outer field
}

type derivedArgs struct {
	derivedBase
	Amount   float64           `json:"amount"`
	To       string            `json:"to"`
	CC       []string          `json:"cc,omitempty"`
	Memo     *string           `json:"memo"`
	Count    uint16            `json:"count"`
	When     time.Time         `json:"when"`
	Within   time.Duration     `json:"within"`
	Raw      []byte            `json:"raw"`
	Headers  map[string]string `json:"headers"`
	Nested   struct{ A int }   `json:"nested"`
	Any      any               `json:"any"`
	Quoted   int               `json:"quoted,string"`
	Skipped  string            `json:"-"`
	Untagged bool
	hidden   int
}

type badNameArgs struct {
	ContentType string `json:"content-type"`
}

type chanArgs struct {
	C chan int `json:"c"`
}

type selfMarshaling struct{}

func (selfMarshaling) MarshalJSON() ([]byte, error) { return []byte(`{}`), nil }

func TestArgsOf(t *testing.T) {
	t.Parallel()
	got, err := ArgsOf[derivedArgs]()
	require.NoError(t, err)
	assert.Equal(t, ToolArgs{
		"tenant": "string", "amount": "double", "to": "string", "cc": "list(string)", "memo": "string",
		"count": "uint", "when": "timestamp", "within": "int", "raw": "string", "headers": "map(string, string)",
		"nested": "map(string, dyn)", "any": "dyn", "quoted": "string", "Untagged": "bool",
	}, got)
	ptr, err := ArgsOf[*derivedArgs]()
	require.NoError(t, err)
	assert.Equal(t, got, ptr, "a pointer declares its element")

	for _, tc := range []struct {
		name string
		f    func() (ToolArgs, error)
		want ToolArgs
		err  string
	}{
		{"string", ArgsOf[string], ToolArgs{"value": "string"}, ""},
		{"list", ArgsOf[[]int], ToolArgs{"value": "list(int)"}, ""},
		{"time", ArgsOf[time.Time], ToolArgs{"value": "timestamp"}, ""},
		{"map", ArgsOf[map[string]any], nil, "the arguments' names are not known in advance"},
		{"interface", ArgsOf[any], nil, "the arguments' names are not known in advance"},
		{"field name", ArgsOf[badNameArgs], nil, `field ContentType: argument name "content-type": want a CEL identifier`},
		{"channel", ArgsOf[chanArgs], nil, "field C: chan int values cannot be JSON arguments"},
		{"self-marshaling", ArgsOf[selfMarshaling], nil, "the type encodes itself as JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f()
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestArgsOfMatchesWrap: the declaration ArgsOf derives accepts the
// arguments Wrap fills from a value of the type.
func TestArgsOfMatchesWrap(t *testing.T) {
	t.Parallel()
	memo := "m"
	for _, v := range []derivedArgs{
		{},
		{Amount: 12, To: "a", CC: []string{"b"}, Memo: &memo, Count: 3, When: time.Now(), Within: time.Second,
			Raw: []byte{1, 2}, Headers: map[string]string{"k": "v"}, Any: []any{1, "x"}, Quoted: 5},
	} {
		decl, err := ArgsOf[derivedArgs]()
		require.NoError(t, err)
		d, err := newToolDecl("t", "test", decl)
		require.NoError(t, err)
		args, err := typedArgs(v)
		require.NoError(t, err)
		assert.NoError(t, d.checkArgs(args))
	}
}

func TestArgsFromJSONSchema(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, schema string
		want         ToolArgs
		err          string
	}{
		{"types", `{"type": "object", "properties": {
			"n": {"type": "integer"}, "x": {"type": "number"}, "b": {"type": "boolean"}, "s": {"type": "string"},
			"t": {"type": "string", "format": "date-time"}, "l": {"type": "array", "items": {"type": "string"}},
			"ll": {"type": "array"}, "m": {"type": "object", "additionalProperties": {"type": "integer"}},
			"o": {"type": "object", "properties": {"a": {"type": "string"}}}, "opt": {"type": ["string", "null"]},
			"either": {"type": ["string", "integer"]}, "ref": {"$ref": "#/$defs/x"}, "any": true}}`,
			ToolArgs{"n": "int", "x": "double", "b": "bool", "s": "string", "t": "timestamp", "l": "list(string)",
				"ll": "list(dyn)", "m": "map(string, int)", "o": "map(string, dyn)", "opt": "string", "either": "dyn",
				"ref": "dyn", "any": "dyn"}, ""},
		{"no properties", `{"type": "object"}`, ToolArgs{}, ""},
		{"not an object schema", `{"type": "string"}`, nil, "the schema's type is string, not object"},
		{"not JSON", `{`, nil, "ArgsFromJSONSchema"},
		{"null", `null`, nil, "the schema is not an object"},
		{"property name", `{"type": "object", "properties": {"content-type": {"type": "string"}}}`, nil, `property argument name "content-type"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ArgsFromJSONSchema([]byte(tc.schema))
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			_, err = newToolDecl("t", "schema", got)
			assert.NoError(t, err, "a derived declaration is valid")
		})
	}
}

const registerPolicy = `tools:
  payments.refund: {args: {amount: double, to: string}}
rules:
  - name: send
    tools: [payments.send]
    effect: allow
    when: args.amount < 100
  - name: refund
    tools: [payments.refund]
    effect: allow
    when: args.amount < 10.0
  - name: pay-ops
    tools: ["payments.*"]
    effect: allow
    when: args.to == "ops@corp.example"
`

func TestRegisterTool(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, registerPolicy)
	ctx, _ := begin(t, g, TaskSpec{})
	send := func(args map[string]any) Decision {
		return g.Check(ctx, Call{Tool: "payments.send", Intent: "write", Args: args})
	}
	assert.Equal(t, "send", send(map[string]any{"amount": "5", "to": "a"}).Rule, "undeclared: dynamic args, the rule fails at run time")
	assert.Equal(t, Allow, send(map[string]any{"amount": 5, "to": "a"}).Effect)

	err := g.RegisterTool("payments.send", ToolArgs{"amount": "int"})
	require.Error(t, err, "pay-ops reads args.to, which payments.send does not declare")
	assert.Contains(t, err.Error(), `test.yaml:15:15: rule "pay-ops": when: undefined field 'to' (tools payments.refund, payments.send declare in common arguments amount;`)
	assert.Equal(t, "send", send(map[string]any{"amount": "5", "to": "a"}).Rule, "a refused declaration leaves the guard as it was")

	require.NoError(t, g.RegisterTool("payments.send", ToolArgs{"amount": "int", "to": "string"}))
	require.NoError(t, g.RegisterTool("payments.send", ToolArgs{"to": "string", "amount": "int"}), "the same declaration again")
	d := send(map[string]any{"amount": "5", "to": "a"})
	assert.Equal(t, RuleArgs, d.Rule, d.Reason)
	assert.Equal(t, Allow, send(map[string]any{"amount": 5, "to": "a"}).Effect)

	err = g.RegisterTool("payments.send", ToolArgs{"amount": "double", "to": "string"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tool "payments.send" is declared differently in RegisterTool and RegisterTool: amount is int in RegisterTool but double in RegisterTool`)

	err = g.RegisterTool("payments.refund", ToolArgs{"amount": "int", "to": "string"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tool "payments.refund" is declared differently in test.yaml:2:3 and RegisterTool: amount is double in test.yaml:2:3 but int in RegisterTool`)

	err = g.RegisterTool("db.query", ToolArgs{"sql": "strng"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tool "db.query": argument sql: type "strng": unknown type "strng"`)
	require.NoError(t, g.RegisterTool("http.fetch", nil), "a tool without a declaration")
	assert.Equal(t, []string{"db.query", "http.fetch", "payments.refund", "payments.send"}, g.Tools())

	// Update must agree with the registered declarations.
	bad := mustPolicy(t, "rules:\n  - {name: send, tools: [payments.send], effect: allow, when: 'args.amout < 3'}\n")
	err = g.Update(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `test.yaml:2:68: rule "send": when: undefined field 'amout'`)
	assert.Equal(t, Allow, send(map[string]any{"amount": 5, "to": "a"}).Effect, "the old policy stays in force")
	conflicting := mustPolicy(t, "tools: {payments.send: {args: {amount: double}}}\nrules:\n  - {name: x, tools: [y], effect: allow, when: 'true'}\n")
	err = g.Update(conflicting)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tool "payments.send" is declared differently in test.yaml:1:9 and RegisterTool`)
	good := mustPolicy(t, "rules:\n  - {name: send2, tools: [payments.send], effect: allow, when: 'args.amount < 3'}\n")
	require.NoError(t, g.Update(good))
	assert.Equal(t, Deny, send(map[string]any{"amount": 5}).Effect)
	assert.Equal(t, RuleArgs, send(map[string]any{"amount": 1.5}).Rule, "the declaration outlives the policy")

	var zero Guard
	assert.ErrorIs(t, zero.RegisterTool("x", nil), errZeroGuard)
	assert.Error(t, g.RegisterTool("x.*", nil))
}

type sendArgs struct {
	Amount int    `json:"amount"`
	To     string `json:"to"`
}

type badSendArgs struct {
	Amount float64 `json:"amount"`
	To     string  `json:"to"`
}

func TestWrapDeclares(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `tools:
  payments.refund: {args: {amount: double, to: string}}
rules:
  - name: send
    tools: [payments.send]
    effect: allow
    when: args.amount < 100
  - name: refund
    tools: ["payments.refund"]
    effect: allow
    when: args.amount < 10.0
`)
	ctx, _ := begin(t, g, TaskSpec{})
	ran := 0
	h := func(context.Context, sendArgs) (string, error) { ran++; return "ok", nil }
	send := Wrap(g, Tool[sendArgs]{Name: "payments.send", Intent: "write"}, h)
	_, err := send(ctx, sendArgs{Amount: 5, To: "a"})
	require.NoError(t, err)
	assert.Equal(t, 1, ran)
	assert.Equal(t, RuleArgs, g.Check(ctx, Call{Tool: "payments.send", Intent: "write", Args: map[string]any{"amount": "5"}}).Rule,
		"the declaration derived from sendArgs holds for every call of the tool")

	// A Describe that sets Args outside the declaration is denied.
	odd := Wrap(g, Tool[sendArgs]{Name: "payments.send", Intent: "write", Describe: func(a sendArgs) (Call, error) {
		return Call{Args: map[string]any{"recipient": a.To}}, nil
	}}, h)
	_, err = odd(ctx, sendArgs{Amount: 5, To: "a"})
	var denied *DeniedError
	require.ErrorAs(t, err, &denied)
	assert.Equal(t, RuleArgs, denied.Decision.Rule)

	// A Go type that disagrees with the policy: every call is denied.
	refund := Wrap(g, Tool[badSendArgs]{Name: "payments.refund", Intent: "write"}, func(context.Context, badSendArgs) (string, error) { ran++; return "", nil })
	refund2 := Wrap(g, Tool[sendArgs]{Name: "payments.refund", Intent: "write"}, func(context.Context, sendArgs) (string, error) { ran++; return "", nil })
	_, err = refund(ctx, badSendArgs{Amount: 1, To: "a"})
	require.NoError(t, err, "double and string agree with the policy")
	_, err = refund2(ctx, sendArgs{Amount: 1, To: "a"})
	require.ErrorAs(t, err, &denied)
	assert.Equal(t, RuleArgs, denied.Decision.Rule)
	assert.Contains(t, denied.Decision.Reason, `the tool's declaration of arguments was refused: authz: RegisterTool: tool "payments.refund" is declared differently in Go type authz.badSendArgs and Go type authz.sendArgs: amount is double in Go type authz.badSendArgs but int in Go type authz.sendArgs`)
	assert.Equal(t, 2, ran)

	// Explicit Tool.Args win over the derivation; WrapJSON declares them.
	js := WrapJSON(g, Tool[map[string]any]{Name: "notes.add", Intent: "write", Args: ToolArgs{"text": "string"}},
		func(context.Context, json.RawMessage) (string, error) { return "", nil })
	_, err = js(ctx, json.RawMessage(`{"text": 5}`))
	require.ErrorAs(t, err, &denied)
	assert.Equal(t, RuleArgs, denied.Decision.Rule)
	Wrap(g, Tool[string]{Name: "calc", Intent: "compute", OpaqueArgs: true}, func(context.Context, string) (string, error) { return "", nil })

	// With a Describe, Wrap declares only Tool.Args.
	mail := Wrap(g, Tool[sendArgs]{Name: "mail.send", Intent: "write", Describe: func(a sendArgs) (Call, error) {
		return Call{Args: map[string]any{"recipient": a.To}}, nil
	}}, h)
	_, err = mail(ctx, sendArgs{To: "a"})
	require.ErrorAs(t, err, &denied)
	assert.Equal(t, RuleNoMatch, denied.Decision.Rule, "not declared: no @args")
	Wrap(g, Tool[sendArgs]{Name: "mail.draft", Intent: "write", Args: ToolArgs{"recipient": "string"}, Describe: func(a sendArgs) (Call, error) {
		return Call{Args: map[string]any{"recipient": 5}}, nil
	}}, h)
	assert.Equal(t, RuleArgs, g.Check(ctx, Call{Tool: "mail.draft", Intent: "write", Args: map[string]any{"recipient": 5}}).Rule)

	assert.Equal(t, []string{"calc", "mail.draft", "mail.send", "notes.add", "payments.refund", "payments.send"}, g.Tools())
	var msgs []string
	for _, w := range g.Lint() {
		msgs = append(msgs, w.String())
	}
	assert.Equal(t, []string{
		`guard: tool "payments.refund": declaration refused: authz: RegisterTool: tool "payments.refund" is declared differently in Go type authz.badSendArgs and Go type authz.sendArgs: amount is double in Go type authz.badSendArgs but int in Go type authz.sendArgs`,
		`test.yaml: no enforced allow or ask rule matches the registered tools "calc", "mail.draft", "mail.send", "notes.add": they are always denied`,
	}, msgs)
}

func TestLintKnownTools(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, `tools:
  payments.send: {args: {amount: int}}
  payments.audit: {args: {}}
rules:
  - {name: send, tools: [payments.send], effect: allow, when: 'args.amount < 5'}
  - {name: fetch, tools: [http.fetch], effect: allow, when: 'true'}
`)
	var msgs []string
	for _, w := range p.Lint() {
		msgs = append(msgs, w.String())
	}
	assert.Equal(t, []string{
		`test.yaml: no enforced allow or ask rule matches the registered tools "payments.audit": they are always denied`,
		`test.yaml:6:5: rule "fetch": tools pattern "http.fetch" matches no registered tool`,
	}, msgs, "without a list, the declared tools are the known ones")

	g, err := New(WithPolicy(p))
	require.NoError(t, err)
	require.NoError(t, g.RegisterTool("http.fetch", nil))
	require.NoError(t, g.RegisterTool("fs.read", nil))
	msgs = msgs[:0]
	for _, w := range g.Lint() {
		msgs = append(msgs, w.String())
	}
	assert.Equal(t, []string{
		`test.yaml: no enforced allow or ask rule matches the registered tools "fs.read", "payments.audit": they are always denied`,
	}, msgs)
}

// TestRegisterToolConcurrent registers tools while calls are decided.
func TestRegisterToolConcurrent(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, "rules:\n  - {name: all, tools: ['t.*'], effect: allow, when: 'dyn(args).size() >= 0'}\n")
	ctx, _ := begin(t, g, TaskSpec{})
	done := make(chan error)
	for i := range 4 {
		go func() {
			var errs []error
			for j := range 20 {
				name := "t." + strings.Repeat("x", i+1) + string(rune('a'+j))
				errs = append(errs, g.RegisterTool(name, ToolArgs{"n": "int"}))
				if d := g.Check(ctx, Call{Tool: name, Intent: "read", Args: map[string]any{"n": 1}}); d.Effect != Allow {
					errs = append(errs, errors.New(d.Reason))
				}
			}
			done <- errors.Join(errs...)
		}()
	}
	for range 4 {
		require.NoError(t, <-done)
	}
	assert.Len(t, g.Tools(), 80)
}
