package authz

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sync"
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

type typedFetchArgs struct {
	URL     string            `json:"url"`
	Limit   int               `json:"limit"`
	Ratio   float64           `json:"ratio"`
	Headers map[string]string `json:"headers,omitempty"`
}

func TestWrapFillsArgsFromTypedArguments(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: fetch, tools: [http.fetch], effect: allow, when: 'true'}
  - {name: no-metadata, tools: [http.fetch], effect: deny, when: 'args.url.contains("169.254")'}
  - {name: small, tools: [http.fetch], effect: deny, when: 'args.limit > 100'}
`)
	ctx, _ := begin(t, g, TaskSpec{})
	var seen []string
	h := func(_ context.Context, a typedFetchArgs) (string, error) {
		seen = append(seen, a.URL)
		return "ok", nil
	}
	// Describe names another destination than args.url: the argument
	// rule still sees what the handler receives.
	fetch := Wrap(g, Tool[typedFetchArgs]{Name: "http.fetch", Intent: "read",
		Describe: func(a typedFetchArgs) (Call, error) { return Call{}, nil }}, h)
	noDescribe := Wrap(g, Tool[typedFetchArgs]{Name: "http.fetch", Intent: "read"}, h)

	for _, tc := range []struct {
		name string
		args typedFetchArgs
		rule string
	}{
		{"allowed", typedFetchArgs{URL: "https://example.org/", Limit: 5, Ratio: 0.5}, ""},
		{"url rule", typedFetchArgs{URL: "http://169.254.169.254/"}, "no-metadata"},
		{"number rule", typedFetchArgs{URL: "https://example.org/", Limit: 1000}, "small"},
	} {
		for _, w := range []func(context.Context, typedFetchArgs) (string, error){fetch, noDescribe} {
			_, err := w(ctx, tc.args)
			if tc.rule == "" {
				assert.NoError(t, err, tc.name)
				continue
			}
			var de *DeniedError
			require.ErrorAs(t, err, &de, tc.name)
			assert.Equal(t, tc.rule, de.Decision.Rule, tc.name)
		}
	}
	assert.Equal(t, []string{"https://example.org/", "https://example.org/"}, seen)
}

func TestWrapTypedArgsShapes(t *testing.T) {
	t.Parallel()
	type nested struct {
		In struct{ X int } `json:"in"`
	}
	for _, tc := range []struct {
		name string
		got  func() (map[string]any, error)
		want map[string]any
	}{
		{"struct", func() (map[string]any, error) { return typedArgs(typedFetchArgs{URL: "u", Limit: 2}) },
			map[string]any{"url": "u", "limit": int64(2), "ratio": int64(0)}}, // as WrapJSON sees {"ratio": 0}
		{"float", func() (map[string]any, error) { return typedArgs(typedFetchArgs{Ratio: 0.25}) },
			map[string]any{"url": "", "limit": int64(0), "ratio": 0.25}},
		{"nested", func() (map[string]any, error) { return typedArgs(nested{}) },
			map[string]any{"in": map[string]any{"X": int64(0)}}},
		{"string", func() (map[string]any, error) { return typedArgs("search terms") },
			map[string]any{"value": "search terms"}},
		{"list", func() (map[string]any, error) { return typedArgs([]int{1, 2}) },
			map[string]any{"value": []any{int64(1), int64(2)}}},
		{"nil pointer", func() (map[string]any, error) { return typedArgs[*typedFetchArgs](nil) },
			map[string]any{}},
		{"map", func() (map[string]any, error) { return typedArgs(map[string]any{"a": 1.5}) },
			map[string]any{"a": 1.5}},
	} {
		got, err := tc.got()
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
}

type panicMarshaler struct{}

func (panicMarshaler) MarshalJSON() ([]byte, error) { panic("marshal bug") }

type secretMarshaler struct{}

func (secretMarshaler) MarshalJSON() ([]byte, error) {
	return nil, errors.New("cannot encode hunter2")
}

func TestWrapTypedArgsEncodingErrorDenies(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	ctx, _ := begin(t, g, TaskSpec{})
	cases := []struct {
		name string
		call func() error
	}{
		{"channel", func() error {
			_, err := Wrap(g, Tool[chan int]{Name: "t", Intent: "read"},
				func(context.Context, chan int) (int, error) { return 0, nil })(ctx, make(chan int))
			return err
		}},
		{"NaN", func() error {
			_, err := Wrap(g, Tool[map[string]float64]{Name: "t", Intent: "read"},
				func(context.Context, map[string]float64) (int, error) { return 0, nil })(ctx, map[string]float64{"x": math.NaN()})
			return err
		}},
		{"panic", func() error {
			_, err := Wrap(g, Tool[panicMarshaler]{Name: "t", Intent: "read"},
				func(context.Context, panicMarshaler) (int, error) { return 0, nil })(ctx, panicMarshaler{})
			return err
		}},
		{"marshaler error", func() error {
			_, err := Wrap(g, Tool[secretMarshaler]{Name: "t", Intent: "read"},
				func(context.Context, secretMarshaler) (int, error) { return 0, nil })(ctx, secretMarshaler{})
			return err
		}},
		{"keys one field reads", func() error {
			_, err := Wrap(g, Tool[map[string]string]{Name: "t", Intent: "read"},
				func(context.Context, map[string]string) (int, error) { return 0, nil })(ctx, map[string]string{"url": "a", "URL": "b"})
			return err
		}},
	}
	for _, tc := range cases {
		err := tc.call()
		var de *DeniedError
		require.ErrorAs(t, err, &de, tc.name)
		assert.Equal(t, RuleDescribe, de.Decision.Rule, tc.name)
		assert.NotContains(t, de.Decision.Reason, "hunter2", tc.name)
		assert.NotContains(t, de.Decision.Reason, "NaN", tc.name)
	}
}

func TestWrapOpaqueArgs(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: any, tools: [stream], effect: allow, when: 'size(args) == 0'}
`)
	ctx, _ := begin(t, g, TaskSpec{})
	var marked []bool
	s := Wrap(g, Tool[chan int]{Name: "stream", Intent: "read", OpaqueArgs: true,
		Describe: func(chan int) (Call, error) { return Call{}, nil }},
		func(ctx context.Context, _ chan int) (string, error) {
			marked = append(marked, opaqueArgs(ctx))
			return "ok", nil
		})
	out, err := s(ctx, make(chan int))
	require.NoError(t, err, "Args stays nil: the policy sees no arguments")
	assert.Equal(t, "ok", out)
	assert.Equal(t, []bool{false}, marked, "the marker is for the guard, not the handler")

	assert.False(t, opaqueArgs(ctx))
	assert.False(t, opaqueArgs(nil)) //nolint:staticcheck // nil context is handled
	assert.True(t, opaqueArgs(withOpaqueArgs(ctx)))
}

