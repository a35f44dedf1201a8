package authz

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

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
// audit records are written. The last WithLogger wins. A record's
// destination is the canonical one, also for a call a built-in check
// denied before the rules ran; destination_rejected=true marks a
// destination that does not parse.
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
// [New]; it is safe for concurrent use. The zero Guard is inert, never
// permissive: Check, Authorize and Explain deny, Visible shows no tool,
// Begin, Resume, Update and ApplyReport return an error, and no method
// panics.
//
// # What may change after New
//
// Only three things, each atomically and without blocking decisions in
// progress (a decision uses the state it started with):
//   - the policy: [Guard.Update], or a [Watcher] from [WatchPolicyFiles];
//   - the declared tool arguments: [Guard.RegisterTool] (and [Wrap] /
//     [WrapJSON], which register), meant for start-up;
//   - the audit redactors: [Guard.RedactAuditWith] adds one and returns
//     the function that removes it.
//
// [Guard.Close] ends the subscription to the store. Everything else given
// to New stays as it was (options copy the keys and lists they are given):
// clock, logger, approver and approval timeout, observers, default TTL, dry
// run, observed intents, identity verifier, name and keys of task tokens,
// provenance limit, and the store with its staleness and timeout bounds.
// To change one of them, build a new Guard. Tasks keep the guard that
// began them, so a new Guard does not affect tasks in progress.
type Guard struct {
	policies   []*Policy
	clock      func() time.Time
	realClock  bool
	logger     *slog.Logger
	approver   Approver
	defaultTTL time.Duration
	dryRun     bool
	observed   []string // intents whose results taint, beyond read and search
	identity   IdentityVerifier
	observer   *observers // nil: no observer (observer.go)

	provenanceLimit int // bytes of untrusted text per task; 0: the default

	// Task tokens (token.go).
	name      string
	signKeyID string
	signKey   ed25519.PrivateKey
	trusted   map[string]ed25519.PublicKey
	tokenTTL  time.Duration

	approvalTimeout time.Duration

	// Shared task state (storeguard.go); view is nil without a store.
	store          Store
	storeStaleness time.Duration
	storeTimeout   time.Duration
	view           *view

	state atomic.Pointer[compiled]
	tools toolRegistry // registered tools (register.go)

	redactMu  sync.Mutex
	redactors atomic.Pointer[[]*auditRedactor]
}

// New returns a guard configured by opts. With no policy every call is
// denied (RuleNoMatch, with a reason that says the guard has no policy),
// and New writes a warning to the [WithLogger] logger: a guard without
// rules is allowed, because hosts may install the policy later with
// [Guard.Update] or [WatchPolicyFiles], but it is rarely what was meant.
func New(opts ...Option) (*Guard, error) {
	g := &Guard{clock: time.Now, realClock: true, defaultTTL: DefaultTTL, approvalTimeout: DefaultApprovalTimeout,
		tokenTTL: DefaultTokenTTL, storeStaleness: DefaultStoreStaleness, storeTimeout: DefaultStoreTimeout}
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
	if len(p.rules) == 0 && g.logger != nil {
		g.logger.LogAttrs(context.Background(), slog.LevelWarn, "taskguard guard has no policy",
			slog.String("reason", noPolicyReason))
	}
	if g.store != nil {
		if err := g.startView(); err != nil {
			return nil, fmt.Errorf("authz: %w", err)
		}
	}
	return g, nil
}

// noPolicyReason is the reason of a call denied because the guard has no
// rules at all.
const noPolicyReason = "the guard has no policy rules, so every call is denied: pass authz.WithPolicy to authz.New, or install a policy with Guard.Update"

func (g *Guard) now() time.Time { return g.clock() }

// errZeroGuard is returned by the methods of a Guard not built with [New].
var errZeroGuard = errors.New("authz: Guard not built with New")

// Policy returns the policy in force; nil for a Guard not built with [New].
func (g *Guard) Policy() *Policy {
	if st := g.state.Load(); st != nil {
		return st.policy
	}
	return nil
}

// policyVersion returns the version of the policy in force; "" for a Guard
// not built with [New].
func (g *Guard) policyVersion() string {
	if p := g.Policy(); p != nil {
		return p.version
	}
	return ""
}

// Update replaces the policy in force with p, atomically: a check sees
// either the old policy or the new one, never a mix, and readers never
// block. Decisions carry the version of the policy that made them. A nil p
// is an error and leaves the policy in force; a policy that failed to load
// never reaches Update, so the old one stays in force. So does a policy
// that does not agree with the tools registered with the guard
// ([Guard.RegisterTool]): a tool declared differently, or a rule that does
// not type-check against the registered declarations.
func (g *Guard) Update(p *Policy) error {
	if p == nil {
		return errors.New("authz: Update: nil policy")
	}
	if g.state.Load() == nil {
		return errZeroGuard
	}
	return g.swapPolicy(p)
}
