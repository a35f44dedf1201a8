package secrets

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/authz"
)

func benchBroker(b *testing.B, values map[string]string) (*Broker, context.Context) {
	b.Helper()
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, fmt.Sprintf("%q", k))
	}
	p, err := authz.ParsePolicy("bench.yaml", []byte(`
rules:
  - name: lease
    tools: [secrets.lease]
    effect: allow
    when: destination.host.startsWith("token-")
`))
	if err != nil {
		b.Fatal(err)
	}
	g, err := authz.New(authz.WithPolicy(p))
	if err != nil {
		b.Fatal(err)
	}
	br, err := NewBroker(g, Static(values))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = br.Close() })
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "bench"},
		Clearance: authz.Confidential, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(task.End)
	return br, ctx
}

// BenchmarkLeaseUse is a lease, one use and a revoke.
func BenchmarkLeaseUse(b *testing.B) {
	br, ctx := benchBroker(b, map[string]string{"token-a": tokenValue})
	b.ReportAllocs()
	for b.Loop() {
		l, err := br.Lease(ctx, "token-a")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Use(func(v []byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
		l.Revoke()
	}
}

// BenchmarkUse is one use of a live lease.
func BenchmarkUse(b *testing.B) {
	br, ctx := benchBroker(b, map[string]string{"token-a": tokenValue})
	l, err := br.Lease(ctx, "token-a")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Use(func(v []byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedact scrubs 64 KiB of text with 100 live leases, 20 of whose
// values occur in the text.
func BenchmarkRedact(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	values := map[string]string{}
	var vals []string
	for i := range 100 {
		var sb strings.Builder
		for range 20 + rng.IntN(21) {
			sb.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		values[fmt.Sprintf("token-%d", i)] = sb.String()
		vals = append(vals, sb.String())
	}
	br, ctx := benchBroker(b, values)
	for name := range values {
		if _, err := br.Lease(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
	var text strings.Builder
	words := []string{"the", "agent", "fetched", `{"status": 200,`, `"items": [`, "2026-03-01T12:00:00Z", "INFO", "request", "token", "=", "and", "returned\n"}
	for i := 0; text.Len() < 64<<10; i++ {
		if i%300 == 150 && i/300 < 20 {
			text.WriteString(vals[i/300])
		} else {
			text.WriteString(words[rng.IntN(len(words))])
		}
		text.WriteByte(' ')
	}
	s := text.String()
	if out := br.Redact(s); strings.Count(out, Redacted) != 20 {
		b.Fatalf("want 20 redactions, got %d", strings.Count(out, Redacted))
	}
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		_ = br.Redact(s)
	}
}
