package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"
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
	//
	// When Describe sets no Args, [Wrap] fills them from the typed
	// arguments (see [Wrap]) unless OpaqueArgs is set.
	Describe func(args A) (Call, error)
	// OpaqueArgs marks arguments that cannot be encoded as JSON (they hold
	// channels, functions, readers, cyclic values). [Wrap] then leaves
	// Call.Args as Describe set it (nil when Describe sets none), so
	// policies, approval digests and the secrets inspector see no more
	// than Describe chose to show, and the guard refuses to grant a
	// standing (for-task) approval for such calls: an approval can only
	// cover the one call it was asked for. The zero value, false, fills
	// Args. WrapJSON ignores it: its arguments are JSON by construction.
	OpaqueArgs bool
	// Args declares the tool's arguments as policies see them (see
	// [ToolArgs] and [Guard.RegisterTool]). When nil, [Wrap] of a tool
	// without Describe whose A is a struct declares what [ArgsOf] derives
	// from A (nothing when A cannot be declared, or with OpaqueArgs), and
	// otherwise
	// nothing is declared: a Describe may show policies other arguments
	// than A's. Either way the tool is registered with the guard (see
	// [Guard.Lint]).
	Args ToolArgs
	// Output says how a successful call's result taints the task. The zero
	// value records the results of reading intents (read, search and those
	// of [WithObservedIntents]) as untrusted content of the call's
	// sensitivity: see [Output] and [Guard.ObserveOutput].
	Output Output
}

// Call returns the call that [Wrap] and [WrapJSON] authorize for args: the
// result of Describe (recovered into an error if it panics) with its tool
// always t.Name and its intent defaulting to t.Intent. Integrations that
// authorize calls themselves use it to describe them the same way; an
// error should be passed to [Guard.DescribeError].
func (t Tool[A]) Call(args A) (c Call, err error) {
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

// Deny records in the audit log a denial decided when a call was carried
// out rather than when it was checked (a file operation that left its root
// at open time, RuleEscape; a name that resolved to a private address at
// dial time, RuleDial) and returns the *DeniedError to give the caller.
// rule should be one of the built-in rule names; reason is for the agent
// and the log and must not contain argument values or secrets; c's
// Destination should be canonical (it is reported as is).
func (g *Guard) Deny(ctx context.Context, c Call, rule, reason string, err error) error {
	d := Decision{Rule: rule, Reason: reason, Err: err, Destination: c.Destination, PolicyVersion: g.policyVersion()}
	t, _ := TaskFrom(ctx)
	if t != nil {
		d.Task = t.id
	}
	if g.logger != nil {
		g.audit(ctx, t, &c, &d, 0)
	}
	if g.observer != nil {
		g.observeDecision(ctx, OpEnforce, t, &c, &d, time.Time{}, nil)
	}
	return &DeniedError{Decision: d, Tool: c.Tool}
}

func (g *Guard) denyDescribe(ctx context.Context, tool string, err error) error {
	d := Decision{Rule: RuleDescribe, Reason: "could not describe the call: " + err.Error(), Err: err,
		PolicyVersion: g.policyVersion()}
	t, _ := TaskFrom(ctx)
	if t != nil {
		d.Task = t.id
	}
	if g.logger != nil {
		g.audit(ctx, t, &Call{Tool: tool}, &d, 0)
	}
	if g.observer != nil {
		g.observeDecision(ctx, OpAuthorize, t, &Call{Tool: tool}, &d, time.Time{}, nil)
	}
	return &DeniedError{Decision: d, Tool: tool}
}

// Wrap returns a handler that authorizes every invocation of h with
// [Guard.Authorize] before calling it. On a deny, h is not called and the
// *[DeniedError] is returned with the zero R. The wrapper does not modify
// args. When h returns without error, its result is recorded on the task
// ([Guard.ObserveOutput] with [Tool.Output]): by default the results of
// read and search calls taint the task as untrusted content, so hosts need
// not remember [Task.Observe].
//
// When Describe sets no Call.Args, Wrap fills them from args, so that
// argument rules (args.x), approval digests and the secrets inspector see
// what h receives: args is encoded once with json.Marshal and decoded as
// [DecodeArgs] decodes (integers int64, other numbers float64, the same key
// rules; a float field holding a whole number is seen as an integer, as
// the same JSON sent through [WrapJSON] would be). An A whose JSON form is an object (a struct, a map) gives that
// object; null gives an empty object; any other JSON form (a string, a
// number, a list) is seen as {"value": …}. An encoding or decoding error,
// or a panicking MarshalJSON, denies with [RuleDescribe] and a reason that
// names no value. [Tool.OpaqueArgs] turns the filling off.
//
// Wrap registers the tool with g and declares its arguments: [Tool.Args],
// or else, for a tool without Describe (whose Call.Args are always filled
// from args) whose A is a struct (or a pointer to one), what [ArgsOf]
// derives from A (its JSON fields with their CEL types), unless OpaqueArgs
// is set or A cannot be declared. A tool with a Describe declares its
// arguments with Tool.Args. Calls whose
// Call.Args (filled from args, or set by Describe) do not match the
// declaration are denied ([RuleArgs]), and the policy's rules over the tool
// are type-checked against it (see [Guard.RegisterTool]). When the
// declaration is refused (it differs from the policy's tools block, or a
// rule does not type-check against it), every call of the returned handler
// is denied with [RuleArgs] and the reason, and [Guard.Lint] reports it.
func Wrap[A, R any](g *Guard, t Tool[A], h func(ctx context.Context, args A) (R, error)) func(ctx context.Context, args A) (R, error) {
	regErr := registerWrapped(g, t.Name, func() (ToolArgs, string) {
		if t.Args != nil {
			return t.Args, "Tool.Args of " + t.Name
		}
		if t.OpaqueArgs || t.Describe != nil || !isStruct(reflect.TypeFor[A]()) {
			return nil, ""
		}
		args, err := ArgsOf[A]()
		if err != nil {
			return nil, ""
		}
		return args, fmt.Sprintf("Go type %v", reflect.TypeFor[A]())
	})
	return func(ctx context.Context, args A) (R, error) {
		var zero R
		if regErr != nil {
			return zero, g.denyArgs(ctx, t.Name, regErr)
		}
		c, err := t.Call(args)
		if err != nil {
			return zero, g.denyDescribe(ctx, t.Name, err)
		}
		actx := ctx
		if t.OpaqueArgs {
			actx = withOpaqueArgs(ctx)
		} else if c.Args == nil {
			if c.Args, err = typedArgs(args); err != nil {
				return zero, g.denyDescribe(ctx, t.Name, err)
			}
		}
		if err := g.Authorize(actx, c); err != nil {
			return zero, err
		}
		r, err := h(ctx, args)
		if err == nil {
			g.ObserveOutput(ctx, c, t.Output)
		}
		return r, err
	}
}

// typedArgsKey is the key under which typedArgs shows arguments whose JSON
// form is not an object.
const typedArgsKey = "value"

// typedArgs returns the policy view of typed arguments: one JSON encoding
// of args, decoded as DecodeArgs decodes. Errors name no value.
func typedArgs[A any](args A) (m map[string]any, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, errors.New("encoding the arguments as JSON panicked (set Tool.OpaqueArgs for arguments that cannot be encoded)")
		}
	}()
	raw, err := json.Marshal(args)
	if err != nil {
		// The error of json.Marshal may quote a value (NaN, a map key,
		// a MarshalJSON error); say only what kind of failure it was.
		return nil, fmt.Errorf("the arguments cannot be encoded as JSON (%T; set Tool.OpaqueArgs for such arguments)", err)
	}
	if len(raw) > 0 && raw[0] != '{' && !bytes.Equal(raw, []byte("null")) {
		raw = append(append([]byte(`{"`+typedArgsKey+`":`), raw...), '}')
	}
	m, err = DecodeArgs(raw)
	if err != nil {
		return nil, fmt.Errorf("the JSON form of the arguments: %w", err)
	}
	return m, nil
}

