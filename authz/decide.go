package authz

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/taskguard/taskguard/internal/dest"
	"github.com/taskguard/taskguard/internal/glob"
)

// Check decides whether the task in ctx may make call c. It never panics
// and does not wait on anything, with one exception: a task found past its
// deadline (with WithClock tasks start no timers) is ended there and then,
// which runs its end hooks. Its only other side effect is the audit
// record. It does not take rate-limit tokens or spend call budgets, run
// approvals or count calls: [Guard.Authorize] does.
//
// The built-in checks run first: a live task is in ctx, ctx is not
// cancelled, the call names a tool and an intent, the intent is one of the
// task's, the tool is in the task's tools, the sensitivity is at most the
// task's clearance, the destination parses, and the task's inspectors
// agree. Then the rules for the tool are evaluated: any matching deny rule
// denies, else any matching ask rule asks, else any matching allow rule
// allows, else the call is denied (RuleNoMatch). A rule whose expression
// fails to evaluate denies the call and the decision names it. A rule's
// rate limit and the task's call budgets can still deny an allow or ask.
// Shadow rules are evaluated and reported in Decision.Shadow only.
//
// All rules that apply to the tool are evaluated, even after one has
// denied, because a later rule that fails to evaluate must still deny; the
// cost of a call therefore grows linearly with the number of rules for its
// tool (see BenchmarkCheckRulesPerTool), and not with the rules for other
// tools.
func (g *Guard) Check(ctx context.Context, c Call) Decision {
	return g.decide(ctx, c, false, nil)
}

// decide is Check, Authorize's first step (consume: rate-limit tokens are
// taken) and Explain (x records every step).
func (g *Guard) decide(ctx context.Context, c Call, consume bool, x *Explanation) (d Decision) {
	var start time.Time
	if g.logger != nil {
		start = time.Now()
	}
	s := decision{g: g, ctx: ctx, c: c, consume: consume, x: x}
	defer func() {
		if r := recover(); r != nil {
			d = Decision{Rule: RuleInternal, Reason: "internal error", Err: fmt.Errorf("authz: recovered panic: %v", r)}
			if s.t != nil {
				d.Task = s.t.id
			}
		}
		if s.act != nil {
			s.act.release()
		}
		if g.logger != nil {
			g.audit(ctx, s.t, &s.c, &d, time.Since(start))
		}
	}()
	s.st = g.state.Load()
	s.d.PolicyVersion = s.st.policy.version
	// The stages, in order; each returns false once it has decided.
	if s.task() && s.builtins() && s.destination() && s.inspect() && s.rules() && s.quota() {
		s.bindApproval()
	}
	if g.dryRun && s.d.Effect != Allow && !s.d.invariant {
		s.d.Shadow = append(s.d.Shadow, ShadowOutcome{Rule: s.d.Rule, Effect: s.d.Effect, Err: s.d.Err})
		s.d.Effect, s.d.Rule, s.d.Reason, s.d.Err = Allow, RuleDryRun, "dry run: the policy would have decided "+s.d.Effect.String()+" by "+s.d.Rule, nil
	}
	return s.d
}

// decision is one decision on its way through the stages of decide.
type decision struct {
	g       *Guard
	ctx     context.Context
	c       Call
	consume bool         // take rate-limit tokens (Authorize)
	x       *Explanation // records every step (Explain); nil otherwise

	st  *compiled
	t   *Task
	act *activation // the CEL variables, from the destination stage on

	// decider is the rule that allowed or asked.
	decider *rule
	d       Decision
}

// deny makes s's decision a deny by built-in check rule and returns false,
// which ends the stages.
func (s *decision) deny(rule, reason string, err error) bool {
	s.x.invariant(rule, false, reason)
	s.d.Effect, s.d.Rule, s.d.Reason, s.d.Err, s.d.invariant = Deny, rule, reason, err, true
	return false
}

