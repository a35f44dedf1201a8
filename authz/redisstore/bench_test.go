package redisstore

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/redistest"
)

// benchSet returns n replicas on a fresh prefix of srv and one task held
// by all of them.
func benchSet(b *testing.B, srv *redistest.Server, n int) (*replicaSet, shared) {
	b.Helper()
	set := newReplicaSet(b, srv, n, setOpts{})
	return set, set.begin(b, replicaSpec)
}

// latencies collects per-call durations from parallel goroutines and
// reports their p50 and p99.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(ds []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, ds...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	b.ReportMetric(float64(l.all[len(l.all)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l.all[len(l.all)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkAuthorize measures Authorize of an allowed call with the
// in-process state (no store) and on Redis with one and two replicas
// (the calls alternate between the replicas). ns/op under RunParallel is
// the inverse of the throughput; p50-ns and p99-ns are the latency of
// one call.
func BenchmarkAuthorize(b *testing.B) {
	srv := redistest.Start(b)
	run := func(b *testing.B, gs []*authz.Guard, ctxs []context.Context) {
		var lat latencies
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := int(next.Add(1)) % len(gs)
			g, ctx := gs[r], ctxs[r]
			ds := make([]time.Duration, 0, 1024)
			for pb.Next() {
				start := time.Now()
				if err := g.Authorize(ctx, dbRead); err != nil {
					b.Error(err)
					return
				}
				ds = append(ds, time.Since(start))
			}
			lat.add(ds)
		})
		b.StopTimer()
		lat.report(b)
	}
	b.Run("store=none", func(b *testing.B) {
		g, ctx := localGuard(b)
		run(b, []*authz.Guard{g}, []context.Context{ctx})
	})
	for _, n := range []int{1, 2} {
		b.Run("store=redis/replicas="+string(rune('0'+n)), func(b *testing.B) {
			set, sh := benchSet(b, srv, n)
			var gs []*authz.Guard
			for _, r := range set.rs {
				gs = append(gs, r.guard)
			}
			run(b, gs, sh.ctxs)
		})
	}
}

// localGuard returns a guard without a store and a task of it.
func localGuard(b *testing.B) (*authz.Guard, context.Context) {
	p, err := authz.ParsePolicy("replicas.yaml", []byte(replicaPolicy))
	require.NoError(b, err)
	g, err := authz.New(authz.WithPolicy(p))
	require.NoError(b, err)
	ctx, task, err := g.Begin(context.Background(), replicaSpec)
	require.NoError(b, err)
	b.Cleanup(task.End)
	return g, ctx
}

// BenchmarkCheck measures Check side by side without a store, with the
// in-memory store and with the Redis store: Check decides on the local
// view and makes no round trip, so the three should not differ.
func BenchmarkCheck(b *testing.B) {
	srv := redistest.Start(b)
	p, err := authz.ParsePolicy("replicas.yaml", []byte(replicaPolicy))
	require.NoError(b, err)
	run := func(b *testing.B, g *authz.Guard, ctx context.Context) {
		if d := g.Check(ctx, dbRead); d.Effect != authz.Allow {
			b.Fatalf("Check: %v %s %s", d.Effect, d.Rule, d.Reason)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			g.Check(ctx, dbRead)
		}
	}
	b.Run("store=none", func(b *testing.B) {
		g, ctx := localGuard(b)
		run(b, g, ctx)
	})
	b.Run("store=memory", func(b *testing.B) {
		g, err := authz.New(authz.WithPolicy(p), authz.WithStore(authz.NewMemoryStore(nil)))
		require.NoError(b, err)
		b.Cleanup(func() { _ = g.Close() })
		ctx, task, err := g.Begin(context.Background(), replicaSpec)
		require.NoError(b, err)
		b.Cleanup(task.End)
		run(b, g, ctx)
	})
	b.Run("store=redis", func(b *testing.B) {
		set, sh := benchSet(b, srv, 1)
		run(b, set.rs[0].guard, sh.ctxs[0])
	})
}

// BenchmarkEndPropagation measures how long after End on one replica the
// other replica has run the task's end hooks (ns/op: one task begun on
// A, resumed on B, ended on A, seen ended on B).
func BenchmarkEndPropagation(b *testing.B) {
	srv := redistest.Start(b)
	set := newReplicaSet(b, srv, 2, setOpts{})
	var lat latencies
	ds := make([]time.Duration, 0, 1024)
	for b.Loop() {
		b.StopTimer()
		sh := set.begin(b, replicaSpec)
		seen := make(chan struct{})
		sh.tasks[1].OnEnd(func() { close(seen) })
		b.StartTimer()
		start := time.Now()
		sh.tasks[0].End()
		<-seen
		ds = append(ds, time.Since(start))
	}
	lat.add(ds)
	lat.report(b)
}
