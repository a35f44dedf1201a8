package redisbackend_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
	"github.com/taskguard/taskguard/contextguard"
	"github.com/taskguard/taskguard/contextguard/redisbackend"
	"github.com/taskguard/taskguard/internal/redistest"
)

// client returns a go-redis client for addr, closed at the end of the test.
func client(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newBackend returns a backend on a fresh server, with a prefix unique to
// the test.
func newBackend(t testing.TB, opts ...redisbackend.Option) (*redisbackend.Backend, *redis.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	c := client(t, srv.Addr())
	b, err := redisbackend.New(c, opts...)
	require.NoError(t, err)
	return b, c, srv
}

func newGuard(t testing.TB) *authz.Guard {
	t.Helper()
	g, err := authz.New()
	require.NoError(t, err)
	return g
}

func spec(c authz.Sensitivity) authz.TaskSpec {
	return authz.TaskSpec{Agent: authz.Agent{ID: "spiffe://test/agent"}, Clearance: c}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b, _, _ := newBackend(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 1, 2, 3, 456789, time.FixedZone("X", 3600))
	in := []contextguard.Entry{
		{Role: "user", Content: "hello", Source: "user", Trusted: true, Time: at},
		{Role: "tool", Content: "ünïcode ✓ and \x00\xff bytes", Source: "https://example.org/a?b", Sensitivity: authz.Restricted, Time: at.Add(time.Second)},
		{Role: "", Content: "", Source: "", Sensitivity: authz.Internal}, // zero time
		{Role: "assistant", Content: strings.Repeat("x", 100_000), Sensitivity: authz.Confidential, Time: at},
	}
	for _, e := range in {
		require.NoError(t, b.Append(ctx, "task-1", e))
	}
	out, err := b.Load(ctx, "task-1")
	require.NoError(t, err)
	require.Len(t, out, len(in))
	for i := range in {
		assert.True(t, in[i].Time.Equal(out[i].Time), "entry %d time", i)
		_, off := out[i].Time.Zone()
		_, wantOff := in[i].Time.Zone()
		assert.Equal(t, wantOff, off, "entry %d zone offset", i)
		in[i].Time, out[i].Time = time.Time{}, time.Time{}
		assert.Equal(t, in[i], out[i], "entry %d", i)
	}
	none, err := b.Load(ctx, "never-written")
	require.NoError(t, err)
	assert.Empty(t, none)
}

func TestTasksAndPrefixesAreIsolated(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := client(t, srv.Addr())
	a, err := redisbackend.New(c, redisbackend.WithPrefix("app-a:"))
	require.NoError(t, err)
	other, err := redisbackend.New(c, redisbackend.WithPrefix("app-b:"))
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, a.Append(ctx, "t1", contextguard.Entry{Content: "one"}))
	require.NoError(t, a.Append(ctx, "t2", contextguard.Entry{Content: "two"}))
	require.NoError(t, other.Append(ctx, "t1", contextguard.Entry{Content: "other app"}))

	for _, tc := range []struct {
		b    *redisbackend.Backend
		task string
		want []string
	}{
		{a, "t1", []string{"one"}},
		{a, "t2", []string{"two"}},
		{other, "t1", []string{"other app"}},
		{other, "t2", nil},
	} {
		es, err := tc.b.Load(ctx, tc.task)
		require.NoError(t, err)
		assert.Equal(t, tc.want, contents(es), "%v %s", tc.b, tc.task)
	}

	require.NoError(t, a.Wipe(ctx, "t1"))
	es, err := a.Load(ctx, "t1")
	require.NoError(t, err)
	assert.Empty(t, es, "wiped")
	es, _ = a.Load(ctx, "t2")
	assert.Equal(t, []string{"two"}, contents(es), "another task survives the wipe")
	es, _ = other.Load(ctx, "t1")
	assert.Equal(t, []string{"other app"}, contents(es), "the same task ID under another prefix survives")
	n, err := c.Exists(ctx, "app-a:{t1}", "app-a:{t1}:bytes").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "wipe deletes both keys")
}

