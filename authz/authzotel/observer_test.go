package authzotel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authzotel"
	"github.com/taskguard/taskguard/secrets"
)

const policy = `
rules:
  - name: fetch-docs
    tools: [http.fetch]
    effect: allow
    when: intent == "read" && destination.host == "docs.example.org"
  - name: no-export
    tools: [http.fetch]
    effect: deny
    when: intent == "export"
  - name: review-delete
    tools: [db.delete]
    effect: ask
    when: "true"
  - name: lease-token
    tools: [secrets.lease]
    effect: allow
    when: destination.host == "api-token"
`

// Values that must never reach telemetry.
const (
	secretValue = "sk_live_0123456789SECRETVALUE"
	argValue    = "ARGUMENT-VALUE-4f2a"
	pathValue   = "PATH-VALUE-9c1d"
)

// rig is a guard with an authzotel observer on in-memory SDK providers.
type rig struct {
	g      *authz.Guard
	b      *secrets.Broker
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
}

func newRig(t *testing.T, opts ...authzotel.Option) *rig {
	t.Helper()
	r := &rig{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() {
		_ = r.tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	obs, err := authzotel.New(append([]authzotel.Option{authzotel.WithTracerProvider(r.tp), authzotel.WithMeterProvider(mp)}, opts...)...)
	require.NoError(t, err)
	p, err := authz.ParsePolicy("policy.yaml", []byte(policy))
	require.NoError(t, err)
	r.g, err = authz.New(authz.WithPolicy(p), authz.WithObserver(obs),
		authz.WithApprover(authz.ApproverFunc(func(_ context.Context, c authz.Call, _ authz.Decision) (bool, error) {
			return c.Args["id"] != "refuse", nil
		})))
	require.NoError(t, err)
	r.b, err = secrets.NewBroker(r.g, secrets.Static(map[string]string{"api-token": secretValue}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.b.Close() })
	return r
}

func (r *rig) begin(t *testing.T, ctx context.Context) (context.Context, *authz.Task) {
	t.Helper()
	ctx, task, err := r.g.Begin(ctx, authz.TaskSpec{Agent: authz.Agent{ID: "spiffe://example.org/agent/researcher"},
		Clearance: authz.Confidential})
	require.NoError(t, err)
	t.Cleanup(task.End)
	return ctx, task
}

func (r *rig) metrics(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.reader.Collect(context.Background(), &rm))
	return rm
}

func find(t *testing.T, rm metricdata.ResourceMetrics, name string) metricdata.Metrics {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, authzotel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return metricdata.Metrics{}
}

// sumBy returns the data points of an int64 sum keyed by their attributes
// ("k=v,k=v", sorted).
func sumBy(t *testing.T, m metricdata.Metrics) map[string]int64 {
	t.Helper()
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is a %T", m.Name, m.Data)
	out := map[string]int64{}
	for _, dp := range sum.DataPoints {
		out[setString(dp.Attributes)] = dp.Value
	}
	return out
}

func histBy(t *testing.T, m metricdata.Metrics) map[string]metricdata.HistogramDataPoint[float64] {
	t.Helper()
	h, ok := m.Data.(metricdata.Histogram[float64])
	require.True(t, ok, "%s is a %T", m.Name, m.Data)
	out := map[string]metricdata.HistogramDataPoint[float64]{}
	for _, dp := range h.DataPoints {
		out[setString(dp.Attributes)] = dp
	}
	return out
}

func setString(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return strings.Join(parts, ",")
}

func attrs(kvs []attribute.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.Emit()
	}
	return out
}

