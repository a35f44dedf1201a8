package redisstore

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskguard/taskguard/authz"
)

// Backoff bounds between reconnection attempts of a subscription.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = time.Second
)

// subscription is one Subscribe: a goroutine that reads the store's
// channel and pushes what it hears to a sink.
type subscription struct {
	s    *Store
	sink authz.StoreSink
	stop chan struct{}
	once sync.Once
	done chan struct{}

	// mu guards stopped and inSink.
	mu      sync.Mutex
	stopped bool // cancel was called: no sink call starts any more
	inSink  bool // a sink call is running
}

// Subscribe implements [authz.Store.Subscribe]. A goroutine reads the
// store's pub/sub channel and calls sink with every state published by
// any replica (including this one). It reports Subscribed(true) once
// Redis has confirmed the subscription, and Subscribed(false) as soon as
// it loses the connection or hears nothing for three heartbeats
// ([WithHeartbeat]): it then reconnects, with a backoff of up to a
// second, and reports Subscribed(true) again once subscribed, so the
// guard reloads what it may have missed. The sink is called from that
// one goroutine, in order.
//
// cancel is idempotent; once it returns no sink call starts. It waits
// for the goroutine to stop, except while a sink call is running: then
// it returns at once and that call finishes on its own (so a caller of
// cancel may hold a lock the sink takes, and the sink may call cancel).
// [Store.Close] cancels every subscription and waits for every
// goroutine, sink calls included.
func (s *Store) Subscribe(sink authz.StoreSink) (cancel func(), err error) {
	if sink == nil {
		return nil, errors.New("redisstore: subscribe: nil sink")
	}
	sub := &subscription{s: s, sink: sink, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.subs[sub] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go sub.run()
	return sub.cancel, nil
}

func (sub *subscription) cancel() {
	sub.once.Do(func() { close(sub.stop) })
	sub.mu.Lock()
	sub.stopped = true
	busy := sub.inSink
	sub.mu.Unlock()
	if !busy {
		<-sub.done
	}
}

// call runs f, a call of the sink, unless cancel was called. It reports
// whether f ran.
func (sub *subscription) call(f func()) bool {
	sub.mu.Lock()
	if sub.stopped {
		sub.mu.Unlock()
		return false
	}
	sub.inSink = true
	sub.mu.Unlock()
	defer func() {
		sub.mu.Lock()
		sub.inSink = false
		sub.mu.Unlock()
	}()
	f()
	return true
}

// run is the subscription's goroutine.
func (sub *subscription) run() {
	s := sub.s
	defer func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
		close(sub.done)
		s.wg.Done()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-sub.stop:
		case <-s.done:
		}
		cancel()
	}()
	live := false
	down := func() {
		if live {
			live = false
			sub.call(func() { sub.sink.Subscribed(false) })
		}
	}
	backoff := minBackoff
	for ctx.Err() == nil {
		err := sub.listen(ctx, &live)
		if ctx.Err() != nil {
			return
		}
		down()
		if err == nil {
			backoff = minBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listen subscribes on a new connection and pushes what it hears until
// the connection fails or goes quiet for three heartbeats, or ctx ends.
// It sets *live and reports Subscribed(true) once subscribed. It returns
// nil when it was subscribed at some point (the caller reconnects at
// once), or the error that kept it from subscribing.
func (sub *subscription) listen(ctx context.Context, live *bool) error {
	s := sub.s
	ps := s.c.Subscribe(ctx)
	// Closing the connection is what interrupts a read in progress.
	quit := make(chan struct{})
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		select {
		case <-ctx.Done():
		case <-quit:
		}
		_ = ps.Close()
	}()
	defer func() {
		close(quit)
		<-closed
	}()
	if err := ps.Subscribe(ctx, s.channel); err != nil {
		return err
	}
	beat := s.beat
	heard := time.Now()
	for {
		msg, err := ps.ReceiveTimeout(ctx, beat)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if !isTimeout(err) {
				if *live {
					return nil
				}
				return err
			}
			if time.Since(heard) >= 3*beat {
				if *live {
					return nil
				}
				return errors.New("redisstore: subscription not confirmed")
			}
			// Quiet: ask for a PONG, which proves the connection.
			pctx, cancel := context.WithTimeout(ctx, beat)
			_ = ps.Ping(pctx)
			cancel()
			continue
		}
		heard = time.Now()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == s.channel && !*live {
				*live = true
				sub.call(func() { sub.sink.Subscribed(true) })
			}
		case *redis.Message:
			if !*live {
				continue // only after the confirmation, which comes first
			}
			st, err := decodeState(m.Payload)
			if err != nil {
				// A change this replica cannot read is a change lost:
				// reconnect, so that the guard reloads its tasks.
				return nil
			}
			sub.call(func() { sub.sink.TaskChanged(st) })
		case *redis.Pong:
		}
	}
}

// isTimeout reports whether err is a read timeout, which on a quiet
// subscription is not a failure.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
