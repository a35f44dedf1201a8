package authz

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type replaceRedactor struct{ old, new string }

func (r replaceRedactor) Redact(s string) string { return strings.ReplaceAll(s, r.old, r.new) }

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

func TestRedactAuditWithRemove(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	g, err := New(WithLogger(slog.New(slog.NewJSONHandler(&log, nil))))
	require.NoError(t, err)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "agent"}})
	require.NoError(t, err)
	defer task.End()
	c := Call{Tool: "web.fetch", Intent: "read", Destination: "https://example.org/hunter2-x/alpha-y"}
	audit := func() string {
		t.Helper()
		g.Check(ctx, c)
		out := log.take()
		require.Contains(t, out, "example.org", "the check was audited")
		return out
	}

	removeA := g.RedactAuditWith(replaceRedactor{"hunter2", "[A]"})
	removeB := g.RedactAuditWith(replaceRedactor{"alpha", "[B]"})
	out := audit()
	assert.NotContains(t, out, "hunter2")
	assert.NotContains(t, out, "alpha")

	removeA()
	out = audit()
	assert.Contains(t, out, "hunter2", "the removed redactor no longer runs")
	assert.NotContains(t, out, "alpha", "the other redactor stays")

	removeA() // idempotent
	removeB()
	out = audit()
	assert.Contains(t, out, "hunter2")
	assert.Contains(t, out, "alpha")

	remove := g.RedactAuditWith(nil)
	require.NotNil(t, remove)
	remove()
}

func TestRedactAuditWithSameRedactorTwice(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	g, err := New(WithLogger(slog.New(slog.NewJSONHandler(&log, nil))))
	require.NoError(t, err)
	r := replaceRedactor{"hunter2", "[A]"}
	remove1 := g.RedactAuditWith(r)
	_ = g.RedactAuditWith(r)
	remove1()
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "agent"}})
	require.NoError(t, err)
	defer task.End()
	g.Check(ctx, Call{Tool: "web.fetch", Intent: "read", Destination: "https://example.org/hunter2"})
	out := log.take()
	require.Contains(t, out, "example.org", "the check was audited")
	assert.NotContains(t, out, "hunter2", "each remove takes away only its own registration")
}
