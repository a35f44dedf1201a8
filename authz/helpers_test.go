package authz

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// mustPolicy parses a YAML policy or fails the test.
func mustPolicy(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := ParsePolicy("test.yaml", []byte(src))
	require.NoError(t, err)
	return p
}

// mustGuard builds a guard with a fake clock and the given policy.
func mustGuard(t testing.TB, src string, opts ...Option) (*Guard, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	opts = append([]Option{WithPolicy(mustPolicy(t, src)), WithClock(clk.Now)}, opts...)
	g, err := New(opts...)
	require.NoError(t, err)
	return g, clk
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// lockedWriter serialises writes for a logger shared by goroutines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newTestLogger(w io.Writer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewJSONHandler(lockedWriter{mu: mu, w: w}, nil))
}
