package authzotel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskguard/taskguard/authz"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/taskguard/taskguard/authz/authzotel"

// Attribute keys. Names of the OpenTelemetry GenAI semantic conventions
// where one exists (gen_ai.*), otherwise under taskguard.
const (
	KeyToolName         = attribute.Key("gen_ai.tool.name") // the call's tool
	KeyAgentID          = attribute.Key("gen_ai.agent.id")  // the task's agent (workload identity)
	KeyIntent           = attribute.Key("taskguard.intent")
	KeySensitivity      = attribute.Key("taskguard.sensitivity")
	KeyEffect           = attribute.Key("taskguard.effect") // allow, deny, ask
	KeyRule             = attribute.Key("taskguard.rule")   // the deciding rule, or a built-in check (@no-match, ...)
	KeyPolicyVersion    = attribute.Key("taskguard.policy.version")
	KeyTaskID           = attribute.Key("taskguard.task.id")
	KeyOperation        = attribute.Key("taskguard.operation")        // check, authorize, enforce
	KeyApprovalOutcome  = attribute.Key("taskguard.approval.outcome") // granted, refused, no-approver, failed, too-late
	KeyApprovalDuration = attribute.Key("taskguard.approval.duration")
	KeyLeaseID          = attribute.Key("taskguard.lease.id")
	KeyLeaseEvent       = attribute.Key("taskguard.lease.event") // granted, revoked, expired
	KeySecretName       = attribute.Key("taskguard.secret.name")
)

// Metric names.
const (
	MetricDecisions        = "taskguard.decisions"         // counter: decisions by operation, effect, rule
	MetricDecisionDuration = "taskguard.decision.duration" // histogram (s): decision latency by operation, effect
	MetricApprovalDuration = "taskguard.approval.duration" // histogram (s): approval wait by outcome
	MetricLeasesActive     = "taskguard.leases.active"     // up-down counter: live leases
	MetricLeaseEvents      = "taskguard.lease.events"      // counter: lease events by kind
)

// Span names: one span per decision of the operation.
const (
	SpanAuthorize = "taskguard.authorize"
	SpanEnforce   = "taskguard.enforce"
	SpanCheck     = "taskguard.check" // only WithCheckSpans
)

// Option configures an [Observer]; see [New].
type Option func(*config) error

type config struct {
	tp         trace.TracerProvider
	mp         metric.MeterProvider
	checkSpans bool
}

// WithTracerProvider sets the tracer provider. The default is the global
// one (otel.GetTracerProvider at New). A nil tp is an error. The last
// WithTracerProvider wins.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return errors.New("WithTracerProvider: nil provider")
		}
		c.tp = tp
		return nil
	}
}

// WithMeterProvider sets the meter provider. The default is the global one
// (otel.GetMeterProvider at New). A nil mp is an error. The last
// WithMeterProvider wins.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("WithMeterProvider: nil provider")
		}
		c.mp = mp
		return nil
	}
}

// WithCheckSpans makes a span (taskguard.check) for every [authz.Guard.Check]
// too. By default checks are only counted and timed: hosts check far more
// often than they act (tool lists, pre-flight checks), and a span each
// would drown the traces.
func WithCheckSpans() Option {
	return func(c *config) error {
		c.checkSpans = true
		return nil
	}
}