func TestWrapOpaqueArgsMarksTheGuardsContext(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: review, tools: [stream], effect: ask, when: 'true'}
`, WithApprover(ApproverFunc(func(ctx context.Context, c Call, d Decision) (bool, error) {
		if !opaqueArgs(ctx) || c.Args != nil {
			return false, nil
		}
		return true, nil
	})))
	ctx, _ := begin(t, g, TaskSpec{})
	s := Wrap(g, Tool[chan int]{Name: "stream", Intent: "read", OpaqueArgs: true},
		func(context.Context, chan int) (string, error) { return "ok", nil })
	_, err := s(ctx, make(chan int))
	assert.NoError(t, err, "the approver sees the opaque marker and nil Args")
}

func TestWrapTypedArgsDigest(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: review, tools: [http.fetch], effect: ask, when: 'true'}
`)
	ctx, _ := begin(t, g, TaskSpec{})
	digest := func(a typedFetchArgs) string {
		var d Decision
		w := Wrap(g, Tool[typedFetchArgs]{Name: "http.fetch", Intent: "read",
			Describe: func(a typedFetchArgs) (Call, error) {
				c := Call{Destination: "https://example.org/"}
				args, err := typedArgs(a)
				require.NoError(t, err)
				c.Args = args
				d = g.Check(ctx, Call{Tool: "http.fetch", Intent: "read", Destination: c.Destination, Args: args})
				return Call{Destination: c.Destination}, nil
			}},
			func(context.Context, typedFetchArgs) (string, error) { return "", nil })
		_, err := w(ctx, a)
		require.Error(t, err, "ask without an approver denies")
		var de *DeniedError
		require.ErrorAs(t, err, &de)
		require.Equal(t, Ask, d.Effect)
		require.NotEmpty(t, d.Digest)
		return d.Digest
	}
	a := digest(typedFetchArgs{URL: "https://example.org/", Limit: 1})
	assert.Equal(t, a, digest(typedFetchArgs{URL: "https://example.org/", Limit: 1}))
	assert.NotEqual(t, a, digest(typedFetchArgs{URL: "https://example.org/", Limit: 2}))
	assert.NotEqual(t, a, digest(typedFetchArgs{URL: "https://example.org/", Limit: 1, Headers: map[string]string{"x": "y"}}))
}

func TestWrapOpaqueArgsNeverGetStandingApproval(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	asked := 0
	g, _ := mustGuard(t, `
rules:
  - {name: review, tools: [stream, fetch], effect: ask, when: 'true'}
`, WithApprover(GranterFunc(func(context.Context, Call, Decision) (Grant, error) {
		mu.Lock()
		asked++
		mu.Unlock()
		return Grant{Approved: true, ForTask: true, By: "alice"}, nil
	})))
	ctx, _ := begin(t, g, TaskSpec{})
	opaque := Wrap(g, Tool[chan int]{Name: "stream", Intent: "read", OpaqueArgs: true},
		func(context.Context, chan int) (string, error) { return "ok", nil })
	typed := Wrap(g, Tool[typedFetchArgs]{Name: "fetch", Intent: "read"},
		func(context.Context, typedFetchArgs) (string, error) { return "ok", nil })
	for range 3 {
		_, err := opaque(ctx, make(chan int))
		require.NoError(t, err)
		_, err = typed(ctx, typedFetchArgs{URL: "https://example.org/"})
		require.NoError(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 3+1, asked, "opaque calls are asked every time; the typed call's grant covers the task")
}
