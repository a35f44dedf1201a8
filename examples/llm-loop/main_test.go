package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

// setup returns a registry over a fresh toolbox and a context with a task.
func setup(t *testing.T) (*Registry, *toolbox, context.Context) {
	t.Helper()
	g, err := newGuard()
	require.NoError(t, err)
	tb := &toolbox{}
	reg, err := NewRegistry(g, tb.tools()...)
	require.NoError(t, err)
	ctx, task, err := beginTask(g)
	require.NoError(t, err)
	t.Cleanup(task.End)
	return reg, tb, ctx
}

func load[T any](t *testing.T, file string) *T {
	t.Helper()
	data, err := recorded.ReadFile("testdata/" + file)
	require.NoError(t, err)
	v := new(T)
	require.NoError(t, json.Unmarshal(data, v))
	return v
}

// toJSON marshals v and decodes it again into generic JSON.
func toJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestRun(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(&out))
	got := out.String()
	for _, want := range []string{
		"tools offered to the model: fetch_url, read_file (",
		"DENIED fetch_url {\"url\":\"http://169.254.169.254/latest/meta-data/iam/security-credentials/\"}\n       -> \"authz: http.fetch denied by no-private-network",
		"DENIED read_file {\"path\":\"notes/../../etc/passwd\"}\n       -> \"authz: fs.read denied by files-stay-in-workspace",
		"DENIED fetch_url {\"url\": \"http://[::ffff:169.254.169.254]",
		"DENIED read_file {\"path\": \"/workspace/notes/../../root/.ssh/id_ed25519\"}",
		`"is_error":true`,
		`"content":"error: authz: http.fetch denied by no-private-network`,
		"calls that reached a tool: fetch_url https://api.github.com/repos/taskguard/taskguard, read_file /workspace/notes/plan.md, " +
			"fetch_url https://api.github.com/repos/taskguard/taskguard/readme, read_file /workspace/notes/plan.md\n",
	} {
		assert.Contains(t, got, want)
	}
	assert.Equal(t, 4, strings.Count(got, "DENIED "))
	assert.Equal(t, 4, strings.Count(got, "ran    "))
}

func TestRecordedResponsesDecode(t *testing.T) {
	t.Parallel()
	c := load[openai.ChatCompletion](t, "openai_tool_calls.json")
	require.Len(t, c.Choices, 1)
	assert.Equal(t, "tool_calls", c.Choices[0].FinishReason)
	require.Len(t, c.Choices[0].Message.ToolCalls, 4)
	for _, tc := range c.Choices[0].Message.ToolCalls {
		fn, ok := tc.AsAny().(openai.ChatCompletionMessageFunctionToolCall)
		require.True(t, ok)
		assert.True(t, strings.HasPrefix(fn.ID, "call_"))
		assert.True(t, json.Valid([]byte(fn.Function.Arguments)), "OpenAI arguments are a JSON string")
	}

	m := load[anthropic.Message](t, "anthropic_tool_use.json")
	assert.Equal(t, anthropic.StopReasonToolUse, m.StopReason)
	require.Len(t, m.Content, 5)
	assert.Equal(t, "text", m.Content[0].Type)
	for _, b := range m.Content[1:] {
		tu, ok := b.AsAny().(anthropic.ToolUseBlock)
		require.True(t, ok)
		assert.True(t, strings.HasPrefix(tu.ID, "toolu_"))
		assert.Equal(t, byte('{'), tu.Input[0], "Anthropic input is a JSON object")
	}

	for _, f := range []string{"openai_final.json", "anthropic_final.json"} {
		data, err := recorded.ReadFile("testdata/" + f)
		require.NoError(t, err)
		assert.True(t, json.Valid(data), f)
	}
}

