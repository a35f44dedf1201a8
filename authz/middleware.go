package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Tool describes a tool to [Wrap]: its name, its default intent, and how to
// map the tool's arguments of type A to a [Call].
type Tool[A any] struct {
	// Name is the tool's name. Required.
	Name string
	// Intent is the call's intent when Describe leaves it empty.
	Intent string
	// Describe maps the arguments to a call: destination, sensitivity,
	// intent (e.g. GET → read, POST → write) and the args policies see. The
	// call's Tool is always Name. Nil means Call{Tool: Name, Intent: Intent}
	// (for WrapJSON, with the decoded arguments as Args). An error or a
	// panic denies the call.
	Describe func(args A) (Call, error)
}

// describe builds the call for args, recovering a panicking Describe.
func (t *Tool[A]) describe(args A) (c Call, err error) {
	if t.Name == "" {
		return Call{}, errors.New("tool has no name")
	}
	if t.Describe != nil {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("describe panicked: %v", r)
			}
		}()
		c, err = t.Describe(args)
		if err != nil {
			return Call{}, err
		}
		if c.Tool != "" && c.Tool != t.Name {
			return Call{}, fmt.Errorf("describe returned tool %q for tool %q", c.Tool, t.Name)
		}
	}
	c.Tool = t.Name
	if c.Intent == "" {
		c.Intent = t.Intent
	}
	return c, nil
}

// DescribeError records the denial of a call that could not be described
// (its arguments did not decode, its describer failed) in the audit log and
// returns the *DeniedError (RuleDescribe) to give the caller. Integrations
// that describe calls themselves use it so such denials are audited like
// any other; Wrap and WrapJSON use it too.
func (g *Guard) DescribeError(ctx context.Context, tool string, err error) error {
	return g.denyDescribe(ctx, tool, err)
}

func (g *Guard) denyDescribe(ctx context.Context, tool string, err error) error {
	d := Decision{Rule: RuleDescribe, Reason: "could not describe the call: " + err.Error(), Err: err,
		PolicyVersion: g.state.Load().policy.version}
	t, _ := TaskFrom(ctx)
	if t != nil {
		d.Task = t.id
	}
	if g.logger != nil {
		g.audit(ctx, t, &Call{Tool: tool}, &d, 0)
	}
	return &DeniedError{Decision: d, Tool: tool}
}

// Wrap returns a handler that authorizes every invocation of h with
// [Guard.Authorize] before calling it. On a deny, h is not called and the
// *[DeniedError] is returned with the zero R. The wrapper does not modify
// args.
func Wrap[A, R any](g *Guard, t Tool[A], h func(ctx context.Context, args A) (R, error)) func(ctx context.Context, args A) (R, error) {
	return func(ctx context.Context, args A) (R, error) {
		var zero R
		c, err := t.describe(args)
		if err != nil {
			return zero, g.denyDescribe(ctx, t.Name, err)
		}
		if err := g.Authorize(ctx, c); err != nil {
			return zero, err
		}
		return h(ctx, args)
	}
}

// WrapJSON is [Wrap] for handlers that take raw JSON arguments (MCP, most
// agent frameworks, model tool calls). The arguments must be a JSON object;
// they are decoded once (integers as int64, other numbers as float64) and
// passed to Describe and, when Describe sets no Args, to policies as args.
// h receives the original bytes.
func WrapJSON[R any](g *Guard, t Tool[map[string]any], h func(ctx context.Context, args json.RawMessage) (R, error)) func(ctx context.Context, args json.RawMessage) (R, error) {
	return func(ctx context.Context, raw json.RawMessage) (R, error) {
		var zero R
		args, err := DecodeArgs(raw)
		if err != nil {
			return zero, g.denyDescribe(ctx, t.Name, err)
		}
		c, err := t.describe(args)
		if err != nil {
			return zero, g.denyDescribe(ctx, t.Name, err)
		}
		if c.Args == nil {
			c.Args = args
		}
		if err := g.Authorize(ctx, c); err != nil {
			return zero, err
		}
		return h(ctx, raw)
	}
}

// DecodeArgs decodes JSON tool arguments into the shape policies see as
// args: an object whose integers are int64 and other numbers float64.
// Empty input or null is an empty object; any other non-object is an error.
//
// Input a tool could read differently from the policy is refused: invalid
// UTF-8, and any object with two keys that are equal ignoring case (Go's
// encoding/json and most decoders match struct fields case-insensitively
// and let the last key win, so {"url": "https://ok", "URL":
// "http://169.254.169.254"} would show the policy one URL and the tool
// another).
func DecodeArgs(raw []byte) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]any{}, nil
	}
	if !utf8.Valid(raw) {
		return nil, errors.New("arguments are not valid UTF-8")
	}
	if err := checkKeys(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("arguments are not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("arguments have trailing data after the JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("arguments must be a JSON object")
	}
	normalizeNumbers(m)
	return m, nil
}

// checkKeys refuses objects (at any depth) with keys equal ignoring case.
func checkKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		obj    bool
		keys   map[string]struct{}
		expect bool // the next token of an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("arguments are not valid JSON: %w", err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, _ := tok.(string)
			fold := strings.ToLower(k)
			if _, dup := top.keys[fold]; dup {
				return fmt.Errorf("arguments repeat the key %q (keys must differ in more than case)", k)
			}
			top.keys[fold] = struct{}{}
			top.expect = false
			continue
		}
		if top != nil && top.obj {
			top.expect = true
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, &frame{obj: true, keys: map[string]struct{}{}, expect: true})
			case '[':
				stack = append(stack, &frame{})
			case '}', ']':
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].expect = true
				}
			}
		}
	}
}

func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
	}
	return v
}
