package secrets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/glob"
)

// Lease is a task-bound, short-lived grant of one secret value. The value
// is reachable only inside [Lease.Use]; it is zeroed when the lease
// expires, is revoked or its task ends. A Lease never prints its value:
// String, GoString, Format, MarshalJSON and LogValue redact. A Lease is
// safe for concurrent use.
type Lease struct {
	id       string
	name     string
	broker   *Broker
	task     *authz.Task
	issued   time.Time
	limit    time.Time // the latest expiry renewals may reach
	audience []string

	// mu guards the fields below it.
	mu        sync.Mutex
	expires   time.Time
	state     error // nil while live; ErrLeaseExpired or ErrLeaseRevoked after
	value     []byte
	cred      Credential // without its value
	timer     *time.Timer
	uninspect func()
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
	v := append([]byte(nil), l.value...)
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

// Revoke ends the lease now: the value is zeroed and the source's Revoke
// is called. Revoke is idempotent.
func (l *Lease) Revoke() { l.kill(ErrLeaseRevoked) }

// kill ends the lease with state (once), zeroes the value and revokes the
// credential.
func (l *Lease) kill(state error) {
	l.mu.Lock()
	if l.state != nil && l.value == nil {
		l.mu.Unlock()
		return
	}
	if l.state == nil {
		l.state = state
	}
	var keep []byte
	if l.broker.longLived {
		// The value outlives the lease at its source: keep redacting it.
		keep = append(keep, l.value...)
	}
	clear(l.value)
	l.value = nil
	if l.timer != nil {
		l.timer.Stop()
	}
	uninspect := l.uninspect
	l.uninspect = nil
	cred := l.cred
	l.mu.Unlock()

	if uninspect != nil {
		uninspect()
	}
	if keep != nil {
		l.broker.stick(keep)
		clear(keep)
	}
	l.broker.forget(l)
	l.broker.revokeCred(cred)
	if lg := l.broker.logger; lg != nil {
		lg.Info("taskguard lease ended", "lease", l.id, "secret", l.name, "task", l.task.ID(), "state", state.Error())
	}
}

// inspect denies calls that carry the value outside the audience.
func (l *Lease) inspect(ci *authz.CallInfo) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != nil || len(l.value) == 0 {
		return nil
	}
	if !strings.Contains(ci.Call.Destination, string(l.value)) && !containsValue(ci.Call.Args, l.value) {
		return nil
	}
	if ci.Host != "" {
		for _, a := range l.audience {
			if ok, _ := glob.Host(a, ci.Host); ok {
				return nil
			}
		}
	}
	to := ci.Host
	if to == "" {
		to = ci.Destination
	}
	return fmt.Errorf("secret exfiltration: the value of lease %s (%s) may only be sent to %s, not %q",
		l.id, l.name, strings.Join(l.audience, ", "), to)
}

// containsValue reports whether v occurs in any string or byte slice of a
// JSON-shaped value (keys included).
func containsValue(x any, v []byte) bool {
	switch t := x.(type) {
	case string:
		return strings.Contains(t, string(v))
	case []byte:
		return bytes.Contains(t, v)
	case map[string]any:
		for k, e := range t {
			if strings.Contains(k, string(v)) || containsValue(e, v) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if containsValue(e, v) {
				return true
			}
		}
	case map[string]string:
		for k, e := range t {
			if strings.Contains(k, string(v)) || strings.Contains(e, string(v)) {
				return true
			}
		}
	case []string:
		for _, e := range t {
			if strings.Contains(e, string(v)) {
				return true
			}
		}
	case fmt.Stringer:
		return strings.Contains(t.String(), string(v))
	}
	return false
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
