package secrets

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/glob"
	"github.com/taskguard/taskguard/internal/redact"
)

// Defaults of a [Broker].
const (
	// DefaultMaxTTL bounds a lease's life unless [WithMaxTTL] says otherwise.
	DefaultMaxTTL = 15 * time.Minute
	// DefaultRevokeTimeout bounds each call of Source.Revoke.
	DefaultRevokeTimeout = 5 * time.Second
)

// The authorization call a lease makes: Call{Tool: LeaseTool, Intent:
// LeaseIntent, Destination: "secret://NAME", Sensitivity: the secret's class}.
const (
	LeaseTool   = "secrets.lease"
	LeaseIntent = "secret.read"
)

// maxNameLen bounds a secret name.
const maxNameLen = 128

// Option configures a [Broker]. [WithClock] is one too.
type Option interface{ applyBroker(*Broker) error }

type brokerOption func(*Broker) error

func (f brokerOption) applyBroker(b *Broker) error { return f(b) }

// WithMaxTTL bounds the life of every lease (from its issue, renewals
// included). The last WithMaxTTL wins.
func WithMaxTTL(d time.Duration) Option {
	return brokerOption(func(b *Broker) error {
		if d <= 0 {
			return fmt.Errorf("WithMaxTTL: %v is not positive", d)
		}
		b.maxTTL = d
		return nil
	})
}

// WithLogger logs lease events (never values) and revoke failures.
func WithLogger(l *slog.Logger) Option {
	return brokerOption(func(b *Broker) error {
		b.logger = l
		return nil
	})
}

// WithRevokeTimeout bounds each call of Source.Revoke.
func WithRevokeTimeout(d time.Duration) Option {
	return brokerOption(func(b *Broker) error {
		if d <= 0 {
			return fmt.Errorf("WithRevokeTimeout: %v is not positive", d)
		}
		b.revokeTimeout = d
		return nil
	})
}

// Broker hands out task-bound leases on secrets from a [Source]. Every
// lease is authorized by the guard, lives at most until its TTL, the
// broker's max TTL and its task's deadline, and is revoked when its task
// ends. A Broker is safe for concurrent use; Close it when done.
//
// Build a Broker with [NewBroker]. The zero Broker is inert: Lease returns
// an error, Redact returns its input (nothing was leased), Close succeeds
// once, and no method panics.
type Broker struct {
	guard         *authz.Guard
	src           Source
	maxTTL        time.Duration
	clock         func() time.Time
	realClock     bool
	logger        *slog.Logger
	revokeTimeout time.Duration
	unregister    func() // removes the broker from the guard's audit redactors

	// mu guards the fields below it.
	mu     sync.Mutex
	closed bool
	live   map[*Lease]struct{}
	sticky map[[sha256.Size]byte]*sealed       // long-lived values of dead leases, still redacted; keyed by hash
	linger []lingering                         // expiring values of dead leases, redacted until they expire
	tasks  map[*authz.Task]map[*Lease]struct{} // live leases by task; one end hook per task
	bound  map[*authz.Task]*taskBinding        // tasks with an inspector: one per task
	errs   []error                             // revoke failures not yet returned by Flush or Close

	longLived bool // the source's values outlive leases (Static, Env)

	idPrefix string // "lease_<random>_", then a counter
	nextID   atomic.Uint64

	gen     atomic.Uint64 // bumped (with mu held) whenever the set of values changes
	snap    atomic.Pointer[snapshot]
	buildMu sync.Mutex
}

// lingering is the value of a dead lease whose credential still works
// until it expires.
type lingering struct {
	until time.Time
	box   *sealed
}

// taskBinding counts a task's live leases that have an audience; its
// inspector does nothing while there are none.
type taskBinding struct {
	n atomic.Int64
}

// snapshot is an immutable view of the values the broker redacts: every
// encoded form of each value, in one matcher. owners[i] is the live lease
// whose value pattern i encodes, nil for the values of dead leases.
type snapshot struct {
	gen    uint64
	m      *redact.Matcher
	owners []*Lease
	expiry time.Time // when the first lingering value expires; zero if none
	err    error     // the matcher could not be built: redact and inspect fail closed
}

