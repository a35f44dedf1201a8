package authztest_test

import (
	"context"
	"fmt"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

func ExampleAuditRecorder() {
	p, _ := authz.ParsePolicy("p.yaml", []byte(`rules: [{name: reads, tools: ["*"], effect: allow, when: 'intent == "read"'}]`))
	audit := authztest.NewAuditRecorder()
	g, _ := authz.New(authz.WithPolicy(p), authz.WithLogger(audit.Logger()))
	ctx, task, _ := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "a"}})
	defer task.End()
	g.Check(ctx, authz.Call{Tool: "http.get", Intent: "read"})
	g.Check(ctx, authz.Call{Tool: "http.post", Intent: "write"})
	for _, r := range audit.Records() {
		fmt.Println(r.Tool(), r.Effect(), r.Rule())
	}
	// Output:
	// http.get allow reads
	// http.post deny @no-match
}