func TestSpansPerAuthorize(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	parentCtx, parent := r.tp.Tracer("host").Start(context.Background(), "agent.step")
	ctx, task := r.begin(t, parentCtx)

	require.NoError(t, r.g.Authorize(ctx, authz.Call{Tool: "http.fetch", Intent: "read",
		Destination: "https://docs.example.org/" + pathValue, Sensitivity: authz.Internal, Args: map[string]any{"q": argValue}}))
	require.ErrorIs(t, r.g.Authorize(ctx, authz.Call{Tool: "http.fetch", Intent: "export",
		Destination: "https://docs.example.org/"}), authz.ErrDenied)
	require.NoError(t, r.g.Authorize(ctx, authz.Call{Tool: "db.delete", Intent: "delete", Destination: "db://orders",
		Args: map[string]any{"id": "42"}}))
	r.g.Check(ctx, authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://docs.example.org/"})
	parent.End()

	ended := r.spans.Ended()
	require.Len(t, ended, 4, "three authorize spans and the host's; none for Check")
	var got []sdktrace.ReadOnlySpan
	for _, s := range ended {
		if s.Name() == authzotel.SpanAuthorize {
			got = append(got, s)
		}
	}
	require.Len(t, got, 3)
	for _, s := range got {
		assert.Equal(t, parent.SpanContext().SpanID(), s.Parent().SpanID(), "child of the span in the call's context")
		assert.Equal(t, parent.SpanContext().TraceID(), s.SpanContext().TraceID())
		assert.Equal(t, trace.SpanKindInternal, s.SpanKind())
		assert.False(t, s.EndTime().Before(s.StartTime()))
		assert.Equal(t, codes.Unset, s.Status().Code)
		a := attrs(s.Attributes())
		assert.Equal(t, task.ID(), a["taskguard.task.id"])
		assert.Equal(t, "spiffe://example.org/agent/researcher", a["gen_ai.agent.id"])
		assert.Equal(t, r.g.Policy().Version(), a["taskguard.policy.version"])
	}
	assert.Equal(t, map[string]string{
		"gen_ai.tool.name": "http.fetch", "taskguard.intent": "read", "taskguard.sensitivity": "internal",
		"taskguard.effect": "allow", "taskguard.rule": "fetch-docs", "taskguard.policy.version": r.g.Policy().Version(),
		"taskguard.task.id": task.ID(), "gen_ai.agent.id": "spiffe://example.org/agent/researcher",
	}, attrs(got[0].Attributes()))
	a := attrs(got[1].Attributes())
	assert.Equal(t, "deny", a["taskguard.effect"])
	assert.Equal(t, "no-export", a["taskguard.rule"])
	a = attrs(got[2].Attributes())
	assert.Equal(t, "allow", a["taskguard.effect"])
	assert.Equal(t, "review-delete", a["taskguard.rule"])
	assert.Equal(t, "granted", a["taskguard.approval.outcome"])
	assert.Contains(t, a, "taskguard.approval.duration")
}

func TestCheckSpansOption(t *testing.T) {
	t.Parallel()
	r := newRig(t, authzotel.WithCheckSpans())
	ctx, _ := r.begin(t, context.Background())
	r.g.Check(ctx, authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://docs.example.org/"})
	ended := r.spans.Ended()
	require.Len(t, ended, 1)
	assert.Equal(t, authzotel.SpanCheck, ended[0].Name())
	assert.False(t, ended[0].Parent().IsValid(), "no span in the context: a root span")
}

func TestEnforceAndDescribeSpans(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx, _ := r.begin(t, context.Background())
	_ = r.g.Deny(ctx, authz.Call{Tool: "fs.read", Intent: "read", Destination: "/srv/" + pathValue}, authz.RuleEscape,
		"left its root", nil)
	_ = r.g.DescribeError(ctx, "http.fetch", fmt.Errorf("bad url %s", argValue))
	ended := r.spans.Ended()
	require.Len(t, ended, 2)
	assert.Equal(t, authzotel.SpanEnforce, ended[0].Name())
	assert.Equal(t, "@escape", attrs(ended[0].Attributes())["taskguard.rule"])
	assert.Equal(t, authzotel.SpanAuthorize, ended[1].Name())
	assert.Equal(t, "@describe", attrs(ended[1].Attributes())["taskguard.rule"])
	assertClean(t, r)

	rm := r.metrics(t)
	assert.Equal(t, map[string]int64{
		"taskguard.effect=deny,taskguard.operation=enforce,taskguard.rule=@escape":     1,
		"taskguard.effect=deny,taskguard.operation=authorize,taskguard.rule=@describe": 1,
	}, sumBy(t, find(t, rm, authzotel.MetricDecisions)))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			assert.NotEqual(t, authzotel.MetricDecisionDuration, m.Name, "these denials have no latency to record")
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx, _ := r.begin(t, context.Background())
	read := authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://docs.example.org/a"}
	for range 3 {
		require.NoError(t, r.g.Authorize(ctx, read))
	}
	r.g.Check(ctx, read)
	r.g.Check(ctx, authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://elsewhere.example.org/"})
	_ = r.g.Authorize(ctx, authz.Call{Tool: "http.fetch", Intent: "export", Destination: "https://docs.example.org/"})
	_ = r.g.Authorize(ctx, authz.Call{Tool: "db.delete", Intent: "delete", Destination: "db://orders", Args: map[string]any{"id": "refuse"}})
	require.NoError(t, r.g.Authorize(ctx, authz.Call{Tool: "db.delete", Intent: "delete", Destination: "db://orders", Args: map[string]any{"id": "7"}}))

	rm := r.metrics(t)
	assert.Equal(t, map[string]int64{
		"taskguard.effect=allow,taskguard.operation=authorize,taskguard.rule=fetch-docs":    3,
		"taskguard.effect=allow,taskguard.operation=check,taskguard.rule=fetch-docs":        1,
		"taskguard.effect=deny,taskguard.operation=check,taskguard.rule=@no-match":          1,
		"taskguard.effect=deny,taskguard.operation=authorize,taskguard.rule=no-export":      1,
		"taskguard.effect=deny,taskguard.operation=authorize,taskguard.rule=@approval":      1,
		"taskguard.effect=allow,taskguard.operation=authorize,taskguard.rule=review-delete": 1,
	}, sumBy(t, find(t, rm, authzotel.MetricDecisions)))

	dur := histBy(t, find(t, rm, authzotel.MetricDecisionDuration))
	assert.Equal(t, uint64(4), dur["taskguard.effect=allow,taskguard.operation=authorize"].Count)
	assert.Equal(t, uint64(1), dur["taskguard.effect=allow,taskguard.operation=check"].Count)
	assert.Equal(t, uint64(1), dur["taskguard.effect=deny,taskguard.operation=check"].Count)
	assert.Equal(t, uint64(2), dur["taskguard.effect=deny,taskguard.operation=authorize"].Count)
	assert.Greater(t, dur["taskguard.effect=allow,taskguard.operation=authorize"].Sum, 0.0)
	assert.Equal(t, "s", find(t, rm, authzotel.MetricDecisionDuration).Unit)

	ap := histBy(t, find(t, rm, authzotel.MetricApprovalDuration))
	assert.Len(t, ap, 2)
	assert.Equal(t, uint64(1), ap["taskguard.approval.outcome=granted"].Count)
	assert.Equal(t, uint64(1), ap["taskguard.approval.outcome=refused"].Count)
	assertClean(t, r)
}

func TestLeaseMetrics(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	parentCtx, parent := r.tp.Tracer("host").Start(context.Background(), "agent.step")
	ctx, task := r.begin(t, parentCtx)

	l1, err := r.b.Lease(ctx, "api-token")
	require.NoError(t, err)
	_, err = r.b.Lease(ctx, "api-token", secrets.TTL(time.Minute))
	require.NoError(t, err)
	parent.End()
	rm := r.metrics(t)
	assert.Equal(t, map[string]int64{"": 2}, sumBy(t, find(t, rm, authzotel.MetricLeasesActive)))
	assert.Equal(t, map[string]int64{"taskguard.lease.event=granted": 2}, sumBy(t, find(t, rm, authzotel.MetricLeaseEvents)))

	var granted []sdktrace.Event
	for _, s := range r.spans.Ended() {
		if s.Name() == "agent.step" {
			granted = s.Events()
		}
	}
	require.Len(t, granted, 2, "each granted lease is an event on the caller's span")
	assert.Equal(t, "taskguard.lease.granted", granted[0].Name)
	assert.Equal(t, map[string]string{"taskguard.lease.id": l1.ID(), "taskguard.secret.name": "api-token",
		"taskguard.task.id": task.ID()}, attrs(granted[0].Attributes))

	l1.Revoke()
	task.End()
	rm = r.metrics(t)
	assert.Equal(t, map[string]int64{"": 0}, sumBy(t, find(t, rm, authzotel.MetricLeasesActive)))
	assert.Equal(t, map[string]int64{"taskguard.lease.event=granted": 2, "taskguard.lease.event=revoked": 2},
		sumBy(t, find(t, rm, authzotel.MetricLeaseEvents)))
	assertClean(t, r)
}

// assertClean fails if a secret value, an argument value or a destination
// appears anywhere in the recorded spans or metrics.
func assertClean(t *testing.T, r *rig) {
	t.Helper()
	var all []string
	for _, s := range r.spans.Ended() {
		all = append(all, s.Name(), s.Status().Description)
		for _, kv := range s.Attributes() {
			all = append(all, kv.Value.Emit())
		}
		for _, ev := range s.Events() {
			all = append(all, ev.Name)
			for _, kv := range ev.Attributes {
				all = append(all, kv.Value.Emit())
			}
		}
	}
	all = append(all, fmt.Sprintf("%+v", r.metrics(t)))
	text := strings.Join(all, "\n")
	for _, bad := range []string{secretValue, argValue, pathValue, "docs.example.org", "db://orders"} {
		assert.NotContains(t, text, bad)
	}
}

func TestNoValuesInAnyAttribute(t *testing.T) {
	t.Parallel()
	r := newRig(t, authzotel.WithCheckSpans())
	ctx, _ := r.begin(t, context.Background())
	l, err := r.b.Lease(ctx, "api-token")
	require.NoError(t, err)
	require.NoError(t, l.Use(func(v []byte) error {
		// The value in arguments and destination: denied by nothing here,
		// recorded nowhere.
		r.g.Check(ctx, authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://docs.example.org/" + string(v),
			Args: map[string]any{"token": string(v), "q": argValue}})
		_ = r.g.Authorize(ctx, authz.Call{Tool: "http.fetch", Intent: "export", Destination: "https://docs.example.org/?k=" + string(v),
			Args: map[string]any{"token": string(v)}})
		return nil
	}))
	_ = r.g.Authorize(ctx, authz.Call{Tool: "db.delete", Intent: "delete", Destination: "db://orders/" + pathValue,
		Args: map[string]any{"id": argValue}})
	require.NotEmpty(t, r.spans.Ended())
	assertClean(t, r)
}

func TestOptionsAndZeroValues(t *testing.T) {
	t.Parallel()
	_, err := authzotel.New(authzotel.WithTracerProvider(nil))
	require.ErrorContains(t, err, "nil provider")
	_, err = authzotel.New(authzotel.WithMeterProvider(nil))
	require.ErrorContains(t, err, "nil provider")

	var zero authzotel.Observer
	zero.OnDecision(context.Background(), authz.DecisionEvent{Op: authz.OpAuthorize})
	zero.OnLease(context.Background(), authz.LeaseEvent{Kind: authz.LeaseGranted})
	var nilObs *authzotel.Observer
	nilObs.OnDecision(context.Background(), authz.DecisionEvent{Op: authz.OpAuthorize})
	nilObs.OnLease(context.Background(), authz.LeaseEvent{Kind: authz.LeaseRevoked})

	obs, err := authzotel.New(nil)
	require.NoError(t, err)
	obs.OnLease(context.Background(), authz.LeaseEvent{}) // unknown kind: ignored
	obs.OnDecision(context.Background(), authz.DecisionEvent{})
}

// New without providers uses the global ones (not parallel: it sets them).
func TestGlobalProviders(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prevT, prevM := otel.GetTracerProvider(), otel.GetMeterProvider()
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prevT)
		otel.SetMeterProvider(prevM)
	})
	obs, err := authzotel.New()
	require.NoError(t, err)
	obs.OnDecision(context.Background(), authz.DecisionEvent{Op: authz.OpAuthorize, Tool: "t", Effect: authz.Allow,
		Rule: "r", Start: time.Now(), Latency: time.Microsecond})
	require.Len(t, sr.Ended(), 1)
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	require.Len(t, rm.ScopeMetrics, 1)
	assert.NotEmpty(t, rm.ScopeMetrics[0].Metrics)
}

