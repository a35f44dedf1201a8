package contextguard

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/authz"
)

func benchMemory(b *testing.B, opts ...Option) (context.Context, *Memory) {
	b.Helper()
	g, err := authz.New()
	if err != nil {
		b.Fatal(err)
	}
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "bench"},
		Clearance: authz.Confidential, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(task.End)
	return ctx, NewStore(append([]Option{WithMaxEntries(1 << 30)}, opts...)...).For(task)
}

var benchEntry = Entry{Role: "tool", Source: "http.fetch", Content: strings.Repeat("tool output line\n", 30), Sensitivity: authz.Internal}

// benchAdd adds entries to tasks of 10,000 entries each, so the heap stays
// the size of a long task rather than growing with b.N.
func benchAdd(b *testing.B, opts ...Option) {
	g, err := authz.New()
	if err != nil {
		b.Fatal(err)
	}
	store := NewStore(opts...)
	b.ReportAllocs()
	var task *authz.Task
	var ctx context.Context
	i := 0
	for b.Loop() {
		if i%10_000 == 0 {
			if task != nil {
				task.End()
			}
			ctx, task, err = g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "bench"},
				Clearance: authz.Confidential, TTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
		}
		i++
		if err := store.For(task).Add(ctx, benchEntry); err != nil {
			b.Fatal(err)
		}
	}
	task.End()
}

func BenchmarkAdd(b *testing.B) { benchAdd(b) }

func BenchmarkAddEncrypted(b *testing.B) { benchAdd(b, WithBackend(Encrypted(NewMemoryBackend()))) }

func benchFilled(b *testing.B, n int, opts ...Option) *Memory {
	ctx, m := benchMemory(b, opts...)
	for i := range n {
		e := benchEntry
		e.Content = fmt.Sprint(i, e.Content)
		if err := m.Add(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

func BenchmarkEntries100(b *testing.B) {
	m := benchFilled(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Entries(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWindow(b *testing.B) {
	m := benchFilled(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if es, err := m.Window(context.Background(), 50, 16_000); err != nil || len(es) == 0 {
			b.Fatal(err)
		}
	}
}

func BenchmarkEntries100Encrypted(b *testing.B) {
	m := benchFilled(b, 100, WithBackend(Encrypted(NewMemoryBackend())))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Entries(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
