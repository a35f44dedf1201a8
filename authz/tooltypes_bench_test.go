package authz

import (
	"testing"
)

// BenchmarkCheckTypedArgs compares a rule over declared arguments with the
// same rule over dynamic args. The typed decision also checks every
// argument of the call against the declaration.
func BenchmarkCheckTypedArgs(b *testing.B) {
	const when = `args.amount < 100 && args.to.endsWith("@corp.example") && "b@corp.example" in args.cc`
	call := Call{Tool: "payments.send", Intent: "write", Destination: "https://pay.corp.example/send",
		Args: map[string]any{"amount": int64(42), "to": "a@corp.example", "cc": []any{"b@corp.example"}}}
	for _, tc := range []struct{ name, tools string }{
		{"untyped", ""},
		{"typed", "tools: {payments.send: {args: {amount: int, to: string, cc: list(string)}}}\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p, err := ParsePolicy("bench.yaml", []byte(tc.tools+"rules:\n  - {name: send, tools: [payments.send], effect: allow, when: '"+when+"'}\n"))
			if err != nil {
				b.Fatal(err)
			}
			if got := p.rules[0].when.typed; got != (tc.tools != "") {
				b.Fatalf("typed = %v", got)
			}
			g, err := New(WithPolicy(p))
			if err != nil {
				b.Fatal(err)
			}
			ctx, task, err := g.Begin(b.Context(), TaskSpec{Agent: Agent{ID: "spiffe://bench/agent"}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(task.End)
			b.ReportAllocs()
			for b.Loop() {
				if g.Check(ctx, call).Effect != Allow {
					b.Fatal("denied")
				}
			}
		})
	}
}
