package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
	"github.com/tmc/langchaingo/agents"
	"github.com/tmc/langchaingo/schema"
	"github.com/tmc/langchaingo/tools"
)

func newGuard(t *testing.T) *authz.Guard {
	t.Helper()
	p, err := authz.ParsePolicy("policy.yaml", policyYAML)
	require.NoError(t, err)
	g, err := authz.New(authz.WithPolicy(p))
	require.NoError(t, err)
	return g
}

func newTask(t *testing.T, g *authz.Guard) context.Context {
	t.Helper()
	ctx, task, err := beginTask(g)
	require.NoError(t, err)
	t.Cleanup(task.End)
	return ctx
}

func TestRun(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(&out))
	got := out.String()
	for _, want := range []string{
		`calculator "6 * 7" -> 42`,
		`http.fetch "https://api.github.com/zen" -> Design for failure.`,
		`http.fetch "http://0xa9fea9fe/latest/meta-data/" -> authz: http.fetch denied by no-private-network`,
		"Observation: authz: http.fetch denied by no-private-network",
		"Final Answer: 42",
		`calculator "1 + 1" -> authz: calculator denied by @task`,
		"calls that reached the tools: calculator 2 of 3, http.fetch 2 of 5",
	} {
		assert.Contains(t, got, want)
	}
	assert.NotContains(t, got, "SecretAccessKey", "no SSRF response reaches the output")
}

func TestGuardedDirect(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	for _, tc := range []struct {
		name, tool, input string
		want              string // the result, or the rule of the denial
		allowed           bool
	}{
		{"calculator", "calculator", "6 * 7", "42", true},
		{"https fetch", "http.fetch", " https://api.github.com/zen\n", "Design for failure.", true},
		{"cloud metadata", "http.fetch", "http://169.254.169.254/latest/meta-data/", "no-private-network", false},
		{"metadata in hex", "http.fetch", "http://0xa9fea9fe/latest/meta-data/", "no-private-network", false},
		{"loopback over https", "http.fetch", "https://127.1/admin", "no-private-network", false},
		{"plain http", "http.fetch", "http://example.com/", authz.RuleNoMatch, false},
		{"userinfo", "http.fetch", "https://api.github.com@evil.example/", authz.RuleDestination, false},
		{"long expression", "calculator", strings.Repeat("1+", 150) + "1", authz.RuleNoMatch, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newDemoTools(g)
			ctx := newTask(t, g)
			tool := d.guarded[0]
			inner := d.calc
			if tc.tool == "http.fetch" {
				tool, inner = d.guarded[1], d.fetch
			}
			res, err := tool.Call(ctx, tc.input)
			require.NoError(t, err, "a denial is text for the model, not an error")
			if tc.allowed {
				assert.Equal(t, tc.want, res)
				assert.EqualValues(t, 1, inner.n.Load())
				return
			}
			assert.True(t, strings.HasPrefix(res, "authz: "+tc.tool+" denied by "+tc.want+": "), res)
			assert.Zero(t, inner.n.Load(), "a denied call never reaches the tool")
			assert.NotContains(t, res, tc.input, "the denial does not echo the input")
		})
	}
}

func TestGuardedPassesNameAndDescription(t *testing.T) {
	t.Parallel()
	d := newDemoTools(newGuard(t))
	for i, inner := range []tools.Tool{d.calc, d.fetch} {
		assert.Equal(t, inner.Name(), d.guarded[i].Name())
		assert.Equal(t, inner.Description(), d.guarded[i].Description())
	}
}

func TestGuardedWithoutTask(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	d := newDemoTools(g)
	ctx, task, err := beginTask(g)
	require.NoError(t, err)
	task.End()
	for name, ctx := range map[string]context.Context{
		authz.RuleNoTask:    context.Background(),
		authz.RuleTaskEnded: ctx,
	} {
		res, err := d.guarded[0].Call(ctx, "1 + 1")
		require.NoError(t, err)
		assert.Contains(t, res, "calculator denied by "+name+":")
	}
	assert.Zero(t, d.calc.n.Load())
}

func TestGuardedDescribe(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	ctx := newTask(t, g)
	for _, tc := range []struct {
		name     string
		describe func(string) (authz.Call, error)
		rule     string
	}{
		{"nil describe has no intent", nil, authz.RuleCall},
		{"describe error", func(string) (authz.Call, error) { return authz.Call{}, errors.New("bad input") }, authz.RuleDescribe},
		{"describe panics", func(string) (authz.Call, error) { panic("boom") }, authz.RuleDescribe},
		{"describe renames the tool", func(string) (authz.Call, error) {
			return authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://api.github.com/"}, nil
		}, authz.RuleDescribe},
		{"undeclared intent", func(string) (authz.Call, error) { return authz.Call{Intent: "write"}, nil }, authz.RuleIntent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inner := &counted{Tool: tools.Calculator{}}
			res, err := Guarded(g, inner, tc.describe).Call(ctx, "1 + 1")
			require.NoError(t, err)
			assert.Contains(t, res, "calculator denied by "+tc.rule+":")
			assert.Zero(t, inner.n.Load())
		})
	}
}

// failingTool always fails, to show that the inner tool's errors pass through.
type failingTool struct{ fetchTool }

var errUpstream = errors.New("upstream: 503 Service Unavailable")

