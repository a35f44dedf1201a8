package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/time/rate"

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
	return g.decide(ctx, c, false, nil, nil)
}

// decide is Check, Authorize's first step (consume: rate-limit tokens are
// taken) and Explain (x records every step).
// Under a store, op (when not nil) receives the rate limits and budgets
// the call needs.
func (g *Guard) decide(ctx context.Context, c Call, consume bool, x *Explanation, op *storeOp) (d Decision) {
	var start time.Time
	if g.logger != nil || g.observer != nil {
		start = time.Now()
	}
	s := decision{g: g, ctx: ctx, c: c, consume: consume, x: x, op: op}
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
		if g.observer != nil && !consume && x == nil {
			g.observeDecision(ctx, OpCheck, s.t, &s.c, &d, start, nil)
		}
	}()
	if s.st = g.state.Load(); s.st == nil {
		s.deny(RuleInternal, "the guard was not built with authz.New", nil)
		return s.d
	}
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
	op      *storeOp     // under a store, in Authorize: what to ask of the store

	st  *compiled
	t   *Task
	act *activation // the CEL variables, from the destination stage on

	d Decision
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
	if v := s.g.view; v != nil && !v.fresh(s.g.now()) {
		return s.deny(RuleStore, "the view of shared task state is stale: the store's subscription is down", nil)
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
	return s.declaredArgs()
}

// destination canonicalises the call's destination into the activation
// the rules read. A file path is resolved through the symbolic links of its
// existing part, so rules see the file the operating system would reach at
// this moment (a later open can still race: see authz/fsguard).
func (s *decision) destination() bool {
	s.act = newActivation(s.g, s.t, &s.c)
	d := &s.act.dest.d
	canon, err := dest.ParseInto(d, s.c.Destination, s.t.workdir)
	if err == nil && d.Kind == dest.KindFile {
		*d, err = dest.Resolve(*d)
		canon = d.Path
	}
	if err != nil {
		return s.deny(RuleDestination, "destination rejected: "+err.Error(), err)
	}
	if len(canon) > MaxDestinationSize {
		return s.deny(RuleDestination, fmt.Sprintf("destination is longer than %d bytes", MaxDestinationSize), nil)
	}
	s.d.Destination, s.act.dest.canon = canon, canon
	s.pass(RuleDestination, canon)
	if len(s.c.Destinations) > 0 {
		return s.moreDestinations()
	}
	return true
}

// moreDestinations canonicalises the call's further destinations like the
// primary one; the first one rejected denies the call.
func (s *decision) moreDestinations() bool {
	c := &s.c
	if len(c.Destinations) > MaxDestinations {
		return s.deny(RuleDestination, fmt.Sprintf("call has more than %d further destinations", MaxDestinations), nil)
	}
	if c.Destination == "" {
		return s.deny(RuleDestination, "call has further destinations but no primary destination", nil)
	}
	more := s.act.moreDestinations(len(c.Destinations))
	canons := make([]string, len(c.Destinations))
	for i, raw := range c.Destinations {
		d := &more[i].d
		canon, err := dest.ParseInto(d, raw, s.t.workdir)
		if err == nil && raw == "" {
			err = errors.New("empty destination")
		}
		if err == nil && d.Kind == dest.KindFile {
			*d, err = dest.Resolve(*d)
			canon = d.Path
		}
		if err != nil {
			return s.deny(RuleDestination, fmt.Sprintf("destinations[%d] rejected: %v", i+1, err), err)
		}
		if len(canon) > MaxDestinationSize {
			return s.deny(RuleDestination, fmt.Sprintf("destinations[%d] is longer than %d bytes", i+1, MaxDestinationSize), nil)
		}
		canons[i], more[i].canon = canon, canon
		s.pass(RuleDestination, canon)
	}
	s.d.Destinations = canons
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
	// Each further destination, as if the call went there alone: the
	// inspectors see it as the call's destination, as given and canonical.
	for i := range s.d.Destinations {
		d := &s.act.more[i].d
		ci.Call.Destination = s.c.Destinations[i]
		ci.Destination, ci.Kind, ci.Host = s.d.Destinations[i], d.Kind.String(), d.Host
		if d.Kind == dest.KindFile {
			ci.Host = ""
		}
		if name, err := s.t.inspect(&ci); err != nil {
			return s.deny(RuleInspect+":"+name, fmt.Sprintf("destinations[%d]: %v", i+1, err), err)
		}
	}
	return true
}

// rules decides the call by the policy, for the task and then for each of
// its ancestors in turn: a sub-task may only do what every task above it
// may do. Each ancestor's decision uses its own agent, labels, scope and
// taint with the same call and canonical destination; the strictest
// effect wins (deny over ask over allow), so neither a sub-agent's own
// identity nor a label the parent lacked can widen anything.
func (s *decision) rules() bool {
	own := s.evalRules(s.t)
	if !s.settle(own, nil) {
		return false
	}
	s.act.deciders = append(s.act.deciders[:0], levelDecider{s.t, own.decider})
	for a := s.t.parent; a != nil; a = a.parent {
		s.act.setTask(a)
		up := s.evalRules(a)
		s.act.setTask(s.t)
		if !s.settle(up, a) {
			return false
		}
		s.act.deciders = append(s.act.deciders, levelDecider{a, up.decider})
	}
	return true
}

