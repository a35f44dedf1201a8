package redisstore

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/redistest"
)

// settleGoroutines waits until the number of goroutines is back to at
// most base, and fails the test with a dump if it is not.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStoreStoppedAndRestarted(t *testing.T) {
	srv := redistest.Start(t)
	base := runtime.NumGoroutine()
	c := newClient(t, srv)
	s, err := New(c, WithPrefix(freshPrefix()), WithHeartbeat(20*time.Millisecond))
	require.NoError(t, err)
	sink := newRecSink()
	cancel, err := s.Subscribe(sink)
	require.NoError(t, err)
	sink.wait(t, "subscribed", func(_ []authz.TaskState, live []bool) bool { return lastLive(live) })

	ctx := context.Background()
	tk := task("task_S", nil)
	_, err = s.Begin(ctx, []authz.StoreTask{tk})
	require.NoError(t, err)
	op := &authz.StoreOp{Chain: []authz.StoreTask{tk}, Tool: "t"}

	srv.Stop()
	sink.wait(t, "down", func(_ []authz.TaskState, live []bool) bool { return !lastLive(live) })
	for range 20 {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		r, err := s.Authorize(cctx, op)
		cancel()
		require.Error(t, err)
		assert.Equal(t, authz.StoreResult{}, r)
	}

	srv.Restart()
	sink.wait(t, "up again", func(_ []authz.TaskState, live []bool) bool {
		return len(live) >= 3 && lastLive(live)
	})
	// Nothing was persisted: the old task is unknown, so it stays denied,
	// and new tasks work. (go-redis may refuse to dial for a moment after
	// a run of failed dials.)
	var r authz.StoreResult
	eventually(t, "Redis answers the store again", func() bool {
		r, err = s.Authorize(ctx, op)
		return err == nil
	})
	assert.Equal(t, authz.StoreUnknown, r.Outcome)
	nt := task("task_N", nil)
	_, err = s.Begin(ctx, []authz.StoreTask{nt})
	require.NoError(t, err)
	r, err = s.Authorize(ctx, &authz.StoreOp{Chain: []authz.StoreTask{nt}, Tool: "t"})
	require.NoError(t, err)
	assert.Equal(t, authz.StoreOK, r.Outcome)

	cancel()
	require.NoError(t, s.Close())
	require.NoError(t, c.Close())
	settleGoroutines(t, base)
}

func TestStoreFrozen(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv, freshPrefix(), WithHeartbeat(20*time.Millisecond))
	sink := newRecSink()
	cancel, err := s.Subscribe(sink)
	require.NoError(t, err)
	defer cancel()
	sink.wait(t, "subscribed", func(_ []authz.TaskState, live []bool) bool { return lastLive(live) })
	ctx := context.Background()
	tk := task("task_F", nil)
	_, err = s.Begin(ctx, []authz.StoreTask{tk})
	require.NoError(t, err)

	srv.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			srv.Thaw()
		}
	}()
	cctx, ccancel := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	_, err = s.Authorize(cctx, &authz.StoreOp{Chain: []authz.StoreTask{tk}, Tool: "t"})
	took := time.Since(start)
	ccancel()
	require.Error(t, err)
	assert.Less(t, took, 2*time.Second, "the context deadline bounds the call")
	sink.wait(t, "down", func(_ []authz.TaskState, live []bool) bool { return !lastLive(live) })

	srv.Thaw()
	thawed = true
	sink.wait(t, "up again", func(_ []authz.TaskState, live []bool) bool { return len(live) >= 3 && lastLive(live) })
	r, err := s.Authorize(ctx, &authz.StoreOp{Chain: []authz.StoreTask{tk}, Tool: "t"})
	require.NoError(t, err)
	assert.Equal(t, authz.StoreOK, r.Outcome)
}

// funcSink is a StoreSink of two functions.
type funcSink struct {
	changed    func(authz.TaskState)
	subscribed func(bool)
}

func (f funcSink) TaskChanged(st authz.TaskState) {
	if f.changed != nil {
		f.changed(st)
	}
}

func (f funcSink) Subscribed(live bool) {
	if f.subscribed != nil {
		f.subscribed(live)
	}
}

// TestCancelWhileSinkRuns: cancel called by someone holding a lock the
// running sink call waits for returns at once instead of deadlocking,
// no sink call starts after it, and Close still waits for the goroutine.
func TestCancelWhileSinkRuns(t *testing.T) {
	srv := redistest.Start(t)
	base := runtime.NumGoroutine()
	c := newClient(t, srv)
	s, err := New(c, WithPrefix(freshPrefix()))
	require.NoError(t, err)
	var mu sync.Mutex
	var calls atomic.Int32
	entered := make(chan struct{})
	mu.Lock()
	cancel, err := s.Subscribe(funcSink{subscribed: func(live bool) {
		if calls.Add(1) == 1 {
			close(entered)
			mu.Lock() // held by the test while it cancels
			mu.Unlock()
		}
	}})
	require.NoError(t, err)
	<-entered
	cancel()
	cancel()
	mu.Unlock()
	require.NoError(t, s.Close())
	assert.Equal(t, int32(1), calls.Load(), "no sink call after cancel")
	require.NoError(t, c.Close())
	settleGoroutines(t, base)
}
