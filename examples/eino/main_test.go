package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

// fixture is the demo's guard, tools and compiled chain, with a live task.
type fixture struct {
	tools *demoTools
	agent compose.Runnable[*schema.Message, []*schema.Message]
	ctx   context.Context
	task  *authz.Task
}

func newFixture(t *testing.T, onDeny func(context.Context, *authz.DeniedError) (string, error)) *fixture {
	t.Helper()
	ctx := context.Background()
	g, err := newGuard()
	require.NoError(t, err)
	tools, err := newDemoTools()
	require.NoError(t, err)
	node, err := newToolsNode(ctx, g, []tool.BaseTool{tools.fetch, tools.search}, onDeny)
	require.NoError(t, err)
	agent, err := compose.NewChain[*schema.Message, []*schema.Message]().AppendToolsNode(node).Compile(ctx)
	require.NoError(t, err)
	tctx, task, err := g.Begin(ctx, authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/test"},
		Intents:   []string{"read", "search"},
		Tools:     []string{"http.fetch", "docs.search"},
		Clearance: authz.Internal,
		TTL:       time.Minute,
	})
	require.NoError(t, err)
	t.Cleanup(task.End)
	return &fixture{tools: tools, agent: agent, ctx: tctx, task: task}
}

// call runs msg through the chain by Invoke or by Stream.
func (f *fixture) call(t *testing.T, ctx context.Context, stream bool, msg *schema.Message) []*schema.Message {
	t.Helper()
	var (
		out []*schema.Message
		err error
	)
	if stream {
		out, err = streamAll(ctx, f.agent, msg)
	} else {
		out, err = f.agent.Invoke(ctx, msg)
	}
	require.NoError(t, err)
	require.Len(t, out, len(msg.ToolCalls))
	return out
}

// text is what the model reads from a tool message.
func text(m *schema.Message) string {
	s := m.Content
	for _, p := range m.UserInputMultiContent {
		s += p.Text
	}
	return s
}

func modes() map[string]bool { return map[string]bool{"invoke": false, "stream": true} }

func TestAllowedCallsRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, tool, args, want string
		fetched, searched      int64
	}{
		{"invokable fetch", "fetch", `{"url":"https://api.github.com/zen"}`, "200 OK from https://api.github.com/zen", 1, 0},
		{"streamable search", "search", `{"query":"onboarding","index":"handbook"}`, `handbook: "onboarding" hit 1, hit 2`, 0, 1},
		{"search within clearance", "search", `{"query":"ci","index":"engineering"}`, `engineering: "ci" hit 1, hit 2`, 0, 1},
	} {
		for mode, stream := range modes() {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, nil)
				out := f.call(t, f.ctx, stream, toolCalls([2]string{tc.tool, tc.args}))
				assert.Equal(t, tc.want, text(out[0]))
				assert.Equal(t, schema.Tool, out[0].Role)
				assert.Equal(t, "call-1", out[0].ToolCallID)
				assert.Equal(t, tc.fetched, f.tools.fetched.Load())
				assert.Equal(t, tc.searched, f.tools.searched.Load())
			})
		}
	}
}

func TestDeniedCallsNeverReachTools(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, tool, args, rule string
	}{
		{"SSRF to cloud metadata", "fetch", `{"url":"http://169.254.169.254/latest/meta-data/"}`, "no-private-network"},
		{"SSRF spelled in hex", "fetch", `{"url":"https://0xa9fea9fe/"}`, "no-private-network"},
		{"plain http", "fetch", `{"url":"http://example.com/"}`, authz.RuleNoMatch},
		{"index above clearance", "search", `{"query":"salaries","index":"payroll"}`, authz.RuleClearance},
		{"unknown index", "search", `{"query":"x","index":"secrets"}`, authz.RuleDescribe},
		{"missing url", "fetch", `{}`, authz.RuleDescribe},
		{"arguments not JSON", "fetch", `{"url":`, authz.RuleDescribe},
		{"arguments not an object", "fetch", `["https://api.github.com/"]`, authz.RuleDescribe},
		{"key smuggled in another case", "fetch", `{"url":"https://api.github.com/","URL":"http://169.254.169.254/"}`, authz.RuleDescribe},
		{"index smuggled in another case", "search", `{"query":"x","index":"handbook","Index":"payroll"}`, authz.RuleDescribe},
		{"duplicate key", "fetch", `{"url":"https://api.github.com/","url":"http://169.254.169.254/"}`, authz.RuleDescribe},
		{"invalid UTF-8", "fetch", "{\"url\":\"https://api.github.com/\xff\"}", authz.RuleDescribe},
	} {
		for mode, stream := range modes() {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, nil)
				out := f.call(t, f.ctx, stream, toolCalls([2]string{tc.tool, tc.args}))
				assert.Contains(t, text(out[0]), "denied by taskguard (rule "+tc.rule+")")
				assert.Contains(t, text(out[0]), "The tool was not run.")
				assert.Zero(t, f.tools.fetched.Load(), "fetch must not run")
				assert.Zero(t, f.tools.searched.Load(), "search must not run")
				assert.Empty(t, f.task.Taint().Sources, "nothing reached the model from a tool")
			})
		}
	}
}

