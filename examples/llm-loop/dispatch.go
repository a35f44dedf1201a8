package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	openaioption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/taskguard/taskguard/authz"
)

// ErrUnknownTool is the error of a call to a tool the registry does not
// have. Such a call is neither authorized nor dispatched.
var ErrUnknownTool = errors.New("unknown tool")

// Tool is a local tool the model may call.
type Tool struct {
	// Name is the model's name for the tool. Both APIs allow only letters,
	// digits, '_' and '-', so it is usually not the guard's name.
	Name        string
	Description string
	// Parameters is the JSON Schema "properties" of the tool's arguments
	// object; Required lists the required ones.
	Parameters map[string]any
	Required   []string
	// Guard names the tool for the guard ("http.fetch"), gives its intent,
	// maps the decoded arguments ([authz.DecodeArgs]) to the call's
	// destination and sensitivity, and says how a successful call's result
	// taints the task (Guard.Output; the zero value records the results of
	// read and search calls as untrusted content).
	Guard authz.Tool[map[string]any]
	// Run runs the tool on the same decoded arguments Guard.Describe saw.
	Run func(ctx context.Context, args map[string]any) (string, error)
}

// Registry dispatches model tool calls to local tools, authorizing every
// call with the guard first. It is safe for concurrent use once built.
type Registry struct {
	g     *authz.Guard
	tools []Tool
	calls map[string]func(ctx context.Context, args json.RawMessage) (string, error)
}

// NewRegistry returns a registry of tools guarded by g. Names must be
// unique and non-empty.
func NewRegistry(g *authz.Guard, tools ...Tool) (*Registry, error) {
	r := &Registry{g: g, tools: slices.Clone(tools), calls: map[string]func(context.Context, json.RawMessage) (string, error){}}
	for _, t := range tools {
		if t.Name == "" || t.Guard.Name == "" || t.Run == nil {
			return nil, fmt.Errorf("tool %q: Name, Guard.Name and Run are required", t.Name)
		}
		if _, dup := r.calls[t.Name]; dup {
			return nil, fmt.Errorf("tool %q registered twice", t.Name)
		}
		// WrapJSON decodes the arguments with authz.DecodeArgs, describes
		// and authorizes the call, and only then runs the handler, which
		// decodes the same bytes the same way: the tool acts on exactly the
		// arguments the guard decided on. (DecodeArgs refuses keys equal
		// ignoring case, which a struct decoder would read differently.)
		run := t.Run
		r.calls[t.Name] = authz.WrapJSON(g, t.Guard, func(ctx context.Context, raw json.RawMessage) (string, error) {
			args, err := authz.DecodeArgs(raw)
			if err != nil {
				return "", err
			}
			return run(ctx, args)
		})
	}
	return r, nil
}

// Result is the outcome of one tool call.
type Result struct {
	ID   string // the API's tool call ID
	Tool string // the model's name for the tool
	// Args are the raw arguments, for the host; they are not sent back to
	// the model, and the guard never logs them.
	Args    json.RawMessage
	Content string // the tool's output, when Err is nil
	// Err is a *authz.DeniedError (errors.Is(Err, authz.ErrDenied)) when the
	// guard refused the call, an ErrUnknownTool, or the tool's own error.
	Err error
	// Dispatched reports whether the call reached the tool.
	Dispatched bool
}

// Text is what the model reads: the output, or the error (for a denial the
// tool, rule and reason, never the arguments).
func (r Result) Text() string {
	if r.Err != nil {
		return r.Err.Error()
	}
	return r.Content
}

// Dispatch authorizes and runs one call of tool name with JSON arguments
// raw under the task in ctx. When the tool returns without error, its
// result is recorded on the task ([authz.WrapJSON] with the tool's
// Guard.Output); a denied, failed or unknown call records nothing.
func (r *Registry) Dispatch(ctx context.Context, id, name string, raw json.RawMessage) Result {
	res := Result{ID: id, Tool: name, Args: raw}
	call, ok := r.calls[name]
	if !ok {
		res.Err = fmt.Errorf("%w %q", ErrUnknownTool, name)
		return res
	}
	res.Content, res.Err = call(ctx, raw)
	res.Dispatched = !errors.Is(res.Err, authz.ErrDenied)
	return res
}

// visible returns the tools the task in ctx could use ([authz.Guard.Visible]),
// so the model is offered only those.
func (r *Registry) visible(ctx context.Context) []Tool {
	names := make([]string, len(r.tools))
	for i, t := range r.tools {
		names[i] = t.Guard.Name
	}
	ok := r.g.Visible(ctx, names)
	return slices.DeleteFunc(slices.Clone(r.tools), func(t Tool) bool { return !slices.Contains(ok, t.Guard.Name) })
}

// OpenAITools returns the function tools the task in ctx could use.
func (r *Registry) OpenAITools(ctx context.Context) []openai.ChatCompletionToolUnionParam {
	var out []openai.ChatCompletionToolUnionParam
	for _, t := range r.visible(ctx) {
		out = append(out, openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name:        t.Name,
			Description: openai.String(t.Description),
			Parameters:  shared.FunctionParameters{"type": "object", "properties": t.Parameters, "required": t.Required},
		}))
	}
	return out
}