// pass records a built-in check that passed, for Explain.
func (s *decision) pass(rule, detail string) { s.x.invariant(rule, true, detail) }

// task finds the live task of the call in the context.
func (s *decision) task() bool {
	t, ok := TaskFrom(s.ctx)
	if !ok {
		return s.deny(RuleNoTask, "no task in the context: begin a task with Guard.Begin", nil)
	}
	s.t, s.d.Task = t, t.id
	s.pass(RuleNoTask, t.id)
	if err := s.ctx.Err(); err != nil {
		return s.deny(RuleContext, "context is done", err)
	}
	if t.Ended() {
		return s.deny(RuleTaskEnded, "task has ended", nil)
	}
	if s.g.expired(t) {
		t.End()
		return s.deny(RuleTaskEnded, "task passed its deadline", nil)
	}
	if t.guard != s.g {
		return s.deny(RuleNoTask, "task belongs to another guard", nil)
	}
	s.pass(RuleTaskEnded, "task is live")
	return true
}

// builtins checks the call's shape and the task's declared scope: intents,
// tools and clearance.
func (s *decision) builtins() bool {
	t, c := s.t, &s.c
	switch {
	case c.Tool == "":
		return s.deny(RuleCall, "call has no tool", nil)
	case c.Intent == "":
		return s.deny(RuleCall, "call has no intent", nil)
	case len(c.Tool) > MaxInputSize || len(c.Intent) > MaxInputSize:
		return s.deny(RuleCall, fmt.Sprintf("call tool or intent is longer than %d bytes", MaxInputSize), nil)
	case !c.Sensitivity.Valid():
		return s.deny(RuleCall, fmt.Sprintf("call has invalid sensitivity %d", c.Sensitivity), nil)
	}
	s.pass(RuleCall, "call is well-formed")
	if len(t.intents) > 0 && !slices.Contains(t.intents, c.Intent) {
		return s.deny(RuleIntent, fmt.Sprintf("intent %q is not declared by the task", c.Intent), nil)
	}
	s.pass(RuleIntent, "intent is declared")
	if len(t.tools) > 0 && !slices.ContainsFunc(t.tools, func(p string) bool { return glob.Match(p, c.Tool) }) {
		return s.deny(RuleTool, fmt.Sprintf("tool %q is not among the task's tools", c.Tool), nil)
	}
	s.pass(RuleTool, "tool is among the task's tools")
	if c.Sensitivity > t.clearance {
		return s.deny(RuleClearance, fmt.Sprintf("sensitivity %v exceeds the task's clearance %v", c.Sensitivity, t.clearance), nil)
	}
	s.pass(RuleClearance, "sensitivity is within clearance")
	return true
}

// destination canonicalises the call's destination into the activation
// the rules read.
func (s *decision) destination() bool {
	s.act = newActivation(s.g, s.t, &s.c)
	d, err := dest.Parse(s.c.Destination, s.t.workdir)
	if err != nil {
		return s.deny(RuleDestination, "destination rejected: "+err.Error(), err)
	}
	s.act.setDest(d)
	// The canonical text is built in the activation's buffer; when the
	// caller already wrote it canonically, its string is reused.
	s.act.canon = d.AppendText(s.act.canon[:0])
	canon := s.c.Destination
	if string(s.act.canon) != canon {
		canon = string(s.act.canon)
	}
	if len(canon) > MaxDestinationSize {
		return s.deny(RuleDestination, fmt.Sprintf("destination is longer than %d bytes", MaxDestinationSize), nil)
	}
	s.d.Destination = canon
	s.pass(RuleDestination, canon)
	return true
}

// inspect runs the task's inspectors (the secrets broker registers one).
func (s *decision) inspect() bool {
	if !s.t.hasInspectors() {
		return true
	}
	d := &s.act.dest.d
	ci := CallInfo{Call: s.c, Destination: s.d.Destination, Kind: d.Kind.String(), Host: d.Host}
	if d.Kind == dest.KindFile {
		ci.Host = ""
	}
	if name, err := s.t.inspect(&ci); err != nil {
		return s.deny(RuleInspect+":"+name, err.Error(), err)
	}
	return true
}

