package authz_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/taskguard/taskguard/authz"
)

// A task handed to a tool service: the agent's guard signs a token for the
// service's guard, which resumes the task (same ID and scope) and reports
// back what it read, which then taints the agent's task.
func ExampleTask_Token() {
	agentPub, agentKey, _ := ed25519.GenerateKey(rand.Reader)
	toolsPub, toolsKey, _ := ed25519.GenerateKey(rand.Reader)
	agent := newGuard(authz.WithName("agent"), authz.WithSigningKey("agent-1", agentKey), authz.WithTrustedKey("tools-1", toolsPub))
	tools := newGuard(authz.WithName("tools"), authz.WithSigningKey("tools-1", toolsKey), authz.WithTrustedKey("agent-1", agentPub))

	ctx, task, _ := agent.Begin(context.Background(), authz.TaskSpec{
		Agent: authz.Agent{ID: "spiffe://example.org/agent/researcher"}, Intents: []string{"read"}})
	defer task.End()
	token, err := task.Token("tools")
	if err != nil {
		panic(err)
	}

	// On the tool service.
	rctx, remote, err := tools.Resume(context.Background(), token)
	if err != nil {
		panic(err)
	}
	fmt.Println("same task:", remote.ID() == task.ID())
	fmt.Println(tools.Check(rctx, authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://api.github.com/zen"}).Effect)
	fmt.Println(tools.Check(rctx, authz.Call{Tool: "fs.write", Intent: "write", Destination: "/tmp/x"}).Rule)
	remote.Observe("docs.read db://handbook", authz.Confidential, false)
	report, _ := remote.Report()
	remote.End()

	// Back on the agent.
	if err := agent.ApplyReport(ctx, report); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", task.Taint())
	// Output:
	// same task: true
	// allow
	// @intent
	// {Sensitivity:confidential Untrusted:true Sources:[tools: docs.read db://handbook]}
}

// Tool results taint the task by default: a read's output is untrusted
// content of the call's sensitivity.
func ExampleGuard_ObserveOutput() {
	g := newGuard()
	ctx, task, _ := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "a"}, Clearance: authz.Internal})
	defer task.End()
	c := authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://API.github.com/zen", Sensitivity: authz.Internal}
	if g.Authorize(ctx, c) == nil {
		// ... the tool ran and returned without error ...
		g.ObserveOutput(ctx, c, authz.Output{})
	}
	fmt.Printf("%+v\n", task.Taint())
	// Output:
	// {Sensitivity:internal Untrusted:true Sources:[http.fetch https://api.github.com/zen]}
}