// levelOutcome is the policy's answer for one task of the chain.
type levelOutcome struct {
	effect  Effect
	decider *rule // the rule that denied, asked or allowed; nil: no match
	err     *RuleError
}

// levelDecider is the rule that allowed or asked for one task of the
// chain; its rate limit is charged to that task.
type levelDecider struct {
	t *Task
	r *rule
}

// evalRules evaluates every rule for the call's tool under task t's view:
// deny overrides ask overrides allow. A rule that fails to evaluate
// denies. Shadow rules are reported for the call's own task only.
func (s *decision) evalRules(t *Task) levelOutcome {
	var out levelOutcome
	var ask, allow *rule
	own := t == s.t
	for _, r := range s.st.rulesFor(s.c.Tool, &s.act.rules) {
		if r.Mode == Shadow && !own {
			continue
		}
		ok, err := r.when.eval(s.act)
		s.x.rule(t, r, ok, err)
		var rerr *RuleError
		if err != nil {
			// From here on only the kind of error: its text may quote values.
			rerr = &RuleError{Rule: r.Name, Kind: evalErrorKind(err)}
		}
		if r.Mode == Shadow {
			if rerr != nil {
				s.d.Shadow = append(s.d.Shadow, ShadowOutcome{Rule: r.Name, Effect: Deny, Err: rerr})
			} else if ok {
				s.d.Shadow = append(s.d.Shadow, ShadowOutcome{Rule: r.Name, Effect: r.Effect})
			}
			continue
		}
		switch {
		case out.decider != nil:
			// Denied; evaluated for the explanation only.
		case rerr != nil:
			out.decider, out.err = r, rerr
		case !ok:
		case r.Effect == Deny:
			out.decider = r
		case r.Effect == Ask:
			if ask == nil {
				ask = r
			}
		case allow == nil:
			allow = r
		}
		if out.decider != nil && s.x == nil {
			return out
		}
	}
	switch {
	case out.decider != nil:
	case ask != nil:
		out.effect, out.decider = Ask, ask
	case allow != nil:
		out.effect, out.decider = Allow, allow
	}
	return out
}

// settle folds one task's outcome into the decision and reports whether
// the decision is still open. above is the ancestor the outcome is for, or
// nil for the call's own task.
func (s *decision) settle(o levelOutcome, above *Task) bool {
	var reason string
	switch {
	case o.decider == nil && len(s.st.policy.rules) == 0:
		s.d.Effect, s.d.Rule, reason = Deny, RuleNoMatch, noPolicyReason
	case o.decider == nil:
		s.d.Effect, s.d.Rule, reason = Deny, RuleNoMatch, "no rule allows this call"
	case o.err != nil:
		s.d.Effect, s.d.Rule, s.d.Err, reason = Deny, o.decider.Name, o.err, "rule "+o.decider.Name+" failed to evaluate: "+o.err.Kind
	case o.effect == Deny:
		s.d.Effect, s.d.Rule, reason = Deny, o.decider.Name, o.decider.decided
	case above != nil && (s.d.Effect == Ask || o.effect == Allow):
		return true // the call's own answer is at least as strict
	default:
		s.d.Effect, s.d.Rule, reason = o.effect, o.decider.Name, o.decider.decided
	}
	if above != nil {
		reason = "for ancestor task " + above.id + " (agent " + above.agent.ID + "): " + reason
	}
	s.d.Reason = reason
	return s.d.Effect != Deny
}

// quota applies the rate limit of the rule that decided for each task of
// the chain, to that task, all or nothing, and the call budgets of the
// task and its ancestors.
func (s *decision) quota() bool {
	if s.g.store != nil {
		// The store applies them, in Authorize; Check cannot see them.
		if s.op != nil {
			s.fillOp()
		}
		return true
	}
	if !s.rateLimits() {
		return false
	}
	if t := s.t; len(t.budgets) > 0 || t.parent != nil {
		if err := t.budgetLeft(s.c.Tool); err != nil {
			s.d.Effect, s.d.Rule, s.d.Reason, s.d.Err = Deny, RuleBudget, err.Error(), err
			return false
		}
	}
	return true
}

func (s *decision) rateLimits() bool {
	var taken [4]*rate.Reservation
	reserved := taken[:0]
	for _, ld := range s.act.deciders {
		if ld.r.Limit == nil {
			continue
		}
		now := s.act.time()
		res, wait, ok := ld.t.rateLimit(ld.r, now, s.consume)
		if ok {
			if res != nil {
				reserved = append(reserved, res)
			}
			continue
		}
		for _, r := range reserved {
			r.CancelAt(now)
		}
		s.d.Effect, s.d.Rule = Deny, ld.r.Name
		s.d.Reason = rateReason(ld, wait, ld.t != s.t)
		return false
	}
	return true
}

// bindApproval binds an Ask to the exact call (Decision.Digest).
func (s *decision) bindApproval() {
	if s.d.Effect != Ask {
		return
	}
	var err error
	s.d.Digest, err = callDigest(s.t, &s.c, s.d.Destination, s.d.Destinations, s.d.Rule, s.d.PolicyVersion)
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
