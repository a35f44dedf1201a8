package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskguard/taskguard/internal/dest"
	"github.com/taskguard/taskguard/internal/glob"
)

// Call is one tool invocation to authorize.
type Call struct {
	// Tool is the tool's name ("http.fetch"). Required.
	Tool string
	// Intent says what the call does: read, search, write, delete, export,
	// execute, secret.read, ... Required.
	Intent string
	// Destination is where the call reads from or sends to: a URL, a file
	// path, an email address, an opaque "scheme://name" ("db://orders"), or
	// empty. The guard canonicalises it before any rule sees it; an
	// unparseable destination denies.
	Destination string
	// Sensitivity classifies the data the call touches or sends.
	Sensitivity Sensitivity
	// Args are the tool's arguments, JSON-shaped. Policies read them as args;
	// they are never logged.
	Args map[string]any
}

// Names of the built-in checks, used as [Decision.Rule] when one of them
// decides. Policy rule names cannot start with '@'.
const (
	RuleNoTask      = "@task"        // no task in the context
	RuleTaskEnded   = "@task-ended"  // the task ended or passed its deadline
	RuleContext     = "@context"     // the context was cancelled
	RuleCall        = "@call"        // the call is malformed (no tool, no intent, bad sensitivity)
	RuleIntent      = "@intent"      // the intent is not declared by the task
	RuleTool        = "@tool"        // the tool is not in the task's tools
	RuleClearance   = "@clearance"   // sensitivity above the task's clearance
	RuleDestination = "@destination" // the destination did not parse
	RuleNoMatch     = "@no-match"    // no rule allowed the call
	RuleApproval    = "@approval"    // an ask was not approved
	RuleDescribe    = "@describe"    // a tool's Describe failed
	RuleInspect     = "@inspect"     // a task's inspector denied the call (RuleInspect:name)
	RuleInternal    = "@internal"    // an internal error (a recovered panic)
)

// Decision is the guard's answer for one call. The zero Decision denies.
type Decision struct {
	// Effect is Allow, Deny or Ask.
	Effect Effect
	// Rule names the policy rule that decided, or one of the built-in
	// checks (RuleNoTask, RuleNoMatch, ...).
	Rule string
	// Reason explains the decision in words fit for the agent and the log.
	Reason string
	// Err is the error that caused a deny (an unparseable destination, a
	// rule that failed to evaluate, ...), or nil.
	Err error
	// Task is the ID of the task the call ran under, when there was one.
	Task string
	// Destination is the canonical destination, when it parsed.
	Destination string
	// PolicyVersion is the version of the policy that decided.
	PolicyVersion string
}

// ErrDenied is matched by every error the guard returns for a call it did
// not allow: errors.Is(err, ErrDenied).
var ErrDenied = errors.New("authz: denied")

