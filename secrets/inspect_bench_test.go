package secrets

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/authz"
)

// inspectArgs returns a JSON-shaped argument map of about 1 KiB carrying
// value in an Authorization header.
func inspectArgs(value string) map[string]any {
	rng := rand.New(rand.NewPCG(3, 4))
	body := make([]byte, 600)
	for i := range body {
		body[i] = "abcdefghijklmnopqrstuvwxyz ,.{}\":"[rng.IntN(33)]
	}
	return map[string]any{
		"method": "POST",
		"url":    "https://api.github.com/repos/o/r/issues",
		"headers": map[string]any{
			"Authorization": "Bearer " + value,
			"Accept":        "application/vnd.github+json",
			"User-Agent":    "taskguard-bench/1.0",
		},
		"body":   string(body),
		"labels": []any{"bug", "triage", "needs-repro", "p2"},
		"meta":   map[string]any{"attempt": 1.0, "dry_run": false, "ids": []any{1.0, 2.0, 3.0}},
		"query":  "state=open&per_page=100&sort=updated",
	}
}

// BenchmarkInspect is the audience inspection of one call of a task with
// 10 live audience-bound leases, whose 1 KiB arguments carry one of the
// values to its audience.
func BenchmarkInspect(b *testing.B) {
	values := map[string]string{}
	rng := rand.New(rand.NewPCG(5, 6))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for i := range 10 {
		var sb strings.Builder
		for range 32 {
			sb.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		values[fmt.Sprintf("token-%d", i)] = sb.String()
	}
	br, ctx := benchBroker(b, values)
	task, _ := authz.TaskFrom(ctx)
	for name := range values {
		if _, err := br.Lease(ctx, name, Audience("api.github.com"), TTL(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		args map[string]any
	}{
		{"value-to-audience", inspectArgs(values["token-3"])},
		{"no-value", inspectArgs("nothing-secret-in-here-at-all!!")},
	} {
		ci := &authz.CallInfo{Call: authz.Call{Tool: "http.post", Intent: "write",
			Destination: "https://api.github.com/repos/o/r/issues", Args: bc.args},
			Destination: "https://api.github.com/repos/o/r/issues", Kind: "url", Host: "api.github.com"}
		inspect := taskInspector(br, task)
		if err := inspect(ci); err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := inspect(ci); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// taskInspector returns the broker's inspection of task's calls.
func taskInspector(br *Broker, task *authz.Task) authz.InspectFunc {
	br.mu.Lock()
	tb := br.bound[task]
	br.mu.Unlock()
	return br.inspector(task, tb)
}
