package main

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"strings"
	"sync"

	"google.golang.org/adk/v2/model"
	"google.golang.org/genai"
)

// scriptedModel is a model.LLM that plays a script instead of calling an
// LLM, so the example needs no network and no API key. For a user message
// it knows, it makes the scripted tool calls, turn by turn; then it answers
// with the tool responses it received, in text. It records every tool
// response it was sent. It is safe for concurrent use.
type scriptedModel struct {
	// script maps a user message to the model's turns, each a list of tool
	// calls (more than one: ADK runs them in parallel).
	script map[string][][]*genai.FunctionCall

	// mu guards seen.
	mu   sync.Mutex
	seen []*genai.FunctionResponse
}

func (m *scriptedModel) Name() string { return "scripted" }

// GenerateContent answers req with one complete response, streaming or not.
func (m *scriptedModel) GenerateContent(ctx context.Context, req *model.LLMRequest, stream bool) iter.Seq2[*model.LLMResponse, error] {
	return func(yield func(*model.LLMResponse, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(nil, err)
			return
		}
		yield(&model.LLMResponse{Content: m.next(req.Contents), TurnComplete: true}, nil)
	}
}

// next returns the model's turn after contents: the next scripted call for
// the last user message, or, when there is none, the tool responses since
// that message.
func (m *scriptedModel) next(contents []*genai.Content) *genai.Content {
	prompt, turns, responses := "", 0, []*genai.FunctionResponse(nil)
	for _, c := range contents {
		calls := false
		for _, p := range c.Parts {
			switch {
			case c.Role == genai.RoleUser && p.Text != "":
				prompt, turns, responses = p.Text, 0, nil
			case p.FunctionCall != nil:
				calls = true
			case p.FunctionResponse != nil:
				responses = append(responses, p.FunctionResponse)
			}
		}
		if calls {
			turns++
		}
	}
	if last := contents[len(contents)-1]; len(last.Parts) > 0 && last.Parts[0].FunctionResponse != nil {
		m.mu.Lock()
		for _, p := range last.Parts {
			m.seen = append(m.seen, p.FunctionResponse)
		}
		m.mu.Unlock()
	}
	if script := m.script[prompt]; turns < len(script) {
		reply := &genai.Content{Role: genai.RoleModel}
		for _, fc := range script[turns] {
			c := *fc
			c.Args = maps.Clone(c.Args) // ADK fills in the ID; callbacks may change args
			reply.Parts = append(reply.Parts, &genai.Part{FunctionCall: &c})
		}
		return reply
	}
	var b strings.Builder
	for _, r := range responses {
		if e, ok := r.Response["error"]; ok {
			fmt.Fprintf(&b, "%s failed: %v. ", r.Name, e)
		} else {
			fmt.Fprintf(&b, "%s: %v. ", r.Name, r.Response["result"])
		}
	}
	if b.Len() == 0 {
		b.WriteString("I have nothing scripted for that.")
	}
	return genai.NewContentFromText(strings.TrimSpace(b.String()), genai.RoleModel)
}

// responses returns the tool responses the model has been sent.
func (m *scriptedModel) responses() []*genai.FunctionResponse {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*genai.FunctionResponse(nil), m.seen...)
}

// call returns a function call of tool with args.
func call(tool string, args map[string]any) *genai.FunctionCall {
	return &genai.FunctionCall{Name: tool, Args: args}
}
