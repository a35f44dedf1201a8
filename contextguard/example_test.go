package contextguard_test

import (
	"context"
	"fmt"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/contextguard"
	"github.com/taskguard/taskguard/secrets"
)

func Example() {
	p, _ := authz.ParsePolicy("policy.yaml", []byte(`
rules:
  - name: lease
    tools: [secrets.lease]
    effect: allow
    when: "true"
  - name: export
    tools: [mail.send]
    effect: allow
    when: intent == "export"
  - name: no-export-after-confidential
    tools: ["*"]
    effect: deny
    when: intent == "export" && task.taint.sensitivity >= CONFIDENTIAL
`))
	g, _ := authz.New(authz.WithPolicy(p))
	broker, _ := secrets.NewBroker(g, secrets.Static(map[string]string{"api-key": "sk_live_0123456789"}))
	defer broker.Close()
	store := contextguard.NewStore(contextguard.WithRedactor(broker))

	agent := authz.Agent{ID: "spiffe://example.org/agent/analyst"}
	ctx, task, _ := g.Begin(context.Background(), authz.TaskSpec{Agent: agent, Clearance: authz.Confidential})
	mem := store.For(task)

	// A tool result that echoes a live secret is stored redacted.
	lease, _ := broker.Lease(ctx, "api-key")
	_ = lease.Use(func(key []byte) error {
		return mem.Add(ctx, contextguard.Entry{Role: "tool", Source: "billing.api",
			Content: "401 for key " + string(key), Sensitivity: authz.Confidential})
	})
	es, _ := mem.Entries(ctx)
	fmt.Println(es[0].Content)

	// What the task has seen feeds its policy.
	d := g.Check(ctx, authz.Call{Tool: "mail.send", Intent: "export", Destination: "mailto:bob@example.org"})
	fmt.Println(d.Effect, d.Rule)

	// Another task of the same agent starts with an empty memory.
	_, other, _ := g.Begin(context.Background(), authz.TaskSpec{Agent: agent})
	es, _ = store.For(other).Entries(context.Background())
	fmt.Println(len(es))

	task.End()
	_, err := mem.Entries(ctx)
	fmt.Println(err)
	// Output:
	// 401 for key [REDACTED]
	// deny no-export-after-confidential
	// 0
	// contextguard: task ended
}

func ExampleCache() {
	g, _ := authz.New()
	cache := contextguard.NewCache[string]()
	_, t1, _ := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "a"}})
	_, t2, _ := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "a"}})
	_ = cache.Set(t1, "GET https://example.org/", "<html>…</html>", 0)
	_ = cache.Set(t1, "GET https://example.org/", "<html>…</html>", 60e9)
	_, hit1 := cache.Get(t1, "GET https://example.org/")
	_, hit2 := cache.Get(t2, "GET https://example.org/")
	fmt.Println(hit1, hit2)
	// Output: true false
}
