package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"
	"github.com/taskguard/taskguard/authz"
)

// Config configures [Middleware]. The zero Config denies every call.
type Config struct {
	// Tools maps eino tool names (the names the model calls) to how
	// taskguard sees each tool: its taskguard name, default intent, a
	// Describe that maps the decoded JSON arguments to destination,
	// sensitivity and intent, and how a successful call's result taints the
	// task (Output; the zero value records the results of read and search
	// calls as untrusted content). A call to a tool missing from Tools is
	// denied. Middleware copies the map.
	Tools map[string]authz.Tool[map[string]any]
	// OnDeny turns a denied call into the tool's result. A string result
	// becomes the call's tool message, which the model reads; an error fails
	// the whole ToolsNode run (eino then drops the results of the other
	// calls in the message, and the model never sees the denial). Nil means
	// [ReportDenial]. The tool never runs on a deny, whatever OnDeny returns.
	OnDeny func(ctx context.Context, err *authz.DeniedError) (string, error)
}

// ReportDenial is the default [Config.OnDeny]: the denial becomes the tool's
// result text, so the model learns the call was refused and why, and the
// other calls of the same message still return. It never includes the
// call's arguments.
func ReportDenial(_ context.Context, err *authz.DeniedError) (string, error) {
	return fmt.Sprintf("denied by taskguard (rule %s): %s. The tool was not run.",
		err.Decision.Rule, err.Decision.Reason), nil
}

// AbortOnDenial is a [Config.OnDeny] that fails the ToolsNode run with the
// *authz.DeniedError (errors.Is(err, authz.ErrDenied) holds for what
// ToolsNode.Invoke returns). Use it when a denial must stop the agent.
func AbortOnDenial(_ context.Context, err *authz.DeniedError) (string, error) {
	return "", err
}

// Middleware returns a compose.ToolMiddleware, for
// compose.ToolsNodeConfig.ToolCallMiddlewares, that authorizes every tool
// call of the ToolsNode with g, for the task in the call's context, before
// the tool runs. It hooks all four endpoint kinds (invokable, streamable and
// their enhanced variants), so no tool is left unguarded whichever
// interfaces it implements and whether the node runs by Invoke or Stream.
//
// For each call it decodes the JSON arguments with [authz.DecodeArgs],
// describes the call with the tool's Describe and decides with
// [authz.Guard.Authorize]; on a deny the tool is not called and
// cfg.OnDeny decides the result. Arguments a tool could read differently
// from the guard — invalid UTF-8, or two keys of one object that are equal
// ignoring case (Go's and sonic's struct decoding match keys without case,
// so {"url": ok, "URL": bad} would reach the tool as bad) — are denied. The
// tool receives exactly the arguments that were authorized. Once a tool
// returned without error, its result is recorded on the task with
// [authz.Guard.ObserveOutput] and the tool's Output: by default the result
// of a read or search call taints the task as untrusted content of the
// call's sensitivity, since the model reads it. A denied or failed call
// records nothing; a streamed result is recorded when its stream opens.
//
// Middleware panics if g is nil. The middleware is safe for concurrent use
// (eino runs a message's tool calls in parallel).
func Middleware(g *authz.Guard, cfg Config) compose.ToolMiddleware {
	if g == nil {
		panic("eino: Middleware needs a guard")
	}
	m := &guard{g: g, tools: maps.Clone(cfg.Tools), onDeny: cfg.OnDeny}
	if m.onDeny == nil {
		m.onDeny = ReportDenial
	}
	return compose.ToolMiddleware{
		Invokable: func(next compose.InvokableToolEndpoint) compose.InvokableToolEndpoint {
			return guarded(m, next, func(text string) *compose.ToolOutput {
				return &compose.ToolOutput{Result: text}
			})
		},
		Streamable: func(next compose.StreamableToolEndpoint) compose.StreamableToolEndpoint {
			return guarded(m, next, func(text string) *compose.StreamToolOutput {
				return &compose.StreamToolOutput{Result: schema.StreamReaderFromArray([]string{text})}
			})
		},
		EnhancedInvokable: func(next compose.EnhancedInvokableToolEndpoint) compose.EnhancedInvokableToolEndpoint {
			return guarded(m, next, func(text string) *compose.EnhancedInvokableToolOutput {
				return &compose.EnhancedInvokableToolOutput{Result: textResult(text)}
			})
		},
		EnhancedStreamable: func(next compose.EnhancedStreamableToolEndpoint) compose.EnhancedStreamableToolEndpoint {
			return guarded(m, next, func(text string) *compose.EnhancedStreamableToolOutput {
				return &compose.EnhancedStreamableToolOutput{
					Result: schema.StreamReaderFromArray([]*schema.ToolResult{textResult(text)})}
			})
		},
	}
}