func contents(es []contextguard.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Content)
	}
	return out
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	clock := authztest.NewClock(time.Now())
	b, c, _ := newBackend(t, redisbackend.WithTTL(time.Hour), redisbackend.WithClock(clock.Now), redisbackend.WithPrefix("p:"))
	g, err := authz.New(authz.WithClock(clock.Now))
	require.NoError(t, err)
	ctx := context.Background()
	pttl := func(task string) time.Duration {
		d, err := c.PTTL(ctx, "p:{"+task+"}").Result()
		require.NoError(t, err)
		bd, err := c.PTTL(ctx, "p:{"+task+"}:bytes").Result()
		require.NoError(t, err)
		assert.InDelta(t, d, bd, float64(time.Second), "both keys expire together")
		return d
	}

	require.NoError(t, b.Append(ctx, "no-task-in-ctx", contextguard.Entry{Content: "x"}))
	d := pttl("no-task-in-ctx")
	assert.LessOrEqual(t, d, time.Hour)
	assert.Greater(t, d, 59*time.Minute)

	spec := spec(authz.Public)
	spec.TTL = 5 * time.Minute
	tctx, task := authztest.Begin(t, g, ctx, spec)
	require.NoError(t, b.Append(tctx, task.ID(), contextguard.Entry{Content: "x"}))
	d = pttl(task.ID())
	assert.LessOrEqual(t, d, 6*time.Minute, "the task's deadline plus a minute")
	assert.Greater(t, d, 5*time.Minute)

	// A context carrying another task does not set this one's expiry.
	require.NoError(t, b.Append(tctx, "someone-else", contextguard.Entry{Content: "x"}))
	assert.Greater(t, pttl("someone-else"), 59*time.Minute)

	// Past the deadline the keys still live a little, never forever.
	clock.Advance(time.Hour)
	require.NoError(t, b.Append(tctx, task.ID(), contextguard.Entry{Content: "y"}))
	d = pttl(task.ID())
	assert.Greater(t, d, time.Duration(0))
	assert.LessOrEqual(t, d, time.Second)
}