// errZeroBroker is returned by Lease on a Broker not built with NewBroker.
var errZeroBroker = errors.New("secrets: Broker not built with NewBroker")

// maxPendingErrors bounds the revoke failures a broker keeps for Flush.
const maxPendingErrors = 100

// NewBroker returns a broker leasing secrets of src under guard g. It
// registers itself with g.RedactAuditWith, so live lease values never reach
// the guard's audit log, until [Broker.Close].
func NewBroker(g *authz.Guard, src Source, opts ...Option) (*Broker, error) {
	if g == nil {
		return nil, errors.New("secrets: NewBroker: nil guard")
	}
	if src == nil {
		return nil, errors.New("secrets: NewBroker: nil source")
	}
	b := &Broker{guard: g, src: src, maxTTL: DefaultMaxTTL, clock: time.Now, realClock: true,
		revokeTimeout: DefaultRevokeTimeout, live: map[*Lease]struct{}{}, tasks: map[*authz.Task]map[*Lease]struct{}{},
		sticky: map[[sha256.Size]byte]*sealed{}, bound: map[*authz.Task]*taskBinding{},
		idPrefix: "lease_" + rand.Text()[:10] + "_"}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyBroker(b); err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
	}
	_, b.longLived = src.(noopRevoker)
	b.unregister = g.RedactAuditWith(b)
	return b, nil
}

// LeaseOption configures one lease.
type LeaseOption func(*leaseConfig) error

type leaseConfig struct {
	ttl      time.Duration
	audience []string
	scope    []string
}

// TTL asks for a lease of at most d; the broker's max TTL and the task's
// deadline still bound it.
func TTL(d time.Duration) LeaseOption {
	return func(c *leaseConfig) error {
		if d <= 0 {
			return fmt.Errorf("TTL: %v is not positive", d)
		}
		c.ttl = d
		return nil
	}
}

// Audience names the hosts (globs, as destination.host.glob in policies)
// the lease's value may be sent to. While the lease lives, a call of its
// task (or a sub-task) whose arguments or destination carry the value and
// whose destination is not a network host in the audience is denied.
//
// Only URLs and email addresses have a network host: a file, a call
// without a destination and an opaque name (s3://bucket, queue://x,
// db://h) never match, even when the name spells an audience host.
// The value is looked for in the destination (as given and canonical) and
// in every string, byte slice and map key of the arguments, through maps,
// lists, pointers, interfaces and the exported fields of structs
// (http.Header, url.Values, json.RawMessage, *url.URL with its password
// included), up to [MaxInspectDepth] levels and [MaxInspectValues] values:
// larger arguments deny. No method of an argument is called, so a value
// kept only in unexported fields is not seen; pass tools plain data.
// Besides the value as is, its encoded forms are found: hex, percent-
// encoding in any case and mix (also double), base64 in both alphabets
// padded or not, also inside longer base64 such as an HTTP Basic
// credential, and JSON string escaping. Encoded forms need no longer
// minimum than the value itself: every leased value has at least
// redact.MinLen (6) bytes, and all its forms are searched. Repeated
// Audience options add hosts.
func Audience(hostGlobs ...string) LeaseOption {
	return func(c *leaseConfig) error {
		for _, h := range hostGlobs {
			if _, err := glob.Host(h, "example.org"); err != nil {
				return fmt.Errorf("Audience: %w", err)
			}
		}
		c.audience = append(c.audience, hostGlobs...)
		return nil
	}
}

// Scope passes the scopes to the source (minted tokens carry them).
func Scope(scopes ...string) LeaseOption {
	return func(c *leaseConfig) error {
		c.scope = append(c.scope, scopes...)
		return nil
	}
}

