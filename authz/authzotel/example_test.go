package authzotel_test

import (
	"context"
	"fmt"
	"sort"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authzotel"
)

func Example() {
	// In-memory SDK providers; a host uses its own, with exporters.
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))

	obs, err := authzotel.New(authzotel.WithTracerProvider(tp), authzotel.WithMeterProvider(mp))
	if err != nil {
		panic(err)
	}
	p, err := authz.ParsePolicy("policy.yaml", []byte(`
rules:
  - name: fetch-docs
    tools: [http.fetch]
    effect: allow
    when: intent == "read" && destination.host == "docs.example.org"
`))
	if err != nil {
		panic(err)
	}
	g, err := authz.New(authz.WithPolicy(p), authz.WithObserver(obs))
	if err != nil {
		panic(err)
	}
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "spiffe://example.org/agent"}})
	if err != nil {
		panic(err)
	}
	defer task.End()

	_ = g.Authorize(ctx, authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://docs.example.org/guide"})
	_ = g.Authorize(ctx, authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://elsewhere.example.org/",
		Args: map[string]any{"token": "never recorded"}})

	for _, s := range spans.Ended() {
		a := map[string]string{}
		for _, kv := range s.Attributes() {
			a[string(kv.Key)] = kv.Value.Emit()
		}
		fmt.Println(s.Name(), a["gen_ai.tool.name"], a["taskguard.effect"], a["taskguard.rule"], a["gen_ai.agent.id"])
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		panic(err)
	}
	var lines []string
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == authzotel.MetricDecisions {
			for _, dp := range sum.DataPoints {
				effect, _ := dp.Attributes.Value("taskguard.effect")
				rule, _ := dp.Attributes.Value("taskguard.rule")
				lines = append(lines, fmt.Sprintf("%s %s %s=%d", m.Name, effect.Emit(), rule.Emit(), dp.Value))
			}
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// taskguard.authorize http.fetch allow fetch-docs spiffe://example.org/agent
	// taskguard.authorize http.fetch deny @no-match spiffe://example.org/agent
	// taskguard.decisions allow fetch-docs=1
	// taskguard.decisions deny @no-match=1
}