// A denial is a tool result, so the other calls of the message still return.
func TestDenialIsAToolResult(t *testing.T) {
	t.Parallel()
	for mode, stream := range modes() {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			out := f.call(t, f.ctx, stream, toolCalls(
				[2]string{"fetch", `{"url":"https://api.github.com/zen"}`},
				[2]string{"fetch", `{"url":"http://169.254.169.254/"}`},
				[2]string{"search", `{"query":"q","index":"handbook"}`},
				[2]string{"search", `{"query":"q","index":"payroll"}`}))
			assert.Equal(t, "200 OK from https://api.github.com/zen", text(out[0]))
			assert.Contains(t, text(out[1]), "rule no-private-network")
			assert.Equal(t, `handbook: "q" hit 1, hit 2`, text(out[2]))
			assert.Contains(t, text(out[3]), "rule @clearance")
			for i, m := range out {
				assert.Equal(t, fmt.Sprintf("call-%d", i+1), m.ToolCallID)
			}
			assert.Equal(t, int64(1), f.tools.fetched.Load())
			assert.Equal(t, int64(1), f.tools.searched.Load())
			taint := f.task.Taint()
			assert.True(t, taint.Untrusted)
			assert.ElementsMatch(t, []string{"http.fetch https://api.github.com/zen", "docs.search db://handbook"}, taint.Sources)
		})
	}
}

// TestToolResultsTaint checks that a call the guard allowed and the tool
// completed taints the task, once, and that denied and failed calls leave
// it clean, through the real eino runtime.
func TestToolResultsTaint(t *testing.T) {
	t.Parallel()
	untrusted := authz.Taint{Sensitivity: authz.Public, Untrusted: true,
		Sources: []string{"http.fetch https://api.github.com/zen"}}
	for _, tc := range []struct {
		name   string
		output authz.Output
		url    string
		fails  bool
		ran    int64
		want   authz.Taint
	}{
		{"successful read", authz.Output{}, "https://api.github.com/zen", false, 1, untrusted},
		{"successful read of a trusted tool", authz.Output{Trusted: true}, "https://api.github.com/zen", false, 1,
			authz.Taint{Sensitivity: authz.Public, Sources: []string{"http.fetch https://api.github.com/zen"}}},
		{"denied read", authz.Output{}, "http://169.254.169.254/", false, 0, authz.Taint{}},
		{"failed read", authz.Output{}, "https://api.github.com/zen", true, 1, authz.Taint{}},
	} {
		for mode, stream := range modes() {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				g, err := newGuard()
				require.NoError(t, err)
				var ran atomic.Int64
				fetch, err := utils.InferTool("fetch", "Fetch a page.",
					func(ctx context.Context, a fetchArgs) (string, error) {
						ran.Add(1)
						if tc.fails {
							return "", errors.New("connection refused")
						}
						return "page " + a.URL, nil
					})
				require.NoError(t, err)
				tools := guardedTools()
				ft := tools["fetch"]
				ft.Output = tc.output
				tools["fetch"] = ft
				node, err := compose.NewToolNode(ctx, &compose.ToolsNodeConfig{
					Tools:               []tool.BaseTool{fetch},
					ToolCallMiddlewares: []compose.ToolMiddleware{Middleware(g, Config{Tools: tools})},
				})
				require.NoError(t, err)
				agent, err := compose.NewChain[*schema.Message, []*schema.Message]().AppendToolsNode(node).Compile(ctx)
				require.NoError(t, err)
				tctx, task, err := g.Begin(ctx, authz.TaskSpec{Agent: authz.Agent{ID: "a"},
					Intents: []string{"read"}, Tools: []string{"http.fetch"}})
				require.NoError(t, err)
				defer task.End()

				msg := toolCalls([2]string{"fetch", `{"url":"` + tc.url + `"}`})
				if stream {
					_, err = streamAll(tctx, agent, msg)
				} else {
					_, err = agent.Invoke(tctx, msg)
				}
				if tc.fails {
					require.ErrorContains(t, err, "connection refused")
				} else {
					require.NoError(t, err)
				}
				assert.Equal(t, tc.ran, ran.Load())
				got := task.Taint()
				if len(got.Sources) == 0 {
					got.Sources = nil
				}
				assert.Equal(t, tc.want, got)
			})
		}
	}
}

