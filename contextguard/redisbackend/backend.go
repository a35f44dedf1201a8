package redisbackend

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/contextguard"
)

// ErrFull is returned (wrapped) by Append when the task already holds the
// maximum number of entries or bytes ([WithMaxEntries], [WithMaxTaskBytes]).
var ErrFull = errors.New("redisbackend: task memory is full")

// ErrTooLarge is returned (wrapped) by Append for an entry larger than
// [WithMaxEntryBytes] once encoded.
var ErrTooLarge = errors.New("redisbackend: entry too large")

// ErrMalformed is returned (wrapped) by Load when a stored entry cannot be
// decoded: the key was written by something else, or altered.
var ErrMalformed = errors.New("redisbackend: malformed stored entry")

// Defaults of the options.
const (
	DefaultPrefix        = "taskguard:mem:"
	DefaultTTL           = 24 * time.Hour
	DefaultTimeout       = 2 * time.Second
	DefaultMaxEntryBytes = 1 << 20  // 1 MiB
	DefaultMaxTaskBytes  = 64 << 20 // 64 MiB
	DefaultMaxEntries    = contextguard.DefaultMaxEntries
)

// deadlineGrace is how long past the task's deadline its keys live; the
// task ends (and wipes) at the deadline, so this only covers a process that
// died before wiping, and clock differences.
const deadlineGrace = time.Minute

// maxTaskID bounds task IDs, which become part of keys.
const maxTaskID = 256

// appendScript appends ARGV[1] to the list KEYS[1] unless the list holds
// ARGV[2] entries or the counter KEYS[2] plus the entry would exceed ARGV[3]
// bytes, then sets both keys to expire in ARGV[4] milliseconds. It returns
// the new length. Running as one script makes the bound checks and the
// append atomic.
var appendScript = redis.NewScript(`
local n = redis.call('LLEN', KEYS[1])
if n >= tonumber(ARGV[2]) then
  return redis.error_reply('TGFULL entries')
end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local size = string.len(ARGV[1])
if used + size > tonumber(ARGV[3]) then
  return redis.error_reply('TGFULL bytes')
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], size)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return n + 1
`)

// Backend is a [contextguard.Backend] that keeps each task's entries in a
// Redis list. Build it with [New]; a zero Backend returns an error from
// every method. It is safe for concurrent use (go-redis clients are).
//
// Wipe deletes the task's keys, but Redis cannot overwrite what it freed,
// and replicas, snapshots and append-only files may keep copies: use the
// Backend under [contextguard.Encrypted] so what Redis holds is ciphertext
// whose key dies with the task (see the package documentation).
type Backend struct {
	c             redis.UniversalClient
	prefix        string
	ttl           time.Duration
	timeout       time.Duration
	maxEntryBytes int
	maxTaskBytes  int64
	maxEntries    int
	now           func() time.Time
}

// New returns a Backend that stores entries through c, configured by opts.
// c must not be nil, and when it is a *redis.Client, *redis.ClusterClient or
// *redis.Ring it must be built with ContextTimeoutEnabled: true, so that
// [WithTimeout] bounds every network wait (otherwise go-redis waits for its
// own read timeout, which may be unbounded). The Backend does not own c:
// closing c is the caller's job. New does not contact Redis.
func New(c redis.UniversalClient, opts ...Option) (*Backend, error) {
	if c == nil {
		return nil, errors.New("redisbackend: New: nil client")
	}
	if !contextTimeouts(c) {
		return nil, errors.New("redisbackend: New: the client must be built with ContextTimeoutEnabled: true, so timeouts bound every call")
	}
	b := &Backend{
		c:             c,
		prefix:        DefaultPrefix,
		ttl:           DefaultTTL,
		timeout:       DefaultTimeout,
		maxEntryBytes: DefaultMaxEntryBytes,
		maxTaskBytes:  DefaultMaxTaskBytes,
		maxEntries:    DefaultMaxEntries,
		now:           time.Now,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.apply(b); err != nil {
			return nil, fmt.Errorf("redisbackend: New: %w", err)
		}
	}
	return b, nil
}

