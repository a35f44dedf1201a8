package authz

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const allowAll = `
rules:
  - name: all
    tools: ["*"]
    effect: allow
    when: "true"
`

func TestBeginValidatesSpec(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	for name, spec := range map[string]TaskSpec{
		"no agent":         {},
		"bad clearance":    {Agent: Agent{ID: "a"}, Clearance: 9},
		"negative ttl":     {Agent: Agent{ID: "a"}, TTL: -time.Second},
		"empty intent":     {Agent: Agent{ID: "a"}, Intents: []string{""}},
		"bad tool pattern": {Agent: Agent{ID: "a"}, Tools: []string{"http fetch"}},
		"relative workdir": {Agent: Agent{ID: "a"}, Labels: map[string]string{"workdir": "work"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, task, err := g.Begin(context.Background(), spec)
			assert.Error(t, err)
			assert.Nil(t, task)
		})
	}
}

func TestBeginCopiesSpec(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	spec := TaskSpec{Agent: Agent{ID: "a"}, Intents: []string{"read"}, Labels: map[string]string{"k": "v"}}
	_, task, err := g.Begin(context.Background(), spec)
	require.NoError(t, err)
	spec.Intents[0] = "write"
	spec.Labels["k"] = "changed"
	assert.Equal(t, []string{"read"}, task.Intents())
	assert.Equal(t, "v", task.Labels()["k"])
}

func TestTaskFrom(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	_, ok := TaskFrom(context.Background())
	assert.False(t, ok)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	got, ok := TaskFrom(ctx)
	require.True(t, ok)
	assert.Same(t, task, got)
	assert.NotEmpty(t, task.ID())
}

func TestTaskIDsAreUnique(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	seen := map[string]bool{}
	for range 1000 {
		_, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
		require.NoError(t, err)
		require.False(t, seen[task.ID()])
		seen[task.ID()] = true
	}
}

func TestEndRunsHooksOnceInReverseOrder(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	_, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	var order []int
	var mu sync.Mutex
	for i := range 3 {
		task.OnEnd(func() { mu.Lock(); order = append(order, i); mu.Unlock() })
	}
	task.OnEnd(func() { panic("hook panics") }) // recovered; the others still run
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(task.End)
	}
	wg.Wait()
	assert.True(t, task.Ended())
	assert.Equal(t, []int{2, 1, 0}, order)

	// A hook registered after the end runs at once.
	ran := false
	task.OnEnd(func() { ran = true })
	assert.True(t, ran)
}

func TestEndHookMayUseTheTask(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	_, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	// Hooks run without the task's lock held: calling back must not deadlock.
	task.OnEnd(func() {
		_ = task.Taint()
		task.OnEnd(func() {})
		task.Observe("x", Public, true)
	})
	done := make(chan struct{})
	go func() { task.End(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("End deadlocked")
	}
}

func TestSubTaskNarrows(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	ctx, parent, err := g.Begin(context.Background(), TaskSpec{
		Agent:     Agent{ID: "planner"},
		Intents:   []string{"read", "write"},
		Tools:     []string{"http.*", "fs.read"},
		Clearance: Confidential,
		TTL:       time.Hour,
		Labels:    map[string]string{"tenant": "acme"},
	})
	require.NoError(t, err)

	cctx, child, err := g.Begin(ctx, TaskSpec{
		Agent:     Agent{ID: "worker"},
		Intents:   []string{"read"},
		Tools:     []string{"http.fetch", "http.get*"},
		Clearance: Internal,
		TTL:       2 * time.Hour, // clamped to the parent's deadline
		Labels:    map[string]string{"step": "1"},
	})
	require.NoError(t, err)
	got, _ := TaskFrom(cctx)
	assert.Same(t, child, got)
	assert.Equal(t, parent.ID(), child.ParentID())
	assert.True(t, child.DescendsFrom(parent))
	assert.False(t, parent.DescendsFrom(child))
	assert.False(t, child.DescendsFrom(child))
	assert.Equal(t, 1, child.Depth())
	assert.Equal(t, parent.Deadline(), child.Deadline())
	assert.Equal(t, map[string]string{"tenant": "acme", "step": "1"}, child.Labels())

	// Empty lists inherit the parent's, never "any".
	_, inherit, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "worker"}})
	require.NoError(t, err)
	assert.Equal(t, parent.Intents(), inherit.Intents())
	assert.Equal(t, parent.Tools(), inherit.Tools())
	assert.Equal(t, Public, inherit.Clearance())

	for name, spec := range map[string]TaskSpec{
		"wider intent":    {Intents: []string{"delete"}},
		"wider tools":     {Tools: []string{"shell.exec"}},
		"wider glob":      {Tools: []string{"*"}},
		"other glob":      {Tools: []string{"fs.*"}},
		"wider clearance": {Clearance: Restricted},
		"changed label":   {Labels: map[string]string{"tenant": "other"}},
	} {
		t.Run(name, func(t *testing.T) {
			spec.Agent = Agent{ID: "worker"}
			_, _, err := g.Begin(ctx, spec)
			assert.Error(t, err)
		})
	}
}

func TestParentEndEndsChildren(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	ctx, parent, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "p"}})
	require.NoError(t, err)
	cctx, child, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "c"}})
	require.NoError(t, err)
	_, grandchild, err := g.Begin(cctx, TaskSpec{Agent: Agent{ID: "g"}})
	require.NoError(t, err)
	var ended []string
	grandchild.OnEnd(func() { ended = append(ended, "grandchild") })
	child.OnEnd(func() { ended = append(ended, "child") })
	parent.OnEnd(func() { ended = append(ended, "parent") })
	parent.End()
	assert.True(t, child.Ended())
	assert.True(t, grandchild.Ended())
	assert.Equal(t, []string{"grandchild", "child", "parent"}, ended)

	_, _, err = g.Begin(ctx, TaskSpec{Agent: Agent{ID: "late"}})
	assert.ErrorContains(t, err, "ended")
}