// A recovered internal error is the one decision whose span is an error.
func TestInternalErrorStatus(t *testing.T) {
	t.Parallel()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	obs, err := authzotel.New(authzotel.WithTracerProvider(tp))
	require.NoError(t, err)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	obs.OnDecision(context.Background(), authz.DecisionEvent{Op: authz.OpAuthorize, Tool: "t", Rule: authz.RuleInternal,
		Start: start, Latency: 3 * time.Millisecond})
	require.Len(t, sr.Ended(), 1)
	s := sr.Ended()[0]
	assert.Equal(t, codes.Error, s.Status().Code)
	assert.Equal(t, start, s.StartTime())
	assert.Equal(t, start.Add(3*time.Millisecond), s.EndTime(), "the span has the decision's own timestamps")
}

func TestConcurrentDecisions(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx, _ := r.begin(t, context.Background())
	const workers, each = 8, 50
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				c := authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://docs.example.org/"}
				if (w+i)%2 == 1 {
					c.Intent = "export"
				}
				_ = r.g.Authorize(ctx, c)
			}
		}()
	}
	for range workers {
		<-done
	}
	assert.Equal(t, map[string]int64{
		"taskguard.effect=allow,taskguard.operation=authorize,taskguard.rule=fetch-docs": workers * each / 2,
		"taskguard.effect=deny,taskguard.operation=authorize,taskguard.rule=no-export":   workers * each / 2,
	}, sumBy(t, find(t, r.metrics(t), authzotel.MetricDecisions)))
	assert.Len(t, r.spans.Ended(), workers*each)
}

// Past the cache of attribute sets (policies change, rule names come and
// go), decisions are still counted under their own rule.
func TestManyRuleNames(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	obs, err := authzotel.New(authzotel.WithMeterProvider(mp), authzotel.WithTracerProvider(sdktrace.NewTracerProvider()))
	require.NoError(t, err)
	const n = 1500 // past the cache (1,024), within the SDK's cardinality limit (2,000)
	for i := range n {
		for range 1 + i%2 {
			obs.OnDecision(context.Background(), authz.DecisionEvent{Op: authz.OpCheck, Effect: authz.Allow, Rule: fmt.Sprintf("rule-%d", i)})
		}
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	got := sumBy(t, find(t, rm, authzotel.MetricDecisions))
	require.Equal(t, n, len(got))
	assert.Equal(t, int64(1), got["taskguard.effect=allow,taskguard.operation=check,taskguard.rule=rule-10"])
	assert.Equal(t, int64(2), got["taskguard.effect=allow,taskguard.operation=check,taskguard.rule=rule-1499"])
}
