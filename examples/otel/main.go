// Command otel shows a guard reporting to OpenTelemetry through the
// authz/authzotel observer: an agent's task makes a few calls (allowed,
// denied, approved after an ask) and leases a secret; each Authorize is a
// span under the host's own span, written by the SDK's stdout exporter, and
// the decision, approval and lease metrics are read from a manual reader.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authzotel"
	"github.com/taskguard/taskguard/secrets"
)

//go:embed policy.yaml
var policyYAML []byte

// searchKey is the leased secret: it never reaches a span or a metric.
const searchKey = "sk_search_0f1e2d3c4b5a"

func main() {
	spansTo := flag.String("spans", "", "write the spans (JSON, one per line) to this file instead of standard output")
	flag.Parse()
	var spans io.Writer = os.Stdout
	if *spansTo != "" {
		f, err := os.Create(*spansTo)
		if err != nil {
			fmt.Fprintln(os.Stderr, "otel:", err)
			os.Exit(1)
		}
		defer f.Close()
		spans = f
	}
	if err := run(os.Stdout, spans); err != nil {
		fmt.Fprintln(os.Stderr, "otel:", err)
		os.Exit(1)
	}
}

// FetchArgs are the arguments of the http.fetch tool.
type FetchArgs struct {
	URL string `json:"url"`
}

// run makes the calls, printing each outcome and then the metrics to out;
// the stdout exporter writes the spans (one JSON object each) to spans.
func run(out, spans io.Writer) error {
	ctx := context.Background()
	exp, err := stdouttrace.New(stdouttrace.WithWriter(spans), stdouttrace.WithoutTimestamps())
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(ctx)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	// The observer; without the With options it would use the global
	// providers (otel.SetTracerProvider, otel.SetMeterProvider).
	obs, err := authzotel.New(authzotel.WithTracerProvider(tp), authzotel.WithMeterProvider(mp))
	if err != nil {
		return err
	}
	policy, err := authz.ParsePolicy("policy.yaml", policyYAML)
	if err != nil {
		return err
	}
	approver := authz.ApproverFunc(func(ctx context.Context, c authz.Call, d authz.Decision) (bool, error) {
		return true, nil // a person would decide here
	})
	g, err := authz.New(authz.WithPolicy(policy), authz.WithObserver(obs), authz.WithApprover(approver))
	if err != nil {
		return err
	}
	broker, err := secrets.NewBroker(g, secrets.StaticClassified(map[string]string{"search-api-key": searchKey},
		map[string]authz.Sensitivity{"search-api-key": authz.Internal}))
	if err != nil {
		return err
	}
	defer broker.Close()

	// The host's span for the agent's step; the guard's spans are its
	// children.
	ctx, step := tp.Tracer("example/agent").Start(ctx, "agent.step")
	ctx, task, err := g.Begin(ctx, authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/researcher"},
		Purpose:   "summarise the release notes",
		Intents:   []string{"read", "export", "delete", "secret.read"},
		Clearance: authz.Internal,
	})
	if err != nil {
		return err
	}

	fetch := authz.Wrap(g, authz.Tool[FetchArgs]{Name: "http.fetch", Intent: "read",
		Describe: func(a FetchArgs) (authz.Call, error) { return authz.Call{Destination: a.URL}, nil }},
		func(ctx context.Context, a FetchArgs) (string, error) { return "release notes", nil })
	report := func(what string, err error) {
		var denied *authz.DeniedError
		switch {
		case err == nil:
			fmt.Fprintf(out, "allowed  %s\n", what)
		case errors.As(err, &denied):
			fmt.Fprintf(out, "denied   %s (%s)\n", what, denied.Decision.Rule)
		default:
			fmt.Fprintf(out, "error    %s: %v\n", what, err)
		}
	}
	_, err = fetch(ctx, FetchArgs{URL: "https://docs.example.org/release-notes"})
	report("http.fetch docs.example.org", err)
	_, err = fetch(ctx, FetchArgs{URL: "https://paste.example.net/upload"})
	report("http.fetch paste.example.net", err)
	report("mail.send export", g.Authorize(ctx, authz.Call{Tool: "mail.send", Intent: "export",
		Destination: "mailto:someone@example.net", Args: map[string]any{"body": "the notes"}}))
	report("db.delete (ask, approved)", g.Authorize(ctx, authz.Call{Tool: "db.delete", Intent: "delete",
		Destination: "db://drafts", Args: map[string]any{"id": 7}}))
	lease, err := broker.Lease(ctx, "search-api-key")
	report("lease search-api-key", err)
	if err == nil {
		_ = lease.Use(func(key []byte) error { return nil })
	}
	task.End() // revokes the lease
	step.End()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		return err
	}
	fmt.Fprintln(out, "metrics:")
	for _, line := range metricLines(rm) {
		fmt.Fprintln(out, " ", line)
	}
	return nil
}

// metricLines renders sums as "name{attrs} value" and histograms as
// "name{attrs} count=N", sorted.
func metricLines(rm metricdata.ResourceMetrics) []string {
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					lines = append(lines, fmt.Sprintf("%s%s %d", m.Name, attrString(dp.Attributes), dp.Value))
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					lines = append(lines, fmt.Sprintf("%s%s count=%d", m.Name, attrString(dp.Attributes), dp.Count))
				}
			}
		}
	}
	sort.Strings(lines)
	return lines
}

func attrString(s attribute.Set) string {
	if s.Len() == 0 {
		return ""
	}
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, strings.TrimPrefix(string(kv.Key), "taskguard.")+"="+kv.Value.Emit())
	}
	return "{" + strings.Join(parts, ",") + "}"
}