func (failingTool) Call(context.Context, string) (string, error) { return "", errUpstream }

func TestGuardedReturnsToolErrors(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	tool := Guarded(g, failingTool{}, func(input string) (authz.Call, error) {
		return authz.Call{Intent: "read", Destination: input}, nil
	})
	_, err := tool.Call(newTask(t, g), "https://api.github.com/zen")
	assert.ErrorIs(t, err, errUpstream)
	assert.NotErrorIs(t, err, authz.ErrDenied)
}

// TestGuardedTaint checks that the result of a call the guard allowed and
// the tool completed taints the task, once, and that denied and failed
// calls, and calls that read nothing, leave it clean.
func TestGuardedTaint(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	describeFetch := func(input string) (authz.Call, error) {
		return authz.Call{Intent: "read", Destination: strings.TrimSpace(input), Sensitivity: authz.Public}, nil
	}
	for _, tc := range []struct {
		name  string
		tool  func(d *demoTools) tools.Tool
		input string
		want  authz.Taint
	}{
		{"successful read", func(d *demoTools) tools.Tool { return d.guarded[1] }, "https://api.github.com/zen",
			authz.Taint{Sensitivity: authz.Public, Untrusted: true, Sources: []string{"http.fetch https://api.github.com/zen"}}},
		{"computation", func(d *demoTools) tools.Tool { return d.guarded[0] }, "6 * 7", authz.Taint{}},
		{"denied read", func(d *demoTools) tools.Tool { return d.guarded[1] }, "http://169.254.169.254/", authz.Taint{}},
		{"failed read", func(*demoTools) tools.Tool { return Guarded(g, failingTool{}, describeFetch) },
			"https://api.github.com/zen", authz.Taint{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := newTask(t, g)
			task, ok := authz.TaskFrom(ctx)
			require.True(t, ok)

			_, _ = tc.tool(newDemoTools(g)).Call(ctx, tc.input)

			got := task.Taint()
			if len(got.Sources) == 0 {
				got.Sources = nil
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestExecutor(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	d := newDemoTools(g)
	model := &scriptedModel{replies: script}
	executor := agents.NewExecutor(agents.NewOneShotAgent(model, d.guarded),
		agents.WithMaxIterations(len(script)), agents.WithReturnIntermediateSteps())

	ctx := newTask(t, g)
	res, err := executor.Call(ctx, map[string]any{"input": "What is 6 * 7, and what is the GitHub zen?"})
	require.NoError(t, err, "a denial does not abort the executor")
	assert.Equal(t, `42; the zen is "Design for failure."`, res["output"])

	steps, ok := res["intermediateSteps"].([]schema.AgentStep)
	require.True(t, ok)
	require.Len(t, steps, 3)
	assert.Equal(t, "Design for failure.", steps[0].Observation)
	assert.Equal(t, "authz: http.fetch denied by no-private-network: private addresses and cloud metadata are off limits (SSRF)", steps[1].Observation)
	assert.Equal(t, "42", steps[2].Observation)
	assert.EqualValues(t, 1, d.fetch.n.Load(), "the metadata fetch never reached the tool")
	assert.EqualValues(t, 1, d.calc.n.Load())
	task, ok := authz.TaskFrom(ctx)
	require.True(t, ok)
	assert.Equal(t, authz.Taint{Sensitivity: authz.Public, Untrusted: true,
		Sources: []string{"http.fetch https://api.github.com/zen"}}, task.Taint(),
		"only the fetch that ran taints the task")

	prompts := model.Prompts()
	require.Len(t, prompts, 4)
	assert.Contains(t, prompts[0], "- http.fetch: Fetches a web page", "the model sees the inner tool's description")
	assert.Contains(t, prompts[2], "\nObservation: authz: http.fetch denied by no-private-network:", "the model reads the denial")
	for _, p := range prompts {
		assert.NotContains(t, p, "SecretAccessKey")
	}
}

func TestExecutorWithoutTask(t *testing.T) {
	t.Parallel()
	d := newDemoTools(newGuard(t))
	model := &scriptedModel{replies: script}
	executor := agents.NewExecutor(agents.NewOneShotAgent(model, d.guarded),
		agents.WithMaxIterations(len(script)), agents.WithReturnIntermediateSteps())

	res, err := executor.Call(context.Background(), map[string]any{"input": "What is 6 * 7?"})
	require.NoError(t, err)
	steps, ok := res["intermediateSteps"].([]schema.AgentStep)
	require.True(t, ok)
	require.Len(t, steps, 3)
	for _, s := range steps {
		assert.Contains(t, s.Observation, "denied by @task:")
	}
	assert.Zero(t, d.fetch.n.Load())
	assert.Zero(t, d.calc.n.Load())
}

func TestGuardedConcurrent(t *testing.T) {
	t.Parallel()
	g := newGuard(t)
	d := newDemoTools(g)
	ctx := newTask(t, g)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			input := "https://api.github.com/zen"
			if i%2 == 1 {
				input = "http://169.254.169.254/"
			}
			_, err := d.guarded[1].Call(ctx, input)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.EqualValues(t, 8, d.fetch.n.Load())
}

// TestPolicyCases runs the policy's test cases (policy.cases.yaml).
func TestPolicyCases(t *testing.T) {
	authztest.RunPolicy(t, "policy.yaml", "policy.cases.yaml", "calculator", "http.fetch")
}
