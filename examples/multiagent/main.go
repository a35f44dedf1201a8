// Command multiagent shows a planner agent delegating to a research
// sub-agent under taskguard: the sub-task can only narrow the planner's
// task, receives only the memory its clearance allows, leases a secret of
// its own, and that lease dies with the sub-task.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/contextguard"
	"github.com/taskguard/taskguard/secrets"
)

//go:embed policy.yaml
var policyYAML []byte

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "multiagent:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	policy, err := authz.ParsePolicy("policy.yaml", policyYAML)
	if err != nil {
		return err
	}
	g, err := authz.New(authz.WithPolicy(policy))
	if err != nil {
		return err
	}
	// The search key is classified Internal, so an Internal-clearance worker
	// may lease it; a Confidential secret would be out of its reach.
	broker, err := secrets.NewBroker(g, secrets.StaticClassified(
		map[string]string{"search-api-key": "sk_search_9f8e7d6c5b4a"},
		map[string]authz.Sensitivity{"search-api-key": authz.Internal}))
	if err != nil {
		return err
	}
	defer broker.Close()
	store := contextguard.NewStore(contextguard.WithRedactor(broker))

	// The planner's task: wide enough to plan, bounded in time.
	ctx, planner, err := g.Begin(context.Background(), authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/planner"},
		Purpose:   "prepare the account review for ACME",
		Intents:   []string{"read", "search", "write", "secret.read"},
		Tools:     []string{"crm.*", "web.*", "docs.*", "secrets.lease"},
		Clearance: authz.Confidential,
		TTL:       10 * time.Minute,
	})
	if err != nil {
		return err
	}
	defer planner.End()
	mem := store.For(planner)
	check := func(ctx context.Context, c authz.Call) {
		d := g.Check(ctx, c)
		fmt.Fprintf(out, "  %-5s %s %s: %s (%s)\n", d.Effect, c.Tool, d.Destination, d.Rule, d.Reason)
	}

	fmt.Fprintln(out, "planner:")
	check(ctx, authz.Call{Tool: "crm.read", Intent: "read", Destination: "db://crm/acme", Sensitivity: authz.Confidential})
	for _, e := range []contextguard.Entry{
		{Role: "user", Content: "Prepare the ACME account review.", Trusted: true},
		{Role: "tool", Source: "db://crm/acme", Content: "ACME contract value: 1.2M, renewal at risk", Sensitivity: authz.Confidential, Trusted: true},
		{Role: "assistant", Content: "Research ACME's public news first.", Trusted: true},
	} {
		if err := mem.Add(ctx, e); err != nil {
			return err
		}
	}

	// Delegation: a wider sub-task is refused...
	_, _, err = g.Begin(ctx, authz.TaskSpec{Agent: authz.Agent{ID: "spiffe://example.org/agent/researcher"},
		Intents: []string{"search", "delete"}})
	fmt.Fprintf(out, "  widening sub-task refused: %v\n", err)

	// ...a narrowed one is created.
	wctx, worker, err := g.Begin(ctx, authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/researcher"},
		Purpose:   "find public news about ACME",
		Intents:   []string{"search", "secret.read"},
		Tools:     []string{"web.search", "secrets.lease"},
		Clearance: authz.Internal,
		TTL:       2 * time.Minute,
	})
	if err != nil {
		return err
	}
	wmem, err := mem.Handoff(wctx, worker)
	if err != nil {
		return err
	}
	received, err := wmem.Entries(wctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nworker (depth %d, clearance %v) received %d of 3 entries; the confidential CRM data stayed with the planner\n",
		worker.Depth(), worker.Clearance(), len(received))

	lease, err := broker.Lease(wctx, "search-api-key", secrets.TTL(time.Minute), secrets.Audience("api.search.example"))
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "worker:")
	_ = lease.Use(func(key []byte) error {
		check(wctx, authz.Call{Tool: "web.search", Intent: "search", Destination: "https://api.search.example/v1?q=acme",
			Args: map[string]any{"api_key": string(key)}})
		check(wctx, authz.Call{Tool: "web.search", Intent: "search", Destination: "https://collector.example.net/",
			Args: map[string]any{"api_key": string(key)}})
		return nil
	})
	check(wctx, authz.Call{Tool: "crm.read", Intent: "search", Destination: "db://crm/acme"})
	check(wctx, authz.Call{Tool: "docs.write", Intent: "write", Destination: "/reports/acme.md"})
	if err := wmem.Add(wctx, contextguard.Entry{Role: "tool", Source: "https://news.example", Content: "ACME opens a new plant"}); err != nil {
		return err
	}

	// The worker is done: its task ends, and so do its lease and memory.
	worker.End()
	fmt.Fprintln(out, "\nafter the worker's task ended:")
	fmt.Fprintf(out, "  lease: %v\n", lease.Use(func([]byte) error { return nil }))
	_, err = wmem.Entries(wctx)
	fmt.Fprintf(out, "  worker memory: %v\n", err)
	fmt.Fprintf(out, "  planner taint: sensitivity %v, untrusted %v (the worker's web reading flows up)\n",
		planner.Taint().Sensitivity, planner.Taint().Untrusted)
	if !errors.Is(lease.Use(func([]byte) error { return nil }), secrets.ErrLeaseRevoked) {
		return errors.New("lease survived its task")
	}
	return nil
}
