package redisbackend_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/contextguard"
	"github.com/taskguard/taskguard/contextguard/redisbackend"
)

// Memory persisted in Redis under Encrypted: Redis holds only ciphertext,
// and when the task ends the key is destroyed, so even a copy of what Redis
// held can no longer be read.
func Example() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: sharedAddr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	b, err := redisbackend.New(rdb, redisbackend.WithPrefix("example:mem:"))
	if err != nil {
		fmt.Println(err)
		return
	}
	enc := contextguard.Encrypted(b)
	store := contextguard.NewStore(contextguard.WithBackend(enc))

	g, _ := authz.New()
	tctx, task, err := g.Begin(ctx, authz.TaskSpec{
		Agent: authz.Agent{ID: "spiffe://example.org/agent/analyst"}, Clearance: authz.Confidential})
	if err != nil {
		fmt.Println(err)
		return
	}
	mem := store.For(task)
	err = mem.Add(tctx, contextguard.Entry{Role: "tool", Source: "db://crm",
		Content: "ACME pays 1.2M", Sensitivity: authz.Confidential})
	if err != nil {
		fmt.Println(err)
		return
	}

	es, _ := mem.Entries(tctx)
	fmt.Println("the task reads:", es[0].Content)
	stored, _ := rdb.LRange(ctx, "example:mem:{"+task.ID()+"}", 0, -1).Result()
	fmt.Println("Redis holds the plaintext:", strings.Contains(stored[0], "ACME"))

	task.End()
	// Put back what Redis held, as a replica or a snapshot might have kept it.
	rdb.RPush(ctx, "example:mem:{"+task.ID()+"}", stored[0])
	_, err = enc.Load(ctx, task.ID())
	fmt.Println("after the task ended:", errors.Is(err, contextguard.ErrKeyDestroyed))
	_ = enc.Wipe(ctx, task.ID())
	// Output:
	// the task reads: ACME pays 1.2M
	// Redis holds the plaintext: false
	// after the task ended: true
}
