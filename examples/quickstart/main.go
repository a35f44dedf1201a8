// Command quickstart runs a scripted agent (no model, no network) under one
// taskguard task and prints every decision the guard makes: an allowed
// fetch, SSRF attempts against the cloud metadata address, a path traversal,
// and a file write that a (scripted) person approves.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/taskguard/taskguard/authz"
)

//go:embed policy.yaml
var policyYAML []byte

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// Tool arguments, as a model would produce them.
type fetchArgs struct{ URL string }
type fileArgs struct {
	Path    string
	Content string
}

func run(out io.Writer) error {
	policy, err := authz.ParsePolicy("policy.yaml", policyYAML)
	if err != nil {
		return err
	}
	// The approver is the host's channel to a person. Here a scripted
	// stand-in answers at the console; a model must never be the approver.
	approver := authz.ApproverFunc(func(ctx context.Context, c authz.Call, d authz.Decision) (bool, error) {
		fmt.Fprintf(out, "   ? approve %s %s (%s)? [y/N] y\n", c.Tool, d.Destination, d.Reason)
		return true, nil
	})
	g, err := authz.New(authz.WithPolicy(policy), authz.WithApprover(approver),
		authz.WithLogger(slog.New(&decisionPrinter{out: out})))
	if err != nil {
		return err
	}

	// Tools describe their calls once: intent, destination, sensitivity.
	fetch := authz.Wrap(g, authz.Tool[fetchArgs]{
		Name: "http.fetch", Intent: "read",
		Describe: func(a fetchArgs) (authz.Call, error) {
			return authz.Call{Destination: a.URL, Sensitivity: authz.Public}, nil
		},
	}, func(ctx context.Context, a fetchArgs) (string, error) {
		return "200 OK", nil // a real tool would fetch a.URL here
	})
	readFile := authz.Wrap(g, authz.Tool[fileArgs]{
		Name: "fs.read", Intent: "read",
		Describe: func(a fileArgs) (authz.Call, error) {
			return authz.Call{Destination: a.Path, Sensitivity: authz.Internal}, nil
		},
	}, func(ctx context.Context, a fileArgs) (string, error) {
		return "file contents", nil
	})
	writeFile := authz.Wrap(g, authz.Tool[fileArgs]{
		Name: "fs.write", Intent: "write",
		Describe: func(a fileArgs) (authz.Call, error) {
			return authz.Call{Destination: a.Path, Sensitivity: authz.Internal,
				Args: map[string]any{"bytes": len(a.Content)}}, nil
		},
	}, func(ctx context.Context, a fileArgs) (string, error) {
		return fmt.Sprintf("wrote %d bytes", len(a.Content)), nil
	})

	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/researcher"},
		Purpose:   "summarise the taskguard repository",
		Intents:   []string{"read", "search", "write"},
		Tools:     []string{"http.fetch", "fs.*"},
		Clearance: authz.Internal,
		TTL:       5 * time.Minute,
		Labels:    map[string]string{"workdir": "/workspace"},
	})
	if err != nil {
		return err
	}
	defer task.End()
	fmt.Fprintf(out, "task for %s: intents read, search, write; tools http.fetch, fs.*\n\n", task.Agent().ID)

	steps := []struct {
		say  string
		call func() (string, error)
	}{
		{"fetch the project page", func() (string, error) {
			return fetch(ctx, fetchArgs{URL: "https://API.GitHub.com./repos/taskguard/taskguard"})
		}},
		{"SSRF: fetch cloud metadata", func() (string, error) {
			return fetch(ctx, fetchArgs{URL: "http://169.254.169.254/latest/meta-data/"})
		}},
		{"SSRF: the same address spelled in hex", func() (string, error) {
			return fetch(ctx, fetchArgs{URL: "http://0xa9fea9fe/latest/meta-data/"})
		}},
		{"read a workspace file", func() (string, error) {
			return readFile(ctx, fileArgs{Path: "notes/plan.md"})
		}},
		{"path traversal out of the workspace", func() (string, error) {
			return readFile(ctx, fileArgs{Path: "notes/../../etc/passwd"})
		}},
		{"write a report (needs a person)", func() (string, error) {
			return writeFile(ctx, fileArgs{Path: "/workspace/report.md", Content: "# Summary\n"})
		}},
	}
	for i, s := range steps {
		fmt.Fprintf(out, "%d. %s\n", i+1, s.say)
		res, err := s.call()
		switch {
		case errors.Is(err, authz.ErrDenied):
			fmt.Fprintf(out, "   tool not called\n")
		case err != nil:
			return err
		default:
			fmt.Fprintf(out, "   tool ran: %s\n", res)
		}
	}
	return nil
}

// decisionPrinter is a slog.Handler that prints the guard's audit records
// as one line each. A real host would use slog.NewJSONHandler.
type decisionPrinter struct{ out io.Writer }

func (p *decisionPrinter) Enabled(context.Context, slog.Level) bool { return true }
func (p *decisionPrinter) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *decisionPrinter) WithGroup(string) slog.Handler            { return p }

func (p *decisionPrinter) Handle(_ context.Context, r slog.Record) error {
	a := map[string]string{}
	r.Attrs(func(at slog.Attr) bool {
		a[at.Key] = at.Value.String()
		return true
	})
	verb := strings.ToUpper(a["effect"])
	if r.Message == "taskguard approval" {
		verb = map[string]string{"ALLOW": "APPROVED", "DENY": "REFUSED"}[verb]
	}
	dst := a["destination"]
	if dst == "" {
		dst = "(rejected destination)"
	}
	_, err := fmt.Fprintf(p.out, "   %-8s %s %s\n            rule %s: %s\n", verb, a["tool"], dst, a["rule"], a["reason"])
	return err
}
