package authz

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestZeroGuard calls every exported method of a zero Guard: none panics,
// every decision denies and every error-returning method fails.
func TestZeroGuard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := Call{Tool: "mail.send", Intent: "send", Destination: "https://example.org"}
	run := func(name string, f func(t *testing.T, g *Guard)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var g Guard
			assert.NotPanics(t, func() { f(t, &g) })
		})
	}
	run("Check", func(t *testing.T, g *Guard) {
		d := g.Check(ctx, c)
		assert.Equal(t, Deny, d.Effect)
		assert.Equal(t, RuleInternal, d.Rule)
		assert.Contains(t, d.Reason, "not built with authz.New", "a zero guard says why, it does not just recover a panic")
	})
	run("Authorize", func(t *testing.T, g *Guard) {
		assert.ErrorIs(t, g.Authorize(ctx, c), ErrDenied)
	})
	run("Explain", func(t *testing.T, g *Guard) {
		assert.Equal(t, Deny, g.Explain(ctx, c).Decision.Effect)
	})
	run("Begin", func(t *testing.T, g *Guard) {
		_, task, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "a"}})
		assert.Error(t, err)
		assert.Nil(t, task)
	})
	run("Visible", func(t *testing.T, g *Guard) {
		assert.Empty(t, g.Visible(ctx, []string{"mail.send", "web.fetch"}))
	})
	run("Update", func(t *testing.T, g *Guard) {
		p, err := ParsePolicy("p.yaml", []byte("rules:\n  - name: all\n    tools: [\"*\"]\n    effect: allow\n    when: \"true\"\n"))
		require.NoError(t, err)
		assert.Error(t, g.Update(p), "a zero Guard stays inert")
		assert.Equal(t, Deny, g.Check(ctx, c).Effect)
	})
	run("Policy", func(t *testing.T, g *Guard) { assert.Nil(t, g.Policy()) })
	run("RedactAuditWith", func(t *testing.T, g *Guard) { g.RedactAuditWith(nil) })
	run("DescribeError", func(t *testing.T, g *Guard) {
		assert.Error(t, g.DescribeError(ctx, "mail.send", errors.New("boom")))
	})
	run("Deny", func(t *testing.T, g *Guard) {
		assert.ErrorIs(t, g.Deny(ctx, c, "r", "reason", nil), ErrDenied)
	})
	run("ObserveOutput", func(t *testing.T, g *Guard) { g.ObserveOutput(ctx, c, Output{}) })
	run("Resume", func(t *testing.T, g *Guard) {
		_, _, err := g.Resume(ctx, "not-a-token")
		assert.Error(t, err)
	})
	run("ApplyReport", func(t *testing.T, g *Guard) {
		assert.Error(t, g.ApplyReport(ctx, "not-a-report"))
	})
}