// AnthropicTools returns the client tools the task in ctx could use.
func (r *Registry) AnthropicTools(ctx context.Context) []anthropic.ToolUnionParam {
	var out []anthropic.ToolUnionParam
	for _, t := range r.visible(ctx) {
		tool := anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{Properties: t.Parameters, Required: t.Required}, t.Name)
		tool.OfTool.Description = anthropic.String(t.Description)
		out = append(out, tool)
	}
	return out
}

// OpenAIToolResults dispatches the tool calls of the completion's first
// choice, in order, and returns the messages that continue the
// conversation: the assistant message, then one "tool" message per call.
// Chat Completions has no error flag, so a failed or denied call's message
// says "error: " and why. Custom (free-form) tool calls are answered with
// an error and not dispatched.
func OpenAIToolResults(ctx context.Context, r *Registry, c *openai.ChatCompletion) ([]openai.ChatCompletionMessageParamUnion, []Result) {
	if len(c.Choices) == 0 {
		return nil, nil
	}
	msg := c.Choices[0].Message
	msgs := []openai.ChatCompletionMessageParamUnion{msg.ToParam()}
	var results []Result
	for _, tc := range msg.ToolCalls {
		var res Result
		switch v := tc.AsAny().(type) {
		case openai.ChatCompletionMessageFunctionToolCall:
			// The arguments are a JSON object encoded as a string.
			res = r.Dispatch(ctx, v.ID, v.Function.Name, json.RawMessage(v.Function.Arguments))
		default:
			res = Result{ID: tc.ID, Tool: tc.Custom.Name, Args: json.RawMessage(tc.Custom.Input), Err: fmt.Errorf("tool call type %q is not supported", tc.Type)}
		}
		results = append(results, res)
		text := res.Text()
		if res.Err != nil {
			text = "error: " + text
		}
		msgs = append(msgs, openai.ToolMessage(text, res.ID))
	}
	return msgs, results
}

// AnthropicToolResults dispatches the message's tool_use blocks, in order,
// and returns the messages that continue the conversation: the assistant
// message, then one user message with a tool_result block per call. A
// failed or denied call's block has is_error set. Other blocks (text,
// thinking, server tools) are not dispatched.
func AnthropicToolResults(ctx context.Context, r *Registry, m *anthropic.Message) ([]anthropic.MessageParam, []Result) {
	var blocks []anthropic.ContentBlockParamUnion
	var results []Result
	for _, b := range m.Content {
		tu, ok := b.AsAny().(anthropic.ToolUseBlock)
		if !ok {
			continue
		}
		// The input is a JSON object.
		res := r.Dispatch(ctx, tu.ID, tu.Name, tu.Input)
		results = append(results, res)
		blocks = append(blocks, anthropic.NewToolResultBlock(res.ID, res.Text(), res.Err != nil))
	}
	if len(blocks) == 0 {
		return []anthropic.MessageParam{m.ToParam()}, nil
	}
	return []anthropic.MessageParam{m.ToParam(), anthropic.NewUserMessage(blocks...)}, results
}

// OpenAICompleter has the signature of client.Chat.Completions.New.
type OpenAICompleter func(ctx context.Context, p openai.ChatCompletionNewParams, opts ...openaioption.RequestOption) (*openai.ChatCompletion, error)

// AnthropicMessager has the signature of client.Messages.New.
type AnthropicMessager func(ctx context.Context, p anthropic.MessageNewParams, opts ...anthropicoption.RequestOption) (*anthropic.Message, error)

// RunOpenAI is the agent loop: it sends p, dispatches the tool calls of
// each completion and sends their results, until a completion calls no
// tool or maxTurns completions were requested. It returns the last
// completion and the results of every call. p is not modified.
func RunOpenAI(ctx context.Context, r *Registry, complete OpenAICompleter, p openai.ChatCompletionNewParams, maxTurns int) (*openai.ChatCompletion, []Result, error) {
	p.Messages = slices.Clone(p.Messages)
	var all []Result
	for range maxTurns {
		c, err := complete(ctx, p)
		if err != nil {
			return nil, all, err
		}
		if len(c.Choices) == 0 {
			return c, all, errors.New("openai: completion has no choices")
		}
		if len(c.Choices[0].Message.ToolCalls) == 0 {
			return c, all, nil
		}
		msgs, results := OpenAIToolResults(ctx, r, c)
		p.Messages = append(p.Messages, msgs...)
		all = append(all, results...)
	}
	return nil, all, fmt.Errorf("openai: no final answer after %d turns", maxTurns)
}

// RunAnthropic is RunOpenAI for the Messages API: it loops while the
// model stops for tool_use.
func RunAnthropic(ctx context.Context, r *Registry, send AnthropicMessager, p anthropic.MessageNewParams, maxTurns int) (*anthropic.Message, []Result, error) {
	p.Messages = slices.Clone(p.Messages)
	var all []Result
	for range maxTurns {
		m, err := send(ctx, p)
		if err != nil {
			return nil, all, err
		}
		if m.StopReason != anthropic.StopReasonToolUse {
			return m, all, nil
		}
		msgs, results := AnthropicToolResults(ctx, r, m)
		p.Messages = append(p.Messages, msgs...)
		all = append(all, results...)
	}
	return nil, all, fmt.Errorf("anthropic: no final answer after %d turns", maxTurns)
}
