package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/secrets"
)

func ExampleBroker_Lease() {
	p, _ := authz.ParsePolicy("policy.yaml", []byte(`
rules:
  - name: deployers-lease-deploy-key
    tools: [secrets.lease]
    effect: allow
    when: destination.host == "deploy-key" && agent.id.endsWith("/deployer")
  - name: https
    tools: [http.post]
    effect: allow
    when: destination.scheme == "https"
`))
	g, _ := authz.New(authz.WithPolicy(p))
	broker, _ := secrets.NewBroker(g, secrets.Static(map[string]string{"deploy-key": "dk_live_5f1e2d3c4b5a"}),
		secrets.WithMaxTTL(5*time.Minute))
	defer broker.Close()

	ctx, task, _ := g.Begin(context.Background(), authz.TaskSpec{
		Agent: authz.Agent{ID: "spiffe://example.org/agent/deployer"}, Clearance: authz.Confidential})
	lease, err := broker.Lease(ctx, "deploy-key", secrets.TTL(time.Minute), secrets.Audience("deploy.example.org"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%v\n", lease.Name())

	_ = lease.Use(func(key []byte) error {
		// The value exists only here. Sending it to its audience is allowed;
		// anywhere else the guard denies the call.
		ok := g.Check(ctx, authz.Call{Tool: "http.post", Intent: "write", Destination: "https://deploy.example.org/v1",
			Args: map[string]any{"key": string(key)}})
		leak := g.Check(ctx, authz.Call{Tool: "http.post", Intent: "write", Destination: "https://paste.example.net/",
			Args: map[string]any{"key": string(key)}})
		fmt.Println(ok.Effect, leak.Effect, leak.Rule)
		fmt.Println(broker.Redact("deploying with " + string(key)))
		return nil
	})

	task.End()
	err = lease.Use(func([]byte) error { return nil })
	fmt.Println(errors.Is(err, secrets.ErrLeaseRevoked))
	// Output:
	// deploy-key
	// allow deny @inspect:secrets
	// deploying with [REDACTED]
	// true
}
