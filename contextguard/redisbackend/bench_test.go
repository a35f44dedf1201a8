package redisbackend_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
	"github.com/taskguard/taskguard/contextguard"
	"github.com/taskguard/taskguard/contextguard/redisbackend"
	"github.com/taskguard/taskguard/internal/redistest"
)

// BenchmarkAppend is one Backend.Append (one script round trip) of a
// 200-byte entry, plain and under Encrypted.
func BenchmarkAppend(b *testing.B) {
	srv := redistest.Start(b)
	c := client(b, srv.Addr())
	rb, err := redisbackend.New(c)
	require.NoError(b, err)
	ctx := context.Background()
	e := contextguard.Entry{Role: "tool", Source: "http.fetch", Content: strings.Repeat("x", 200)}
	for _, be := range []struct {
		name string
		b    contextguard.Backend
	}{{"plain", rb}, {"encrypted", contextguard.Encrypted(rb)}} {
		b.Run(be.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// A fresh task every 10,000 entries keeps within the bounds.
				if err := be.b.Append(ctx, fmt.Sprintf("bench-%d", i/10_000), e); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.StopTimer()
			for j := 0; j <= i/10_000; j++ {
				_ = be.b.Wipe(ctx, fmt.Sprintf("bench-%d", j))
			}
		})
	}
}

// BenchmarkMemory is contextguard's Memory on Redis under Encrypted: Add,
// and Entries of a task holding n entries of 200 bytes.
func BenchmarkMemory(b *testing.B) {
	srv := redistest.Start(b)
	c := client(b, srv.Addr())
	store, _ := encryptedStore(b, c)
	g, err := authz.New()
	require.NoError(b, err)
	e := contextguard.Entry{Role: "tool", Source: "http.fetch", Content: strings.Repeat("x", 200)}

	b.Run("Add", func(b *testing.B) {
		b.ReportAllocs()
		ctx, task := authztest.Begin(b, g, context.Background(), spec(authz.Internal))
		mem := store.For(task)
		n := 0
		for b.Loop() {
			if n == contextguard.DefaultMaxEntries {
				b.StopTimer()
				task.End()
				ctx, task = authztest.Begin(b, g, context.Background(), spec(authz.Internal))
				mem, n = store.For(task), 0
				b.StartTimer()
			}
			if err := mem.Add(ctx, e); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.StopTimer()
		task.End()
	})
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("Entries/%d", n), func(b *testing.B) {
			ctx, task := authztest.Begin(b, g, context.Background(), spec(authz.Internal))
			mem := store.For(task)
			for range n {
				require.NoError(b, mem.Add(ctx, e))
			}
			b.ReportAllocs()
			for b.Loop() {
				es, err := mem.Entries(ctx)
				if err != nil || len(es) != n {
					b.Fatal(len(es), err)
				}
			}
			b.StopTimer()
			task.End()
		})
	}
}
