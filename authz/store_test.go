package authz_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

// faultStore is a Store under the test's control: it wraps a shared
// MemoryStore and can fail, stall, drop pushed changes and drop its
// subscription.
type faultStore struct {
	*authz.MemoryStore
	f *faults

	mu    sync.Mutex
	sinks []*faultSink
}

// faults are shared by the replicas of one backend.
type faults struct {
	fail  atomic.Bool   // every call fails
	stall atomic.Bool   // every call waits for its context
	drop  atomic.Bool   // pushed changes are lost
	calls atomic.Int64  // Authorize calls
}

var errStoreDown = errors.New("store down")

func (s *faultStore) check(ctx context.Context) error {
	if s.f.stall.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if s.f.fail.Load() {
		return errStoreDown
	}
	return nil
}

func (s *faultStore) Begin(ctx context.Context, chain []authz.StoreTask) ([]authz.TaskState, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s.MemoryStore.Begin(ctx, chain)
}

func (s *faultStore) Authorize(ctx context.Context, op *authz.StoreOp) (authz.StoreResult, error) {
	s.f.calls.Add(1)
	if err := s.check(ctx); err != nil {
		return authz.StoreResult{}, err
	}
	return s.MemoryStore.Authorize(ctx, op)
}

func (s *faultStore) Observe(ctx context.Context, chain []string, t authz.Taint) ([]authz.TaskState, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s.MemoryStore.Observe(ctx, chain, t)
}

func (s *faultStore) End(ctx context.Context, id string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.MemoryStore.End(ctx, id)
}

func (s *faultStore) State(ctx context.Context, ids []string) ([]authz.TaskState, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s.MemoryStore.State(ctx, ids)
}

func (s *faultStore) Subscribe(sink authz.StoreSink) (func(), error) {
	fs := &faultSink{sink: sink, f: s.f}
	cancel, err := s.MemoryStore.Subscribe(fs)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.sinks = append(s.sinks, fs)
	s.mu.Unlock()
	return cancel, nil
}

// subscribed tells every sink of s that its subscription went down or up.
func (s *faultStore) subscribed(live bool) {
	s.mu.Lock()
	sinks := append([]*faultSink(nil), s.sinks...)
	s.mu.Unlock()
	for _, fs := range sinks {
		fs.sink.Subscribed(live)
	}
}

type faultSink struct {
	sink authz.StoreSink
	f    *faults
}

func (fs *faultSink) TaskChanged(st authz.TaskState) {
	if !fs.f.drop.Load() && !fs.f.fail.Load() {
		fs.sink.TaskChanged(st)
	}
}

func (fs *faultSink) Subscribed(live bool) { fs.sink.Subscribed(live) }

// faultBackend is one MemoryStore with replicas under shared faults.
type faultBackend struct {
	mem      *authz.MemoryStore
	f        *faults
	mu       sync.Mutex
	replicas []*faultStore
}

func newFaultBackend() *faultBackend {
	return &faultBackend{mem: authz.NewMemoryStore(nil), f: &faults{}}
}

func (b *faultBackend) replica(*testing.T) authz.Store {
	s := &faultStore{MemoryStore: b.mem, f: b.f}
	b.mu.Lock()
	b.replicas = append(b.replicas, s)
	b.mu.Unlock()
	return s
}

// outage makes the store fail and drops every subscription until heal.
func (b *faultBackend) outage(*testing.T) (heal func()) {
	b.f.fail.Store(true)
	b.each(func(s *faultStore) { s.subscribed(false) })
	return func() {
		b.f.fail.Store(false)
		b.each(func(s *faultStore) { s.subscribed(true) })
	}
}

func (b *faultBackend) each(f func(*faultStore)) {
	b.mu.Lock()
	rs := append([]*faultStore(nil), b.replicas...)
	b.mu.Unlock()
	for _, s := range rs {
		f(s)
	}
}

func TestMemoryStoreConformance(t *testing.T) {
	authztest.StoreConformance(t, func(t *testing.T) authztest.StoreBackend {
		b := newFaultBackend()
		return authztest.StoreBackend{Replica: b.replica, Break: b.outage}
	})
}

var _ = time.Second