func TestNoLiveTaskDenied(t *testing.T) {
	t.Parallel()
	for mode, stream := range modes() {
		t.Run("no task/"+mode, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			out := f.call(t, context.Background(), stream, toolCalls(
				[2]string{"fetch", `{"url":"https://api.github.com/zen"}`},
				[2]string{"search", `{"query":"q","index":"handbook"}`}))
			for _, m := range out {
				assert.Contains(t, text(m), "denied by taskguard (rule "+authz.RuleNoTask+")")
			}
			assert.Zero(t, f.tools.fetched.Load())
			assert.Zero(t, f.tools.searched.Load())
		})
		t.Run("ended task/"+mode, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			f.task.End()
			out := f.call(t, f.ctx, stream, toolCalls([2]string{"search", `{"query":"q","index":"handbook"}`}))
			assert.Contains(t, text(out[0]), "denied by taskguard (rule "+authz.RuleTaskEnded+")")
			assert.Zero(t, f.tools.searched.Load())
		})
	}
}

func TestAbortOnDenial(t *testing.T) {
	t.Parallel()
	for mode, stream := range modes() {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, AbortOnDenial)
			msg := toolCalls(
				[2]string{"search", `{"query":"q","index":"handbook"}`},
				[2]string{"fetch", `{"url":"http://169.254.169.254/"}`})
			var err error
			if stream {
				_, err = streamAll(f.ctx, f.agent, msg)
			} else {
				_, err = f.agent.Invoke(f.ctx, msg)
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, authz.ErrDenied)
			var de *authz.DeniedError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, "no-private-network", de.Decision.Rule)
			assert.Equal(t, "http.fetch", de.Tool)
			assert.Zero(t, f.tools.fetched.Load())
		})
	}
}

// Tools that implement only eino's enhanced (multimodal) interfaces pass the
// guard too.
func TestEnhancedToolsGuarded(t *testing.T) {
	t.Parallel()
	for mode, stream := range modes() {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g, err := newGuard()
			require.NoError(t, err)
			var ran atomic.Int64
			fetch, err := utils.InferEnhancedTool("fetch", "Fetch a page.",
				func(ctx context.Context, a fetchArgs) (*schema.ToolResult, error) {
					ran.Add(1)
					return textResult("page " + a.URL), nil
				})
			require.NoError(t, err)
			node, err := newToolsNode(ctx, g, []tool.BaseTool{fetch}, nil)
			require.NoError(t, err)
			agent, err := compose.NewChain[*schema.Message, []*schema.Message]().AppendToolsNode(node).Compile(ctx)
			require.NoError(t, err)
			tctx, task, err := g.Begin(ctx, authz.TaskSpec{Agent: authz.Agent{ID: "a"},
				Intents: []string{"read"}, Tools: []string{"http.fetch"}})
			require.NoError(t, err)
			defer task.End()

			// One call per message: eino v0.7.36's ToolsNode.Stream races
			// (a shared err in its enhanced-result converters) when one
			// message holds several calls of enhanced tools.
			f := &fixture{agent: agent}
			out := f.call(t, tctx, stream, toolCalls([2]string{"fetch", `{"url":"https://api.github.com/zen"}`}))
			assert.Equal(t, "page https://api.github.com/zen", text(out[0]))
			out = f.call(t, tctx, stream, toolCalls([2]string{"fetch", `{"url":"http://169.254.169.254/"}`}))
			assert.Contains(t, text(out[0]), "denied by taskguard (rule no-private-network)")
			assert.Equal(t, int64(1), ran.Load())
		})
	}
}

