package authztest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/authz"
)

// Clock is a settable clock for authz.WithClock (and the clock options of
// secrets and contextguard). The zero Clock is not usable; use NewClock. It
// is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to start.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set sets the clock.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Request is one question an [Approver] was asked.
type Request struct {
	Call     authz.Call
	Decision authz.Decision
}

// Approver is an authz.Approver and authz.Granter that answers from a
// script, in order, and records every request. When the script is
// exhausted it refuses. It is safe for concurrent use.
type Approver struct {
	mu       sync.Mutex
	answers  []authz.Grant
	requests []Request
}

// NewApprover returns an approver that gives answers in order.
func NewApprover(answers ...authz.Grant) *Approver { return &Approver{answers: answers} }

// Grant implements authz.Granter.
func (a *Approver) Grant(_ context.Context, c authz.Call, d authz.Decision) (authz.Grant, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = append(a.requests, Request{Call: c, Decision: d})
	if len(a.answers) == 0 {
		return authz.Grant{}, nil
	}
	gr := a.answers[0]
	a.answers = a.answers[1:]
	return gr, nil
}

// Approve implements authz.Approver.
func (a *Approver) Approve(ctx context.Context, c authz.Call, d authz.Decision) (bool, error) {
	gr, err := a.Grant(ctx, c, d)
	return gr.Approved, err
}

// Requests returns the requests so far.
func (a *Approver) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Request(nil), a.requests...)
}

// Record is one audit record captured by an [AuditRecorder]: the message
// ("taskguard decision", "taskguard approval") and the attributes as
// strings.
type Record struct {
	Time    time.Time
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

// Effect, Rule and Tool return the record's attributes of those names.
func (r Record) Effect() string { return r.Attrs["effect"] }

// Rule returns the record's rule.
func (r Record) Rule() string { return r.Attrs["rule"] }

// Tool returns the record's tool.
func (r Record) Tool() string { return r.Attrs["tool"] }

// AuditRecorder is a slog.Handler that keeps every record as a value, for
// authz.WithLogger(rec.Logger()). It is safe for concurrent use.
type AuditRecorder struct {
	mu      sync.Mutex
	records []Record
}

// NewAuditRecorder returns an empty recorder.
func NewAuditRecorder() *AuditRecorder { return &AuditRecorder{} }

// Logger returns a logger writing to the recorder.
func (r *AuditRecorder) Logger() *slog.Logger { return slog.New(r) }

// Records returns the records so far, oldest first.
func (r *AuditRecorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

// Enabled implements slog.Handler: every level is recorded.
func (r *AuditRecorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *AuditRecorder) Handle(_ context.Context, rec slog.Record) error {
	out := Record{Time: rec.Time, Level: rec.Level, Message: rec.Message, Attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		out.Attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.records = append(r.records, out)
	r.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler; the attributes are dropped.
func (r *AuditRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup implements slog.Handler; groups are ignored.
func (r *AuditRecorder) WithGroup(string) slog.Handler { return r }

// Begin starts a task for spec (agent "spiffe://authztest/agent" when
// none is given) and ends it when the test ends.
func Begin(t testing.TB, g *authz.Guard, ctx context.Context, spec authz.TaskSpec) (context.Context, *authz.Task) {
	t.Helper()
	if spec.Agent.ID == "" {
		spec.Agent.ID = "spiffe://authztest/agent"
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, task, err := g.Begin(ctx, spec)
	if err != nil {
		t.Fatalf("authztest: begin task: %v", err)
	}
	t.Cleanup(task.End)
	return ctx, task
}

// AssertAllowed checks that g allows c for the task in ctx, and prints the
// explanation when it does not. It returns the decision.
func AssertAllowed(t testing.TB, g *authz.Guard, ctx context.Context, c authz.Call) authz.Decision {
	t.Helper()
	return assertEffect(t, g, ctx, c, authz.Allow, "")
}

// AssertDenied checks that g denies c, by rule when rule is not empty, and
// prints the explanation when it does not. It returns the decision.
func AssertDenied(t testing.TB, g *authz.Guard, ctx context.Context, c authz.Call, rule string) authz.Decision {
	t.Helper()
	return assertEffect(t, g, ctx, c, authz.Deny, rule)
}

// AssertAsks checks that g asks for approval of c, by rule when rule is not
// empty. It returns the decision.
func AssertAsks(t testing.TB, g *authz.Guard, ctx context.Context, c authz.Call, rule string) authz.Decision {
	t.Helper()
	return assertEffect(t, g, ctx, c, authz.Ask, rule)
}

func assertEffect(t testing.TB, g *authz.Guard, ctx context.Context, c authz.Call, effect authz.Effect, rule string) authz.Decision {
	t.Helper()
	d := g.Check(ctx, c)
	if d.Effect != effect || rule != "" && d.Rule != rule {
		want := effect.String()
		if rule != "" {
			want += " by " + rule
		}
		t.Errorf("authztest: %s %s %q: want %s, got %s by %s\n%s", c.Tool, c.Intent, c.Destination, want,
			d.Effect, d.Rule, g.Explain(ctx, c))
	}
	return d
}
