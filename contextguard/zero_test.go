package contextguard

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

// TestZeroStore calls every exported method of a zero Store, and every
// method of the memory it hands out: none panics and all fail.
func TestZeroStore(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	ctx, task := authztest.Begin(t, g, nil, authz.TaskSpec{Clearance: authz.Restricted})
	_, child := authztest.Begin(t, g, ctx, authz.TaskSpec{})
	var s Store
	assert.NotPanics(t, func() {
		for _, tk := range []*authz.Task{nil, task} {
			m := s.For(tk)
			require.NotNil(t, m)
			assert.Nil(t, m.Task())
			assert.Error(t, m.Add(ctx, Entry{Role: "user", Content: "hi", Source: "user"}))
			_, err := m.Entries(context.Background())
			assert.Error(t, err)
			_, err = m.Window(context.Background(), 10, 100)
			assert.Error(t, err)
			_, err = m.Handoff(ctx, child)
			assert.Error(t, err)
		}
	})
	assert.Empty(t, task.Taint().Sources)
}

// TestZeroCache: a zero Cache misses and refuses, never panics.
func TestZeroCache(t *testing.T) {
	t.Parallel()
	_, task := authztest.Begin(t, newGuard(t), nil, authz.TaskSpec{})
	var c Cache[string]
	assert.NotPanics(t, func() {
		assert.Error(t, c.Set(task, "k", "v", 1))
		_, ok := c.Get(task, "k")
		assert.False(t, ok)
		c.Delete(task, "k")
	})
}