func TestBounds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("entry size", func(t *testing.T) {
		t.Parallel()
		b, _, _ := newBackend(t, redisbackend.WithMaxEntryBytes(100))
		require.NoError(t, b.Append(ctx, "t", contextguard.Entry{Content: strings.Repeat("a", 50)}))
		err := b.Append(ctx, "t", contextguard.Entry{Content: strings.Repeat("a", 100)})
		require.ErrorIs(t, err, redisbackend.ErrTooLarge)
		es, _ := b.Load(ctx, "t")
		assert.Len(t, es, 1)
	})
	t.Run("entries", func(t *testing.T) {
		t.Parallel()
		b, _, _ := newBackend(t, redisbackend.WithMaxEntries(3))
		for range 3 {
			require.NoError(t, b.Append(ctx, "t", contextguard.Entry{Content: "a"}))
		}
		require.ErrorIs(t, b.Append(ctx, "t", contextguard.Entry{Content: "a"}), redisbackend.ErrFull)
		require.NoError(t, b.Append(ctx, "other", contextguard.Entry{Content: "a"}), "the bound is per task")
		es, _ := b.Load(ctx, "t")
		assert.Len(t, es, 3)
		require.NoError(t, b.Wipe(ctx, "t"))
		require.NoError(t, b.Append(ctx, "t", contextguard.Entry{Content: "a"}), "a wipe frees the task's room")
	})
	t.Run("task bytes under concurrency", func(t *testing.T) {
		t.Parallel()
		const limit = 10_000
		b, c, _ := newBackend(t, redisbackend.WithMaxTaskBytes(limit), redisbackend.WithPrefix("p:"))
		var wg sync.WaitGroup
		var mu sync.Mutex
		full := 0
		for range 8 {
			wg.Go(func() {
				for range 20 {
					err := b.Append(ctx, "t", contextguard.Entry{Content: strings.Repeat("z", 100)})
					if err != nil {
						assert.ErrorIs(t, err, redisbackend.ErrFull)
						mu.Lock()
						full++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		assert.Positive(t, full, "160 entries of ~110 bytes exceed 10,000 bytes")
		used, err := c.Get(ctx, "p:{t}:bytes").Int64()
		require.NoError(t, err)
		assert.LessOrEqual(t, used, int64(limit))
		raw, err := c.LRange(ctx, "p:{t}", 0, -1).Result()
		require.NoError(t, err)
		total := 0
		for _, r := range raw {
			total += len(r)
		}
		assert.Equal(t, int64(total), used, "the counter matches the list")
	})
}

func TestInvalidTaskIDs(t *testing.T) {
	t.Parallel()
	b, c, _ := newBackend(t)
	ctx := context.Background()
	for _, id := range []string{"", "a{b", "a}b", "a\nb", "a\x00b", "\xff", strings.Repeat("x", 257)} {
		assert.Error(t, b.Append(ctx, id, contextguard.Entry{Content: "x"}), "%q", id)
		_, err := b.Load(ctx, id)
		assert.Error(t, err, "%q", id)
		assert.Error(t, b.Wipe(ctx, id), "%q", id)
	}
	n, err := c.DBSize(ctx).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "nothing was written")
}

func TestMalformedEntryFailsLoad(t *testing.T) {
	t.Parallel()
	b, c, _ := newBackend(t, redisbackend.WithPrefix("p:"))
	ctx := context.Background()
	require.NoError(t, b.Append(ctx, "t", contextguard.Entry{Content: "good"}))
	require.NoError(t, c.RPush(ctx, "p:{t}", "garbage").Err())
	es, err := b.Load(ctx, "t")
	require.ErrorIs(t, err, redisbackend.ErrMalformed)
	assert.Nil(t, es, "no partial history")
}

func TestNew(t *testing.T) {
	t.Parallel()
	_, err := redisbackend.New(nil)
	assert.ErrorContains(t, err, "nil client")

	plain := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer plain.Close()
	_, err = redisbackend.New(plain)
	assert.ErrorContains(t, err, "ContextTimeoutEnabled")

	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer c.Close()
	b, err := redisbackend.New(c, nil)
	require.NoError(t, err, "a nil option is skipped")
	assert.Equal(t, `redisbackend("taskguard:mem:")`, b.String())
	for name, o := range map[string]redisbackend.Option{
		"empty prefix":     redisbackend.WithPrefix(""),
		"brace prefix":     redisbackend.WithPrefix("a{"),
		"control prefix":   redisbackend.WithPrefix("a\n"),
		"short ttl":        redisbackend.WithTTL(time.Millisecond),
		"zero timeout":     redisbackend.WithTimeout(0),
		"zero entry bytes": redisbackend.WithMaxEntryBytes(0),
		"zero task bytes":  redisbackend.WithMaxTaskBytes(0),
		"zero entries":     redisbackend.WithMaxEntries(0),
		"nil clock":        redisbackend.WithClock(nil),
	} {
		_, err := redisbackend.New(c, o)
		assert.ErrorContains(t, err, "redisbackend: New: ", name)
	}
}

func TestZeroBackend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, b := range []*redisbackend.Backend{nil, {}} {
		assert.NotPanics(t, func() {
			assert.Error(t, b.Append(ctx, "t", contextguard.Entry{}))
			_, err := b.Load(ctx, "t")
			assert.Error(t, err)
			assert.Error(t, b.Wipe(ctx, "t"))
			_ = b.String()
		})
	}
}

// encryptedStore returns a memory store on Redis under Encrypted, as the
// package documentation says to use it.
func encryptedStore(t testing.TB, c *redis.Client, opts ...redisbackend.Option) (*contextguard.Store, contextguard.Backend) {
	t.Helper()
	b, err := redisbackend.New(c, opts...)
	require.NoError(t, err)
	enc := contextguard.Encrypted(b)
	return contextguard.NewStore(contextguard.WithBackend(enc)), enc
}

func TestEncryptedOnRedisIsShreddedAtTaskEnd(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := client(t, srv.Addr())
	store, enc := encryptedStore(t, c, redisbackend.WithPrefix("p:"))
	g := newGuard(t)
	ctx, task := authztest.Begin(t, g, context.Background(), spec(authz.Restricted))
	mem := store.For(task)
	secret := "wire 1.2M to account 12-3456"
	require.NoError(t, mem.Add(ctx, contextguard.Entry{Role: "tool", Source: "db://payments", Content: secret, Sensitivity: authz.Restricted}))
	es, err := mem.Entries(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{secret}, contents(es))

	key := "p:{" + task.ID() + "}"
	raw, err := c.LRange(ctx, key, 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, raw, 1)
	assert.NotContains(t, raw[0], "1.2M", "Redis holds ciphertext")
	assert.NotContains(t, raw[0], "db://payments", "the source is encrypted too")

	task.End()
	n, err := c.Exists(ctx, key).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the task's end wipes the keys")
	_, err = mem.Entries(ctx)
	assert.ErrorIs(t, err, contextguard.ErrTaskEnded)

	// A copy that survived (a replica, a snapshot) is unreadable: the key
	// died with the task.
	require.NoError(t, c.RPush(ctx, key, raw[0]).Err())
	_, err = enc.Load(ctx, task.ID())
	assert.ErrorIs(t, err, contextguard.ErrKeyDestroyed)
}

func TestRedisOutageFailsClosed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := client(t, srv.Addr())
	store, _ := encryptedStore(t, c, redisbackend.WithTimeout(500*time.Millisecond))
	g := newGuard(t)
	ctx, task := authztest.Begin(t, g, context.Background(), spec(authz.Internal))
	mem := store.For(task)
	require.NoError(t, mem.Add(ctx, contextguard.Entry{Role: "user", Content: "before", Trusted: true}))

	srv.Stop()
	assert.Error(t, mem.Add(ctx, contextguard.Entry{Role: "user", Content: "during"}), "a write to a stopped Redis fails")
	es, err := mem.Entries(ctx)
	assert.Error(t, err, "a read from a stopped Redis fails")
	assert.Nil(t, es)
	_, err = mem.Window(ctx, 10, 0)
	assert.Error(t, err)

	// Redis comes back empty (nothing was persisted): the memory reports
	// the loss instead of answering with a shorter history.
	srv.Restart()
	_, err = mem.Entries(ctx)
	assert.ErrorIs(t, err, contextguard.ErrTampered)

	// New work resumes on the same client.
	ctx2, task2 := authztest.Begin(t, g, context.Background(), spec(authz.Internal))
	mem2 := store.For(task2)
	require.NoError(t, mem2.Add(ctx2, contextguard.Entry{Role: "user", Content: "after"}))
	es, err = mem2.Entries(ctx2)
	require.NoError(t, err)
	assert.Equal(t, []string{"after"}, contents(es))
}

func TestHungRedisTimesOut(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := client(t, srv.Addr())
	store, _ := encryptedStore(t, c, redisbackend.WithTimeout(200*time.Millisecond))
	g := newGuard(t)
	ctx, task := authztest.Begin(t, g, context.Background(), spec(authz.Internal))
	mem := store.For(task)
	require.NoError(t, mem.Add(ctx, contextguard.Entry{Role: "user", Content: "one"}))

	srv.Freeze()
	err := mem.Add(ctx, contextguard.Entry{Role: "user", Content: "two"})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = mem.Entries(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// Once Redis answers again the memory is intact; the entry whose write
	// timed out may or may not have reached it.
	srv.Thaw()
	es, err := mem.Entries(ctx)
	require.NoError(t, err)
	got := contents(es)
	require.NotEmpty(t, got)
	assert.Equal(t, "one", got[0])
	assert.LessOrEqual(t, len(got), 2)
	require.NoError(t, mem.Add(ctx, contextguard.Entry{Role: "user", Content: "three"}))
	es, err = mem.Entries(ctx)
	require.NoError(t, err)
	assert.Equal(t, "three", es[len(es)-1].Content)
}

func TestConcurrentTasks(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := client(t, srv.Addr())
	store, _ := encryptedStore(t, c)
	g := newGuard(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			ctx, task := authztest.Begin(t, g, context.Background(), spec(authz.Internal))
			mem := store.For(task)
			var want []string
			for j := range 10 {
				s := fmt.Sprintf("task %d entry %d", i, j)
				want = append(want, s)
				assert.NoError(t, mem.Add(ctx, contextguard.Entry{Role: "tool", Content: s}))
			}
			es, err := mem.Entries(ctx)
			assert.NoError(t, err)
			assert.Equal(t, want, contents(es), "each task sees exactly its own entries")
			task.End()
		})
	}
	wg.Wait()
	n, err := c.DBSize(context.Background()).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "every task's keys were wiped")
}
