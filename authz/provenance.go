package authz

import (
	"errors"
	"fmt"

	"cel.dev/cel-go/common/functions"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/taskguard/taskguard/internal/provenance"
)

// DefaultProvenanceLimit bounds the untrusted text a task remembers for
// provenance rules unless [WithProvenanceLimit] says otherwise (trusted
// text: a quarter of it). The index costs about 26 bytes of memory per byte
// of text.
const DefaultProvenanceLimit = 256 << 10

// WithProvenanceLimit bounds the untrusted text each task remembers for
// provenance rules (value.fromUntrusted(), value.fromTrusted()); beyond
// it the oldest untrusted text is dropped and task.truncated becomes true,
// so rules can fail closed. The last WithProvenanceLimit wins.
func WithProvenanceLimit(bytes int) Option {
	return func(g *Guard) error {
		if bytes <= 0 {
			return fmt.Errorf("WithProvenanceLimit: %d is not positive", bytes)
		}
		g.provenanceLimit = bytes
		return nil
	}
}

// ObserveText records, like [Task.Observe], that the task has seen data of
// sensitivity s from source, and remembers the text itself, so policies
// can ask where a value came from: args.iban.fromUntrusted() is true when
// the value occurs (whole words, case folded, white space collapsed) in
// untrusted text the task observed, args.to.fromTrusted() when it occurs in
// trusted text (the user's request, the system prompt). Like Observe, it
// also records on the task's ancestors, which receive the sub-task's
// results. The remembered text is bounded ([WithProvenanceLimit]) and
// wiped when the task ends; ObserveText on an ended task is ignored.
// Provenance proves that a value was or was not seen verbatim (up to that
// normalisation), not where a paraphrased or re-encoded value came from.
func (t *Task) ObserveText(source, text string, s Sensitivity, trusted bool) {
	changed := false
	for x := t; x != nil; x = x.parent {
		changed = x.observe(source, s, trusted) || changed
		if ix := x.provenanceIndex(); ix != nil {
			ix.Add(text, trusted)
		}
	}
	t.share(changed, source, s, trusted)
}

// provenanceIndex returns the task's index, creating it; nil once the task
// has ended.
func (t *Task) provenanceIndex() *provenance.Index {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil
	}
	if t.prov == nil {
		limit := DefaultProvenanceLimit
		if t.guard != nil && t.guard.provenanceLimit > 0 {
			limit = t.guard.provenanceLimit
		}
		t.prov = provenance.New(limit)
	}
	return t.prov
}

// seen reports whether value occurs in text the task observed with that
// trust.
func (t *Task) seen(value string, trusted bool) bool {
	t.mu.Lock()
	ix := t.prov
	t.mu.Unlock()
	return ix != nil && ix.Seen(value, trusted)
}

// truncated reports whether the task dropped untrusted text it observed.
func (t *Task) truncated() bool {
	t.mu.Lock()
	ix := t.prov
	t.mu.Unlock()
	return ix != nil && ix.Truncated()
}

// errNotString reports a provenance method called on a non-string.
var errNotString = errors.New("want a string")

// provenanceFunc returns the late-bound implementation of fromUntrusted or
// fromTrusted for the activation's task.
func (a *activation) provenanceFunc(trusted bool) functions.LateBoundOp {
	return func(_ string, args ...ref.Val) ref.Val {
		if len(args) != 1 {
			return types.NewErr("provenance: want one argument")
		}
		s, ok := args[0].(types.String)
		if !ok {
			return types.WrapErr(errNotString)
		}
		return types.Bool(a.task.t.seen(string(s), trusted))
	}
}

// funcActivation is an activation that also binds the late-bound
// provenance methods. Only programs that call them are evaluated with it:
// being a function activation costs every evaluation a little.
type funcActivation struct{ *activation }

// ResolveFunction implements [interpreter.FunctionActivation] for the
// late-bound provenance methods.
func (f funcActivation) ResolveFunction(name string) (functions.LateBoundOp, bool) {
	switch name {
	case "fromUntrusted":
		return f.provenanceFunc(false), true
	case "fromTrusted":
		return f.provenanceFunc(true), true
	}
	return nil, false
}
