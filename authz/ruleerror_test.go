package authz

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A rule that fails at run time denies with a reason naming the rule and the
// kind of error; the values CEL quotes in its messages never reach the
// decision, the DeniedError or the audit log. Explain keeps the full error.
func TestRuleErrorsNeverCarryValues(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-VALUE-0123456789"
	cases := []struct {
		name, when string
		args       map[string]any
		kind       string
	}{
		{"type mismatch", `args.x > 10`, map[string]any{"x": secret}, "type mismatch"},
		{"bad timestamp", `timestamp(args.t) > now`, map[string]any{"t": secret}, "invalid timestamp"},
		{"bad duration", `duration(args.d) > duration("1s")`, map[string]any{"d": secret}, "invalid duration"},
		{"bad int", `int(args.n) > 0`, map[string]any{"n": secret}, "invalid conversion"},
		{"missing dynamic key", `args[args.k] == "x"`, map[string]any{"k": secret}, "missing key"},
		{"missing key in nested map", `args.m[args.k] == 1`, map[string]any{"k": secret, "m": map[string]any{}}, "missing key"},
		{"index out of range", `args.l[size(args.s)] == "x"`, map[string]any{"l": []any{"a"}, "s": secret}, "index out of range"},
		{"bad regex", `args.x.matches(args.re)`, map[string]any{"x": "a", "re": secret + "("}, "invalid regular expression"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			var mu sync.Mutex
			logger := slog.New(slog.NewJSONHandler(&lockedWriter{mu: &mu, w: &buf}, nil))
			g, _ := mustGuard(t, `rules: [{name: fragile, tools: ["*"], effect: allow, when: '`+tc.when+`'}]`, WithLogger(logger))
			ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
			require.NoError(t, err)
			defer task.End()
			c := Call{Tool: "t", Intent: "read", Args: tc.args}

			d := g.Check(ctx, c)
			require.Equal(t, Deny, d.Effect)
			assert.Equal(t, "fragile", d.Rule)
			assert.Equal(t, "rule fragile failed to evaluate: "+tc.kind, d.Reason)
			var re *RuleError
			require.True(t, errors.As(d.Err, &re))
			assert.Equal(t, tc.kind, re.Kind)

			err = g.Authorize(ctx, c)
			require.ErrorIs(t, err, ErrDenied)
			for what, s := range map[string]string{"reason": d.Reason, "error": d.Err.Error(), "denied error": err.Error()} {
				assert.NotContains(t, s, secret[:8], what)
			}
			mu.Lock()
			assert.NotContains(t, buf.String(), secret[:8], "audit log")
			mu.Unlock()

			x := g.Explain(ctx, c)
			require.Len(t, x.Rules, 1)
			assert.Equal(t, Errored, x.Rules[0].Outcome)
			assert.NotNil(t, x.Rules[0].Err, "Explain keeps the full error for debugging")
			assert.NotContains(t, x.Decision.Reason, secret[:8])
		})
	}
}

// Shadow rules that fail report the kind of error only.
func TestShadowRuleErrorsNeverCarryValues(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-VALUE-0123456789"
	g, _ := mustGuard(t, `rules:
  - {name: ok, tools: ["*"], effect: allow, when: 'true'}
  - {name: trial, tools: ["*"], effect: deny, mode: shadow, when: 'int(args.n) > 0'}`)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	d := g.Check(ctx, Call{Tool: "t", Intent: "read", Args: map[string]any{"n": secret}})
	require.Equal(t, Allow, d.Effect)
	require.Len(t, d.Shadow, 1)
	assert.NotContains(t, d.Shadow[0].Err.Error(), secret[:8])
}