func TestToolWithoutDescriptionDenied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, err := newGuard()
	require.NoError(t, err)
	var ran atomic.Int64
	shell, err := utils.InferTool("shell", "Run a command.", func(ctx context.Context, a struct {
		Cmd string `json:"cmd"`
	}) (string, error) {
		ran.Add(1)
		return "ok", nil
	})
	require.NoError(t, err)
	node, err := newToolsNode(ctx, g, []tool.BaseTool{shell}, nil)
	require.NoError(t, err)
	tctx, task, err := g.Begin(ctx, authz.TaskSpec{Agent: authz.Agent{ID: "a"}, Intents: []string{"read"}})
	require.NoError(t, err)
	defer task.End()
	out, err := node.Invoke(tctx, toolCalls([2]string{"shell", `{"cmd":"id"}`}))
	require.NoError(t, err)
	assert.Contains(t, out[0].Content, `denied by taskguard (rule @describe): could not describe the call: eino tool "shell" has no taskguard description`)
	assert.Zero(t, ran.Load())
}

func TestDescribePanicDenies(t *testing.T) {
	t.Parallel()
	g, err := newGuard()
	require.NoError(t, err)
	mw := Middleware(g, Config{Tools: map[string]authz.Tool[map[string]any]{
		"fetch": {Name: "http.fetch", Intent: "read", Describe: func(map[string]any) (authz.Call, error) { panic("boom") }},
	}, OnDeny: AbortOnDenial})
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "a"}, Intents: []string{"read"}})
	require.NoError(t, err)
	defer task.End()
	called := false
	_, err = mw.Invokable(func(context.Context, *compose.ToolInput) (*compose.ToolOutput, error) {
		called = true
		return &compose.ToolOutput{}, nil
	})(ctx, &compose.ToolInput{Name: "fetch", Arguments: `{}`})
	var de *authz.DeniedError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, authz.RuleDescribe, de.Decision.Rule)
	assert.Contains(t, de.Decision.Reason, "describe panicked: boom")
	assert.Equal(t, task.ID(), de.Decision.Task)
	assert.False(t, called)
}

func TestCheckKeys(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{
		``, `null`, `{}`, `{"url":"x"}`, `{"a":{"a":1},"b":[{"a":1},{"a":2}],"c":[["A","a"]]}`,
		`{"a":"A","b":"a"}`, `{"a":[1,{"b":2}],"c":{"d":[]},"e":null}`,
	} {
		assert.NoError(t, checkKeys(ok), ok)
	}
	for _, bad := range []string{
		`{"url":1,"url":2}`, `{"url":1,"URL":2}`, `{"url":1,"ur\u006c":2}`,
		`{"s":1,"\u017f":2}`, `{"k":1,"\u212a":2}`,
		`{"a":{"x":1,"X":2}}`, `{"a":[{"b":1},{"b":1,"B":2}]}`, `{"a":[],"b":{},"A":1}`,
		"{\"a\":\"\xff\"}",
	} {
		assert.Error(t, checkKeys(bad), bad)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(&out))
	got := out.String()
	for _, want := range []string{
		"-> 200 OK from https://api.github.com/zen\n",
		"-> denied by taskguard (rule no-private-network): private addresses and cloud metadata are off limits (SSRF). The tool was not run.",
		`-> handbook: "onboarding" hit 1, hit 2`,
		"-> denied by taskguard (rule @clearance)",
		`-> denied by taskguard (rule @describe): could not describe the call: arguments repeat the key "URL"`,
		"-> denied by taskguard (rule @task)",
		"the tools really ran: fetch 1, search 1\n",
		"from [http.fetch https://api.github.com/zen docs.search db://handbook]",
	} {
		assert.Contains(t, got, want)
	}
	assert.Equal(t, 4, strings.Count(got, "The tool was not run."))
}

// TestPolicyCases runs the policy's test cases (policy.cases.yaml).
func TestPolicyCases(t *testing.T) {
	authztest.RunPolicy(t, "policy.yaml", "policy.cases.yaml", "http.fetch", "docs.search")
}
