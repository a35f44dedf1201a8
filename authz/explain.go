package authz

import (
	"context"
	"fmt"
	"strings"
)

// Outcome is what happened to one rule in an [Explanation].
type Outcome int8

// The outcomes.
const (
	// Skipped: not evaluated, because a built-in check decided first.
	Skipped Outcome = iota
	// Matched: the rule's expression was true.
	Matched
	// NotMatched: the rule's expression was false.
	NotMatched
	// Errored: the rule failed to evaluate (which denies, unless it is a
	// shadow rule).
	Errored
)

func (o Outcome) String() string {
	switch o {
	case Matched:
		return "matched"
	case NotMatched:
		return "not matched"
	case Errored:
		return "errored"
	}
	return "skipped"
}

// InvariantCheck is one built-in check of an [Explanation].
type InvariantCheck struct {
	// Name is the check's rule name (RuleIntent, RuleTool, ...).
	Name   string
	Passed bool
	Detail string
}

// RuleTrace is one applicable rule of an [Explanation].
type RuleTrace struct {
	Rule    string
	Effect  Effect
	Mode    Mode
	Outcome Outcome
	Err     error
	// Pos is where the rule is defined (file:line:col).
	Pos string
	// Task is the ID of the task under whose view the rule was evaluated:
	// the call's task, or for a sub-task also each ancestor in turn.
	Task string
}

// Explanation is how the guard decided a call: the built-in checks in
// order, every rule that applies to the call's tool with its outcome, and
// the decision (the same Check returns).
type Explanation struct {
	Decision   Decision
	Invariants []InvariantCheck
	Rules      []RuleTrace
}

// Explain decides call c like [Guard.Check] and records every step. Unlike
// Check it evaluates every applicable rule, also after a deny has decided,
// so the trace is complete; rules not reached because a built-in check
// failed are Skipped. It takes no rate-limit tokens. It is meant for
// debugging and policy tests, and is slower than Check; Check itself pays
// nothing for it.
func (g *Guard) Explain(ctx context.Context, c Call) Explanation {
	x := &Explanation{}
	d := g.decide(ctx, c, false, x, nil)
	x.Decision = d
	if st := g.state.Load(); st != nil && len(x.Rules) == 0 { // a built-in check decided: list the rules it skipped
		for _, r := range st.rulesFor(c.Tool, nil) {
			x.Rules = append(x.Rules, RuleTrace{Rule: r.Name, Effect: r.Effect, Mode: r.Mode, Outcome: Skipped, Pos: r.pos})
		}
	}
	return *x
}

func (x *Explanation) invariant(name string, passed bool, detail string) {
	if x == nil {
		return
	}
	x.Invariants = append(x.Invariants, InvariantCheck{Name: name, Passed: passed, Detail: detail})
}

func (x *Explanation) rule(t *Task, r *rule, matched bool, err error) {
	if x == nil {
		return
	}
	o := NotMatched
	switch {
	case err != nil:
		o = Errored
	case matched:
		o = Matched
	}
	x.Rules = append(x.Rules, RuleTrace{Rule: r.Name, Effect: r.Effect, Mode: r.Mode, Outcome: o, Err: err, Pos: r.pos, Task: t.id})
}

// String renders the explanation for a test failure or a log:
//
//	decision: deny by no-private-network (private addresses are off limits)
//	  ✓ @task: task_…
//	  ✗ @intent: intent "write" is not declared by the task
//	  rule no-private-network (deny) matched  [policy.yaml:12:5]
func (x Explanation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "decision: %s by %s (%s)\n", x.Decision.Effect, x.Decision.Rule, x.Decision.Reason)
	for _, s := range x.Decision.Shadow {
		fmt.Fprintf(&b, "  shadow: %s would %s\n", s.Rule, s.Effect)
	}
	for _, c := range x.Invariants {
		mark := "✓"
		if !c.Passed {
			mark = "✗"
		}
		fmt.Fprintf(&b, "  %s %s: %s\n", mark, c.Name, c.Detail)
	}
	for _, r := range x.Rules {
		mode := ""
		if r.Mode == Shadow {
			mode = ", shadow"
		}
		fmt.Fprintf(&b, "  rule %s (%s%s) %s", r.Rule, r.Effect, mode, r.Outcome)
		if r.Err != nil {
			fmt.Fprintf(&b, ": %v", r.Err)
		}
		if r.Pos != "" {
			fmt.Fprintf(&b, "  [%s]", r.Pos)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