func validName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("secrets: secret name must be 1 to %d bytes", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '~') {
			return fmt.Errorf("secrets: secret name %q: want letters, digits and . _ - ~", name)
		}
	}
	return nil
}

// goName returns the Go name of a sensitivity level ("Confidential").
func goName(s authz.Sensitivity) string {
	n := s.String()
	if n == "" {
		return n
	}
	return strings.ToUpper(n[:1]) + n[1:]
}

// Lease leases the secret name for the task in ctx. The guard must allow
// Call{Tool: "secrets.lease", Intent: "secret.read", Destination:
// "secret://NAME", Sensitivity: the secret's class}; a refusal returns an
// error wrapping authz.ErrDenied. No task, an ended task, an unknown name
// and a value shorter than redact.MinLen bytes (too short to be redacted)
// are errors. Lease calls the source and may block as long as it does.
func (b *Broker) Lease(ctx context.Context, name string, opts ...LeaseOption) (*Lease, error) {
	task, cfg, err := b.leaseRequest(ctx, name, opts)
	if err != nil {
		return nil, err
	}
	class, err := b.classify(name)
	if err != nil {
		return nil, err
	}
	if err := b.authorizeLease(ctx, name, class, cfg); err != nil {
		return nil, err
	}
	l, err := b.newLease(ctx, task, name, cfg)
	if err != nil {
		return nil, err
	}
	expires := l.expires // read before register shares l
	if err := b.register(ctx, l); err != nil {
		return nil, err
	}
	if b.logger != nil {
		b.logger.Info("taskguard lease", "lease", l.id, "secret", name, "task", task.ID(), "expires", expires)
	}
	return l, nil
}

// leaseRequest validates a Lease call: the broker, the name, the options
// and the live task in ctx.
func (b *Broker) leaseRequest(ctx context.Context, name string, opts []LeaseOption) (*authz.Task, leaseConfig, error) {
	var cfg leaseConfig
	if b.guard == nil {
		return nil, cfg, errZeroBroker
	}
	if err := validName(name); err != nil {
		return nil, cfg, err
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, cfg, fmt.Errorf("secrets: lease %q: %w", name, err)
		}
	}
	task, ok := authz.TaskFrom(ctx)
	if !ok {
		return nil, cfg, fmt.Errorf("secrets: lease %q: no task in the context", name)
	}
	if task.Ended() {
		return nil, cfg, fmt.Errorf("secrets: lease %q: task %s has ended", name, task.ID())
	}
	if b.isClosed() {
		return nil, cfg, ErrClosed
	}
	return task, cfg, nil
}

// classify returns the secret's sensitivity: the source's class when it is
// a Classifier (which must know the name), Confidential otherwise.
func (b *Broker) classify(name string) (authz.Sensitivity, error) {
	c, ok := b.src.(Classifier)
	if !ok {
		return authz.Confidential, nil
	}
	s, known := c.Class(name)
	if !known {
		return 0, fmt.Errorf("%w %q", ErrUnknownSecret, name)
	}
	return s, nil
}