func TestOpenAIToolResults(t *testing.T) {
	t.Parallel()
	reg, tb, ctx := setup(t)
	msgs, results := OpenAIToolResults(ctx, reg, load[openai.ChatCompletion](t, "openai_tool_calls.json"))

	require.Len(t, results, 4)
	assert.Equal(t, []bool{true, false, true, false}, dispatched(results))
	assertDenied(t, results[1], "no-private-network")
	assertDenied(t, results[3], "files-stay-in-workspace")
	assert.Equal(t, []string{"fetch_url https://api.github.com/repos/taskguard/taskguard", "read_file /workspace/notes/plan.md"}, tb.Ran())

	// The next turn: the assistant message with its tool calls, then one
	// tool message per call, in order.
	require.Len(t, msgs, 5)
	asst, ok := toJSON(t, msgs[0]).(map[string]any)
	require.True(t, ok)
	assert.Equal(t, "assistant", asst["role"])
	calls, ok := asst["tool_calls"].([]any)
	require.True(t, ok)
	require.Len(t, calls, 4)
	for i, want := range []struct {
		id, content string
	}{
		{"call_8hVZkq2TfW1sNdLx0mYcR3pE", `200 OK {"full_name":"taskguard/taskguard"`},
		{"call_Qm4oB7uXj9gKe2HrTz6aWs1V", "error: authz: http.fetch denied by no-private-network: private addresses and cloud metadata are off limits (SSRF)"},
		{"call_Ld5nF0cYw3vPi8JqUb2ZtGx7", "# Plan\n"},
		{"call_Xr1eM6kSa4dHo9CyVn3BqWj2", "error: authz: fs.read denied by files-stay-in-workspace: files outside /workspace are off limits"},
	} {
		require.NotNil(t, msgs[i+1].OfTool, "a tool message built with openai.ToolMessage")
		m, ok := toJSON(t, msgs[i+1]).(map[string]any)
		require.True(t, ok)
		assert.Equal(t, "tool", m["role"])
		assert.Equal(t, want.id, m["tool_call_id"])
		assert.Equal(t, want.id, calls[i].(map[string]any)["id"], "the result answers the call in the same position")
		content, _ := m["content"].(string)
		assert.True(t, strings.HasPrefix(content, want.content), content)
		assert.NotContains(t, content, "169.254", "the denial does not echo the arguments")
		assert.NotContains(t, content, "passwd")
	}
}

func TestAnthropicToolResults(t *testing.T) {
	t.Parallel()
	reg, tb, ctx := setup(t)
	msgs, results := AnthropicToolResults(ctx, reg, load[anthropic.Message](t, "anthropic_tool_use.json"))

	require.Len(t, results, 4)
	assert.Equal(t, []bool{true, false, true, false}, dispatched(results))
	assertDenied(t, results[1], "no-private-network")
	assertDenied(t, results[3], "files-stay-in-workspace")
	assert.Equal(t, []string{"fetch_url https://api.github.com/repos/taskguard/taskguard/readme", "read_file /workspace/notes/plan.md"}, tb.Ran())

	require.Len(t, msgs, 2)
	asst, ok := toJSON(t, msgs[0]).(map[string]any)
	require.True(t, ok)
	assert.Equal(t, "assistant", asst["role"])
	asstContent, ok := asst["content"].([]any)
	require.True(t, ok)
	require.Len(t, asstContent, 5, "the text block and the four tool_use blocks go back as they came")

	user, ok := toJSON(t, msgs[1]).(map[string]any)
	require.True(t, ok)
	assert.Equal(t, "user", user["role"])
	blocks, ok := user["content"].([]any)
	require.True(t, ok)
	require.Len(t, blocks, 4)
	for i, want := range []struct {
		isError bool
		text    string
	}{
		{false, `200 OK {"full_name":"taskguard/taskguard"`},
		{true, "authz: http.fetch denied by no-private-network: private addresses and cloud metadata are off limits (SSRF)"},
		{false, "# Plan\n"},
		{true, "authz: fs.read denied by files-stay-in-workspace: files outside /workspace are off limits"},
	} {
		b, ok := blocks[i].(map[string]any)
		require.True(t, ok)
		assert.Equal(t, "tool_result", b["type"])
		assert.Equal(t, asstContent[i+1].(map[string]any)["id"], b["tool_use_id"])
		assert.Equal(t, want.isError, b["is_error"])
		content, ok := b["content"].([]any)
		require.True(t, ok)
		require.Len(t, content, 1)
		text := content[0].(map[string]any)
		assert.Equal(t, "text", text["type"])
		assert.True(t, strings.HasPrefix(text["text"].(string), want.text), text["text"])
		assert.NotContains(t, text["text"], ".ssh")
	}
}

func TestDispatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, tool, args string
		rule             string // the denying rule; "" when the call runs
		ran              string // what reached the tool
	}{
		{"https fetch", "fetch_url", `{"url":"https://api.github.com/repos/taskguard/taskguard"}`, "", "fetch_url https://api.github.com/repos/taskguard/taskguard"},
		{"metadata", "fetch_url", `{"url":"http://169.254.169.254/latest/meta-data/"}`, "no-private-network", ""},
		{"metadata in hex", "fetch_url", `{"url":"http://0xa9fea9fe/"}`, "no-private-network", ""},
		{"metadata as an integer", "fetch_url", `{"url":"http://2852039166/"}`, "no-private-network", ""},
		{"metadata over https", "fetch_url", `{"url":"https://169.254.169.254/"}`, "no-private-network", ""},
		{"localhost", "fetch_url", `{"url":"https://localhost:8080/admin"}`, "no-private-network", ""},
		{"userinfo", "fetch_url", `{"url":"https://api.github.com@169.254.169.254/"}`, authz.RuleDestination, ""},
		{"repeated key", "fetch_url", `{"url":"https://api.github.com/","url":"http://169.254.169.254/"}`, authz.RuleDescribe, ""},
		{"keys equal ignoring case", "fetch_url", `{"url":"https://api.github.com/","URL":"http://169.254.169.254/"}`, authz.RuleDescribe, ""},
		{"url is not a string", "fetch_url", `{"url":["http://169.254.169.254/"]}`, authz.RuleDescribe, ""},
		{"arguments are not JSON", "fetch_url", `{"url": "https://api.github.com/`, authz.RuleDescribe, ""},
		{"arguments are not an object", "fetch_url", `["https://api.github.com/"]`, authz.RuleDescribe, ""},
		{"workspace file", "read_file", `{"path":"notes/plan.md"}`, "", "read_file /workspace/notes/plan.md"},
		{"relative traversal", "read_file", `{"path":"../etc/shadow"}`, "files-stay-in-workspace", ""},
		{"absolute traversal", "read_file", `{"path":"/workspace/../etc/shadow"}`, "files-stay-in-workspace", ""},
		{"absolute path outside", "read_file", `{"path":"/etc/passwd"}`, "files-stay-in-workspace", ""},
		{"a URL is a file name to this tool", "read_file", `{"path":"file:///etc/passwd"}`, "", "read_file /workspace/file:/etc/passwd"},
		{"NUL byte", "read_file", `{"path":"notes/plan.md\u0000.txt"}`, authz.RuleDestination, ""},
		{"an intent and tool the task does not have", "send_email", `{"to":"partner@example.org","body":"hi"}`, authz.RuleIntent, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg, tb, ctx := setup(t)
			res := reg.Dispatch(ctx, "id-1", tc.tool, json.RawMessage(tc.args))
			assert.Equal(t, "id-1", res.ID)
			if tc.rule == "" {
				assert.NotErrorIs(t, res.Err, authz.ErrDenied)
				assert.True(t, res.Dispatched)
				assert.Equal(t, []string{tc.ran}, tb.Ran())
				return
			}
			assertDenied(t, res, tc.rule)
			assert.Empty(t, tb.Ran(), "a denied call never reaches a tool")
		})
	}
}