// contextTimeouts reports whether c honours context deadlines on the
// network; clients of unknown types are trusted to.
func contextTimeouts(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// keys returns the list and byte-counter keys of task. The task ID is in a
// hash tag so both keys live in one Redis Cluster slot.
func (b *Backend) keys(task string) (list, size string) {
	list = b.prefix + "{" + task + "}"
	return list, list + ":bytes"
}

// checkTask validates a task ID before it becomes part of a key.
func checkTask(task string) error {
	if task == "" {
		return errors.New("redisbackend: empty task ID")
	}
	if len(task) > maxTaskID {
		return fmt.Errorf("redisbackend: task ID longer than %d bytes", maxTaskID)
	}
	for _, r := range task {
		if r < 0x20 || r == 0x7f || r == '{' || r == '}' || r == utf8.RuneError {
			return fmt.Errorf("redisbackend: task ID %q has a character not allowed in keys", task)
		}
	}
	return nil
}

func (b *Backend) ready() error {
	if b == nil || b.c == nil {
		return errors.New("redisbackend: Backend not built with New")
	}
	return nil
}

// Append stores e as the task's next entry and renews the expiry of the
// task's keys: [WithTTL] from now, or, when ctx carries the task itself
// (authz.TaskFrom(ctx) has this ID), one minute past its deadline if that
// is sooner. It fails with an error wrapping [ErrTooLarge] or [ErrFull]
// when a bound would be exceeded, and with the Redis error (after at most
// [WithTimeout]) when Redis does not confirm the write: the entry may or may
// not have been stored, which [contextguard.Encrypted] accounts for.
func (b *Backend) Append(ctx context.Context, task string, e contextguard.Entry) error {
	if err := b.ready(); err != nil {
		return err
	}
	if err := checkTask(task); err != nil {
		return err
	}
	enc, err := encode(e)
	if err != nil {
		return err
	}
	if len(enc) > b.maxEntryBytes {
		return fmt.Errorf("%w: %d bytes encoded, the limit is %d", ErrTooLarge, len(enc), b.maxEntryBytes)
	}
	ttl := b.expiry(ctx, task)
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	list, size := b.keys(task)
	err = appendScript.Run(ctx, b.c, []string{list, size},
		enc, b.maxEntries, b.maxTaskBytes, ttl.Milliseconds()).Err()
	if err != nil {
		if msg, ok := strings.CutPrefix(err.Error(), "TGFULL "); ok {
			return fmt.Errorf("%w (%s: at most %d entries, %d bytes)", ErrFull, msg, b.maxEntries, b.maxTaskBytes)
		}
		return opError("append", ctx, err)
	}
	return nil
}

// opError wraps a failed Redis call; when the call's context had expired it
// wraps ctx.Err() too, so errors.Is(err, context.DeadlineExceeded) holds
// for a timeout whichever layer noticed it first.
func opError(op string, ctx context.Context, err error) error {
	cerr := ctx.Err()
	if dl, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(dl) {
		cerr = context.DeadlineExceeded // the socket deadline fired first
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redisbackend: %s: %w (%w)", op, err, cerr)
	}
	return fmt.Errorf("redisbackend: %s: %w", op, err)
}

// expiry returns how long the task's keys live after an Append.
func (b *Backend) expiry(ctx context.Context, task string) time.Duration {
	ttl := b.ttl
	if t, ok := authz.TaskFrom(ctx); ok && t.ID() == task {
		if dl := t.Deadline(); !dl.IsZero() {
			ttl = min(ttl, max(dl.Sub(b.now())+deadlineGrace, time.Second))
		}
	}
	return ttl
}

// Load returns the task's entries in order; a task never written, wiped or
// expired has none. It fails with the Redis error after at most
// [WithTimeout], or with an error wrapping [ErrMalformed] when a stored
// entry does not decode; it never returns part of the entries.
func (b *Backend) Load(ctx context.Context, task string) ([]contextguard.Entry, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := checkTask(task); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	list, _ := b.keys(task)
	raw, err := b.c.LRange(ctx, list, 0, -1).Result()
	if err != nil {
		return nil, opError("load", ctx, err)
	}
	out := make([]contextguard.Entry, len(raw))
	for i, r := range raw {
		if out[i], err = decode(r); err != nil {
			return nil, fmt.Errorf("%w: entry %d of task %q: %v", ErrMalformed, i, task, err)
		}
	}
	return out, nil
}

// Wipe deletes the task's keys. Redis cannot overwrite the memory it frees,
// so under [contextguard.Encrypted] (which destroys the task's key first)
// what may linger is ciphertext nobody can read. It fails with the Redis
// error after at most [WithTimeout]; the keys then expire on their own.
func (b *Backend) Wipe(ctx context.Context, task string) error {
	if err := b.ready(); err != nil {
		return err
	}
	if err := checkTask(task); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	list, size := b.keys(task)
	if err := b.c.Del(ctx, list, size).Err(); err != nil {
		return opError("wipe", ctx, err)
	}
	return nil
}

// encodingVersion is the first byte of every stored entry.
const encodingVersion = 1

// encode lays out an entry as: version, Role, Source, Content (each a
// uvarint length and the bytes), Sensitivity, Trusted, and Time in
// time.Time's binary form (uvarint length first).
func encode(e contextguard.Entry) (string, error) {
	tb, err := e.Time.MarshalBinary()
	if err != nil {
		return "", fmt.Errorf("redisbackend: entry time: %w", err)
	}
	buf := make([]byte, 0, 1+len(e.Role)+len(e.Source)+len(e.Content)+len(tb)+4*binary.MaxVarintLen64+2)
	buf = append(buf, encodingVersion)
	for _, s := range []string{e.Role, e.Source, e.Content} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	trusted := byte(0)
	if e.Trusted {
		trusted = 1
	}
	buf = append(buf, byte(e.Sensitivity), trusted)
	buf = binary.AppendUvarint(buf, uint64(len(tb)))
	buf = append(buf, tb...)
	return string(buf), nil
}

// decode reverses encode.
func decode(s string) (contextguard.Entry, error) {
	var e contextguard.Entry
	if len(s) == 0 || s[0] != encodingVersion {
		return e, errors.New("unknown encoding")
	}
	rest := s[1:]
	field := func() (string, error) {
		n, w := binary.Uvarint([]byte(rest[:min(len(rest), binary.MaxVarintLen64)]))
		if w <= 0 || uint64(len(rest)-w) < n {
			return "", errors.New("truncated field")
		}
		v := rest[w : w+int(n)]
		rest = rest[w+int(n):]
		return v, nil
	}
	var err error
	if e.Role, err = field(); err != nil {
		return e, err
	}
	if e.Source, err = field(); err != nil {
		return e, err
	}
	if e.Content, err = field(); err != nil {
		return e, err
	}
	if len(rest) < 2 {
		return e, errors.New("truncated flags")
	}
	e.Sensitivity = authz.Sensitivity(int8(rest[0]))
	if !e.Sensitivity.Valid() {
		return e, fmt.Errorf("invalid sensitivity %d", rest[0])
	}
	switch rest[1] {
	case 0:
	case 1:
		e.Trusted = true
	default:
		return e, errors.New("invalid trusted flag")
	}
	rest = rest[2:]
	tb, err := field()
	if err != nil {
		return e, err
	}
	if rest != "" {
		return e, errors.New("trailing bytes")
	}
	if err := e.Time.UnmarshalBinary([]byte(tb)); err != nil {
		return e, fmt.Errorf("time: %v", err)
	}
	if canon, _ := e.Time.MarshalBinary(); string(canon) != tb {
		return e, errors.New("time: not in canonical form")
	}
	return e, nil
}

// String describes the backend without contents: "redisbackend(prefix)".
func (b *Backend) String() string {
	if b == nil {
		return "redisbackend(<nil>)"
	}
	return "redisbackend(" + strconv.Quote(b.prefix) + ")"
}