// authorizeLease asks the guard for the lease call. The name is
// destination.host; the options the policy may judge are args.
func (b *Broker) authorizeLease(ctx context.Context, name string, class authz.Sensitivity, cfg leaseConfig) error {
	var args map[string]any
	if cfg.ttl > 0 || len(cfg.audience) > 0 || len(cfg.scope) > 0 {
		args = map[string]any{"name": name, "ttl_seconds": int64(cfg.ttl / time.Second)}
	}
	if len(cfg.scope) > 0 {
		args["scope"] = anySlice(cfg.scope)
	}
	if len(cfg.audience) > 0 {
		args["audience"] = anySlice(cfg.audience)
	}
	err := b.guard.Authorize(ctx, authz.Call{Tool: LeaseTool, Intent: LeaseIntent,
		Destination: "secret://" + name, Sensitivity: class, Args: args})
	if err == nil {
		return nil
	}
	if de, ok := errors.AsType[*authz.DeniedError](err); ok && de.Decision.Rule == authz.RuleClearance {
		return fmt.Errorf("secrets: lease %q: %w; to lease it, begin the task with Clearance: authz.%v (or higher), "+
			"or classify the secret lower (secrets.StaticClassified, or a Source implementing Classifier; unclassified secrets are Confidential)",
			name, err, goName(class))
	}
	return fmt.Errorf("secrets: lease %q: %w", name, err)
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// newLease issues the credential and returns the lease holding it, not yet
// registered. Its expiry is the earliest of the broker's max TTL, the
// task's deadline, the requested TTL and the credential's own expiry.
func (b *Broker) newLease(ctx context.Context, task *authz.Task, name string, cfg leaseConfig) (*Lease, error) {
	now := b.clock()
	limit := now.Add(b.maxTTL)
	if d := task.Deadline(); d.Before(limit) {
		limit = d
	}
	expires := limit
	if cfg.ttl > 0 && now.Add(cfg.ttl).Before(expires) {
		expires = now.Add(cfg.ttl)
	}
	cred, err := b.issue(ctx, IssueRequest{Name: name, Task: task.ID(), Agent: task.Agent().ID,
		Audience: cfg.audience, Scope: cfg.scope, ExpiresAt: expires})
	if err != nil {
		return nil, fmt.Errorf("secrets: lease %q: %w", name, err)
	}
	if !cred.ExpiresAt.IsZero() && cred.ExpiresAt.Before(expires) {
		expires = cred.ExpiresAt
	}
	if cred.box.size() < redact.MinLen {
		b.revokeCred(cred)
		cred.box.wipe()
		return nil, fmt.Errorf("secrets: lease %q: value is shorter than %d bytes and could not be redacted", name, redact.MinLen)
	}
	l := &Lease{id: b.idPrefix + strconv.FormatUint(b.nextID.Add(1), 10), name: name, broker: b, task: task, issued: now, limit: limit,
		expires: expires, audience: cfg.audience, cred: cred, box: cred.box}
	l.cred.box = nil
	return l, nil
}

// register makes l live: tracked by the broker and its task (revoked when
// the task ends), its audience enforced by the task's inspector, observers
// told, and its expiry timer started. A closed broker kills l instead.
func (b *Broker) register(ctx context.Context, l *Lease) error {
	// l is not shared yet: read what the steps below need.
	task, issued, expires := l.task, l.issued, l.expires
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		l.kill(ErrLeaseRevoked)
		return ErrClosed
	}
	b.live[l] = struct{}{}
	set, hooked := b.tasks[task]
	if !hooked {
		set = map[*Lease]struct{}{}
		b.tasks[task] = set
	}
	set[l] = struct{}{}
	var newBinding *taskBinding
	if len(l.audience) > 0 {
		tb := b.bound[task]
		if tb == nil {
			tb = &taskBinding{}
			b.bound[task] = tb
			newBinding = tb
		}
		tb.n.Add(1)
	}
	b.gen.Add(1)
	b.mu.Unlock()
	b.guard.Observer().OnLease(ctx, authz.LeaseEvent{Kind: authz.LeaseGranted, Lease: l.id, Secret: l.name,
		Task: task.ID(), ExpiresAt: expires})
	if !hooked {
		task.OnEnd(func() { b.endTask(task) })
	}
	if newBinding != nil {
		// Removed when the task ends.
		task.Inspect("secrets", b.inspector(task, newBinding))
	}
	if b.realClock {
		l.mu.Lock()
		if l.state == nil {
			l.timer = time.AfterFunc(expires.Sub(issued), func() { l.kill(ErrLeaseExpired) })
		}
		l.mu.Unlock()
	}
	return nil
}

// issue calls the source, turning a panic into an error.
func (b *Broker) issue(ctx context.Context, req IssueRequest) (c Credential, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("source panicked: %v", r)
		}
	}()
	return b.src.Issue(ctx, req)
}