// DeniedError is the error for a call the guard did not allow. It never
// contains the call's arguments.
type DeniedError struct {
	Decision Decision
	Tool     string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("authz: %s denied by %s: %s", e.Tool, e.Decision.Rule, e.Decision.Reason)
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Unwrap returns the error that caused the deny, if any.
func (e *DeniedError) Unwrap() error { return e.Decision.Err }

// Approver decides calls whose decision is Ask. It is the host's channel
// to a person or to automation the host trusts: never let the model under
// guard answer it. Approve may block (Authorize passes its context); an
// error or a panic denies.
type Approver interface {
	Approve(ctx context.Context, c Call, d Decision) (bool, error)
}

// ApproverFunc adapts a function to [Approver].
type ApproverFunc func(ctx context.Context, c Call, d Decision) (bool, error)

// Approve calls f.
func (f ApproverFunc) Approve(ctx context.Context, c Call, d Decision) (bool, error) {
	return f(ctx, c, d)
}

// Option configures a [Guard].
type Option func(*Guard) error

// WithPolicy adds the rules of p. It may be repeated: the rules of all
// policies are combined, in order, and rule names must stay unique.
func WithPolicy(p *Policy) Option {
	return func(g *Guard) error {
		if p == nil {
			return errors.New("WithPolicy: nil policy")
		}
		g.policies = append(g.policies, p)
		return nil
	}
}

// WithClock sets the clock used for deadlines and the policy's now. When
// set, tasks do not start timers: a task past its deadline is ended by the
// next check. The last WithClock wins.
func WithClock(now func() time.Time) Option {
	return func(g *Guard) error {
		if now == nil {
			return errors.New("WithClock: nil clock")
		}
		g.clock = now
		g.realClock = false
		return nil
	}
}

// WithLogger sends an audit record of every decision to l. Without it no
// audit records are written. The last WithLogger wins.
func WithLogger(l *slog.Logger) Option {
	return func(g *Guard) error {
		g.logger = l
		return nil
	}
}

// WithApprover sets the approver consulted by [Guard.Authorize] for Ask
// decisions. Without one, Ask denies. The last WithApprover wins.
func WithApprover(a Approver) Option {
	return func(g *Guard) error {
		g.approver = a
		return nil
	}
}

// DefaultTTL is the lifetime of a task whose spec has no TTL, unless
// [WithDefaultTTL] says otherwise.
const DefaultTTL = 15 * time.Minute

// WithDefaultTTL sets the lifetime of tasks whose spec has no TTL.
func WithDefaultTTL(d time.Duration) Option {
	return func(g *Guard) error {
		if d <= 0 {
			return fmt.Errorf("WithDefaultTTL: %v is not positive", d)
		}
		g.defaultTTL = d
		return nil
	}
}

// Guard authorizes tool calls of tasks against a policy. Create it with
// [New]; it is safe for concurrent use and its configuration does not
// change after New.
type Guard struct {
	policies   []*Policy
	clock      func() time.Time
	realClock  bool
	logger     *slog.Logger
	approver   Approver
	defaultTTL time.Duration

	state atomic.Pointer[compiled]
}

// compiled is a policy indexed by tool.
type compiled struct {
	policy *Policy
	// byTool holds, for every tool named exactly by some rule, the rules
	// that apply to it (exact and glob), in evaluation order.
	byTool map[string][]*rule
	// globs are the rules with a wildcard pattern, in evaluation order; they
	// apply to tools that are not in byTool after matching.
	globs []*rule
	// other caches the matching globs of tools not in byTool, for up to
	// maxCachedTools tools (tool names come from callers: the cache is
	// bounded).
	other  sync.Map // string → []*rule
	others atomic.Int32
}

// maxCachedTools bounds the per-policy cache of tools matched only by globs.
const maxCachedTools = 4096

// rulesFor returns the rules that apply to tool, in evaluation order.
func (c *compiled) rulesFor(tool string) []*rule {
	if rs, ok := c.byTool[tool]; ok {
		return rs
	}
	if rs, ok := c.other.Load(tool); ok {
		return rs.([]*rule)
	}
	var rs []*rule
	for _, r := range c.globs {
		if r.matchesTool(tool) {
			rs = append(rs, r)
		}
	}
	if c.others.Load() < maxCachedTools {
		if _, loaded := c.other.LoadOrStore(tool, rs); !loaded {
			c.others.Add(1)
		}
	}
	return rs
}

// evalOrder sorts rules: deny, then ask, then allow; then policy order.
func evalOrder(a, b *rule) int {
	rank := func(e Effect) int {
		switch e {
		case Deny:
			return 0
		case Ask:
			return 1
		}
		return 2
	}
	if d := rank(a.Effect) - rank(b.Effect); d != 0 {
		return d
	}
	return a.order - b.order
}

func index(p *Policy) *compiled {
	c := &compiled{policy: p, byTool: map[string][]*rule{}}
	var exact []*rule
	for _, r := range p.rules {
		if r.exact {
			exact = append(exact, r)
		} else {
			c.globs = append(c.globs, r)
		}
	}
	for _, r := range exact {
		for _, t := range r.Tools {
			if !slices.Contains(c.byTool[t], r) {
				c.byTool[t] = append(c.byTool[t], r)
			}
		}
	}
	for t, rs := range c.byTool {
		for _, r := range c.globs {
			if r.matchesTool(t) {
				rs = append(rs, r)
			}
		}
		slices.SortFunc(rs, evalOrder)
		c.byTool[t] = slices.Clip(rs)
	}
	slices.SortFunc(c.globs, evalOrder)
	return c
}

// New returns a guard configured by opts. With no policy every call is
// denied (RuleNoMatch).
func New(opts ...Option) (*Guard, error) {
	g := &Guard{clock: time.Now, realClock: true, defaultTTL: DefaultTTL}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(g); err != nil {
			return nil, fmt.Errorf("authz: %w", err)
		}
	}
	p, err := mergePolicies(g.policies...)
	if err != nil {
		return nil, err
	}
	g.policies = nil
	g.state.Store(index(p))
	return g, nil
}