// opaqueArgsKey marks a context whose call has opaque arguments.
type opaqueArgsKey struct{}

// withOpaqueArgs returns ctx marked as carrying a call whose arguments the
// guard cannot see ([Tool.OpaqueArgs]); approvals consult [opaqueArgs] and
// grant such calls only once, never for the task.
func withOpaqueArgs(ctx context.Context) context.Context {
	return context.WithValue(ctx, opaqueArgsKey{}, true)
}

// opaqueArgs reports whether ctx was marked by withOpaqueArgs.
func opaqueArgs(ctx context.Context) bool {
	if ctx == nil {
		return false
	}
	v, _ := ctx.Value(opaqueArgsKey{}).(bool)
	return v
}

// WrapJSON is [Wrap] for handlers that take raw JSON arguments (MCP, most
// agent frameworks, model tool calls). The arguments must be a JSON object;
// they are decoded once (integers as int64, other numbers as float64) and
// passed to Describe and, when Describe sets no Args, to policies as args.
// h receives the original bytes.
//
// WrapJSON registers the tool with g, declaring [Tool.Args] when set (see
// [Wrap] for what a declaration does and when it is refused).
func WrapJSON[R any](g *Guard, t Tool[map[string]any], h func(ctx context.Context, args json.RawMessage) (R, error)) func(ctx context.Context, args json.RawMessage) (R, error) {
	regErr := registerWrapped(g, t.Name, func() (ToolArgs, string) { return t.Args, "Tool.Args of " + t.Name })
	return func(ctx context.Context, raw json.RawMessage) (R, error) {
		var zero R
		if regErr != nil {
			return zero, g.denyArgs(ctx, t.Name, regErr)
		}
		args, err := DecodeArgs(raw)
		if err != nil {
			return zero, g.denyDescribe(ctx, t.Name, err)
		}
		c, err := t.Call(args)
		if err != nil {
			return zero, g.denyDescribe(ctx, t.Name, err)
		}
		if c.Args == nil {
			c.Args = args
		}
		if err := g.Authorize(ctx, c); err != nil {
			return zero, err
		}
		r, err := h(ctx, raw)
		if err == nil {
			g.ObserveOutput(ctx, c, t.Output)
		}
		return r, err
	}
}

// registerWrapped registers a wrapped tool with g, declared by what decl
// returns (nil: not declared). A tool without a valid name or a guard not
// built with New is not registered, and its calls are denied anyway.
func registerWrapped(g *Guard, name string, decl func() (ToolArgs, string)) error {
	if g == nil || g.state.Load() == nil || validToolName(name) != nil {
		return nil
	}
	args, from := decl()
	return g.registerTool(name, from, args)
}

// denyArgs records and returns the denial of a call of a wrapped tool whose
// declaration the guard refused.
func (g *Guard) denyArgs(ctx context.Context, tool string, err error) error {
	c := Call{Tool: tool}
	return g.Deny(ctx, c, RuleArgs, "the tool's declaration of arguments was refused: "+err.Error(), err)
}

// isStruct reports whether t is a struct or a pointer to one.
func isStruct(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct
}
