// Package authzotel records the decisions, approvals and secret leases of
// a taskguard guard with OpenTelemetry: spans, counters and histograms. It
// implements [authz.Observer] with the OpenTelemetry API only; the host
// chooses the SDK and exporters.
//
// # Usage
//
//	obs, err := authzotel.New() // the global tracer and meter providers
//	if err != nil { ... }
//	g, err := authz.New(authz.WithPolicy(p), authz.WithObserver(obs))
//
// [WithTracerProvider] and [WithMeterProvider] choose other providers;
// [WithCheckSpans] adds a span per [authz.Guard.Check].
//
// # Spans
//
// Each [authz.Guard.Authorize] (and so each call through authz.Wrap,
// authz.WrapJSON, httpguard, fsguard and secrets leases) becomes a span
// named [SpanAuthorize], a child of the span in the call's context. Its
// attributes follow the OpenTelemetry GenAI semantic conventions where they
// have a name (gen_ai.tool.name, gen_ai.agent.id) and use the taskguard
// prefix otherwise: intent, sensitivity, effect, rule, policy version,
// task ID, and for an ask the approval's outcome and duration. Denials at
// use time ([authz.Guard.Deny]: a file that left its root, a private
// address dialed) are [SpanEnforce] spans.
//
// # Metrics
//
//   - [MetricDecisions]: decisions by operation, effect and rule.
//   - [MetricDecisionDuration]: decision latency in seconds, by operation
//     and effect.
//   - [MetricApprovalDuration]: approval wait in seconds, by outcome.
//   - [MetricLeasesActive]: live secret leases.
//   - [MetricLeaseEvents]: lease events by kind (granted, revoked,
//     expired).
//
// # What is never recorded
//
// A call's arguments, destination, reason and error text, and secret
// values: the guard's events do not carry them, so no exporter can leak
// them. Tool, task, agent and policy version appear on spans only, never as
// metric attributes, whose number of values must stay bounded.
//
// # Cost
//
// Without an observer the guard makes no event. With one, each decision
// costs the metric updates (attribute sets are cached) and, for
// Authorize, a span: see BenchmarkAuthorize in this package.
package authzotel