// revokeCred calls the source's Revoke under the revoke timeout and keeps
// a failure for Flush and Close.
func (b *Broker) revokeCred(c Credential) {
	if _, ok := b.src.(noopRevoker); ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.revokeTimeout)
	defer cancel()
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("source panicked: %v", r)
			}
		}()
		return b.src.Revoke(ctx, c)
	}()
	if err == nil {
		return
	}
	err = fmt.Errorf("secrets: revoke credential %s: %w", c.ID, err)
	if b.logger != nil {
		b.logger.Error("taskguard revoke failed", "credential", c.ID, "error", err.Error())
	}
	b.mu.Lock()
	if len(b.errs) < maxPendingErrors {
		b.errs = append(b.errs, err)
	}
	b.mu.Unlock()
}

// retire takes the value of a lease that died and keeps redacting it
// while it may still work: for ever for sources whose values outlive
// leases (Static, Env: a leaked copy would still work), and until the
// credential's own expiry plus the largest verifier leeway for a
// credential that expires (a minted token is accepted by a verifier that
// does not share the revocation list until then). Any other value is
// wiped. Called without any lease's mu held (snapshot takes b.mu before
// a lease's mu).
func (b *Broker) retire(box *sealed, expires time.Time) {
	if box == nil {
		return
	}
	switch {
	case b.longLived:
		v := box.open()
		key := sha256.Sum256(v)
		clear(v)
		b.mu.Lock()
		if _, ok := b.sticky[key]; !ok {
			b.sticky[key] = box
			box = nil
			b.gen.Add(1)
		}
		b.mu.Unlock()
		box.wipe() // a value already kept
	case !expires.IsZero() && b.clock().Before(expires.Add(maxLeeway)):
		b.mu.Lock()
		b.linger = append(b.linger, lingering{until: expires.Add(maxLeeway), box: box})
		b.gen.Add(1)
		b.mu.Unlock()
	default:
		box.wipe()
	}
}

// forget removes a dead lease from the live set and reports whether it
// was there.
func (b *Broker) forget(l *Lease) (live bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, live = b.live[l]; live {
		delete(b.live, l)
		delete(b.tasks[l.task], l)
		if tb := b.bound[l.task]; tb != nil && len(l.audience) > 0 {
			tb.n.Add(-1)
		}
		b.gen.Add(1)
	}
	return live
}

// endTask revokes the leases of a task that ended.
func (b *Broker) endTask(t *authz.Task) {
	b.mu.Lock()
	set := b.tasks[t]
	delete(b.tasks, t)
	delete(b.bound, t)
	leases := make([]*Lease, 0, len(set))
	for l := range set {
		leases = append(leases, l)
	}
	b.mu.Unlock()
	for _, l := range leases {
		l.kill(ErrLeaseRevoked)
	}
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Live returns the number of live leases.
func (b *Broker) Live() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.live)
}

// Redact returns s with the value of every live lease (of any task)
// replaced by [Redacted], in one pass over s, and with it every encoded
// form of those values that [redact.Forms] lists: hex, percent-encoding,
// base64 (standard and URL alphabets, also inside longer base64 text such
// as an HTTP Basic credential) and JSON string escaping. Values of dead
// leases stay redacted while they may still work: for sources whose values
// outlive their leases (Static, Env) for good, and for expiring
// credentials (minted tokens) until their expiry plus one minute of
// verifier leeway, after which they are dropped. It is safe for concurrent
// use and does not block on the source. If the redaction index cannot be
// built, Redact fails closed and returns [Redacted] alone.
func (b *Broker) Redact(s string) string {
	if b.clock == nil { // a zero Broker has leased nothing
		return s
	}
	snap := b.snapshot()
	if snap.err != nil {
		return Redacted
	}
	return snap.m.Replace(s, Redacted)
}

