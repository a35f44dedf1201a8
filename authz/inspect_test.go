package authz

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInspectors(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	ctx, task := begin(t, g, TaskSpec{})
	subCtx, _, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "sub"}})
	require.NoError(t, err)

	var seen []CallInfo
	remove := task.Inspect("no-evil", func(ci *CallInfo) error {
		seen = append(seen, *ci)
		if ci.Host == "evil.example" {
			return errors.New("evil host")
		}
		return nil
	})
	call := Call{Tool: "http.post", Intent: "write", Destination: "https://EVIL.example./x"}
	d := g.Check(ctx, call)
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, RuleInspect+":no-evil", d.Rule)
	assert.Equal(t, "evil host", d.Reason)
	require.Len(t, seen, 1)
	assert.Equal(t, CallInfo{Call: call, Destination: "https://evil.example/x", Kind: "url", Host: "evil.example"}, seen[0])

	// Sub-tasks are inspected by their ancestors' inspectors.
	assert.Equal(t, RuleInspect+":no-evil", g.Check(subCtx, call).Rule)
	assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "fs.read", Intent: "read", Destination: "/tmp/a"}).Effect)
	assert.Equal(t, "file", seen[len(seen)-1].Kind)
	assert.Empty(t, seen[len(seen)-1].Host)

	remove()
	remove() // idempotent
	assert.Equal(t, Allow, g.Check(ctx, call).Effect)

	// A panicking inspector denies.
	task.Inspect("broken", func(*CallInfo) error { panic("bug") })
	d = g.Check(ctx, call)
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, RuleInternal, d.Rule)

	// After the end, Inspect is inert.
	task.End()
	task.Inspect("late", func(*CallInfo) error { return nil })()
	_, ok := TaskFrom(context.Background())
	assert.False(t, ok)
}
