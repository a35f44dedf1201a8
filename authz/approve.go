package authz

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Grant is an approver's full answer to an Ask.
type Grant struct {
	// Approved allows the call.
	Approved bool
	// ForTask extends the approval to every identical call (same
	// Decision.Digest: same arguments, destination and policy version) for
	// the rest of the task. Otherwise the approval is used once.
	ForTask bool
	// By names who approved, for the audit log ("alice@example.org").
	By string
}

// Granter is implemented by approvers that answer with a [Grant]; Authorize
// uses it instead of Approve when the approver has it.
type Granter interface {
	Grant(ctx context.Context, c Call, d Decision) (Grant, error)
}

// GranterFunc adapts a function to [Approver] and [Granter].
type GranterFunc func(ctx context.Context, c Call, d Decision) (Grant, error)

// Grant calls f.
func (f GranterFunc) Grant(ctx context.Context, c Call, d Decision) (Grant, error) {
	return f(ctx, c, d)
}

// Approve calls f and reports whether it approved.
func (f GranterFunc) Approve(ctx context.Context, c Call, d Decision) (bool, error) {
	gr, err := f(ctx, c, d)
	return gr.Approved, err
}

// Authorize decides call c like [Guard.Check], taking a rate-limit token
// when the deciding rule has a limit, and, for Ask, gets an approval bound
// to the exact call (Decision.Digest). It returns nil when the call may
// proceed, and then counts it on the task (task.calls and the budgets);
// otherwise a *[DeniedError] (errors.Is(err, ErrDenied)).
//
// An approval granted for the task (Grant.ForTask) covers identical calls
// later in the task without asking again; any other approval is used once.
// A changed argument, destination or sensitivity, another task or a new
// policy version changes the digest, so the call asks again. Calls of a
// [Tool] with OpaqueArgs are approved once at a time: a grant for the task
// would cover arguments nobody saw. No approver, a refusal, an approver
// error or panic, no answer within the approval timeout, and a done context
// all deny; so does an approval that comes too late: the task ended or
// passed its deadline, or the policy changed, while the approver decided
// (RuleTaskEnded, the audit record says so). Authorize blocks while the
// approver does.
//
// Under a store ([WithStore]) the rate limits, budgets, call counts and
// standing approvals are the store's, shared by every guard on it:
// Authorize makes one call into the store per decision, which takes,
// spends and counts all or nothing; a store that fails or does not answer
// in time denies (RuleStore). When another guard changed the task's taint
// since this one last heard of it, the store says so and the call is
// decided again on the new taint before anything is allowed.
func (g *Guard) Authorize(ctx context.Context, c Call) error {
	var d Decision
	var ap approvalObservation
	if g.observer != nil {
		defer g.observeAuthorize(ctx, &c, &d, &ap, time.Now())
	}
	if g.store != nil {
		var err error
		d, err = g.authorizeShared(ctx, c, &ap)
		return err
	}
	d = g.decide(ctx, c, true, nil, nil)
	switch d.Effect {
	case Allow:
	case Ask:
		d, _ = g.approveObserved(ctx, c, d, &ap)
		if d.Effect != Allow {
			return &DeniedError{Decision: d, Tool: c.Tool}
		}
	default:
		return &DeniedError{Decision: d, Tool: c.Tool}
	}
	if t, ok := TaskFrom(ctx); ok {
		if err := t.reserveCall(c.Tool); err != nil {
			d.Effect, d.Rule, d.Reason, d.Err = Deny, RuleBudget, err.Error(), err
			return &DeniedError{Decision: d, Tool: c.Tool}
		}
	}
	return nil
}