func (g *Guard) now() time.Time { return g.clock() }

// Policy returns the policy in force.
func (g *Guard) Policy() *Policy { return g.state.Load().policy }

// Check decides whether the task in ctx may make call c. It never panics
// and never blocks; it has no side effects other than the audit record and
// ending a task found past its deadline.
//
// The built-in checks run first: a live task is in ctx, ctx is not
// cancelled, the call names a tool and an intent, the intent is one of the
// task's, the tool is in the task's tools, the sensitivity is at most the
// task's clearance, and the destination parses. Then the rules for the tool
// are evaluated: any matching deny rule denies, else any matching ask rule
// asks, else any matching allow rule allows, else the call is denied
// (RuleNoMatch). A rule whose expression fails to evaluate denies the call
// and the decision names it.
//
// Check does not run approvals and does not count calls; [Guard.Authorize]
// does both.
func (g *Guard) Check(ctx context.Context, c Call) (d Decision) {
	var start time.Time
	if g.logger != nil {
		start = time.Now()
	}
	var t *Task
	defer func() {
		if r := recover(); r != nil {
			d = Decision{Rule: RuleInternal, Reason: "internal error", Err: fmt.Errorf("authz: recovered panic: %v", r)}
			if t != nil {
				d.Task = t.id
			}
		}
		if g.logger != nil {
			g.audit(ctx, t, &c, &d, time.Since(start))
		}
	}()
	st := g.state.Load()
	t, ok := TaskFrom(ctx)
	if !ok {
		return Decision{Rule: RuleNoTask, Reason: "no task in the context: begin a task with Guard.Begin", PolicyVersion: st.policy.version}
	}
	return g.check(ctx, st, t, &c)
}

func (g *Guard) check(ctx context.Context, st *compiled, t *Task, c *Call) Decision {
	deny := func(rule, reason string, err error) Decision {
		return Decision{Rule: rule, Reason: reason, Err: err, Task: t.id, PolicyVersion: st.policy.version}
	}
	if err := ctx.Err(); err != nil {
		return deny(RuleContext, "context is done", err)
	}
	now := g.now()
	if t.Ended() {
		return deny(RuleTaskEnded, "task has ended", nil)
	}
	if !now.Before(t.deadline) {
		t.End()
		return deny(RuleTaskEnded, "task passed its deadline", nil)
	}
	if t.guard != g {
		return deny(RuleNoTask, "task belongs to another guard", nil)
	}
	switch {
	case c.Tool == "":
		return deny(RuleCall, "call has no tool", nil)
	case c.Intent == "":
		return deny(RuleCall, "call has no intent", nil)
	case len(c.Tool) > MaxInputSize || len(c.Intent) > MaxInputSize:
		return deny(RuleCall, fmt.Sprintf("call tool or intent is longer than %d bytes", MaxInputSize), nil)
	case !c.Sensitivity.Valid():
		return deny(RuleCall, fmt.Sprintf("call has invalid sensitivity %d", c.Sensitivity), nil)
	}
	if len(t.intents) > 0 && !slices.Contains(t.intents, c.Intent) {
		return deny(RuleIntent, fmt.Sprintf("intent %q is not declared by the task", c.Intent), nil)
	}
	if len(t.tools) > 0 && !slices.ContainsFunc(t.tools, func(p string) bool { return glob.Match(p, c.Tool) }) {
		return deny(RuleTool, fmt.Sprintf("tool %q is not among the task's tools", c.Tool), nil)
	}
	if c.Sensitivity > t.clearance {
		return deny(RuleClearance, fmt.Sprintf("sensitivity %v exceeds the task's clearance %v", c.Sensitivity, t.clearance), nil)
	}

	act := newActivation(t, c, now)
	defer act.release()
	var err error
	act.dest, err = dest.Parse(c.Destination, t.workdir)
	if err != nil {
		return deny(RuleDestination, "destination rejected: "+err.Error(), err)
	}
	// The canonical text is built in the activation's buffer; when the
	// caller already wrote it canonically, its string is reused.
	act.canon = act.dest.AppendText(act.canon[:0])
	canon := c.Destination
	if string(act.canon) != canon {
		canon = string(act.canon)
	}
	if len(canon) > MaxDestinationSize {
		return deny(RuleDestination, fmt.Sprintf("destination is longer than %d bytes", MaxDestinationSize), nil)
	}

	if t.hasInspectors() {
		ci := CallInfo{Call: *c, Destination: canon, Kind: act.dest.Kind.String(), Host: act.dest.Host}
		if act.dest.Kind == dest.KindFile {
			ci.Host = ""
		}
		if name, err := t.inspect(&ci); err != nil {
			d := deny(RuleInspect+":"+name, err.Error(), err)
			d.Destination = canon
			return d
		}
	}

	var ask, allow *rule
	for _, r := range st.rulesFor(c.Tool) {
		ok, err := r.when.eval(act)
		if err != nil {
			d := deny(r.Name, fmt.Sprintf("rule %s failed to evaluate: %v", r.Name, err), fmt.Errorf("authz: rule %s: %w", r.Name, err))
			d.Destination = canon
			return d
		}
		if !ok {
			continue
		}
		switch r.Effect {
		case Deny:
			d := deny(r.Name, r.decided, nil)
			d.Destination = canon
			return d
		case Ask:
			if ask == nil {
				ask = r
			}
		case Allow:
			if allow == nil {
				allow = r
			}
		}
	}
	d := Decision{Task: t.id, Destination: canon, PolicyVersion: st.policy.version}
	switch {
	case ask != nil:
		d.Effect, d.Rule, d.Reason = Ask, ask.Name, ask.decided
	case allow != nil:
		d.Effect, d.Rule, d.Reason = Allow, allow.Name, allow.decided
	default:
		d.Rule, d.Reason = RuleNoMatch, "no rule allows this call"
	}
	return d
}

