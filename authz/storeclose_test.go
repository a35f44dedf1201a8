package authz_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
)

// waitingStore's cancel waits for the sink call in progress, as a store
// with a subscription goroutine does (the contract: no sink call runs after
// cancel returns). Its State blocks until released once armed.
type waitingStore struct {
	*authz.MemoryStore
	sink     authz.StoreSink
	inflight sync.WaitGroup

	arm       chan struct{} // closed: State blocks
	inState   chan struct{}
	release   chan struct{}
	canceling chan struct{}
}

func (s *waitingStore) Subscribe(sink authz.StoreSink) (func(), error) {
	s.sink = sink
	return func() {
		close(s.canceling)
		s.inflight.Wait()
	}, nil
}

func (s *waitingStore) State(ctx context.Context, ids []string) ([]authz.TaskState, error) {
	select {
	case <-s.arm:
		close(s.inState)
		<-s.release
	default:
	}
	return s.MemoryStore.State(ctx, ids)
}

// TestGuardCloseDuringReload: closing a guard while the store is pushing a
// reconnect (whose reload takes the view's locks) does not deadlock.
func TestGuardCloseDuringReload(t *testing.T) {
	t.Parallel()
	s := &waitingStore{MemoryStore: authz.NewMemoryStore(nil), arm: make(chan struct{}),
		inState: make(chan struct{}), release: make(chan struct{}), canceling: make(chan struct{})}
	g, err := authz.New(authz.WithStore(s))
	require.NoError(t, err)
	_, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()

	close(s.arm)
	s.inflight.Add(1)
	go func() { // the store's subscription goroutine reconnects
		defer s.inflight.Done()
		s.sink.Subscribed(true)
	}()
	<-s.inState // the reload waits in State

	closed := make(chan struct{})
	go func() {
		_ = g.Close()
		close(closed)
	}()
	<-s.canceling // Close is waiting for the sink call
	close(s.release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Guard.Close deadlocked with the reload of a reconnecting subscription")
	}
}