// approve gets an approval for an Ask decision and returns the final
// decision, and whether the approver granted it for the task. Under a
// store, standing approvals are the store's: approve neither looks them up
// nor records them.
func (g *Guard) approve(ctx context.Context, c Call, d Decision) (out Decision, forTask bool) {
	asked := d
	out = d
	out.Effect = Deny
	defer func() {
		if g.logger != nil {
			g.auditApproval(ctx, &c, &asked, &out)
		}
	}()
	t, _ := TaskFrom(ctx)
	opaque := opaqueArgs(ctx)
	shared := g.store != nil
	if t != nil && !opaque && !shared {
		if by, ok := t.standingGrant(d.Digest); ok {
			out.Effect, out.ApprovedBy, out.Reason = Allow, by, "approved for the task by "+by+": "+d.Reason
			return out, false
		}
	}
	if g.approver == nil {
		out.Rule, out.Reason = RuleApproval, fmt.Sprintf("rule %s requires approval and no approver is configured", d.Rule)
		return out, false
	}
	gr, err := g.askApprover(ctx, c, d)
	switch {
	case err != nil:
		out.Rule, out.Reason, out.Err = RuleApproval, "approver failed: "+err.Error(), err
		return out, false
	case ctx.Err() != nil:
		out.Rule, out.Reason, out.Err = RuleApproval, "context done during approval", ctx.Err()
		return out, false
	case !gr.Approved:
		out.Rule, out.Reason = RuleApproval, fmt.Sprintf("approval for rule %s was refused", d.Rule)
		return out, false
	}
	// A person may take minutes: what the approval was for must still hold.
	if late := g.approvalTooLate(t, d); late != "" {
		out.Rule, out.Reason = RuleTaskEnded, "the approval came too late: "+late
		return out, false
	}
	out.Effect, out.ApprovedBy, out.Reason = Allow, gr.By, "approved: "+d.Reason
	if gr.ForTask && t != nil {
		switch {
		case opaque:
			out.Reason = "approved once (the tool's arguments are opaque, so no approval covers the task): " + d.Reason
		case shared:
			forTask = true
		default:
			t.grant(d.Digest, gr.By)
		}
	}
	return out, forTask
}

// approvalTooLate says why an approval of decision d can no longer be
// used: the task ended or passed its deadline, or the policy changed, while
// the approver decided. It returns "" when the approval stands.
func (g *Guard) approvalTooLate(t *Task, d Decision) string {
	switch {
	case t == nil:
		return "the call has no task"
	case t.Ended():
		return "the task ended while the approver decided"
	case g.expired(t):
		t.End()
		return "the task passed its deadline while the approver decided"
	case g.policyVersion() != d.PolicyVersion:
		return "the policy changed while the approver decided"
	}
	return ""
}

// askApprover runs the approver under the approval timeout, recovering a
// panic. An approver that ignores its context is abandoned at the timeout;
// its goroutine ends when it returns.
func (g *Guard) askApprover(ctx context.Context, c Call, d Decision) (Grant, error) {
	ctx, cancel := context.WithTimeout(ctx, g.approvalTimeout)
	defer cancel()
	type answer struct {
		gr  Grant
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		var a answer
		defer func() {
			if r := recover(); r != nil {
				a = answer{err: fmt.Errorf("approver panicked: %v", r)}
			}
			ch <- a
		}()
		if gt, ok := g.approver.(Granter); ok {
			a.gr, a.err = gt.Grant(ctx, c, d)
		} else {
			a.gr.Approved, a.err = g.approver.Approve(ctx, c, d)
		}
	}()
	select {
	case a := <-ch:
		return a.gr, a.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Grant{}, fmt.Errorf("no answer within %v", g.approvalTimeout)
		}
		return Grant{}, ctx.Err()
	}
}

// callDigest identifies the exact call and what its decision depended on:
// agent, task, tool, intent, canonical destination, sensitivity, canonical
// JSON of the arguments, the rule that asked and the policy version.
func callDigest(t *Task, c *Call, canon string, more []string, rule, version string) (string, error) {
	args, err := json.Marshal(c.Args) // map keys are sorted
	if err != nil {
		return "", fmt.Errorf("arguments are not JSON: %w", err)
	}
	h := sha256.New()
	write := func(s string) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	for _, s := range []string{t.agent.ID, t.id, c.Tool, c.Intent, canon, c.Sensitivity.String(), string(args), rule, version} {
		write(s)
	}
	// The further destinations, in order, after a marker (a call without
	// any keeps the digest it had before calls could have several).
	if len(more) > 0 {
		h.Write([]byte{0xff})
		for _, s := range more {
			write(s)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// standingGrant reports whether the task holds a for-task approval of the
// digest, and who gave it.
func (t *Task) standingGrant(digest string) (string, bool) {
	if digest == "" {
		return "", false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	by, ok := t.grants[digest]
	return by, ok
}

func (t *Task) grant(digest, by string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done || digest == "" {
		return
	}
	if t.grants == nil {
		t.grants = map[string]string{}
	}
	t.grants[digest] = by
}

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