// Observer is an [authz.Observer] that records a guard's events with
// OpenTelemetry. Build it with [New] and give it to the guard with
// authz.WithObserver. It is safe for concurrent use.
//
// For each Authorize (and each denial at use time, through Guard.Deny) it
// makes a span, a child of the span in the call's context, from the
// decision's start to its end, with the attributes [KeyToolName],
// [KeyIntent], [KeySensitivity], [KeyEffect], [KeyRule],
// [KeyPolicyVersion], [KeyTaskID], [KeyAgentID], and for an Ask
// [KeyApprovalOutcome] and [KeyApprovalDuration]. The span is made when the
// decision is over, with the decision's timestamps: spans the approver
// makes meanwhile are not its children. A span for a recovered internal
// error (authz.RuleInternal) has status Error; a deny is the guard doing
// its job and leaves the status unset.
//
// Metrics: [MetricDecisions] counts decisions by [KeyOperation],
// [KeyEffect] and [KeyRule]; [MetricDecisionDuration] times them by
// operation and effect (describe failures and use-time denials are not
// timed); [MetricApprovalDuration] times approvals by outcome;
// [MetricLeasesActive] counts live leases and [MetricLeaseEvents] lease
// events by [KeyLeaseEvent]. A granted lease also adds an event to the
// span in the Lease call's context. The tool, task, agent and policy
// version are span attributes only: on metrics their number of values
// would be unbounded.
//
// Nothing recorded carries a call's arguments, destination, reason or
// error text, or a secret's value: authz events do not hold them.
//
// The zero Observer, and a nil *Observer, record nothing.
type Observer struct {
	tracer     trace.Tracer
	checkSpans bool

	decisions     metric.Int64Counter
	duration      metric.Float64Histogram
	approvals     metric.Float64Histogram
	leasesActive  metric.Int64UpDownCounter
	leaseEvents   metric.Int64Counter
	leaseEventOpt [4][]metric.AddOption    // by authz.LeaseEventKind
	approvalOpt   [6][]metric.RecordOption // by authz.ApprovalOutcome

	// sets caches the attribute sets of decision metrics, so recording a
	// decision does not build one each time.
	sets    sync.Map // decisionKey → *decisionOpts
	setsLen atomic.Int64
}

// decisionKey identifies the attributes of a decision's metrics.
type decisionKey struct {
	op     authz.Operation
	effect authz.Effect
	rule   string
}

type decisionOpts struct {
	count    []metric.AddOption
	duration []metric.RecordOption
}

// maxCachedSets bounds the cached attribute sets: rule names come from
// policies, which can change; past the bound sets are built per call.
// (The SDK's own default cardinality limit, 2,000 series per instrument,
// still applies.)
const maxCachedSets = 1024

// Histogram bucket boundaries, in seconds: decisions take microseconds,
// Authorize with an approval can take minutes; approvals take seconds to
// minutes.
var (
	decisionBuckets = []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 0.1, 1, 10, 60, 300}
	approvalBuckets = []float64{0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600}
)

// New returns an Observer recording to the providers of opts (the global
// providers by default). It fails when an instrument cannot be created or
// an option is invalid.
func New(opts ...Option) (*Observer, error) {
	var c config
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, fmt.Errorf("authzotel: %w", err)
		}
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	o := &Observer{tracer: c.tp.Tracer(ScopeName), checkSpans: c.checkSpans}
	m := c.mp.Meter(ScopeName)
	var errs []error
	var err error
	o.decisions, err = m.Int64Counter(MetricDecisions, metric.WithUnit("{decision}"),
		metric.WithDescription("Authorization decisions of tool calls, by operation, effect and rule."))
	errs = append(errs, err)
	o.duration, err = m.Float64Histogram(MetricDecisionDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of authorization decisions, approvals included."),
		metric.WithExplicitBucketBoundaries(decisionBuckets...))
	errs = append(errs, err)
	o.approvals, err = m.Float64Histogram(MetricApprovalDuration, metric.WithUnit("s"),
		metric.WithDescription("Time spent waiting for approvals of ask decisions, by outcome."),
		metric.WithExplicitBucketBoundaries(approvalBuckets...))
	errs = append(errs, err)
	o.leasesActive, err = m.Int64UpDownCounter(MetricLeasesActive, metric.WithUnit("{lease}"),
		metric.WithDescription("Secret leases currently live."))
	errs = append(errs, err)
	o.leaseEvents, err = m.Int64Counter(MetricLeaseEvents, metric.WithUnit("{event}"),
		metric.WithDescription("Secret lease events: granted, revoked, expired."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("authzotel: %w", err)
	}
	for _, k := range []authz.LeaseEventKind{authz.LeaseGranted, authz.LeaseRevoked, authz.LeaseExpired} {
		o.leaseEventOpt[k] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(KeyLeaseEvent.String(k.String())))}
	}
	for _, a := range []authz.ApprovalOutcome{authz.ApprovalGranted, authz.ApprovalRefused, authz.ApprovalNoApprover,
		authz.ApprovalFailed, authz.ApprovalTooLate} {
		o.approvalOpt[a] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(KeyApprovalOutcome.String(a.String())))}
	}
	return o, nil
}

var _ authz.Observer = (*Observer)(nil)

