package authz

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const outputPolicy = `rules:
  - {name: ok, tools: ["*"], effect: allow, when: 'destination.host != "denied.example"'}
`

type readArgs struct{ URL string }

func readTool(o Output) Tool[readArgs] {
	return Tool[readArgs]{Name: "http.fetch", Intent: "read", Output: o, Describe: func(a readArgs) (Call, error) {
		return Call{Destination: a.URL, Sensitivity: Internal}, nil
	}}
}

// A successful read taints its task once, as untrusted content of the
// call's sensitivity; a denied or failed call, or a write, does not.
func TestWrapObservesOutputs(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, outputPolicy, WithObservedIntents("export.read"))
	begin := func(t *testing.T) (context.Context, *Task) {
		ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Clearance: Restricted})
		require.NoError(t, err)
		t.Cleanup(task.End)
		return ctx, task
	}
	ok := func(ctx context.Context, a readArgs) (string, error) { return "body", nil }
	fail := func(ctx context.Context, a readArgs) (string, error) { return "", errors.New("connection refused") }

	t.Run("success taints once", func(t *testing.T) {
		ctx, task := begin(t)
		_, err := Wrap(g, readTool(Output{}), ok)(ctx, readArgs{URL: "https://Example.org/a"})
		require.NoError(t, err)
		tt := task.Taint()
		assert.Equal(t, Taint{Sensitivity: Internal, Untrusted: true, Sources: []string{"http.fetch https://example.org/a"}}, tt)
	})
	t.Run("denied call does not taint", func(t *testing.T) {
		ctx, task := begin(t)
		_, err := Wrap(g, readTool(Output{}), ok)(ctx, readArgs{URL: "https://denied.example/"})
		require.ErrorIs(t, err, ErrDenied)
		assert.Equal(t, Taint{}, task.Taint())
	})
	t.Run("failed call does not taint", func(t *testing.T) {
		ctx, task := begin(t)
		_, err := Wrap(g, readTool(Output{}), fail)(ctx, readArgs{URL: "https://example.org/"})
		require.Error(t, err)
		assert.Equal(t, Taint{}, task.Taint())
	})
	t.Run("writes do not taint", func(t *testing.T) {
		ctx, task := begin(t)
		tool := readTool(Output{})
		tool.Intent = "write"
		_, err := Wrap(g, tool, ok)(ctx, readArgs{URL: "https://example.org/"})
		require.NoError(t, err)
		assert.Equal(t, Taint{}, task.Taint())
	})
	t.Run("intents the host lists taint", func(t *testing.T) {
		ctx, task := begin(t)
		tool := readTool(Output{})
		tool.Intent = "export.read"
		_, err := Wrap(g, tool, ok)(ctx, readArgs{URL: "https://example.org/"})
		require.NoError(t, err)
		assert.True(t, task.Taint().Untrusted)
	})
	t.Run("trusted output", func(t *testing.T) {
		ctx, task := begin(t)
		_, err := Wrap(g, readTool(Output{Trusted: true}), ok)(ctx, readArgs{URL: "https://example.org/"})
		require.NoError(t, err)
		tt := task.Taint()
		assert.False(t, tt.Untrusted)
		assert.Equal(t, Internal, tt.Sensitivity)
	})
	t.Run("classified output", func(t *testing.T) {
		ctx, task := begin(t)
		o := Output{Classify: func(c Call) Sensitivity { return Confidential }}
		_, err := Wrap(g, readTool(o), ok)(ctx, readArgs{URL: "https://example.org/"})
		require.NoError(t, err)
		assert.Equal(t, Confidential, task.Taint().Sensitivity)
	})
	t.Run("a panicking classifier classifies as restricted", func(t *testing.T) {
		ctx, task := begin(t)
		o := Output{Classify: func(c Call) Sensitivity { panic("boom") }}
		_, err := Wrap(g, readTool(o), ok)(ctx, readArgs{URL: "https://example.org/"})
		require.NoError(t, err)
		assert.Equal(t, Restricted, task.Taint().Sensitivity)
	})
	t.Run("never", func(t *testing.T) {
		ctx, task := begin(t)
		_, err := Wrap(g, readTool(Output{Never: true}), ok)(ctx, readArgs{URL: "https://example.org/"})
		require.NoError(t, err)
		assert.Equal(t, Taint{}, task.Taint())
	})
	t.Run("WrapJSON", func(t *testing.T) {
		ctx, task := begin(t)
		tool := Tool[map[string]any]{Name: "web.search", Intent: "search"}
		h := WrapJSON(g, tool, func(ctx context.Context, raw json.RawMessage) (string, error) { return "results", nil })
		_, err := h(ctx, json.RawMessage(`{"q":"x"}`))
		require.NoError(t, err)
		assert.Equal(t, Taint{Untrusted: true, Sources: []string{"web.search"}}, task.Taint())
		_, err = WrapJSON(g, tool, func(ctx context.Context, raw json.RawMessage) (string, error) { return "", errors.New("x") })(ctx, json.RawMessage(`{"q":"y"}`))
		require.Error(t, err)
		assert.Len(t, task.Taint().Sources, 1, "a failed call adds nothing")
	})
}

func TestWithObservedIntentsValidates(t *testing.T) {
	t.Parallel()
	_, err := New(WithObservedIntents(""))
	require.Error(t, err)
}
