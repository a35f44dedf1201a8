package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
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
	RuleBudget      = "@budget"      // the task's call budget for the tool is spent
	RuleDryRun      = "@dry-run"     // allowed because the guard runs dry (see Decision.Shadow)
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
	// Shadow lists what shadow rules (and, under WithDryRun, the policy)
	// would have decided; it never changes Effect.
	Shadow []ShadowOutcome
	// Digest identifies the exact call an Ask decision is about (agent,
	// task, tool, intent, canonical destination, arguments, policy
	// version); approvals are bound to it.
	Digest string
	// ApprovedBy names who approved an Ask that Authorize allowed.
	ApprovedBy string

	invariant bool // decided by a built-in check
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

// WithDryRun makes the guard report instead of enforce its policy: a call
// the rules would deny or ask for is allowed (RuleDryRun) and the would-be
// decision is in Decision.Shadow and the audit log. The built-in checks
// (task, intent, tools, clearance, destination, inspectors) still deny.
// For rolling out a policy; never for production enforcement.
func WithDryRun() Option {
	return func(g *Guard) error {
		g.dryRun = true
		return nil
	}
}

// DefaultApprovalTimeout bounds an approver's answer unless
// [WithApprovalTimeout] says otherwise.
const DefaultApprovalTimeout = 5 * time.Minute

// WithApprovalTimeout bounds how long Authorize waits for the approver; no
// answer in time denies.
func WithApprovalTimeout(d time.Duration) Option {
	return func(g *Guard) error {
		if d <= 0 {
			return fmt.Errorf("WithApprovalTimeout: %v is not positive", d)
		}
		g.approvalTimeout = d
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
	dryRun     bool

	approvalTimeout time.Duration

	state atomic.Pointer[compiled]

	redactMu  sync.Mutex
	redactors atomic.Pointer[[]Redactor]
}

// New returns a guard configured by opts. With no policy every call is
// denied (RuleNoMatch).
func New(opts ...Option) (*Guard, error) {
	g := &Guard{clock: time.Now, realClock: true, defaultTTL: DefaultTTL, approvalTimeout: DefaultApprovalTimeout}
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

// Update replaces the policy in force with p, atomically: a check sees
// either the old policy or the new one, never a mix, and readers never
// block. Decisions carry the version of the policy that made them. A nil p
// is an error and leaves the policy in force; a policy that failed to load
// never reaches Update, so the old one stays in force.
func (g *Guard) Update(p *Policy) error {
	if p == nil {
		return errors.New("authz: Update: nil policy")
	}
	g.state.Store(index(p))
	return nil
}
