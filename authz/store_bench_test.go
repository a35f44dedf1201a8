package authz

import (
	"context"
	"testing"
)

// benchSharedGuard is benchGuard on a MemoryStore (WithStore), the store
// path a replica takes, without a network.
func benchSharedGuard(b *testing.B) (*Guard, context.Context) {
	b.Helper()
	g, err := New(WithPolicy(benchPolicy(b, 50)), WithStore(NewMemoryStore(nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.Close() })
	ctx, task, err := g.Begin(context.Background(), TaskSpec{
		Agent: Agent{ID: "spiffe://bench/agent"}, Intents: []string{"read", "search"}, Clearance: Internal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(task.End)
	return g, ctx
}

// BenchmarkCheckShared is BenchmarkCheck/rules=50 under a store: Check
// stays local, so it should cost the same.
func BenchmarkCheckShared(b *testing.B) {
	g, ctx := benchSharedGuard(b)
	b.ReportAllocs()
	for b.Loop() {
		if g.Check(ctx, benchCall).Effect != Allow {
			b.Fatal("denied")
		}
	}
}

// BenchmarkAuthorizeShared is BenchmarkAuthorize under a MemoryStore: the
// cost of building the store operation and applying it, without a network.
func BenchmarkAuthorizeShared(b *testing.B) {
	g, ctx := benchSharedGuard(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Authorize(ctx, benchCall); err != nil {
			b.Fatal(err)
		}
	}
}