func TestBeginRejectsTaskOfAnotherGuard(t *testing.T) {
	t.Parallel()
	g1, _ := mustGuard(t, allowAll)
	g2, _ := mustGuard(t, allowAll)
	ctx, _, err := g1.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	_, _, err = g2.Begin(ctx, TaskSpec{Agent: Agent{ID: "b"}})
	assert.ErrorContains(t, err, "another guard")
}

func TestDeadlineEndsTask(t *testing.T) {
	t.Parallel()
	g, clk := mustGuard(t, allowAll)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, TTL: time.Minute})
	require.NoError(t, err)
	hook := false
	task.OnEnd(func() { hook = true })
	call := Call{Tool: "t", Intent: "read"}
	assert.Equal(t, Allow, g.Check(ctx, call).Effect)
	clk.Add(time.Minute)
	d := g.Check(ctx, call)
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, RuleTaskEnded, d.Rule)
	assert.True(t, task.Ended())
	assert.True(t, hook)
}

func TestDefaultTTL(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	g, err := New(WithClock(clk.Now), WithDefaultTTL(time.Minute))
	require.NoError(t, err)
	_, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	assert.Equal(t, clk.Now().Add(time.Minute), task.Deadline())
}

func TestRealClockTimerEndsTask(t *testing.T) {
	t.Parallel()
	g, err := New()
	require.NoError(t, err)
	_, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, TTL: time.Millisecond})
	require.NoError(t, err)
	ended := make(chan struct{})
	task.OnEnd(func() { close(ended) })
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("task did not end at its deadline")
	}
}

func TestTaint(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	ctx, parent, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	_, child, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "b"}})
	require.NoError(t, err)

	assert.Equal(t, Taint{}, child.Taint())
	child.Observe("db://orders", Confidential, true)
	child.Observe("https://example.org", Public, false)
	child.Observe("db://orders", Internal, true)
	want := Taint{Sensitivity: Confidential, Untrusted: true, Sources: []string{"db://orders", "https://example.org"}}
	assert.Equal(t, want, child.Taint())
	assert.Equal(t, want, parent.Taint(), "a sub-task's observations taint its parent")

	parent.Observe("p", Restricted, true)
	assert.Equal(t, Confidential, child.Taint().Sensitivity, "the parent's observations do not flow down")

	// The returned taint is a copy.
	tt := child.Taint()
	tt.Sources[0] = "changed"
	assert.Equal(t, "db://orders", child.Taint().Sources[0])
}

func TestConcurrentTasksStayIsolated(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - name: all
    tools: ["*"]
    effect: allow
    when: "task.calls.size() < 1000"
`)
	const tasks, calls = 300, 20
	var wg sync.WaitGroup
	var failures atomic.Int64
	for i := range tasks {
		wg.Go(func() {
			ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "same-agent"}})
			if err != nil {
				failures.Add(1)
				return
			}
			defer task.End()
			tool := fmt.Sprintf("tool.%d", i)
			sens := Sensitivity(i % 4)
			for j := range calls {
				task.Observe(fmt.Sprintf("src-%d", i), sens, i%2 == 0)
				if err := g.Authorize(ctx, Call{Tool: tool, Intent: "read"}); err != nil {
					failures.Add(1)
				}
				_ = j
			}
			tt := task.Taint()
			if tt.Sensitivity != sens || tt.Untrusted != (i%2 != 0) || len(tt.Sources) != 1 || tt.Sources[0] != fmt.Sprintf("src-%d", i) {
				failures.Add(1)
			}
			if c := task.Calls(); len(c) != 1 || c[tool] != calls {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Zero(t, failures.Load())
}

func TestDeadlineIsExact(t *testing.T) {
	t.Parallel()
	t.Run("fake clock", func(t *testing.T) {
		t.Parallel()
		g, clk := mustGuard(t, allowAll)
		ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, TTL: time.Minute})
		require.NoError(t, err)
		clk.Add(time.Minute - time.Nanosecond)
		assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "t", Intent: "read"}).Effect, "one nanosecond before the deadline")
		clk.Add(time.Nanosecond)
		d := g.Check(ctx, Call{Tool: "t", Intent: "read"})
		assert.Equal(t, Deny, d.Effect, "at the deadline")
		assert.Equal(t, RuleTaskEnded, d.Rule)
		assert.True(t, task.Ended(), "the check ends a task found past its deadline")
	})
	t.Run("real clock, before the timer fires", func(t *testing.T) {
		t.Parallel()
		g, err := New(WithPolicy(mustPolicy(t, allowAll)))
		require.NoError(t, err)
		ctx, _, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, TTL: time.Nanosecond})
		require.NoError(t, err)
		d := g.Check(ctx, Call{Tool: "t", Intent: "read"})
		assert.Equal(t, Deny, d.Effect)
		assert.Equal(t, RuleTaskEnded, d.Rule)
	})
	t.Run("real clock, now is read for rules that use it", func(t *testing.T) {
		t.Parallel()
		g, err := New(WithPolicy(mustPolicy(t, `rules: [{name: recent, tools: ["*"], effect: allow, when: 'now > timestamp("2026-01-01T00:00:00Z") && task.age >= duration("0s") && task.remaining > duration("0s")'}]`)))
		require.NoError(t, err)
		ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
		require.NoError(t, err)
		defer task.End()
		assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "t", Intent: "read"}).Effect)
	})
}
