package authz

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/taskguard/taskguard/internal/dest"
)

// Redactor rewrites text before it reaches the audit log; *secrets.Broker
// is one (it removes every live lease value).
type Redactor interface {
	Redact(string) string
}

// RedactAuditWith makes every later audit record pass its destination,
// reason and error through r, until remove is called. NewBroker registers
// the broker this way, so a leased value in a URL path never reaches the
// log, and Broker.Close removes it. Redactors accumulate and run in the
// order they were added; registering r twice adds it twice, and each
// remove takes away its own registration. remove is idempotent and safe
// for concurrent use. A nil r is ignored (remove does nothing).
// RedactAuditWith is safe for concurrent use and does not block on
// checks in flight: a record being written sees the redactors before or
// after the change, never a mix.
func (g *Guard) RedactAuditWith(r Redactor) (remove func()) {
	if r == nil {
		return func() {}
	}
	e := &auditRedactor{r: r}
	g.redactMu.Lock()
	defer g.redactMu.Unlock()
	var list []*auditRedactor
	if p := g.redactors.Load(); p != nil {
		list = append(list, *p...)
	}
	list = append(list, e)
	g.redactors.Store(&list)
	var once sync.Once
	return func() { once.Do(func() { g.removeRedactor(e) }) }
}

// auditRedactor is one registration of a redactor: removal is by
// registration, so redactors need not be comparable.
type auditRedactor struct{ r Redactor }

// removeRedactor drops registration e from the audit redactors.
func (g *Guard) removeRedactor(e *auditRedactor) {
	g.redactMu.Lock()
	defer g.redactMu.Unlock()
	p := g.redactors.Load()
	if p == nil {
		return
	}
	list := make([]*auditRedactor, 0, len(*p))
	for _, x := range *p {
		if x != e {
			list = append(list, x)
		}
	}
	g.redactors.Store(&list)
}

// redact applies the audit redactors to s.
func (g *Guard) redact(s string) string {
	if p := g.redactors.Load(); p != nil && s != "" {
		for _, e := range *p {
			s = e.r.Redact(s)
		}
	}
	return s
}

// audit writes the record of one decision. Arguments are never logged.
func (g *Guard) audit(ctx context.Context, t *Task, c *Call, d *Decision, latency time.Duration) {
	level := slog.LevelInfo
	if d.Effect == Deny {
		level = slog.LevelWarn
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if !g.logger.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs, slog.String("task", d.Task))
	if t != nil {
		attrs = append(attrs, slog.String("agent", t.agent.ID))
	}
	destination, rejected := auditDestination(t, c, d)
	attrs = append(attrs,
		slog.String("tool", c.Tool),
		slog.String("intent", c.Intent),
		slog.String("destination", g.redact(destination)),
		slog.String("sensitivity", c.Sensitivity.String()),
		slog.String("effect", d.Effect.String()),
		slog.String("rule", d.Rule),
		slog.String("reason", g.redact(d.Reason)),
		slog.String("policy", d.PolicyVersion),
		slog.Duration("latency", latency),
	)
	if len(d.Destinations) > 0 {
		more := make([]string, len(d.Destinations))
		for i, x := range d.Destinations {
			more[i] = g.redact(x)
		}
		attrs = append(attrs, slog.Any("destinations", more))
	}
	if rejected {
		attrs = append(attrs, slog.Bool("destination_rejected", true))
	}
	if d.Err != nil {
		attrs = append(attrs, slog.String("error", g.redact(d.Err.Error())))
	}
	if len(d.Shadow) > 0 {
		would := make([]string, len(d.Shadow))
		for i, s := range d.Shadow {
			would[i] = s.Rule + ":" + s.Effect.String()
		}
		attrs = append(attrs, slog.Any("shadow", would))
	}
	if d.Digest != "" {
		attrs = append(attrs, slog.String("digest", d.Digest))
	}
	g.logger.LogAttrs(ctx, level, "taskguard decision", attrs...)
}

// auditDestination returns the canonical destination of an audit record
// and whether the destination was rejected. A decision that ended before
// the destination stage (a built-in check denied first) has no canonical
// destination yet: the record parses it then, lexically (a file path's
// symbolic links are not resolved), so the log shows where the call was
// going. rejected is true only when a destination does not parse (the
// primary one, or one of Call.Destinations: the reason names which).
func auditDestination(t *Task, c *Call, d *Decision) (destination string, rejected bool) {
	if d.Rule == RuleDestination {
		return d.Destination, true
	}
	if d.Destination != "" || c.Destination == "" {
		return d.Destination, false
	}
	var workdir string
	if t != nil {
		workdir = t.workdir
	}
	_, text, err := dest.ParseText(c.Destination, workdir)
	if err != nil || len(text) > MaxDestinationSize {
		return "", true
	}
	return text, false
}

// auditApproval records the outcome of an approval.
func (g *Guard) auditApproval(ctx context.Context, c *Call, asked, out *Decision) {
	level := slog.LevelInfo
	if out.Effect != Allow {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("task", asked.Task),
		slog.String("tool", c.Tool),
		slog.String("intent", c.Intent),
		slog.String("destination", g.redact(asked.Destination)),
		slog.String("rule", asked.Rule),
		slog.String("effect", out.Effect.String()),
		slog.String("reason", g.redact(out.Reason)),
		slog.String("policy", asked.PolicyVersion),
		slog.String("digest", asked.Digest),
	}
	if out.ApprovedBy != "" {
		attrs = append(attrs, slog.String("approved_by", out.ApprovedBy))
	}
	if out.Err != nil {
		attrs = append(attrs, slog.String("error", g.redact(out.Err.Error())))
	}
	g.logger.LogAttrs(ctx, level, "taskguard approval", attrs...)
}
