package authz_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/taskguard/taskguard/authz"
)

const paymentsPolicy = `tools:
  payments.send:
    args: {amount: int, to: string, cc: list(string)}
  payments.refund:
    args: {amount: double, to: string, reason: string}
rules:
  - name: small-payments
    tools: [payments.send]
    effect: allow
    when: args.amount < 100 && args.to.endsWith("@corp.example") && (!has(args.cc) || args.cc.all(c, c.endsWith("@corp.example")))
`

// A misspelled argument in a rule over declared tools is a load error.
func ExampleParsePolicy_typedArgs() {
	_, err := authz.ParsePolicy("policy.yaml", []byte(strings.Replace(paymentsPolicy, "args.amount < 100", "args.amout < 100", 1)))
	fmt.Println(err)
	_, err = authz.ParsePolicy("policy.yaml", []byte(strings.Replace(paymentsPolicy, "args.amount < 100", `args.amount < "100"`, 1)))
	fmt.Println(err)
	// Output:
	// policy.yaml:10:15: rule "small-payments": when: undefined field 'amout' (tool payments.send declares arguments amount, cc, to; read other arguments with dyn(args).NAME)
	// policy.yaml:10:23: rule "small-payments": when: found no matching overload for '_<_' applied to '(int, string)'
}

// A call of a declared tool whose arguments do not match the declaration
// is denied before any rule runs.
func ExampleRuleArgs() {
	p, err := authz.ParsePolicy("policy.yaml", []byte(paymentsPolicy))
	if err != nil {
		panic(err)
	}
	g, err := authz.New(authz.WithPolicy(p))
	if err != nil {
		panic(err)
	}
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "spiffe://example/agent"}})
	if err != nil {
		panic(err)
	}
	defer task.End()
	for _, args := range []map[string]any{
		{"amount": 40, "to": "ann@corp.example"},
		{"amount": "40", "to": "ann@corp.example"},
		{"amount": 40, "to": "ann@corp.example", "bcc": "eve@evil.example"},
	} {
		d := g.Check(ctx, authz.Call{Tool: "payments.send", Intent: "write", Args: args})
		fmt.Println(d.Effect, d.Rule, d.Reason)
	}
	// Output:
	// allow small-payments allowed by rule small-payments
	// deny @args arguments do not match the tool's declaration: argument "amount" of tool payments.send is not of type int
	// deny @args arguments do not match the tool's declaration: argument "bcc" is not declared for tool payments.send
}

type SendArgs struct {
	Amount int      `json:"amount"`
	To     string   `json:"to"`
	CC     []string `json:"cc,omitempty"`
}

// Wrap declares the tool's arguments from its Go type; the guard checks
// its rules against the declaration and lints with the tools it knows.
func ExampleWrap_declaredArgs() {
	p, err := authz.ParsePolicy("policy.yaml", []byte(`rules:
  - name: small-payments
    tools: [payments.send]
    effect: allow
    when: args.amount < 100 && args.to.endsWith("@corp.example")
  - name: refunds
    tools: [payments.refund]
    effect: allow
    when: "true"
`))
	if err != nil {
		panic(err)
	}
	g, err := authz.New(authz.WithPolicy(p))
	if err != nil {
		panic(err)
	}
	fmt.Println(authz.ArgsOf[SendArgs]())
	send := authz.Wrap(g, authz.Tool[SendArgs]{Name: "payments.send", Intent: "write"},
		func(ctx context.Context, a SendArgs) (string, error) { return "sent", nil })
	fmt.Println(g.RegisterTool("payments.export", authz.ToolArgs{"format": "string"}))

	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "spiffe://example/agent"}})
	if err != nil {
		panic(err)
	}
	defer task.End()
	fmt.Println(send(ctx, SendArgs{Amount: 40, To: "ann@corp.example"}))
	for _, w := range g.Lint() {
		fmt.Println(w)
	}
	// Output:
	// {amount: int, cc: list(string), to: string} <nil>
	// <nil>
	// sent <nil>
	// policy.yaml: no enforced allow or ask rule matches the registered tools "payments.export": they are always denied
	// policy.yaml:6:5: rule "refunds": tools pattern "payments.refund" matches no registered tool
}

// RegisterTool type-checks the policy against the declaration.
func ExampleGuard_RegisterTool() {
	p, err := authz.ParsePolicy("policy.yaml", []byte(`rules:
  - name: reads
    tools: [db.query]
    effect: allow
    when: args.tabel == "orders"
`))
	if err != nil {
		panic(err)
	}
	g, err := authz.New(authz.WithPolicy(p))
	if err != nil {
		panic(err)
	}
	args, err := authz.ArgsFromJSONSchema([]byte(`{"type": "object", "properties": {"table": {"type": "string"}, "limit": {"type": "integer"}}}`))
	fmt.Println(args, err)
	fmt.Println(g.RegisterTool("db.query", args))
	// Output:
	// {limit: int, table: string} <nil>
	// authz: RegisterTool: tool "db.query": policy.yaml:5:15: rule "reads": when: undefined field 'tabel' (tool db.query declares arguments limit, table; read other arguments with dyn(args).NAME)
}
