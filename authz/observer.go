package authz

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Observer receives telemetry events from a [Guard]: every decision of
// [Guard.Check] and [Guard.Authorize] (and so of [Wrap], [WrapJSON] and the
// integrations built on them), with the outcome of its approval, and the
// lease events of the secrets brokers built on the guard. Register it with
// [WithObserver]; authz/authzotel implements it with OpenTelemetry.
//
// Events carry names, effects, rule names, versions, IDs and durations,
// never a call's arguments, destination, reason or error text: those can
// hold user data and secret values. Events are delivered after the fact,
// synchronously, on the goroutine that made the decision (or granted or
// ended the lease: an expiry timer's, a task's end hooks) and never while
// the guard or the broker holds a lock, so an Observer must be safe for
// concurrent use and should return quickly: it adds to the latency of
// every call. A panic in an Observer is recovered (and logged when the
// guard has a logger); it never changes a decision, which is made before
// the event is delivered.
//
// Methods may be added to Observer in later versions; embed
// [ObserverFuncs] in an implementation to stay compatible.
type Observer interface {
	// OnDecision is called once per decision of Check, once per
	// Authorize (with the final decision, after any approval) and once
	// per denial recorded by [Guard.DescribeError] or [Guard.Deny].
	OnDecision(ctx context.Context, e DecisionEvent)
	// OnLease is called when a lease is granted, with the Lease call's
	// context, and when it ends, with context.Background().
	OnLease(ctx context.Context, e LeaseEvent)
}

// ObserverFuncs adapts functions to an [Observer]; a nil field ignores its
// events, so the zero ObserverFuncs is an Observer that does nothing.
// Embed it in an Observer implementation to stay compatible when methods
// are added to Observer.
type ObserverFuncs struct {
	Decision func(ctx context.Context, e DecisionEvent)
	Lease    func(ctx context.Context, e LeaseEvent)
}

// OnDecision calls f.Decision, if set.
func (f ObserverFuncs) OnDecision(ctx context.Context, e DecisionEvent) {
	if f.Decision != nil {
		f.Decision(ctx, e)
	}
}

// OnLease calls f.Lease, if set.
func (f ObserverFuncs) OnLease(ctx context.Context, e LeaseEvent) {
	if f.Lease != nil {
		f.Lease(ctx, e)
	}
}

// WithObserver sends the guard's telemetry events to o. It may be
// repeated: every observer receives every event, in the order the options
// were given; a panic in one does not keep the others from their events. A
// nil o is an error. Without any observer the guard makes no event and
// adds no cost.
func WithObserver(o Observer) Option {
	return func(g *Guard) error {
		if o == nil {
			return errors.New("WithObserver: nil observer")
		}
		if g.observer == nil {
			g.observer = &observers{g: g}
		}
		g.observer.list = append(g.observer.list, o)
		return nil
	}
}

// Operation names what made a [DecisionEvent].
type Operation int8

// The operations. The zero value is not one of them.
const (
	// OpCheck is a [Guard.Check].
	OpCheck Operation = iota + 1
	// OpAuthorize is a [Guard.Authorize], or a call that was denied
	// because it could not be described ([Guard.DescribeError], used by
	// Wrap, WrapJSON and the integrations).
	OpAuthorize
	// OpEnforce is a denial at use time recorded by [Guard.Deny] (a file
	// operation that left its root, a name that resolved to a private
	// address).
	OpEnforce
)

// String returns "check", "authorize" or "enforce", or "operation(N)".
func (o Operation) String() string {
	switch o {
	case OpCheck:
		return "check"
	case OpAuthorize:
		return "authorize"
	case OpEnforce:
		return "enforce"
	}
	return fmt.Sprintf("operation(%d)", int8(o))
}

// ApprovalOutcome is what became of an Ask in [Guard.Authorize].
type ApprovalOutcome int8

// The approval outcomes. The zero value, ApprovalNone, means no approval
// was involved (the decision was not Ask).
const (
	ApprovalNone       ApprovalOutcome = iota
	ApprovalGranted                    // approved: by the approver, or by a standing approval for the task
	ApprovalRefused                    // the approver refused
	ApprovalNoApprover                 // the guard has no approver
	ApprovalFailed                     // the approver failed, panicked or did not answer in time, or the context ended
	ApprovalTooLate                    // approved, but the task ended or the policy changed meanwhile
)

// String returns "none", "granted", "refused", "no-approver", "failed" or
// "too-late", or "approval(N)".
func (a ApprovalOutcome) String() string {
	switch a {
	case ApprovalNone:
		return "none"
	case ApprovalGranted:
		return "granted"
	case ApprovalRefused:
		return "refused"
	case ApprovalNoApprover:
		return "no-approver"
	case ApprovalFailed:
		return "failed"
	case ApprovalTooLate:
		return "too-late"
	}
	return fmt.Sprintf("approval(%d)", int8(a))
}

// DecisionEvent describes one decision to an [Observer]. It holds no
// argument, destination, reason or error text of the call.
type DecisionEvent struct {
	// Op is the operation that decided.
	Op Operation
	// Tool and Intent are the call's.
	Tool, Intent string
	// Sensitivity is the call's sensitivity.
	Sensitivity Sensitivity
	// Effect, Rule and PolicyVersion are the decision's
	// ([Decision.Effect], [Decision.Rule], [Decision.PolicyVersion]).
	Effect        Effect
	Rule          string
	PolicyVersion string
	// Task is the task's ID and Agent its agent's ID; both are empty
	// when the call had no task.
	Task, Agent string
	// Start is when the decision began (wall clock) and Latency how long
	// it took, the approval included. Both are zero for OpEnforce and for
	// calls that could not be described.
	Start   time.Time
	Latency time.Duration
	// Approval is the outcome of the approval an Ask decision needed in
	// Authorize, and ApprovalWait how long it took (the approver's answer,
	// or the lookup of a standing approval). ApprovalNone and 0 otherwise.
	Approval     ApprovalOutcome
	ApprovalWait time.Duration
}

