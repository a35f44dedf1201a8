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
func (g *Guard) Check(ctx context.Context, c Call) Decision {
	return g.decide(ctx, &c, false, nil)
}

// decide is Check, Authorize's first step and Explain. With consume, rate
// limit tokens are taken; with x, every step is recorded.
func (g *Guard) decide(ctx context.Context, c *Call, consume bool, x *Explanation) (d Decision) {
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
			g.audit(ctx, t, c, &d, time.Since(start))
		}
	}()
	st := g.state.Load()
	t, ok := TaskFrom(ctx)
	if !ok {
		x.invariant(RuleNoTask, false, "no task in the context")
		return Decision{Rule: RuleNoTask, Reason: "no task in the context: begin a task with Guard.Begin", PolicyVersion: st.policy.version}
	}
	x.invariant(RuleNoTask, true, t.id)
	d = g.check(ctx, st, t, c, consume, x)
	if g.dryRun && d.Effect != Allow && !d.invariant {
		d.Shadow = append(d.Shadow, ShadowOutcome{Rule: d.Rule, Effect: d.Effect, Err: d.Err})
		d.Effect, d.Rule, d.Reason, d.Err = Allow, RuleDryRun, "dry run: the policy would have decided "+d.Effect.String()+" by "+d.Rule, nil
	}
	return d
}

func (g *Guard) check(ctx context.Context, st *compiled, t *Task, c *Call, consume bool, x *Explanation) Decision {
	deny := func(rule, reason string, err error) Decision {
		x.invariant(rule, false, reason)
		return Decision{Rule: rule, Reason: reason, Err: err, Task: t.id, PolicyVersion: st.policy.version, invariant: true}
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
	x.invariant(RuleTaskEnded, true, "task is live")
	x.invariant(RuleCall, true, "call is well-formed")
	if len(t.intents) > 0 && !slices.Contains(t.intents, c.Intent) {
		return deny(RuleIntent, fmt.Sprintf("intent %q is not declared by the task", c.Intent), nil)
	}
	x.invariant(RuleIntent, true, "intent is declared")
	if len(t.tools) > 0 && !slices.ContainsFunc(t.tools, func(p string) bool { return glob.Match(p, c.Tool) }) {
		return deny(RuleTool, fmt.Sprintf("tool %q is not among the task's tools", c.Tool), nil)
	}
	x.invariant(RuleTool, true, "tool is among the task's tools")
	if c.Sensitivity > t.clearance {
		return deny(RuleClearance, fmt.Sprintf("sensitivity %v exceeds the task's clearance %v", c.Sensitivity, t.clearance), nil)
	}
	x.invariant(RuleClearance, true, "sensitivity is within clearance")

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
	x.invariant(RuleDestination, true, canon)
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
	var shadow []ShadowOutcome
	var denied *Decision
	for _, r := range st.rulesFor(c.Tool) {
		ok, err := r.when.eval(act)
		x.rule(r, ok, err)
		if r.Mode == Shadow {
			if err != nil {
				shadow = append(shadow, ShadowOutcome{Rule: r.Name, Effect: Deny, Err: err})
			} else if ok {
				shadow = append(shadow, ShadowOutcome{Rule: r.Name, Effect: r.Effect})
			}
			continue
		}
		if denied != nil {
			continue // evaluated for the explanation only
		}
		switch {
		case err != nil:
			denied = &Decision{Rule: r.Name, Reason: fmt.Sprintf("rule %s failed to evaluate: %v", r.Name, err),
				Err: fmt.Errorf("authz: rule %s: %w", r.Name, err)}
		case !ok:
			continue
		case r.Effect == Deny:
			denied = &Decision{Rule: r.Name, Reason: r.decided}
		case r.Effect == Ask:
			if ask == nil {
				ask = r
			}
		case allow == nil:
			allow = r
		}
		if denied != nil && x == nil {
			break
		}
	}
	d := Decision{Task: t.id, Destination: canon, PolicyVersion: st.policy.version, Shadow: shadow}
	var decider *rule
	switch {
	case denied != nil:
		d.Rule, d.Reason, d.Err = denied.Rule, denied.Reason, denied.Err
		return d
	case ask != nil:
		decider, d.Effect, d.Rule, d.Reason = ask, Ask, ask.Name, ask.decided
	case allow != nil:
		decider, d.Effect, d.Rule, d.Reason = allow, Allow, allow.Name, allow.decided
	default:
		d.Rule, d.Reason = RuleNoMatch, "no rule allows this call"
		return d
	}
	if decider.Limit != nil {
		if wait, ok := t.rateLimit(decider, now, consume); !ok {
			d.Effect = Deny
			if wait >= time.Second {
				wait = wait.Round(time.Second)
			}
			d.Reason = fmt.Sprintf("rate limit %d/%v of rule %s exceeded; retry in %v", decider.Limit.Rate, decider.Limit.Per,
				decider.Name, wait.Round(time.Millisecond))
			return d
		}
	}
	if len(t.budgets) > 0 || t.parent != nil {
		if err := t.budgetLeft(c.Tool); err != nil {
			d.Effect, d.Rule, d.Reason, d.Err = Deny, RuleBudget, err.Error(), err
			return d
		}
	}
	if d.Effect == Ask {
		d.Digest, err = callDigest(t, c, canon, st.policy.version)
		if err != nil {
			d.Effect, d.Reason, d.Err = Deny, "call cannot be bound to an approval: "+err.Error(), err
		}
	}
	return d
}
