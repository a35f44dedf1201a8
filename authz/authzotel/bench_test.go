package authzotel_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authzotel"
)

// discard is a span processor that drops every span: the SDK's cost without
// an exporter's.
type discard struct{}

func (discard) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discard) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discard) Shutdown(context.Context) error                  { return nil }
func (discard) ForceFlush(context.Context) error                { return nil }

var benchCall = authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://docs.example.org/guide", Sensitivity: authz.Internal}

func benchGuard(b *testing.B, tp trace.TracerProvider, mp metric.MeterProvider) (*authz.Guard, context.Context) {
	b.Helper()
	p, err := authz.ParsePolicy("policy.yaml", []byte(policy))
	if err != nil {
		b.Fatal(err)
	}
	opts := []authz.Option{authz.WithPolicy(p)}
	if tp != nil {
		obs, err := authzotel.New(authzotel.WithTracerProvider(tp), authzotel.WithMeterProvider(mp))
		if err != nil {
			b.Fatal(err)
		}
		opts = append(opts, authz.WithObserver(obs))
	}
	g, err := authz.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "spiffe://bench/agent"}, Clearance: authz.Internal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(task.End)
	return g, ctx
}

// benchProviders are the observers compared: none, authzotel on the no-op
// providers (OpenTelemetry not configured), and on the SDK (every span
// sampled and dropped, metrics aggregated for a manual reader).
func benchProviders(b *testing.B) []struct {
	name string
	tp   trace.TracerProvider
	mp   metric.MeterProvider
} {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(discard{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return []struct {
		name string
		tp   trace.TracerProvider
		mp   metric.MeterProvider
	}{
		{"observer=none", nil, nil},
		{"observer=otel-noop", tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()},
		{"observer=otel-sdk", tp, mp},
	}
}

func BenchmarkAuthorize(b *testing.B) {
	for _, pv := range benchProviders(b) {
		b.Run(pv.name, func(b *testing.B) {
			g, ctx := benchGuard(b, pv.tp, pv.mp)
			b.ReportAllocs()
			for b.Loop() {
				if err := g.Authorize(ctx, benchCall); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	for _, pv := range benchProviders(b) {
		b.Run(pv.name, func(b *testing.B) {
			g, ctx := benchGuard(b, pv.tp, pv.mp)
			b.ReportAllocs()
			for b.Loop() {
				if g.Check(ctx, benchCall).Effect != authz.Allow {
					b.Fatal("denied")
				}
			}
		})
	}
}