// guarded wraps next, one of eino's four tool endpoint shapes (their
// outputs are O): the call is authorized first; on a deny next is not
// called and the text OnDeny returns becomes the output through deniedOut;
// otherwise next runs and its result is recorded on the task.
func guarded[O any](m *guard, next func(context.Context, *compose.ToolInput) (O, error), deniedOut func(text string) O) func(context.Context, *compose.ToolInput) (O, error) {
	return func(ctx context.Context, in *compose.ToolInput) (O, error) {
		c, err := m.authorize(ctx, in)
		if err != nil {
			text, err := m.denied(ctx, err)
			if err != nil {
				var zero O
				return zero, err
			}
			return deniedOut(text), nil
		}
		out, err := next(ctx, in)
		m.observe(ctx, in, c, err)
		return out, err
	}
}

// guard is the state behind one Middleware. It is immutable.
type guard struct {
	g      *authz.Guard
	tools  map[string]authz.Tool[map[string]any]
	onDeny func(ctx context.Context, err *authz.DeniedError) (string, error)
}

// authorize decides one tool call and returns the call it decided. The
// error is nil (allowed) or an *authz.DeniedError.
func (m *guard) authorize(ctx context.Context, in *compose.ToolInput) (authz.Call, error) {
	t, ok := m.tools[in.Name]
	if !ok {
		return authz.Call{}, m.undescribed(ctx, in.Name, fmt.Errorf("eino tool %q has no taskguard description", in.Name))
	}
	if err := checkKeys(in.Arguments); err != nil {
		return authz.Call{}, m.undescribed(ctx, t.Name, err)
	}
	args, err := authz.DecodeArgs([]byte(in.Arguments))
	if err != nil {
		return authz.Call{}, m.undescribed(ctx, t.Name, err)
	}
	c, err := t.Call(args)
	if err != nil {
		return authz.Call{}, m.undescribed(ctx, t.Name, err)
	}
	if c.Args == nil {
		c.Args = args
	}
	return c, m.g.Authorize(ctx, c)
}

// undescribed returns the denial for a call that could not be described,
// with the same rule (authz.RuleDescribe) that authz.WrapJSON uses.
func (m *guard) undescribed(ctx context.Context, tool string, err error) error {
	d := authz.Decision{Effect: authz.Deny, Rule: authz.RuleDescribe,
		Reason: "could not describe the call: " + err.Error(), Err: err,
		PolicyVersion: m.g.Policy().Version()}
	if t, ok := authz.TaskFrom(ctx); ok {
		d.Task = t.ID()
	}
	return &authz.DeniedError{Decision: d, Tool: tool}
}

// denied hands a denial to OnDeny.
func (m *guard) denied(ctx context.Context, err error) (string, error) {
	var de *authz.DeniedError
	if !errors.As(err, &de) {
		return "", err // not reached: authorize returns only denials
	}
	return m.onDeny(ctx, de)
}

// observe records on the task that the model is about to read what the
// tool of in returned for the allowed call c, unless the tool failed.
func (m *guard) observe(ctx context.Context, in *compose.ToolInput, c authz.Call, err error) {
	if err != nil {
		return
	}
	m.g.ObserveOutput(ctx, c, m.tools[in.Name].Output)
}

func textResult(text string) *schema.ToolResult {
	return &schema.ToolResult{Parts: []schema.ToolOutputPart{{Type: schema.ToolPartTypeText, Text: text}}}
}

// checkKeys rejects arguments that a tool's own decoder could read
// differently from authz.DecodeArgs: invalid UTF-8, and any object holding
// two keys equal under Unicode case folding (exact duplicates included).
// Syntax errors are left to DecodeArgs.
func checkKeys(raw string) error {
	if !utf8.ValidString(raw) {
		return errors.New("arguments are not valid UTF-8")
	}
	type level struct {
		keys    map[string]bool // nil for an array
		wantKey bool            // the next string token of an object is a key
	}
	var stack []*level
	dec := json.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // DecodeArgs reports it
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &level{keys: map[string]bool{}, wantKey: true})
			case '[':
				stack = append(stack, &level{})
			default: // '}' or ']': a value of the enclosing object ends
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].keys != nil {
					stack[len(stack)-1].wantKey = true
				}
			}
		case string:
			if top != nil && top.keys != nil && top.wantKey {
				k := foldKey(v)
				if top.keys[k] {
					return fmt.Errorf("arguments repeat the key %q (keys are matched ignoring case)", v)
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
			if top != nil && top.keys != nil {
				top.wantKey = true
			}
		default:
			if top != nil && top.keys != nil {
				top.wantKey = true
			}
		}
	}
}

// foldKey maps s to one representative of its Unicode simple case folding
// orbit (the one bytes.EqualFold and encoding/json use), so keys equal
// ignoring case have the same foldKey.
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}