// OnDecision records decision e: the metrics, and a span for Authorize and
// use-time denials (and for Check with [WithCheckSpans]).
func (o *Observer) OnDecision(ctx context.Context, e authz.DecisionEvent) {
	if o == nil || o.tracer == nil {
		return
	}
	opts := o.decisionOpts(e)
	o.decisions.Add(ctx, 1, opts.count...)
	if !e.Start.IsZero() {
		o.duration.Record(ctx, e.Latency.Seconds(), opts.duration...)
	}
	if e.Approval != authz.ApprovalNone {
		var opts []metric.RecordOption
		if int(e.Approval) < len(o.approvalOpt) && e.Approval > 0 {
			opts = o.approvalOpt[e.Approval]
		} else {
			opts = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(KeyApprovalOutcome.String(e.Approval.String())))}
		}
		o.approvals.Record(ctx, e.ApprovalWait.Seconds(), opts...)
	}
	var name string
	switch e.Op {
	case authz.OpAuthorize:
		name = SpanAuthorize
	case authz.OpEnforce:
		name = SpanEnforce
	case authz.OpCheck:
		if !o.checkSpans {
			return
		}
		name = SpanCheck
	default:
		return
	}
	o.span(ctx, name, &e)
}

var spanKind = trace.WithSpanKind(trace.SpanKindInternal)

// span records the span of decision e, after the fact. The attributes are
// set after the start, so samplers do not see them (parent-based and
// ratio samplers do not look).
func (o *Observer) span(ctx context.Context, name string, e *authz.DecisionEvent) {
	start, end := e.Start, e.Start.Add(e.Latency)
	if start.IsZero() {
		start = time.Now()
		end = start
	}
	_, sp := o.tracer.Start(ctx, name, trace.WithTimestamp(start), spanKind)
	if !sp.IsRecording() {
		// Not sampled, or no SDK: spare building the attributes.
		sp.End()
		return
	}
	attrs := make([]attribute.KeyValue, 0, 11)
	attrs = append(attrs,
		KeyToolName.String(e.Tool),
		KeyIntent.String(e.Intent),
		KeySensitivity.String(e.Sensitivity.String()),
		KeyEffect.String(e.Effect.String()),
		KeyRule.String(e.Rule),
		KeyPolicyVersion.String(e.PolicyVersion),
	)
	if e.Task != "" {
		attrs = append(attrs, KeyTaskID.String(e.Task))
	}
	if e.Agent != "" {
		attrs = append(attrs, KeyAgentID.String(e.Agent))
	}
	if e.Approval != authz.ApprovalNone {
		attrs = append(attrs, KeyApprovalOutcome.String(e.Approval.String()),
			KeyApprovalDuration.Float64(e.ApprovalWait.Seconds()))
	}
	sp.SetAttributes(attrs...)
	if e.Rule == authz.RuleInternal {
		sp.SetStatus(codes.Error, "internal error")
	}
	sp.End(trace.WithTimestamp(end))
}

// decisionOpts returns the measurement options of e's metrics, cached by
// operation, effect and rule.
func (o *Observer) decisionOpts(e authz.DecisionEvent) *decisionOpts {
	k := decisionKey{op: e.Op, effect: e.Effect, rule: e.Rule}
	if v, ok := o.sets.Load(k); ok {
		return v.(*decisionOpts)
	}
	op, effect := KeyOperation.String(e.Op.String()), KeyEffect.String(e.Effect.String())
	d := &decisionOpts{
		count:    []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(op, effect, KeyRule.String(e.Rule)))},
		duration: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(op, effect))},
	}
	if o.setsLen.Add(1) <= maxCachedSets {
		if v, loaded := o.sets.LoadOrStore(k, d); loaded {
			return v.(*decisionOpts)
		}
	}
	return d
}

// OnLease records lease event e: the live-lease count, the event count,
// and for a granted lease an event on the span in ctx.
func (o *Observer) OnLease(ctx context.Context, e authz.LeaseEvent) {
	if o == nil || o.tracer == nil {
		return
	}
	switch e.Kind {
	case authz.LeaseGranted:
		o.leasesActive.Add(ctx, 1)
		if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
			sp.AddEvent("taskguard.lease.granted", trace.WithAttributes(KeyLeaseID.String(e.Lease),
				KeySecretName.String(e.Secret), KeyTaskID.String(e.Task)))
		}
	case authz.LeaseRevoked, authz.LeaseExpired:
		o.leasesActive.Add(ctx, -1)
	default:
		return
	}
	o.leaseEvents.Add(ctx, 1, o.leaseEventOpt[e.Kind]...)
}