// Authorize decides call c like [Guard.Check] and, for Ask, consults the
// approver. It returns nil when the call may proceed, and then counts the
// call on the task (task.calls); otherwise it returns a *[DeniedError]
// (errors.Is(err, ErrDenied)). No approver, a refusal, an approver error or
// panic, and a done context all deny. Authorize blocks while the approver
// does.
func (g *Guard) Authorize(ctx context.Context, c Call) error {
	d := g.Check(ctx, c)
	switch d.Effect {
	case Allow:
	case Ask:
		d = g.approve(ctx, c, d)
		if d.Effect != Allow {
			return &DeniedError{Decision: d, Tool: c.Tool}
		}
	default:
		return &DeniedError{Decision: d, Tool: c.Tool}
	}
	if t, ok := TaskFrom(ctx); ok {
		t.countCall(c.Tool)
	}
	return nil
}

// approve runs the approver for an Ask decision and returns the final decision.
func (g *Guard) approve(ctx context.Context, c Call, d Decision) (out Decision) {
	asked := d
	out = d
	out.Effect = Deny
	defer func() {
		if r := recover(); r != nil {
			out = asked
			out.Effect = Deny
			out.Rule = RuleApproval
			out.Reason = "approver failed"
			out.Err = fmt.Errorf("authz: approver panicked: %v", r)
		}
		if g.logger != nil {
			g.auditApproval(ctx, &c, &asked, &out)
		}
	}()
	if g.approver == nil {
		out.Rule, out.Reason = RuleApproval, fmt.Sprintf("rule %s requires approval and no approver is configured", d.Rule)
		return out
	}
	ok, err := g.approver.Approve(ctx, c, d)
	switch {
	case err != nil:
		out.Rule, out.Reason, out.Err = RuleApproval, "approver failed: "+err.Error(), err
	case ctx.Err() != nil:
		out.Rule, out.Reason, out.Err = RuleApproval, "context done during approval", ctx.Err()
	case !ok:
		out.Rule, out.Reason = RuleApproval, fmt.Sprintf("approval for rule %s was refused", d.Rule)
	default:
		out.Effect, out.Reason = Allow, "approved: "+d.Reason
	}
	return out
}
