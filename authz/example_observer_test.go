package authz_test

import (
	"context"
	"fmt"

	"github.com/taskguard/taskguard/authz"
)

func ExampleWithObserver() {
	// Print each decision; a real host exports them (the authz/authzotel
	// module makes OpenTelemetry spans and metrics of them).
	obs := authz.ObserverFuncs{Decision: func(_ context.Context, e authz.DecisionEvent) {
		fmt.Println(e.Op, e.Tool, e.Intent, e.Effect, e.Rule, "approval:", e.Approval)
	}}
	g := newGuard(authz.WithObserver(obs))
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "spiffe://example.org/agent"}})
	if err != nil {
		panic(err)
	}
	defer task.End()

	read := authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://api.github.com/repos"}
	g.Check(ctx, read)
	_ = g.Authorize(ctx, read)
	_ = g.Authorize(ctx, authz.Call{Tool: "http.fetch", Intent: "read", Destination: "http://127.0.0.1/admin"})
	_ = g.Authorize(ctx, authz.Call{Tool: "fs.write", Intent: "write", Destination: "/tmp/notes"}) // asks; no approver
	// Output:
	// check http.fetch read allow github-read approval: none
	// authorize http.fetch read allow github-read approval: none
	// authorize http.fetch read deny no-private-network approval: none
	// authorize fs.write write deny @approval approval: no-approver
}