// snapshot returns the current view of the redacted values, rebuilding it
// when the set of values has changed or a lingering value has expired.
func (b *Broker) snapshot() *snapshot {
	if c := b.snap.Load(); c != nil && b.fresh(c) {
		return c
	}
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	if c := b.snap.Load(); c != nil && b.fresh(c) {
		return c
	}
	now := b.clock()
	var values [][]byte
	var owners []*Lease
	snap := &snapshot{}
	b.mu.Lock()
	kept := b.linger[:0]
	for _, x := range b.linger {
		if now.Before(x.until) {
			kept = append(kept, x)
			continue
		}
		x.box.wipe()
		b.gen.Add(1)
	}
	clear(b.linger[len(kept):])
	b.linger = kept
	snap.gen = b.gen.Load()
	for _, x := range b.linger {
		values, owners = append(values, x.box.open()), append(owners, nil)
		if snap.expiry.IsZero() || x.until.Before(snap.expiry) {
			snap.expiry = x.until
		}
	}
	for _, box := range b.sticky {
		values, owners = append(values, box.open()), append(owners, nil)
	}
	for l := range b.live {
		l.mu.Lock()
		if l.state == nil && l.box != nil {
			values, owners = append(values, l.box.open()), append(owners, l)
		}
		l.mu.Unlock()
	}
	b.mu.Unlock()

	var patterns [][]byte
	for i, v := range values {
		for _, f := range redact.Forms(v) {
			patterns = append(patterns, f)
			snap.owners = append(snap.owners, owners[i])
		}
		clear(v)
	}
	snap.m, snap.err = redact.New(patterns)
	for _, p := range patterns {
		clear(p)
	}
	if snap.err != nil {
		// Values shorter than MinLen are refused at Lease; this cannot
		// happen, and a failed build fails closed.
		snap.err = fmt.Errorf("secrets: redaction index: %w", snap.err)
		if b.logger != nil {
			b.logger.Error("taskguard redaction index", "error", snap.err.Error())
		}
	}
	b.snap.Store(snap)
	return snap
}

// fresh reports whether c still describes the broker's values.
func (b *Broker) fresh(c *snapshot) bool {
	return c.gen == b.gen.Load() && (c.expiry.IsZero() || b.clock().Before(c.expiry))
}

// Flush returns the Source.Revoke failures seen since the last Flush (or
// nil) and forgets them.
func (b *Broker) Flush() error {
	b.mu.Lock()
	errs := b.errs
	b.errs = nil
	b.mu.Unlock()
	return errors.Join(errs...)
}

// Close revokes every live lease, waits for the revocations and returns
// the revoke failures not yet flushed. Later leases fail with ErrClosed and
// a second Close returns ErrClosed. Close removes the broker from the
// guard's audit redactors, so a guard that outlives many brokers does not
// keep them; Broker.Redact itself keeps working. The broker starts no
// goroutines of its own; Close stops its expiry timers.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.closed = true
	live := make([]*Lease, 0, len(b.live))
	for l := range b.live {
		live = append(live, l)
	}
	b.mu.Unlock()
	for _, l := range live {
		l.kill(ErrLeaseRevoked)
	}
	if b.unregister != nil {
		b.unregister()
	}
	return b.Flush()
}

// String describes the broker by its number of live leases, never showing
// a value. It accepts a nil b.
func (b *Broker) String() string {
	if b == nil {
		return "secrets.Broker(nil)"
	}
	return "secrets.Broker{live: " + strconv.Itoa(b.Live()) + "}"
}

// GoString is [Broker.String].
func (b *Broker) GoString() string { return b.String() }

// Format prints [Broker.String] for every verb.
func (b *Broker) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(b.String())) }

// MarshalJSON encodes the broker as {"live":N}.
func (b *Broker) MarshalJSON() ([]byte, error) {
	n := 0
	if b != nil {
		n = b.Live()
	}
	return []byte(`{"live":` + strconv.Itoa(n) + `}`), nil
}

// LogValue implements [slog.LogValuer], logging only the number of live
// leases.
func (b *Broker) LogValue() slog.Value {
	n := 0
	if b != nil {
		n = b.Live()
	}
	return slog.GroupValue(slog.Int("live", n))
}
