package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/taskguard/taskguard/authz"
)

// Lease is a task-bound, short-lived grant of one secret value. The value
// is reachable only inside [Lease.Use]; it is zeroed when the lease
// expires, is revoked or its task ends. A Lease never prints its value:
// String, GoString, Format, MarshalJSON and LogValue redact, and the value
// is held masked behind a pointer, so a Lease inside another value prints
// no secret either. A Lease is safe for concurrent use.
type Lease struct {
	id       string
	name     string
	broker   *Broker
	task     *authz.Task
	issued   time.Time
	limit    time.Time // the latest expiry renewals may reach
	audience []string

	// mu guards the fields below it.
	mu      sync.Mutex
	expires time.Time
	state   error      // nil while live; ErrLeaseExpired or ErrLeaseRevoked after
	box     *sealed    // the value; nil once the lease died
	cred    Credential // without its value
	timer   *time.Timer
}

// ID returns the lease's unique ID.
func (l *Lease) ID() string { return l.id }

// Name returns the leased secret's name.
func (l *Lease) Name() string { return l.name }

// ExpiresAt returns when the lease expires.
func (l *Lease) ExpiresAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expires
}

// Use calls f with the secret value. The slice is a copy that is zeroed
// when f returns: do not keep it. After expiry Use returns ErrLeaseExpired,
// after a revoke or the end of the task ErrLeaseRevoked; expiry is checked
// on every call. A panic in f is recovered and returned as an error.
func (l *Lease) Use(f func(value []byte) error) (err error) {
	l.mu.Lock()
	if l.state == nil && !l.broker.clock().Before(l.expires) {
		l.mu.Unlock()
		l.kill(ErrLeaseExpired)
		l.mu.Lock()
	}
	if l.state != nil {
		state := l.state
		l.mu.Unlock()
		return state
	}
	v := l.box.open()
	l.mu.Unlock()
	defer func() {
		clear(v)
		if r := recover(); r != nil {
			err = fmt.Errorf("secrets: lease %s: use panicked", l.id)
		}
	}()
	return f(v)
}

// Renew extends the lease to now + d, bounded by the broker's max TTL
// (counted from the lease's issue), the task's deadline and the
// credential's own expiry. It returns the error Use would for a dead lease.
func (l *Lease) Renew(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("secrets: renew: %v is not positive", d)
	}
	now := l.broker.clock()
	l.mu.Lock()
	if l.state == nil && !now.Before(l.expires) {
		l.mu.Unlock()
		l.kill(ErrLeaseExpired)
		l.mu.Lock()
	}
	defer l.mu.Unlock()
	if l.state != nil {
		return l.state
	}
	exp := now.Add(d)
	if exp.After(l.limit) {
		exp = l.limit
	}
	if ce := l.cred.ExpiresAt; !ce.IsZero() && exp.After(ce) {
		exp = ce
	}
	if exp.After(l.expires) {
		l.expires = exp
		if l.timer != nil {
			l.timer.Reset(exp.Sub(now))
		}
	}
	return nil
}

// Revoke ends the lease now: the lease drops its value (the broker keeps
// redacting it while it may still work, see [Broker.Redact]) and the
// source's Revoke is called. Revoke is idempotent.
func (l *Lease) Revoke() { l.kill(ErrLeaseRevoked) }

// kill ends the lease with state (once), hands its value to the broker
// (which keeps redacting it while it may still work, or wipes it) and
// revokes the credential.
func (l *Lease) kill(state error) {
	l.mu.Lock()
	if l.state != nil && l.box == nil {
		l.mu.Unlock()
		return
	}
	if l.state == nil {
		l.state = state
	}
	final, expires := l.state, l.expires
	box := l.box
	l.box = nil
	if l.timer != nil {
		l.timer.Stop()
	}
	cred := l.cred
	l.mu.Unlock()

	l.broker.retire(box, cred.ExpiresAt)
	wasLive := l.broker.forget(l)
	l.broker.revokeCred(cred)
	if wasLive {
		kind := authz.LeaseRevoked
		if errors.Is(final, ErrLeaseExpired) {
			kind = authz.LeaseExpired
		}
		l.broker.guard.Observer().OnLease(context.Background(), authz.LeaseEvent{Kind: kind, Lease: l.id,
			Secret: l.name, Task: l.task.ID(), ExpiresAt: expires})
	}
	if lg := l.broker.logger; lg != nil {
		lg.Info("taskguard lease ended", "lease", l.id, "secret", l.name, "task", l.task.ID(), "state", state.Error())
	}
}

// live reports whether the lease has not died.
func (l *Lease) live() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state == nil
}

func (l *Lease) String() string {
	return fmt.Sprintf("secrets.Lease{ID: %s, Name: %s, ExpiresAt: %s, value: %s}",
		l.id, l.name, l.ExpiresAt().Format(time.RFC3339), Redacted)
}

// GoString redacts like String.
func (l *Lease) GoString() string { return l.String() }

// Format prints the redacted form for every verb.
func (l *Lease) Format(f fmt.State, verb rune) { fmt.Fprint(f, l.String()) }

// MarshalJSON never includes the value.
func (l *Lease) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"id": l.id, "name": l.name, "expires_at": l.ExpiresAt(), "value": Redacted})
}

// LogValue implements [slog.LogValuer] without the value.
func (l *Lease) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", l.id), slog.String("name", l.name),
		slog.Time("expires_at", l.ExpiresAt()), slog.String("value", Redacted))
}
