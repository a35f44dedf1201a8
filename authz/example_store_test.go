package authz_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/taskguard/taskguard/authz"
)

// Two guards share one store, as two replicas of a tool service sharing
// Redis would (authz/redisstore): the task's call budget is spent across
// both, and ending the task where it began ends the copy on the other
// guard, running its end hooks.
func ExampleWithStore() {
	p, err := authz.ParsePolicy("policy.yaml", []byte(`
rules:
  - {name: db-read, tools: ["db.*"], effect: allow, when: 'intent == "read"'}
`))
	if err != nil {
		panic(err)
	}
	store := authz.NewMemoryStore(nil)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	a, err := authz.New(authz.WithPolicy(p), authz.WithStore(store), authz.WithName("a"), authz.WithSigningKey("k1", priv))
	if err != nil {
		panic(err)
	}
	defer a.Close()
	b, err := authz.New(authz.WithPolicy(p), authz.WithStore(store), authz.WithName("b"), authz.WithTrustedKey("k1", pub))
	if err != nil {
		panic(err)
	}
	defer b.Close()

	ctxA, task, err := a.Begin(context.Background(), authz.TaskSpec{
		Agent: authz.Agent{ID: "spiffe://corp/agent/analyst"}, MaxCalls: map[string]int{"db.*": 2}})
	if err != nil {
		panic(err)
	}
	token, err := task.Token("b") // replica b receives the task with the request
	if err != nil {
		panic(err)
	}
	ctxB, copyB, err := b.Resume(context.Background(), token)
	if err != nil {
		panic(err)
	}
	copyB.OnEnd(func() { fmt.Println("b: end hooks run") })

	call := authz.Call{Tool: "db.query", Intent: "read", Destination: "db://orders"}
	fmt.Println("a:", a.Authorize(ctxA, call) == nil)
	fmt.Println("b:", b.Authorize(ctxB, call) == nil)
	var denied *authz.DeniedError
	if errors.As(a.Authorize(ctxA, call), &denied) {
		fmt.Println("a: denied by", denied.Decision.Rule)
	}
	task.End()
	fmt.Println("b: ended:", copyB.Ended())
	// Output:
	// a: true
	// b: true
	// a: denied by @budget
	// b: end hooks run
	// b: ended: true
}
