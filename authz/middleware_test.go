package authz

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fetchArgs struct{ URL string }

func TestWrap(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: https, tools: [http.fetch], effect: allow, when: 'destination.scheme == "https" && !destination.private'}
`)
	ctx, task := begin(t, g, TaskSpec{})
	calls := 0
	fetch := Wrap(g, Tool[fetchArgs]{
		Name: "http.fetch", Intent: "read",
		Describe: func(a fetchArgs) (Call, error) {
			if a.URL == "panic" {
				panic("describe bug")
			}
			if a.URL == "" {
				return Call{}, errors.New("url is required")
			}
			return Call{Destination: a.URL}, nil
		},
	}, func(ctx context.Context, a fetchArgs) (string, error) {
		calls++
		return "ok " + a.URL, nil
	})

	out, err := fetch(ctx, fetchArgs{URL: "https://example.org/"})
	require.NoError(t, err)
	assert.Equal(t, "ok https://example.org/", out)
	assert.Equal(t, 1, calls)
	assert.Equal(t, 1, task.Calls()["http.fetch"])

	for _, url := range []string{"http://example.org/", "https://127.0.0.1/", "", "panic"} {
		out, err = fetch(ctx, fetchArgs{URL: url})
		var de *DeniedError
		require.ErrorAs(t, err, &de, url)
		assert.Empty(t, out)
	}
	assert.Equal(t, 1, calls, "the handler never runs on deny")

	// Describe may not name another tool.
	other := Wrap(g, Tool[fetchArgs]{Name: "http.fetch", Intent: "read",
		Describe: func(a fetchArgs) (Call, error) { return Call{Tool: "other"}, nil }},
		func(context.Context, fetchArgs) (string, error) { return "", nil })
	_, err = other(ctx, fetchArgs{})
	assert.ErrorIs(t, err, ErrDenied)

	unnamed := Wrap(g, Tool[fetchArgs]{}, func(context.Context, fetchArgs) (string, error) { return "", nil })
	_, err = unnamed(ctx, fetchArgs{})
	assert.ErrorIs(t, err, ErrDenied)
}

func TestWrapJSON(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: small, tools: [db.query], effect: allow, when: 'args.limit <= 100 && args.table == "orders"'}
`)
	ctx, _ := begin(t, g, TaskSpec{})
	var got json.RawMessage
	query := WrapJSON(g, Tool[map[string]any]{Name: "db.query", Intent: "read",
		Describe: func(a map[string]any) (Call, error) {
			table, _ := a["table"].(string)
			return Call{Destination: "db://" + table}, nil
		}},
		func(ctx context.Context, args json.RawMessage) (string, error) {
			got = args
			return "rows", nil
		})

	raw := json.RawMessage(`{"table": "orders", "limit": 10}`)
	out, err := query(ctx, raw)
	require.NoError(t, err)
	assert.Equal(t, "rows", out)
	assert.Equal(t, raw, got, "the handler gets the original bytes")

	for _, bad := range []string{`{"table": "orders", "limit": 1000}`, `{"table": "users", "limit": 1}`,
		`[1,2]`, `{"table":`, `{} {}`, `"x"`, `{"table": "orders"}`} {
		_, err := query(ctx, json.RawMessage(bad))
		assert.ErrorIs(t, err, ErrDenied, bad)
	}
}

func TestDecodeArgs(t *testing.T) {
	t.Parallel()
	m, err := DecodeArgs([]byte(`{"i": 3, "f": 1.5, "big": 1e300, "l": [1, {"n": 2}], "s": "x", "b": true, "z": null}`))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"i": int64(3), "f": 1.5, "big": 1e300,
		"l": []any{int64(1), map[string]any{"n": int64(2)}}, "s": "x", "b": true, "z": nil}, m)
	m, err = DecodeArgs(nil)
	require.NoError(t, err)
	assert.Empty(t, m)
	m, err = DecodeArgs([]byte(" null "))
	require.NoError(t, err)
	assert.Empty(t, m)
}

func TestDecodeArgsRefusesAmbiguousInput(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		`{"url": "https://ok.example", "URL": "http://169.254.169.254/"}`,
		`{"a": 1, "a": 2}`,
		`{"x": {"k": 1, "K": 2}}`,
		`{"l": [1, {"Path": "/a", "path": "/etc"}]}`,
		"{\"s\": \"\xff\"}",
	} {
		_, err := DecodeArgs([]byte(bad))
		assert.Error(t, err, bad)
	}
	for _, good := range []string{
		`{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}`,
		`{"url": "x", "urls": ["y"]}`,
		`{}`,
	} {
		_, err := DecodeArgs([]byte(good))
		assert.NoError(t, err, good)
	}
}

func TestContextWithTaskAndDescribeError(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	_, task := begin(t, g, TaskSpec{})
	ctx := ContextWithTask(context.Background(), task)
	got, ok := TaskFrom(ctx)
	require.True(t, ok)
	assert.Same(t, task, got)
	err := g.DescribeError(ctx, "x", errors.New("bad args"))
	var de *DeniedError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, RuleDescribe, de.Decision.Rule)
	assert.Equal(t, task.ID(), de.Decision.Task)
}
