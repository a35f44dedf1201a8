package authz

import (
	"errors"
	"fmt"
	"strings"
)

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
	RuleEscape      = "@escape"      // at use time, a file operation left its root (fsguard)
	RuleDial        = "@dial"        // at use time, a name resolved to a private address (httpguard)
	RuleStore       = "@store"       // the shared task store (WithStore) failed, did not answer, or the local view of it is stale
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
	// Destinations are the canonical further destinations of a call with
	// several (Call.Destinations), when they all parsed; nil otherwise.
	Destinations []string
	// PolicyVersion is the version of the policy that decided.
	PolicyVersion string
	// Shadow lists what shadow rules (and, under WithDryRun, the policy)
	// would have decided; it never changes Effect.
	Shadow []ShadowOutcome
	// Digest identifies the exact call an Ask decision is about and what
	// the decision depended on (agent, task, tool, intent, canonical
	// destination and further destinations, sensitivity, arguments, the rule that asked, policy
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

// Effect is the outcome of a decision. The zero value is Deny, so a zero
// [Decision] denies.
type Effect int8

// The effects. Deny is the zero value.
const (
	Deny Effect = iota
	Allow
	Ask
)

// String returns "deny", "allow" or "ask", or "effect(N)" for an undefined value.
func (e Effect) String() string {
	switch e {
	case Deny:
		return "deny"
	case Allow:
		return "allow"
	case Ask:
		return "ask"
	}
	return fmt.Sprintf("effect(%d)", int8(e))
}

// MarshalText implements [encoding.TextMarshaler]. Undefined values are an error.
func (e Effect) MarshalText() ([]byte, error) {
	switch e {
	case Deny, Allow, Ask:
		return []byte(e.String()), nil
	}
	return nil, fmt.Errorf("authz: invalid effect %d", int8(e))
}

// UnmarshalText implements [encoding.TextUnmarshaler]: "allow", "deny" or "ask", in any case.
func (e *Effect) UnmarshalText(text []byte) error {
	v, err := parseEffect(string(text))
	if err != nil {
		return err
	}
	*e = v
	return nil
}

func parseEffect(s string) (Effect, error) {
	switch strings.ToLower(s) {
	case "deny":
		return Deny, nil
	case "allow":
		return Allow, nil
	case "ask":
		return Ask, nil
	}
	return Deny, fmt.Errorf("authz: unknown effect %q (want allow, deny or ask)", s)
}

// ShadowOutcome is what a shadow rule (or, under WithDryRun, the policy)
// would have decided. It never changes the decision.
type ShadowOutcome struct {
	Rule   string
	Effect Effect
	Err    error // the rule failed to evaluate (it would have denied)
}

// RuleError is the error of a policy rule that failed to evaluate, which
// denies the call. Its message names the rule and the kind of failure
// ("missing key", "type mismatch", "cost limit exceeded", ...) and never the
// values involved: CEL's own messages quote them, and they could be
// arguments or secrets on their way to the model or the audit log. The
// full CEL error is only in [Guard.Explain]'s [RuleTrace.Err], for
// debugging.
type RuleError struct {
	Rule string
	Kind string
}

func (e *RuleError) Error() string {
	return "authz: rule " + e.Rule + " failed to evaluate: " + e.Kind
}
