package main

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/redisstore"
	"github.com/taskguard/taskguard/internal/redistest"
)

// redisStore returns a store on srv under prefix, for one process: its
// own client, closed when the test ends.
func redisStore(t *testing.T, srv *redistest.Server, prefix string) *redisstore.Store {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	s, err := redisstore.New(rdb, redisstore.WithPrefix(prefix))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = s.Close()
		_ = rdb.Close()
	})
	return s
}

// TestTwoServerReplicasShareRedis runs the scenario with two replicas of
// the tool server behind the agent, which share task state through Redis
// with each other and with the agent runtime. What a task read on one
// replica taints it on the other, and a token the agent sent before it
// ended the task is refused by both replicas at once, where a server
// without the shared store accepts it until it expires
// (TestTokenSentBeforeEndAcrossProcesses).
func TestTwoServerReplicasShareRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	e := newEnv(t)
	const prefix = "remote-mcp:"
	cfg := func() serverConfig {
		return serverConfig{AgentKeyID: "agent-1", AgentKey: e.agentPub, ReportKeyID: "tools-1", ReportKey: e.serverKey,
			Options: []authz.Option{authz.WithStore(redisStore(t, srv, prefix))}}
	}
	replicaA, endpointA := startServer(t, e.policy, cfg())
	replicaB, endpointB := startServer(t, e.policy, cfg())
	t.Cleanup(func() { _ = replicaA.guard.Close(); _ = replicaB.guard.Close() })
	agent := e.agentGuard(t, e.serverPub, authz.WithStore(redisStore(t, srv, prefix)))
	t.Cleanup(func() { _ = agent.Close() })

	ctx, task := e.begin(t, agent)
	// A load balancer would spread the agent's requests; two sessions
	// make the spread explicit.
	csA, csB := connect(t, ctx, agent, endpointA), connect(t, ctx, agent, endpointB)
	res, err := callTool(ctx, csB, "web_fetch", map[string]any{"url": "https://example.com/"})
	require.NoError(t, err)
	require.False(t, res.IsError, resultText(res))

	res, err = callTool(ctx, csA, "read_doc", map[string]any{"name": "handbook"})
	require.NoError(t, err)
	require.False(t, res.IsError, resultText(res))
	onB := func() *authz.Task {
		replicaB.mu.Lock()
		defer replicaB.mu.Unlock()
		return replicaB.tasks[task.ID()]
	}
	require.NotNil(t, onB())
	assert.Equal(t, authz.Confidential, onB().Taint().Sensitivity,
		"replica B's copy of the task knows what it read on replica A")

	sent, err := task.Token(serverName) // as the transport sends it
	require.NoError(t, err)
	kept := onB()
	task.End()
	deadline := time.Now().Add(5 * time.Second)
	for !kept.Ended() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	assert.True(t, kept.Ended(), "the End on the agent ends replica B's copy")
	for name, endpoint := range map[string]string{"A": endpointA, "B": endpointB} {
		_, err := callTool(t.Context(), rawSession(t, endpoint, sent), "web_fetch", map[string]any{"url": "https://example.com/"})
		require.Error(t, err, "replica %s", name)
		assert.ErrorContains(t, err, "has ended", "replica %s refuses the token of the ended task", name)
	}
	assert.EqualValues(t, 1, replicaB.runs["web_fetch"].Load()+replicaA.runs["web_fetch"].Load())
}
