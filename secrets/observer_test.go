package secrets

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

// leaseLog records the lease events a guard's observer receives.
type leaseLog struct {
	authz.ObserverFuncs
	mu        sync.Mutex
	events    []authz.LeaseEvent
	decisions []authz.DecisionEvent
	b         *Broker
	live      []int // b.Live() at each event: the observer may call the broker
}

func (l *leaseLog) OnDecision(_ context.Context, e authz.DecisionEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.decisions = append(l.decisions, e)
}

func (l *leaseLog) OnLease(_ context.Context, e authz.LeaseEvent) {
	live := l.b.Live() // would deadlock if the broker held its lock
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	l.live = append(l.live, live)
}

func (l *leaseLog) kinds() []authz.LeaseEventKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []authz.LeaseEventKind
	for _, e := range l.events {
		out = append(out, e.Kind)
	}
	return out
}

func observedEnv(t *testing.T) (*env, *leaseLog) {
	t.Helper()
	log := &leaseLog{}
	clk := authztest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	p, err := authz.ParsePolicy("test.yaml", []byte(testPolicy))
	require.NoError(t, err)
	g, err := authz.New(authz.WithPolicy(p), authz.WithClock(clk.Now), authz.WithObserver(log))
	require.NoError(t, err)
	src := &recordingSource{Source: StaticClassified(map[string]string{"github-token": tokenValue, "db-password": "correct horse battery staple"}, nil)}
	b, err := NewBroker(g, src, WithClock(clk.Now), WithMaxTTL(10*time.Minute))
	require.NoError(t, err)
	log.b = b
	t.Cleanup(func() { _ = b.Close() })
	return &env{g: g, b: b, src: src, clk: clk}, log
}

func TestLeaseEvents(t *testing.T) {
	t.Parallel()
	e, log := observedEnv(t)
	ctx, task := e.begin(t, authz.TaskSpec{})

	l1, err := e.b.Lease(ctx, "github-token", TTL(time.Minute))
	require.NoError(t, err)
	l2, err := e.b.Lease(ctx, "db-password")
	require.NoError(t, err)
	l3, err := e.b.Lease(ctx, "github-token")
	require.NoError(t, err)
	require.Equal(t, []authz.LeaseEventKind{authz.LeaseGranted, authz.LeaseGranted, authz.LeaseGranted}, log.kinds())
	first := log.events[0]
	assert.Equal(t, l1.ID(), first.Lease)
	assert.Equal(t, "github-token", first.Secret)
	assert.Equal(t, task.ID(), first.Task)
	assert.Equal(t, l1.ExpiresAt(), first.ExpiresAt)

	l2.Revoke()
	l2.Revoke() // idempotent: no second event
	e.clk.Advance(2 * time.Minute)
	require.ErrorIs(t, l1.Use(func([]byte) error { return nil }), ErrLeaseExpired)
	require.ErrorIs(t, l1.Use(func([]byte) error { return nil }), ErrLeaseExpired)
	task.End()
	l3.Revoke()

	require.Equal(t, []authz.LeaseEventKind{authz.LeaseGranted, authz.LeaseGranted, authz.LeaseGranted,
		authz.LeaseRevoked, authz.LeaseExpired, authz.LeaseRevoked}, log.kinds())
	assert.Equal(t, l2.ID(), log.events[3].Lease)
	assert.Equal(t, l1.ID(), log.events[4].Lease)
	assert.Equal(t, l3.ID(), log.events[5].Lease)
	assert.Equal(t, []int{1, 2, 3, 2, 1, 0}, log.live, "each event comes after the broker's state changed")
	for _, ev := range log.events {
		assert.NotContains(t, fmt.Sprintf("%+v", ev), tokenValue)
		assert.NotContains(t, fmt.Sprintf("%+v", ev), "correct horse")
	}
}

func TestLeaseEventsOnClose(t *testing.T) {
	t.Parallel()
	e, log := observedEnv(t)
	ctx, _ := e.begin(t, authz.TaskSpec{})
	_, err := e.b.Lease(ctx, "github-token")
	require.NoError(t, err)
	require.NoError(t, e.b.Close())
	_, err = e.b.Lease(ctx, "github-token")
	require.ErrorIs(t, err, ErrClosed)
	assert.Equal(t, []authz.LeaseEventKind{authz.LeaseGranted, authz.LeaseRevoked}, log.kinds(),
		"a refused lease makes no event")
}

// A denied lease makes no lease event, but its Authorize is a decision.
func TestLeaseDeniedEvents(t *testing.T) {
	t.Parallel()
	e, log := observedEnv(t)
	ctx, _ := e.begin(t, authz.TaskSpec{Labels: map[string]string{"no-secrets": "1"}})
	_, err := e.b.Lease(ctx, "github-token")
	require.ErrorIs(t, err, authz.ErrDenied)
	assert.Empty(t, log.kinds())
	log.mu.Lock()
	defer log.mu.Unlock()
	require.Len(t, log.decisions, 1)
	assert.Equal(t, authz.OpAuthorize, log.decisions[0].Op)
	assert.Equal(t, LeaseTool, log.decisions[0].Tool)
	assert.Equal(t, authz.Deny, log.decisions[0].Effect)
	assert.Equal(t, authz.RuleNoMatch, log.decisions[0].Rule)
}