// LeaseEventKind says what happened to a lease.
type LeaseEventKind int8

// The lease event kinds. The zero value is not one of them.
const (
	// LeaseGranted: a lease was issued. Each granted lease is reported
	// ended exactly once, by LeaseRevoked or LeaseExpired; a lease that
	// ends (its task ends, its broker closes) while it is being granted
	// may have the two events delivered in either order, from different
	// goroutines. A lease refused or never issued makes no event.
	LeaseGranted LeaseEventKind = iota + 1
	// LeaseRevoked: the lease was revoked, its task ended or its broker
	// was closed.
	LeaseRevoked
	// LeaseExpired: the lease reached its expiry.
	LeaseExpired
)

// String returns "granted", "revoked" or "expired", or "lease(N)".
func (k LeaseEventKind) String() string {
	switch k {
	case LeaseGranted:
		return "granted"
	case LeaseRevoked:
		return "revoked"
	case LeaseExpired:
		return "expired"
	}
	return fmt.Sprintf("lease(%d)", int8(k))
}

// LeaseEvent describes a lease event to an [Observer]. It never holds the
// leased value.
type LeaseEvent struct {
	Kind LeaseEventKind
	// Lease is the lease's ID, Secret the leased secret's name.
	Lease, Secret string
	// Task is the ID of the task the lease belongs to.
	Task string
	// ExpiresAt is when the lease expires (at the time of the event).
	ExpiresAt time.Time
}

// Observer returns the observer of g's telemetry events: it passes each
// event to every observer given with [WithObserver], recovering panics.
// Packages that build on the guard report through it (the secrets broker
// reports its lease events). It never returns nil: without observers, and
// for the zero Guard, events go nowhere. Safe for concurrent use.
func (g *Guard) Observer() Observer {
	if g.observer == nil {
		return ObserverFuncs{}
	}
	return g.observer
}

// observers is the fan-out of a guard's observers; it recovers panics.
type observers struct {
	g    *Guard
	list []Observer // fixed after New
}

func (obs *observers) OnDecision(ctx context.Context, e DecisionEvent) {
	for _, o := range obs.list {
		obs.decision(o, ctx, &e)
	}
}

func (obs *observers) decision(o Observer, ctx context.Context, e *DecisionEvent) {
	defer obs.recoverPanic("OnDecision")
	o.OnDecision(ctx, *e)
}

func (obs *observers) OnLease(ctx context.Context, e LeaseEvent) {
	for _, o := range obs.list {
		obs.lease(o, ctx, &e)
	}
}

func (obs *observers) lease(o Observer, ctx context.Context, e *LeaseEvent) {
	defer obs.recoverPanic("OnLease")
	o.OnLease(ctx, *e)
}

// recoverPanic recovers a panicking observer and logs it, when the guard has a
// logger. Called deferred.
func (obs *observers) recoverPanic(method string) {
	r := recover()
	if r == nil {
		return
	}
	if lg := obs.g.logger; lg != nil {
		lg.Error("taskguard observer panicked", "method", method, "panic", fmt.Sprint(r))
	}
}

// observeDecision reports decision d of call c by task t (nil: none),
// which began at start, to the guard's observers. Requires g.observer set.
func (g *Guard) observeDecision(ctx context.Context, op Operation, t *Task, c *Call, d *Decision, start time.Time, ap *approvalObservation) {
	e := DecisionEvent{Op: op, Tool: c.Tool, Intent: c.Intent, Sensitivity: c.Sensitivity,
		Effect: d.Effect, Rule: d.Rule, PolicyVersion: d.PolicyVersion, Task: d.Task, Start: start}
	if t == nil && d.Task != "" {
		t, _ = TaskFrom(ctx)
	}
	if t != nil && t.id == d.Task {
		e.Agent = t.agent.ID
	}
	if !start.IsZero() {
		e.Latency = time.Since(start)
	}
	if ap != nil {
		e.Approval, e.ApprovalWait = ap.outcome, ap.wait
	}
	if ctx == nil {
		ctx = context.Background()
	}
	g.observer.OnDecision(ctx, e)
}

// approvalObservation is what Authorize tells its observers about an
// approval.
type approvalObservation struct {
	outcome ApprovalOutcome
	wait    time.Duration
}

// observeAuthorize reports the final decision *d of an Authorize of *c
// that began at start. Deferred by Authorize when the guard has observers.
func (g *Guard) observeAuthorize(ctx context.Context, c *Call, d *Decision, ap *approvalObservation, start time.Time) {
	g.observeDecision(ctx, OpAuthorize, nil, c, d, start, ap)
}

// approveObserved is approve, recording its outcome and duration in ap
// when the guard has observers.
func (g *Guard) approveObserved(ctx context.Context, c Call, d Decision, ap *approvalObservation) (Decision, bool) {
	if g.observer == nil {
		return g.approve(ctx, c, d)
	}
	start := time.Now()
	out, forTask := g.approve(ctx, c, d)
	ap.wait = time.Since(start)
	switch {
	case out.Effect == Allow:
		ap.outcome = ApprovalGranted
	case out.Rule == RuleTaskEnded:
		ap.outcome = ApprovalTooLate
	case out.Err != nil:
		ap.outcome = ApprovalFailed
	case g.approver == nil:
		ap.outcome = ApprovalNoApprover
	default:
		ap.outcome = ApprovalRefused
	}
	return out, forTask
}
