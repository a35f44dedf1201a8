package contextguard

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

func TestInvalidStoreOptionMakesStoreInert(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]Option{
		"nil clock":    WithClock(nil),
		"zero max":     WithMaxEntries(0),
		"negative max": WithMaxEntries(-1),
		"nil redactor": WithRedactor(nil),
		"nil backend":  WithBackend(nil),
		"zero wipe":    WithWipeTimeout(0),
		"neg wipe":     WithWipeTimeout(-time.Second),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, task := authztest.Begin(t, newGuard(t), nil, authz.TaskSpec{Clearance: authz.Restricted})
			m := NewStore(WithMaxEntries(5), o).For(task)
			err := m.Add(ctx, Entry{Role: "user", Content: "hi", Source: "user"})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "contextguard: NewStore: ")
			_, err = m.Entries(context.Background())
			assert.Error(t, err)
			_, err = m.Window(context.Background(), 10, 100)
			assert.Error(t, err)
			assert.Empty(t, task.Taint().Sources, "an inert store taints nothing")
		})
	}
}

func TestInvalidCacheOptionMakesCacheInert(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]CacheOption{
		"nil clock": WithClock(nil),
		"zero max":  WithMaxEntries(0),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, task := authztest.Begin(t, newGuard(t), nil, authz.TaskSpec{})
			c := NewCache[string](o)
			err := c.Set(task, "k", "v", time.Minute)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "contextguard: NewCache: ")
			_, ok := c.Get(task, "k")
			assert.False(t, ok)
		})
	}
}

func TestSharedOptionsConfigureStoreAndCache(t *testing.T) {
	t.Parallel()
	at := time.Now().Round(0)
	clock := func() time.Time { return at }
	ctx, task := authztest.Begin(t, newGuard(t), context.Background(), authz.TaskSpec{})
	m := NewStore(WithClock(clock), WithMaxEntries(1)).For(task)
	require.NoError(t, m.Add(ctx, Entry{Role: "user", Content: "a", Source: "user", Trusted: true}))
	assert.Error(t, m.Add(ctx, Entry{Role: "user", Content: "b", Source: "user", Trusted: true}), "bound of one")
	es, err := m.Entries(context.Background())
	require.NoError(t, err)
	require.Len(t, es, 1)
	assert.Equal(t, at, es[0].Time)

	c := NewCache[int](WithClock(clock), WithMaxEntries(1))
	require.NoError(t, c.Set(task, "a", 1, time.Minute))
	assert.Error(t, c.Set(task, "b", 2, time.Minute), "bound of one")
}

// wipeDeadline records the deadline of the context its Wipe receives.
type wipeDeadline struct {
	Backend
	got chan time.Duration
}

func (b wipeDeadline) Wipe(ctx context.Context, task string) error {
	d, ok := ctx.Deadline()
	if !ok {
		b.got <- -1
	} else {
		b.got <- time.Until(d)
	}
	return b.Backend.Wipe(ctx, task)
}

func TestWithWipeTimeoutBoundsTheWipe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts []Option
		want time.Duration
	}{
		{nil, 10 * time.Second},
		{[]Option{WithWipeTimeout(time.Hour), WithWipeTimeout(time.Minute)}, time.Minute},
	} {
		b := wipeDeadline{Backend: NewMemoryBackend(), got: make(chan time.Duration, 1)}
		ctx, task := authztest.Begin(t, newGuard(t), nil, authz.TaskSpec{})
		m := NewStore(append(tc.opts, WithBackend(b))...).For(task)
		require.NoError(t, m.Add(ctx, Entry{Role: "user", Content: "hi"}))
		task.End()
		left := <-b.got
		assert.LessOrEqual(t, left, tc.want, "the wipe's context expires within the timeout")
		assert.Greater(t, left, tc.want/2, "and not much earlier")
	}
}
