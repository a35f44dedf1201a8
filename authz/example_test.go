package authz_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskguard/taskguard/authz"
)

const examplePolicy = `
rules:
  - name: github-read
    tools: ["http.fetch"]
    effect: allow
    when: intent == "read" && destination.host.glob("*.github.com")
  - name: no-private-network
    tools: ["http.*"]
    effect: deny
    when: destination.private
    reason: private addresses are off limits
  - name: writes-need-review
    tools: ["fs.write"]
    effect: ask
    when: "true"
`

func newGuard(opts ...authz.Option) *authz.Guard {
	p, err := authz.ParsePolicy("example.yaml", []byte(examplePolicy))
	if err != nil {
		panic(err)
	}
	g, err := authz.New(append([]authz.Option{authz.WithPolicy(p)}, opts...)...)
	if err != nil {
		panic(err)
	}
	return g
}

func ExampleGuard_Begin() {
	g := newGuard()
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/researcher"},
		Purpose:   "triage issues",
		Intents:   []string{"read", "search"},
		Tools:     []string{"http.*"},
		Clearance: authz.Internal,
		TTL:       10 * time.Minute,
	})
	if err != nil {
		panic(err)
	}
	task.OnEnd(func() { fmt.Println("task ended") })

	// A sub-task may only narrow its parent.
	_, _, err = g.Begin(ctx, authz.TaskSpec{
		Agent:   authz.Agent{ID: "spiffe://example.org/agent/helper"},
		Intents: []string{"write"},
	})
	fmt.Println(err)
	task.End()
	fmt.Println(task.Ended())
	// Output:
	// authz: begin: sub-task intent "write" is not an intent of the parent task
	// task ended
	// true
}

func ExampleGuard_Check() {
	g := newGuard()
	ctx, task, _ := g.Begin(context.Background(), authz.TaskSpec{
		Agent:   authz.Agent{ID: "spiffe://example.org/agent/researcher"},
		Intents: []string{"read"},
	})
	defer task.End()

	for _, url := range []string{
		"https://API.GitHub.com./repos/x/y",
		"http://169.254.169.254/latest/meta-data/",
		"http://0xa9fea9fe/",
		"https://evilgithub.com/",
	} {
		d := g.Check(ctx, authz.Call{Tool: "http.fetch", Intent: "read", Destination: url})
		fmt.Printf("%-5s %-18s %s\n", d.Effect, d.Rule, d.Destination)
	}
	// Output:
	// allow github-read        https://api.github.com/repos/x/y
	// deny  no-private-network http://169.254.169.254/latest/meta-data
	// deny  no-private-network http://169.254.169.254/
	// deny  @no-match          https://evilgithub.com/
}

func ExampleGuard_Authorize() {
	approver := authz.ApproverFunc(func(ctx context.Context, c authz.Call, d authz.Decision) (bool, error) {
		fmt.Printf("approve %s %s? yes\n", c.Tool, d.Destination)
		return true, nil
	})
	g := newGuard(authz.WithApprover(approver))
	ctx, task, _ := g.Begin(context.Background(), authz.TaskSpec{
		Agent: authz.Agent{ID: "spiffe://example.org/agent/writer"},
	})
	defer task.End()

	err := g.Authorize(ctx, authz.Call{Tool: "fs.write", Intent: "write", Destination: "/workspace/report.md"})
	fmt.Println(err)

	err = g.Authorize(ctx, authz.Call{Tool: "http.fetch", Intent: "read", Destination: "http://localhost:8080/admin"})
	var denied *authz.DeniedError
	if errors.As(err, &denied) {
		fmt.Println(errors.Is(err, authz.ErrDenied), denied.Decision.Rule)
	}
	// Output:
	// approve fs.write /workspace/report.md? yes
	// <nil>
	// true no-private-network
}

func ExampleWrap() {
	g := newGuard()
	type FetchArgs struct{ URL string }
	fetch := authz.Wrap(g, authz.Tool[FetchArgs]{
		Name:   "http.fetch",
		Intent: "read",
		Describe: func(a FetchArgs) (authz.Call, error) {
			return authz.Call{Destination: a.URL}, nil
		},
	}, func(ctx context.Context, a FetchArgs) (string, error) {
		return "fetched " + a.URL, nil
	})

	ctx, task, _ := g.Begin(context.Background(), authz.TaskSpec{
		Agent: authz.Agent{ID: "spiffe://example.org/agent/researcher"},
	})
	defer task.End()
	body, err := fetch(ctx, FetchArgs{URL: "https://api.github.com/zen"})
	fmt.Println(body, err)
	_, err = fetch(ctx, FetchArgs{URL: "http://[::ffff:127.0.0.1]/"})
	fmt.Println(err)
	// Output:
	// fetched https://api.github.com/zen <nil>
	// authz: http.fetch denied by no-private-network: private addresses are off limits
}
