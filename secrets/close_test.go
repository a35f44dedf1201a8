package secrets

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

// TestCloseRemovesAuditRedactor: NewBroker registers the broker with the
// guard's audit redactors and Close removes it, so a guard that outlives
// its brokers does not keep them.
func TestCloseRemovesAuditRedactor(t *testing.T) {
	t.Parallel()
	var log lockedBuffer
	p, err := authz.ParsePolicy("test.yaml", []byte(testPolicy))
	require.NoError(t, err)
	g, err := authz.New(authz.WithPolicy(p), authz.WithLogger(slog.New(slog.NewJSONHandler(&log, nil))))
	require.NoError(t, err)
	b, err := NewBroker(g, Static(map[string]string{"github-token": tokenValue}))
	require.NoError(t, err)
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "agent"}, Clearance: authz.Confidential})
	require.NoError(t, err)
	defer task.End()
	_, err = b.Lease(ctx, "github-token")
	require.NoError(t, err)
	post := authz.Call{Tool: "http.post", Intent: "send", Destination: "https://example.org/" + tokenValue}

	log.take()
	g.Check(ctx, post)
	out := log.take()
	require.Contains(t, out, "example.org", "the check was audited")
	assert.NotContains(t, out, tokenValue, "the open broker redacts the audit log")

	require.NoError(t, b.Close())
	g.Check(ctx, post)
	out = log.take()
	require.Contains(t, out, "example.org", "the check was audited")
	assert.Contains(t, out, tokenValue, "the closed broker is no longer one of the guard's redactors")
	assert.NotContains(t, b.Redact(out), tokenValue, "Broker.Redact still works after Close")
}
