package authz

import (
	"context"
	"errors"
	"slices"

	"github.com/taskguard/taskguard/internal/dest"
)

// Output says how the result of a successful call taints its task. The
// zero Output records results of calls whose intent reads data (read,
// search and the intents of [WithObservedIntents]) as untrusted content of
// the call's sensitivity: what a tool brings back is remote content the
// model will read, and rules such as "no export after untrusted content"
// depend on knowing it.
type Output struct {
	// Trusted declares the tool's results trusted: the host's own data,
	// not content an attacker could shape.
	Trusted bool
	// Classify returns the sensitivity of a call's result; nil means the
	// call's own sensitivity.
	Classify func(c Call) Sensitivity
	// Never turns the observation off: the result never reaches the
	// model, or the host records it itself with [Task.Observe].
	Never bool
}

// defaultObservedIntents are the intents whose results taint the task.
var defaultObservedIntents = []string{"read", "search"}

// WithObservedIntents adds intents whose successful calls' results taint
// the task (by default read and search) in [Wrap], [WrapJSON] and
// [Guard.ObserveOutput]. It may be repeated; the intents accumulate.
func WithObservedIntents(intents ...string) Option {
	return func(g *Guard) error {
		for _, in := range intents {
			if in == "" {
				return errors.New("WithObservedIntents: empty intent")
			}
		}
		g.observed = append(g.observed, intents...)
		return nil
	}
}

// ObserveOutput records on the task in ctx that call c succeeded and its
// result reached the agent, as [Wrap] and [WrapJSON] do after every
// successful call: for an intent that reads data, unless o says otherwise,
// the task's taint gains the call's sensitivity (or o.Classify's), and the
// untrusted flag unless o.Trusted. The source is the tool and the canonical
// destination ("http.fetch https://example.org/a"). Integrations that call
// [Guard.Authorize] themselves call it after the tool returned without
// error; never for a denied or failed call. Without a task in ctx it does
// nothing. Safe for concurrent use; it does not block.
func (g *Guard) ObserveOutput(ctx context.Context, c Call, o Output) {
	t, ok := TaskFrom(ctx)
	if !ok || o.Never || !g.observes(c.Intent) {
		return
	}
	s := c.Sensitivity
	if o.Classify != nil {
		s = classify(o.Classify, c)
	}
	t.Observe(outputSource(c, t.workdir), s, o.Trusted)
}

// observes reports whether results of intent taint the task.
func (g *Guard) observes(intent string) bool {
	return slices.Contains(defaultObservedIntents, intent) || slices.Contains(g.observed, intent)
}

// classify runs a host classifier; a panic classifies as Restricted, the
// strictest, so a broken classifier never lowers the taint.
func classify(f func(Call) Sensitivity, c Call) (s Sensitivity) {
	defer func() {
		if recover() != nil {
			s = Restricted
		}
	}()
	s = f(c)
	if !s.Valid() {
		return Restricted
	}
	return s
}

// outputSource names a call's result for task.taint.sources: the tool and
// the canonical destination.
func outputSource(c Call, workdir string) string {
	if c.Destination == "" {
		return c.Tool
	}
	_, canon, err := dest.ParseText(c.Destination, workdir)
	if err != nil {
		return c.Tool
	}
	return c.Tool + " " + canon
}
