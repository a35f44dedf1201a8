package redisstore_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/redisstore"
	"github.com/taskguard/taskguard/internal/redistest"
)

const examplePolicy = `
rules:
  - name: fetch
    tools: [http.fetch]
    effect: allow
    when: "true"
    limit: {rate: 2/h, burst: 2}
  - name: export
    tools: [mail.send]
    effect: allow
    when: task.taint.sensitivity < CONFIDENTIAL
`

// twoReplicas is the example: two replicas of a service share one Redis
// at addr and one task, and print what each decides to out.
func twoReplicas(addr string, out io.Writer) error {
	policy, err := authz.ParsePolicy("example.yaml", []byte(examplePolicy))
	if err != nil {
		return err
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	// Each replica is its own process in production: its own client,
	// store and guard.
	replica := func(name string, opts ...authz.Option) (*authz.Guard, func(), error) {
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		store, err := redisstore.New(rdb, redisstore.WithPrefix("example:"))
		if err != nil {
			return nil, nil, err
		}
		g, err := authz.New(append(opts, authz.WithPolicy(policy), authz.WithStore(store),
			authz.WithName(name), authz.WithTrustedKey("k1", pub))...)
		if err != nil {
			return nil, nil, err
		}
		return g, func() { _ = g.Close(); _ = store.Close(); _ = rdb.Close() }, nil
	}
	a, closeA, err := replica("replica-a", authz.WithSigningKey("k1", key))
	if err != nil {
		return err
	}
	defer closeA()
	b, closeB, err := replica("replica-b")
	if err != nil {
		return err
	}
	defer closeB()

	// The task begins on A and is handed to B with a task token.
	ctxA, task, err := a.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "agent"}, Clearance: authz.Restricted})
	if err != nil {
		return err
	}
	tok, err := task.Token("replica-b")
	if err != nil {
		return err
	}
	ctxB, onB, err := b.Resume(context.Background(), tok)
	if err != nil {
		return err
	}
	ended := make(chan struct{})
	onB.OnEnd(func() { close(ended) })

	decide := func(name string, g *authz.Guard, ctx context.Context, c authz.Call) {
		err := g.Authorize(ctx, c)
		var de *authz.DeniedError
		switch {
		case err == nil:
			fmt.Fprintf(out, "%s %s: allowed\n", name, c.Tool)
		case errors.As(err, &de):
			fmt.Fprintf(out, "%s %s: denied by %s\n", name, c.Tool, de.Decision.Rule)
		default:
			fmt.Fprintf(out, "%s %s: %v\n", name, c.Tool, err)
		}
	}
	fetch := authz.Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}
	export := authz.Call{Tool: "mail.send", Intent: "export", Destination: "mailto:x@example.org"}

	// One rate limit of 2 per hour across both replicas.
	decide("A", a, ctxA, fetch)
	decide("B", b, ctxB, fetch)
	decide("A", a, ctxA, fetch)
	// Taint observed on B decides the next call on A, at once.
	decide("A", a, ctxA, export)
	onB.Observe("db://salaries", authz.Confidential, true)
	decide("A", a, ctxA, export)
	// Ending the task on A ends it on B: B's end hooks run.
	task.End()
	select {
	case <-ended:
		fmt.Fprintln(out, "B: task ended")
	case <-time.After(5 * time.Second):
		fmt.Fprintln(out, "B: task still running")
	}
	decide("B", b, ctxB, fetch)
	return nil
}

// exampleOutput is what twoReplicas prints; TestExample checks it against
// a real redis-server.
const exampleOutput = `A http.fetch: allowed
B http.fetch: allowed
A http.fetch: denied by fetch
A mail.send: allowed
A mail.send: denied by @no-match
B: task ended
B http.fetch: denied by @task-ended
`

// Example shows two replicas sharing a task through Redis. It needs a
// Redis on localhost:6379, so go test compiles it without running it;
// TestExample runs the same code against a redis-server it starts and
// checks the output.
func Example() {
	var out bytes.Buffer
	if err := twoReplicas("localhost:6379", &out); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(out.String())
	// With a Redis on localhost:6379 it prints:
	//
	// A http.fetch: allowed
	// B http.fetch: allowed
	// A http.fetch: denied by fetch
	// A mail.send: allowed
	// A mail.send: denied by @no-match
	// B: task ended
	// B http.fetch: denied by @task-ended
}

func TestExample(t *testing.T) {
	srv := redistest.Start(t)
	var out bytes.Buffer
	require.NoError(t, twoReplicas(srv.Addr(), &out))
	assert.Equal(t, exampleOutput, out.String())
}
