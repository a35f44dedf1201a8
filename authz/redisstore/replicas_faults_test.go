package redisstore

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/redistest"
)

// TestReplicasRedisStoppedMidRun stops Redis under load: no Authorize that
// starts after the stop is allowed, every one is denied by the store rule,
// service resumes for new tasks once Redis is back (it kept no data, so
// the old tasks stay denied: their counters are gone), and no goroutine
// is left behind.
func TestReplicasRedisStoppedMidRun(t *testing.T) {
	srv := redistest.Start(t)
	base := runtime.NumGoroutine()
	// Registered first, so it runs after the replicas' cleanups close
	// their guards, stores and clients.
	t.Cleanup(func() { settleGoroutines(t, base) })
	func() {
		set := newReplicaSet(t, srv, 2, setOpts{guardOpts: []authz.Option{authz.WithStoreTimeout(2 * time.Second)}})
		sh := set.begin(t, replicaSpec)
		var stopped atomic.Bool
		var slipped, deniedAfter, allowedBefore atomic.Int64
		var wrongRule sync.Map
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					r := (w + i) % 2
					after := stopped.Load()
					rule, ok := authorize(set.rs[r].guard, sh.ctxs[r], dbRead)
					switch {
					case ok && after:
						slipped.Add(1)
					case ok:
						allowedBefore.Add(1)
					case after:
						deniedAfter.Add(1)
						if rule != authz.RuleStore {
							wrongRule.Store(rule, true)
						}
					}
				}
			}()
		}
		eventually(t, "calls allowed before the stop", func() bool { return allowedBefore.Load() > 50 })
		srv.Stop()
		stopped.Store(true)
		eventually(t, "calls denied after the stop", func() bool { return deniedAfter.Load() > 200 })
		cancel()
		wg.Wait()
		assert.Zero(t, slipped.Load(), "calls allowed after Redis stopped")
		wrongRule.Range(func(k, _ any) bool {
			t.Errorf("denied after the stop by %v, want %s", k, authz.RuleStore)
			return true
		})
		t.Logf("%d allowed before the stop, %d denied after", allowedBefore.Load(), deniedAfter.Load())

		srv.Restart()
		// go-redis stops dialing after a run of failed dials and retries
		// in the background: service resumes within about a second.
		var fresh shared
		eventually(t, "a new task begins after the restart", func() bool {
			var ok bool
			fresh, ok = set.tryBegin(t, replicaSpec)
			return ok
		})
		for i, r := range set.rs {
			eventually(t, "a new task works on every replica", func() bool {
				_, ok := authorize(r.guard, fresh.ctxs[i], dbRead)
				return ok
			})
			rule, ok := authorize(r.guard, sh.ctxs[i], dbRead)
			assert.False(t, ok, "a task whose state Redis lost stays denied")
			assert.Equal(t, authz.RuleStore, rule)
		}
		for _, tk := range append(sh.tasks, fresh.tasks...) {
			tk.End()
		}
	}()
}

// TestReplicasFrozenRedis suspends Redis: Authorize denies within the
// store timeout, Check denies once the view is older than the staleness
// bound, and both recover when Redis answers again.
func TestReplicasFrozenRedis(t *testing.T) {
	srv := redistest.Start(t)
	set := newReplicaSet(t, srv, 2, setOpts{guardOpts: []authz.Option{
		authz.WithStoreTimeout(time.Second), authz.WithStoreStaleness(time.Second)}})
	sh := set.begin(t, replicaSpec)
	for i, r := range set.rs {
		require.NoError(t, r.guard.Authorize(sh.ctxs[i], dbRead))
	}
	srv.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			srv.Thaw()
		}
	}()
	for i, r := range set.rs {
		rule, ok := authorize(r.guard, sh.ctxs[i], dbRead)
		assert.False(t, ok)
		assert.Equal(t, authz.RuleStore, rule)
	}
	for i, r := range set.rs {
		eventually(t, "Check fails closed on a stale view", func() bool {
			return r.guard.Check(sh.ctxs[i], dbRead).Rule == authz.RuleStore
		})
	}
	srv.Thaw()
	thawed = true
	for i, r := range set.rs {
		eventually(t, "service resumes after the thaw", func() bool {
			_, ok := authorize(r.guard, sh.ctxs[i], dbRead)
			return ok && r.guard.Check(sh.ctxs[i], dbRead).Effect == authz.Allow
		})
	}
}

// TestReplicasMissedMessagesResync cuts one replica off while the task
// ends and another gains taint elsewhere: once reconnected, the replica
// catches up on its own (end hooks run, taint applied) without waiting
// for a call.
func TestReplicasMissedMessagesResync(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	set := newReplicaSet(t, srv, 2, setOpts{proxied: true})
	ending, tainted := set.begin(t, replicaSpec), set.begin(t, replicaSpec)
	var hooked atomic.Bool
	ending.tasks[1].OnEnd(func() { hooked.Store(true) })
	b := set.rs[1]
	require.NoError(t, b.guard.Authorize(tainted.ctxs[1], export))

	b.proxy.Break()
	ending.tasks[0].End()
	tainted.tasks[0].Observe("db://salaries", authz.Confidential, true)
	time.Sleep(100 * time.Millisecond) // the messages are published meanwhile, and lost for b
	assert.False(t, hooked.Load(), "b cannot have heard of the end")
	b.proxy.Heal()

	eventually(t, "b catches up with the end", func() bool { return hooked.Load() && ending.tasks[1].Ended() })
	eventually(t, "b catches up with the taint", func() bool {
		return tainted.tasks[1].Taint().Sensitivity == authz.Confidential
	})
	assert.Equal(t, "no-export-after-confidential", b.guard.Check(tainted.ctxs[1], export).Rule)
	assert.Equal(t, authz.RuleTaskEnded, b.guard.Check(ending.ctxs[1], dbRead).Rule)
}
