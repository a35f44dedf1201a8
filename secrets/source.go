package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/taskguard/taskguard/authz"
)

// Errors of the package.
var (
	// ErrLeaseExpired is returned by Use after the lease's expiry.
	ErrLeaseExpired = errors.New("secrets: lease expired")
	// ErrLeaseRevoked is returned by Use after the lease was revoked or its
	// task ended.
	ErrLeaseRevoked = errors.New("secrets: lease revoked")
	// ErrUnknownSecret is returned for a secret name the source does not have.
	ErrUnknownSecret = errors.New("secrets: unknown secret")
	// ErrClosed is returned by a closed broker.
	ErrClosed = errors.New("secrets: broker closed")
)

// Redacted replaces secret values wherever a value-holding type is printed.
const Redacted = "[REDACTED]"

// IssueRequest asks a [Source] for one credential.
type IssueRequest struct {
	// Name is the secret's name.
	Name string
	// Task and Agent identify the task the credential is for.
	Task, Agent string
	// Audience lists the host globs the value may be sent to (may be empty).
	Audience []string
	// Scope is what the credential grants, when the source supports scopes.
	Scope []string
	// ExpiresAt is when the lease ends at the latest; a credential the
	// source mints should not outlive it.
	ExpiresAt time.Time
}

// Credential is what a [Source] issues: an ID, the secret value and an
// optional expiry. The value is never printed: String, GoString, Format,
// MarshalJSON and LogValue redact it, and it is held masked behind a
// pointer, so a Credential inside another value (an unexported field, a
// slice, a map) prints no secret either. Build one with [NewCredential];
// copies share the value. The zero Credential holds no value.
type Credential struct {
	// ID identifies the credential to its source (a token's jti, a
	// database user name); it is not secret.
	ID string
	// ExpiresAt is when the credential itself stops working; zero means it
	// lives as long as its source allows.
	ExpiresAt time.Time
	box       *sealed
}

// NewCredential returns a credential holding a copy of value.
func NewCredential(id string, value []byte, expiresAt time.Time) Credential {
	return Credential{ID: id, ExpiresAt: expiresAt, box: seal(value)}
}

// Value returns a new copy of the credential's secret bytes, which the
// caller owns and should clear when done (nil for the zero Credential and
// after the broker wiped the value). Sources use it; agents get values
// only through [Lease.Use].
func (c Credential) Value() []byte { return c.box.open() }

func (c Credential) String() string {
	return "secrets.Credential{ID: " + c.ID + ", value: " + Redacted + "}"
}
func (c Credential) GoString() string { return c.String() }

// Format prints the redacted form for every verb.
func (c Credential) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// MarshalJSON never includes the value.
func (c Credential) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"id": c.ID, "value": Redacted})
}

// LogValue implements [slog.LogValuer] without the value.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", c.ID), slog.String("value", Redacted))
}

// Source is where secret material comes from. Issue returns a credential
// for one lease (ErrUnknownSecret for a name it does not have); Revoke is
// called when the lease dies (expiry, revoke, task end) so dynamic
// credentials can be invalidated. Both must be safe for concurrent use.
type Source interface {
	Issue(ctx context.Context, req IssueRequest) (Credential, error)
	Revoke(ctx context.Context, c Credential) error
}

// Classifier is implemented by sources that know the class of their
// secrets. A lease's authorization call carries the class as its
// sensitivity, so a task's clearance bounds what it can lease. Without it
// every secret is Confidential. ok is false for an unknown name.
type Classifier interface {
	Class(name string) (s authz.Sensitivity, ok bool)
}

// static is a source of fixed values, held sealed.
type static struct {
	values map[string]*sealed
	class  map[string]authz.Sensitivity
}

// Static returns a source of fixed values (long-lived secrets that stay in
// the broker; only leases go out). Every secret is Confidential, so only a
// task with Clearance: authz.Confidential or higher can lease one; use
// [StaticClassified] to give secrets other classes.
func Static(values map[string]string) Source {
	s := &static{values: make(map[string]*sealed, len(values))}
	for k, v := range values {
		s.values[k] = seal([]byte(v))
	}
	return s
}

// StaticClassified is Static with a class per secret.
func StaticClassified(values map[string]string, class map[string]authz.Sensitivity) Source {
	s := Static(values).(*static)
	s.class = make(map[string]authz.Sensitivity, len(class))
	for k, c := range class {
		s.class[k] = c
	}
	return s
}

func (s *static) Issue(_ context.Context, req IssueRequest) (Credential, error) {
	box, ok := s.values[req.Name]
	if !ok {
		return Credential{}, fmt.Errorf("%w %q", ErrUnknownSecret, req.Name)
	}
	v := box.open()
	defer clear(v)
	return NewCredential(req.Name, v, time.Time{}), nil
}

func (s *static) Revoke(context.Context, Credential) error { return nil }

// noopRevoker marks sources whose Revoke does nothing, so the broker skips
// the call (and its timeout context).
type noopRevoker interface{ noopRevoke() }

func (s *static) noopRevoke() {}

func (s *static) Class(name string) (authz.Sensitivity, bool) {
	if _, ok := s.values[name]; !ok {
		return 0, false
	}
	if c, ok := s.class[name]; ok {
		return c, true
	}
	return authz.Confidential, true
}

func (s *static) String() string {
	names := make([]string, 0, len(s.values))
	for k := range s.values {
		names = append(names, k)
	}
	sort.Strings(names)
	return "secrets.Static(" + strings.Join(names, ", ") + ")"
}

// Env returns a static source reading the environment variables named by
// vars (secret name → variable name) once, now. A variable that is unset
// is an error, so a misconfigured deployment fails at start.
func Env(vars map[string]string) (Source, error) {
	values := make(map[string]string, len(vars))
	var missing []string
	for name, v := range vars {
		val, ok := os.LookupEnv(v)
		if !ok {
			missing = append(missing, v)
			continue
		}
		values[name] = val
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("secrets: environment variables not set: %s", strings.Join(missing, ", "))
	}
	return Static(values), nil
}