// TestDispatchTaints checks that the result of a call the guard allowed and
// the tool completed taints the task, once, and that denied, failed and
// unknown calls leave it clean.
func TestDispatchTaints(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, tool, args string
		want             authz.Taint
	}{
		{"successful read", "read_file", `{"path":"notes/plan.md"}`,
			authz.Taint{Sensitivity: authz.Internal, Untrusted: true, Sources: []string{"fs.read /workspace/notes/plan.md"}}},
		{"successful fetch", "fetch_url", `{"url":"https://api.github.com/repos/taskguard/taskguard"}`,
			authz.Taint{Sensitivity: authz.Public, Untrusted: true, Sources: []string{"http.fetch https://api.github.com/repos/taskguard/taskguard"}}},
		{"denied read", "read_file", `{"path":"../etc/shadow"}`, authz.Taint{}},
		{"denied fetch", "fetch_url", `{"url":"http://169.254.169.254/latest/meta-data/"}`, authz.Taint{}},
		{"failed read", "read_file", `{"path":"missing.md"}`, authz.Taint{}},
		{"unknown tool", "run_shell", `{"cmd":"id"}`, authz.Taint{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg, _, ctx := setup(t)
			task, ok := authz.TaskFrom(ctx)
			require.True(t, ok)

			reg.Dispatch(ctx, "id-1", tc.tool, json.RawMessage(tc.args))

			got := task.Taint()
			if len(got.Sources) == 0 {
				got.Sources = nil
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDispatchWithoutToolOrTask(t *testing.T) {
	t.Parallel()
	reg, tb, ctx := setup(t)

	res := reg.Dispatch(ctx, "id-1", "run_shell", json.RawMessage(`{"cmd":"curl 169.254.169.254"}`))
	require.ErrorIs(t, res.Err, ErrUnknownTool)
	assert.False(t, res.Dispatched)
	assert.Equal(t, `unknown tool "run_shell"`, res.Text())

	res = reg.Dispatch(context.Background(), "id-2", "read_file", json.RawMessage(`{"path":"notes/plan.md"}`))
	assertDenied(t, res, authz.RuleNoTask)

	res = reg.Dispatch(ctx, "id-3", "read_file", json.RawMessage(`{"path":"missing.md"}`))
	assert.True(t, res.Dispatched, "the guard allowed it; the tool failed")
	require.Error(t, res.Err)
	assert.NotErrorIs(t, res.Err, authz.ErrDenied)
	assert.Equal(t, []string{"read_file /workspace/missing.md"}, tb.Ran())
}

func TestOpenAICustomToolCallIsNotDispatched(t *testing.T) {
	t.Parallel()
	reg, tb, ctx := setup(t)
	var c openai.ChatCompletion
	require.NoError(t, json.Unmarshal([]byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1767225600,"model":"gpt-5.4-mini",
		"choices":[{"index":0,"finish_reason":"tool_calls","logprobs":null,"message":{"role":"assistant","content":null,"refusal":null,
		"tool_calls":[{"id":"call_1","type":"custom","custom":{"name":"fetch_url","input":"http://169.254.169.254/"}}]}}]}`), &c))
	msgs, results := OpenAIToolResults(ctx, reg, &c)
	require.Len(t, results, 1)
	assert.False(t, results[0].Dispatched)
	require.Len(t, msgs, 2)
	m := toJSON(t, msgs[1]).(map[string]any)
	assert.Equal(t, `error: tool call type "custom" is not supported`, m["content"])
	assert.Equal(t, "call_1", m["tool_call_id"])
	assert.Empty(t, tb.Ran())
}

// TestLoops checks the requests each loop sends: the second carries the
// conversation so far with the tool results, and the tools offered.
func TestLoops(t *testing.T) {
	t.Parallel()
	t.Run("openai", func(t *testing.T) {
		t.Parallel()
		reg, _, ctx := setup(t)
		rp := &openAIReplay{files: []string{"openai_tool_calls.json", "openai_final.json"}}
		first := []openai.ChatCompletionMessageParamUnion{openai.UserMessage(question)}
		final, results, err := RunOpenAI(ctx, reg, rp.next, openai.ChatCompletionNewParams{
			Model: openai.ChatModelGPT5_4Mini, Messages: first, Tools: reg.OpenAITools(ctx),
		}, 4)
		require.NoError(t, err)
		assert.Equal(t, "stop", final.Choices[0].FinishReason)
		assert.Len(t, results, 4)
		assert.Len(t, first, 1, "the caller's messages are not modified")

		reqs := rp.Requests()
		require.Len(t, reqs, 2)
		req := toJSON(t, reqs[1]).(map[string]any)
		assert.Equal(t, "gpt-5.4-mini", req["model"])
		var roles []string
		for _, m := range req["messages"].([]any) {
			roles = append(roles, m.(map[string]any)["role"].(string))
		}
		assert.Equal(t, []string{"user", "assistant", "tool", "tool", "tool", "tool"}, roles)
		assert.Equal(t, []string{"fetch_url", "read_file"}, toolNamesJSON(t, req["tools"], "function", "name"))
	})
	t.Run("anthropic", func(t *testing.T) {
		t.Parallel()
		reg, _, ctx := setup(t)
		rp := &anthropicReplay{files: []string{"anthropic_tool_use.json", "anthropic_final.json"}}
		final, results, err := RunAnthropic(ctx, reg, rp.next, anthropic.MessageNewParams{
			Model: anthropic.ModelClaudeSonnet4_6, MaxTokens: 1024,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(question))},
			Tools:    reg.AnthropicTools(ctx),
		}, 4)
		require.NoError(t, err)
		assert.Equal(t, anthropic.StopReasonEndTurn, final.StopReason)
		assert.Len(t, results, 4)

		reqs := rp.Requests()
		require.Len(t, reqs, 2)
		req := toJSON(t, reqs[1]).(map[string]any)
		assert.Equal(t, "claude-sonnet-4-6", req["model"])
		var roles []string
		for _, m := range req["messages"].([]any) {
			roles = append(roles, m.(map[string]any)["role"].(string))
		}
		assert.Equal(t, []string{"user", "assistant", "user"}, roles)
		assert.Equal(t, []string{"fetch_url", "read_file"}, toolNamesJSON(t, req["tools"], "name"))
		tool := req["tools"].([]any)[0].(map[string]any)
		assert.Equal(t, map[string]any{"type": "object", "required": []any{"url"},
			"properties": map[string]any{"url": map[string]any{"type": "string", "description": "The absolute URL to fetch."}}}, tool["input_schema"])
	})
	t.Run("no final answer", func(t *testing.T) {
		t.Parallel()
		reg, tb, ctx := setup(t)
		rp := &openAIReplay{files: []string{"openai_tool_calls.json", "openai_tool_calls.json", "openai_final.json"}}
		_, results, err := RunOpenAI(ctx, reg, rp.next, openai.ChatCompletionNewParams{Model: openai.ChatModelGPT5_4Mini}, 2)
		require.ErrorContains(t, err, "no final answer after 2 turns")
		assert.Len(t, results, 8)
		assert.Len(t, tb.Ran(), 4)
	})
	t.Run("client error", func(t *testing.T) {
		t.Parallel()
		reg, _, ctx := setup(t)
		boom := errors.New("503 Service Unavailable")
		_, _, err := RunAnthropic(ctx, reg, func(context.Context, anthropic.MessageNewParams, ...anthropicoption.RequestOption) (*anthropic.Message, error) {
			return nil, boom
		}, anthropic.MessageNewParams{}, 2)
		require.ErrorIs(t, err, boom)
	})
}

func TestToolsOffered(t *testing.T) {
	t.Parallel()
	reg, _, ctx := setup(t)
	assert.Len(t, reg.OpenAITools(ctx), 2)
	assert.Len(t, reg.AnthropicTools(ctx), 2)
	assert.Empty(t, reg.OpenAITools(context.Background()), "no task, no tools")
	assert.Empty(t, reg.AnthropicTools(context.Background()))
}

func TestNewRegistryRejectsBadTools(t *testing.T) {
	t.Parallel()
	g, err := newGuard()
	require.NoError(t, err)
	tools := (&toolbox{}).tools()
	_, err = NewRegistry(g, tools[0], tools[0])
	require.ErrorContains(t, err, "registered twice")
	noRun := tools[1]
	noRun.Run = nil
	_, err = NewRegistry(g, noRun)
	require.ErrorContains(t, err, "are required")
}

func dispatched(rs []Result) []bool {
	var out []bool
	for _, r := range rs {
		out = append(out, r.Dispatched)
	}
	return out
}

func assertDenied(t *testing.T, r Result, rule string) {
	t.Helper()
	assert.False(t, r.Dispatched)
	denied, ok := errors.AsType[*authz.DeniedError](r.Err)
	if assert.True(t, ok, "want a denial, got %v", r.Err) {
		assert.Equal(t, rule, denied.Decision.Rule)
		assert.Contains(t, r.Text(), " denied by "+rule+": ")
	}
}

// toolNamesJSON returns the names of tools in generic JSON, found at path
// inside each tool.
func toolNamesJSON(t *testing.T, tools any, path ...string) []string {
	t.Helper()
	var names []string
	for _, tool := range tools.([]any) {
		v := tool
		for _, k := range path {
			v = v.(map[string]any)[k]
		}
		names = append(names, v.(string))
	}
	return names
}

// TestPolicyCases runs the policy's test cases (policy.cases.yaml).
func TestPolicyCases(t *testing.T) {
	authztest.RunPolicy(t, "policy.yaml", "policy.cases.yaml", "http.fetch", "fs.read", "mail.send")
}

// TestReadFilePaths: the fs.read cases use the paths read_file's Describe
// gives the guard.
func TestReadFilePaths(t *testing.T) {
	assert.Equal(t, "/etc/passwd", resolve("notes/../../etc/passwd"))
	assert.Equal(t, "/workspace/file:/etc/passwd", resolve("file:///etc/passwd"))
}
