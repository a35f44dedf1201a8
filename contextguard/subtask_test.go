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

func TestSubTaskCannotUseAncestorMemory(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	store := NewStore()
	pctx, parent := authztest.Begin(t, g, nil, authz.TaskSpec{Clearance: authz.Confidential})
	cctx, child := authztest.Begin(t, g, pctx, authz.TaskSpec{Clearance: authz.Public})
	gctx, grandchild := authztest.Begin(t, g, cctx, authz.TaskSpec{Clearance: authz.Public})
	_, sibling := authztest.Begin(t, g, pctx, authz.TaskSpec{Clearance: authz.Internal})
	pm := store.For(parent)
	require.NoError(t, pm.Add(pctx, Entry{Role: "tool", Content: "salaries", Sensitivity: authz.Confidential, Trusted: true}))
	require.NoError(t, pm.Add(pctx, Entry{Role: "user", Content: "find news", Trusted: true}))
	require.NoError(t, pm.Add(context.Background(), Entry{Role: "user", Content: "no task in ctx"}), "a context without a task is the host's")

	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"child adds to the parent", func() error { return pm.Add(cctx, Entry{Role: "tool", Content: "poison"}) }},
		{"grandchild adds to the grandparent", func() error { return pm.Add(gctx, Entry{Role: "tool", Content: "poison"}) }},
		{"child adds to nothing above it", func() error {
			return store.For(child).Add(gctx, Entry{Role: "tool", Content: "poison"})
		}},
		{"child reads the parent", func() error { _, err := pm.Entries(cctx); return err }},
		{"grandchild reads the grandparent's window", func() error { _, err := pm.Window(gctx, 10, 0); return err }},
		{"child hands off to a sibling", func() error { _, err := pm.Handoff(cctx, sibling); return err }},
		{"grandchild hands off to its parent", func() error { _, err := pm.Handoff(gctx, child); return err }},
	} {
		assert.ErrorIs(t, tc.run(), ErrAncestorMemory, tc.name)
	}
	assert.Equal(t, []string{"salaries", "find news", "no task in ctx"}, contents(t, pm), "nothing was written")
	assert.Empty(t, contents(t, store.For(sibling)), "nothing was handed off")

	// The documented path: the child pulls what its clearance allows.
	cm, err := pm.Handoff(cctx, child)
	require.NoError(t, err)
	assert.Equal(t, []string{"find news", "no task in ctx"}, contents(t, cm))
	gm, err := pm.Handoff(cctx, grandchild, TrustedOnly())
	require.NoError(t, err, "a sub-task may hand off to its own sub-task")
	assert.Equal(t, []string{"find news"}, contents(t, gm))
	// ...and the parent pushes.
	sm, err := pm.Handoff(pctx, sibling)
	require.NoError(t, err)
	assert.Equal(t, []string{"find news", "no task in ctx"}, contents(t, sm))
	// A task's own memory, from its own or its ancestor's context.
	require.NoError(t, cm.Add(cctx, Entry{Role: "tool", Content: "news"}))
	require.NoError(t, cm.Add(pctx, Entry{Role: "user", Content: "from the parent", Trusted: true}))
}

func TestReadsNeverExceedClearance(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	ctx, task := authztest.Begin(t, g, nil, authz.TaskSpec{Clearance: authz.Internal})
	// A backend shared with another task of the same ID (a resumed
	// task, say) may hold entries above this task's clearance.
	backend := NewMemoryBackend()
	for _, b := range []Backend{backend, Encrypted(NewMemoryBackend())} {
		store := NewStore(WithBackend(b))
		require.NoError(t, b.Append(ctx, task.ID(), Entry{Role: "tool", Content: "secret plans", Sensitivity: authz.Restricted}))
		m := store.For(task)
		require.NoError(t, m.Add(ctx, Entry{Role: "user", Content: "hello", Sensitivity: authz.Internal}))
		assert.Equal(t, []string{"hello"}, contents(t, m))
		w, err := m.Window(context.Background(), 10, 0)
		require.NoError(t, err)
		require.Len(t, w, 1)
		assert.Equal(t, "hello", w[0].Content)
	}
}

func TestCacheIsNotSharedWithSubTasks(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	pctx, parent := authztest.Begin(t, g, nil, authz.TaskSpec{Clearance: authz.Confidential})
	_, child := authztest.Begin(t, g, pctx, authz.TaskSpec{Clearance: authz.Public})
	c := NewCache[string]()
	require.NoError(t, c.Set(parent, "crm", "salaries", time.Minute))
	_, ok := c.Get(child, "crm")
	assert.False(t, ok, "a sub-task does not read its parent's cache")
	require.NoError(t, c.Set(child, "crm", "public", time.Minute))
	v, ok := c.Get(parent, "crm")
	require.True(t, ok)
	assert.Equal(t, "salaries", v, "nor does it overwrite it")
	c.Delete(child, "crm")
	v, ok = c.Get(parent, "crm")
	require.True(t, ok)
	assert.Equal(t, "salaries", v)
}