// rules evaluates every rule for the call's tool: deny overrides ask
// overrides allow; no match denies. A rule that fails to evaluate denies.
func (s *decision) rules() bool {
	var ask, allow, denied *rule
	var deniedErr error
	for _, r := range s.st.rulesFor(s.c.Tool) {
		ok, err := r.when.eval(s.act)
		s.x.rule(r, ok, err)
		if err != nil {
			// From here on only the kind of error: its text may quote values.
			err = &RuleError{Rule: r.Name, Kind: evalErrorKind(err)}
		}
		if r.Mode == Shadow {
			if err != nil {
				s.d.Shadow = append(s.d.Shadow, ShadowOutcome{Rule: r.Name, Effect: Deny, Err: err})
			} else if ok {
				s.d.Shadow = append(s.d.Shadow, ShadowOutcome{Rule: r.Name, Effect: r.Effect})
			}
			continue
		}
		switch {
		case denied != nil:
			// Decided; evaluated for the explanation only.
		case err != nil:
			denied, deniedErr = r, err
		case !ok:
		case r.Effect == Deny:
			denied = r
		case r.Effect == Ask:
			if ask == nil {
				ask = r
			}
		case allow == nil:
			allow = r
		}
		if denied != nil && s.x == nil {
			break
		}
	}
	switch {
	case denied != nil && deniedErr != nil:
		s.d.Rule, s.d.Reason, s.d.Err = denied.Name, "rule "+denied.Name+" failed to evaluate: "+deniedErr.(*RuleError).Kind, deniedErr
		return false
	case denied != nil:
		s.d.Rule, s.d.Reason = denied.Name, denied.decided
		return false
	case ask != nil:
		s.decider, s.d.Effect = ask, Ask
	case allow != nil:
		s.decider, s.d.Effect = allow, Allow
	default:
		s.d.Rule, s.d.Reason = RuleNoMatch, "no rule allows this call"
		return false
	}
	s.d.Rule, s.d.Reason = s.decider.Name, s.decider.decided
	return true
}

// quota applies the deciding rule's rate limit and the call budgets of the
// task and its ancestors.
func (s *decision) quota() bool {
	t, r := s.t, s.decider
	if r.Limit != nil {
		if wait, ok := t.rateLimit(r, s.act.time(), s.consume); !ok {
			if wait >= time.Second {
				wait = wait.Round(time.Second)
			}
			s.d.Effect = Deny
			s.d.Reason = fmt.Sprintf("rate limit %d/%v of rule %s exceeded; retry in %v", r.Limit.Rate, r.Limit.Per,
				r.Name, wait.Round(time.Millisecond))
			return false
		}
	}
	if len(t.budgets) > 0 || t.parent != nil {
		if err := t.budgetLeft(s.c.Tool); err != nil {
			s.d.Effect, s.d.Rule, s.d.Reason, s.d.Err = Deny, RuleBudget, err.Error(), err
			return false
		}
	}
	return true
}

// bindApproval binds an Ask to the exact call (Decision.Digest).
func (s *decision) bindApproval() {
	if s.d.Effect != Ask {
		return
	}
	var err error
	s.d.Digest, err = callDigest(s.t, &s.c, s.d.Destination, s.d.PolicyVersion)
	if err != nil {
		s.d.Effect, s.d.Reason, s.d.Err = Deny, "call cannot be bound to an approval: "+err.Error(), err
	}
}

// expired reports whether t is past its deadline. Under the real clock it
// reads only the monotonic clock, exactly.
func (g *Guard) expired(t *Task) bool {
	if g.realClock {
		return time.Until(t.deadline) <= 0
	}
	return !g.clock().Before(t.deadline)
}
