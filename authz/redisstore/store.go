package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskguard/taskguard/authz"
)

// ErrClosed is returned by the methods of a closed [Store]. It wraps
// [authz.ErrStoreClosed], so errors.Is(err, authz.ErrStoreClosed) holds
// too.
var ErrClosed = fmt.Errorf("redisstore: %w", authz.ErrStoreClosed)

// Defaults of the options.
const (
	// DefaultPrefix starts every key and the channel of the store.
	DefaultPrefix = "taskguard:"
	// DefaultMargin is how long a task's keys outlive its deadline.
	DefaultMargin = 5 * time.Minute
	// DefaultHeartbeat is how often a quiet subscription is pinged.
	DefaultHeartbeat = 500 * time.Millisecond
)

// maxSources bounds the taint sources kept per task, as authz does.
const maxSources = 256

// Option configures a [Store]. Build one with WithPrefix, WithMargin or
// WithHeartbeat; for each, the last one given wins.
type Option func(*config) error

type config struct {
	prefix    string
	margin    time.Duration
	heartbeat time.Duration
}

// WithPrefix starts every key and the pub/sub channel of the store with
// prefix (default [DefaultPrefix]), so several applications, or several
// independent deployments, can share one Redis. Replicas that share task
// state must use the same prefix. prefix must not be empty nor contain
// '{' or '}' (they would break the hash tags that keep a task tree in one
// Redis Cluster slot).
func WithPrefix(prefix string) Option {
	return func(c *config) error {
		if prefix == "" || strings.ContainsAny(prefix, "{}") {
			return fmt.Errorf("redisstore: WithPrefix: %q is empty or contains a brace", prefix)
		}
		c.prefix = prefix
		return nil
	}
}

// WithMargin sets how long the keys of a task outlive its deadline
// (default [DefaultMargin]); after that Redis deletes them, so it never
// accumulates dead tasks. It is also how long End keeps a tombstone for a
// task the store does not know. d must be at least one second.
func WithMargin(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Second {
			return fmt.Errorf("redisstore: WithMargin: %v is less than a second", d)
		}
		c.margin = d
		return nil
	}
}

// WithHeartbeat sets how often the subscription pings Redis when no
// message arrives (default [DefaultHeartbeat]). A subscription that hears
// nothing for three heartbeats is reported down (the guard's local view
// then ages and Check fails closed) and reconnected. d must be between
// 10ms and 10s.
func WithHeartbeat(d time.Duration) Option {
	return func(c *config) error {
		if d < 10*time.Millisecond || d > 10*time.Second {
			return fmt.Errorf("redisstore: WithHeartbeat: %v is not within [10ms, 10s]", d)
		}
		c.heartbeat = d
		return nil
	}
}

// Store is an [authz.Store] in Redis: the shared state of tasks (ended,
// taint, call counts, rate limits, budgets, standing approvals) for the
// replicas of a service, each with its own Store on the same Redis. It
// also keeps revoked token IDs for the secrets package
// ([Store.RevokeToken], [Store.TokenRevoked]).
//
// Every Authorize is one round trip: one Lua script, run atomically by
// Redis, checks and charges the whole chain of tasks. Changes (a task
// ended, its taint grew) are published on a pub/sub channel, so every
// replica's guard updates its local view without asking.
//
// A Store is safe for concurrent use. Create it with [New]; the zero value
// is not usable. It does not own the client: [Store.Close] stops the
// store's subscriptions and leaves the client open.
type Store struct {
	c       redis.UniversalClient
	prefix  string
	channel string
	margin  time.Duration
	beat    time.Duration

	// index remembers the roots of sub-tasks (roots.go).
	index rootIndex

	// done is closed by Close; subscriptions watch it.
	done chan struct{}
	wg   sync.WaitGroup

	// mu guards closed and subs.
	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
}

var _ authz.Store = (*Store)(nil)

// New returns a store on the client c, which the caller keeps owning and
// closes after the store. c may be a *redis.Client (one server, or
// Sentinel failover), a *redis.ClusterClient or a *redis.Ring; the store
// keeps each task tree in one hash slot.
//
// Every call of the store is bounded by its context (the guard passes
// [authz.WithStoreTimeout]): New therefore refuses a client whose options
// lack ContextTimeoutEnabled, because go-redis would then ignore the
// deadline and wait for its ReadTimeout instead. New does not contact
// Redis; an unreachable server shows in the first call.
func New(c redis.UniversalClient, opts ...Option) (*Store, error) {
	if c == nil {
		return nil, errors.New("redisstore: nil client")
	}
	if err := checkClient(c); err != nil {
		return nil, err
	}
	cfg := config{prefix: DefaultPrefix, margin: DefaultMargin, heartbeat: DefaultHeartbeat}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return &Store{
		c:       c,
		prefix:  cfg.prefix,
		channel: cfg.prefix + "events",
		margin:  cfg.margin,
		beat:    cfg.heartbeat,
		done:    make(chan struct{}),
		subs:    make(map[*subscription]struct{}),
	}, nil
}

// checkClient refuses the clients it knows whose context deadlines
// would be ignored.
func checkClient(c redis.UniversalClient) error {
	var on bool
	switch cl := c.(type) {
	case *redis.Client:
		on = cl.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		on = cl.Options().ContextTimeoutEnabled
	case *redis.Ring:
		on = cl.Options().ContextTimeoutEnabled
	default:
		return nil
	}
	if !on {
		return errors.New("redisstore: the client ignores context deadlines: set ContextTimeoutEnabled: true in its options, so that a slow Redis fails calls within the guard's store timeout")
	}
	return nil
}

// Close stops the store's subscriptions and waits for their goroutines;
// the sinks are not called after Close returns. It does not close the
// client. Later calls of any method return [ErrClosed], and so does a
// second Close.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// key returns the hash of task id in the tree rooted at root.
func (s *Store) key(root, id string) string {
	return s.prefix + "{" + root + "}:" + id
}

// checkIDs refuses IDs that cannot name keys: empty ones and ones with
// braces, which would move a key out of its tree's slot.
func checkIDs(ids ...string) error {
	for _, id := range ids {
		if id == "" || strings.ContainsAny(id, "{}") {
			return fmt.Errorf("redisstore: task ID %q is empty or contains a brace", id)
		}
	}
	return nil
}

// expireAt returns the Unix milliseconds at which a task with deadline d
// expires from Redis.
func (s *Store) expireAt(d time.Time) int64 {
	return d.Add(s.margin).UnixMilli()
}

// Begin implements [authz.Store.Begin] with one script.
func (s *Store) Begin(ctx context.Context, chain []authz.StoreTask) ([]authz.TaskState, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if len(chain) == 0 {
		return nil, nil
	}
	keys := make([]string, len(chain))
	args := make([]any, 0, 4*len(chain))
	root := chain[0].ID
	for i, t := range chain {
		if err := checkIDs(t.ID); err != nil {
			return nil, err
		}
		keys[i] = s.key(root, t.ID)
		args = append(args, t.ID, t.Deadline.UnixMicro(), s.expireAt(t.Deadline), len(t.Budgets))
		for p, m := range t.Budgets {
			args = append(args, p, m)
		}
	}
	if len(chain) > 1 {
		ids, exps := make([]string, len(chain)), make([]time.Time, len(chain))
		for i, t := range chain {
			ids[i], exps[i] = t.ID, t.Deadline.Add(s.margin)
		}
		if err := s.indexRoots(ctx, ids, exps); err != nil {
			return nil, fmt.Errorf("redisstore: begin: %w", err)
		}
	}
	res, err := beginLua.Run(ctx, s.c, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: begin: %w", err)
	}
	return decodeStates(res, len(chain))
}

// Authorize implements [authz.Store.Authorize] with one script: one
// round trip, atomic on the server.
func (s *Store) Authorize(ctx context.Context, op *authz.StoreOp) (authz.StoreResult, error) {
	if s.isClosed() {
		return authz.StoreResult{}, ErrClosed
	}
	if op == nil || len(op.Chain) == 0 {
		return authz.StoreResult{}, errors.New("redisstore: authorize: empty operation")
	}
	n := len(op.Chain)
	keys := make([]string, n)
	args := make([]any, 0, 1+3*n+1+4*len(op.Limits)+1+2*len(op.Budgets)+4)
	args = append(args, op.Tool)
	root := op.Chain[0].ID
	for i, t := range op.Chain {
		if err := checkIDs(t.ID); err != nil {
			return authz.StoreResult{}, err
		}
		keys[i] = s.key(root, t.ID)
		args = append(args, t.ID, t.TaintVersion, s.expireAt(t.Deadline))
	}
	args = append(args, len(op.Limits))
	for _, l := range op.Limits {
		if l.Task < 0 || l.Task >= n || l.Rate <= 0 || l.Per <= 0 {
			return authz.StoreResult{}, fmt.Errorf("redisstore: authorize: invalid limit %+v", l)
		}
		args = append(args, l.Task+1, l.Key, interval(l.Rate, l.Per), l.Burst)
	}
	args = append(args, len(op.Budgets))
	for _, b := range op.Budgets {
		if b.Task < 0 || b.Task >= n {
			return authz.StoreResult{}, fmt.Errorf("redisstore: authorize: invalid budget %+v", b)
		}
		args = append(args, b.Task+1, b.Pattern)
	}
	switch a := op.Approval; {
	case a == nil:
		args = append(args, 0, "", "", "")
	case a.Granted:
		args = append(args, 2, a.Digest, boolArg(a.ForTask), a.By)
	default:
		args = append(args, 1, a.Digest, "", "")
	}
	res, err := authorizeLua.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return authz.StoreResult{}, fmt.Errorf("redisstore: authorize: %w", err)
	}
	return decodeAuthorize(res, n)
}

// interval returns the GCRA emission interval of rate per per, in whole
// microseconds rounded up: never more calls than the limit allows.
func interval(rate int, per time.Duration) int64 {
	us := per.Microseconds()
	iv := (us + int64(rate) - 1) / int64(rate)
	return max(iv, 1)
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// outcomes maps the script's codes to authz outcomes.
var outcomes = [...]authz.StoreOutcome{
	0: authz.StoreOK,
	1: authz.StoreEnded,
	2: authz.StoreUnknown,
	3: authz.StoreStale,
	4: authz.StoreApprovalNeeded,
	5: authz.StoreRateLimited,
	6: authz.StoreBudgetSpent,
}

func decodeAuthorize(res []any, n int) (authz.StoreResult, error) {
	bad := func(what string) (authz.StoreResult, error) {
		return authz.StoreResult{}, fmt.Errorf("redisstore: authorize: unexpected reply (%s)", what)
	}
	if len(res) < 3 {
		return bad("short")
	}
	code, ok1 := res[0].(int64)
	failed, ok2 := res[1].(int64)
	wait, ok3 := res[2].(int64)
	if !ok1 || !ok2 || !ok3 || code < 0 || int(code) >= len(outcomes) {
		return bad("head")
	}
	r := authz.StoreResult{Outcome: outcomes[code], Failed: max(int(failed)-1, 0)}
	switch r.Outcome {
	case authz.StoreOK:
		if len(res) != 4+n {
			return bad("calls")
		}
		by, ok := res[3].(string)
		if !ok {
			return bad("approved by")
		}
		r.ApprovedBy = by
		r.Calls = make([]int, n)
		for i := range n {
			c, ok := res[4+i].(int64)
			if !ok {
				return bad("call count")
			}
			r.Calls[i] = int(c)
		}
	case authz.StoreStale:
		if len(res) != 3+n {
			return bad("states")
		}
		r.State = make([]authz.TaskState, n)
		for i := range n {
			str, ok := res[3+i].(string)
			if !ok {
				return bad("state")
			}
			st, err := decodeState(str)
			if err != nil {
				return authz.StoreResult{}, err
			}
			r.State[i] = st
		}
	case authz.StoreRateLimited:
		r.RetryAfter = time.Duration(wait) * time.Microsecond
	}
	return r, nil
}

// Observe implements [authz.Store.Observe] with one script.
func (s *Store) Observe(ctx context.Context, chain []string, taint authz.Taint) ([]authz.TaskState, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if len(chain) == 0 {
		return nil, nil
	}
	if err := checkIDs(chain...); err != nil {
		return nil, err
	}
	if !taint.Sensitivity.Valid() {
		return nil, fmt.Errorf("redisstore: observe: invalid sensitivity %d", taint.Sensitivity)
	}
	keys := make([]string, len(chain))
	for i, id := range chain {
		keys[i] = s.key(chain[0], id)
	}
	args := make([]any, 0, 5+len(taint.Sources)+len(chain))
	args = append(args, s.channel, int(taint.Sensitivity), boolArg(taint.Untrusted), maxSources, len(taint.Sources))
	for _, src := range taint.Sources {
		args = append(args, src)
	}
	for _, id := range chain {
		args = append(args, id)
	}
	res, err := observeLua.Run(ctx, s.c, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: observe: %w", err)
	}
	return decodeStates(res, len(chain))
}

// End implements [authz.Store.End] with one script (and, for a sub-task
// this store has not seen, one lookup of its root before).
func (s *Store) End(ctx context.Context, id string) error {
	if s.isClosed() {
		return ErrClosed
	}
	if err := checkIDs(id); err != nil {
		return err
	}
	roots, err := s.roots(ctx, []string{id})
	if err != nil {
		return fmt.Errorf("redisstore: end: %w", err)
	}
	err = endLua.Run(ctx, s.c, []string{s.key(roots[0], id)}, s.channel, id, s.margin.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("redisstore: end: %w", err)
	}
	return nil
}

// State implements [authz.Store.State] in one pipelined round trip (one
// script per task, as tasks of different trees live in different cluster
// slots), plus one for the roots of sub-tasks this store has not seen.
func (s *Store) State(ctx context.Context, ids []string) ([]authz.TaskState, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if err := checkIDs(ids...); err != nil {
		return nil, err
	}
	roots, err := s.roots(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("redisstore: state: %w", err)
	}
	run := func(load bool) ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(ids))
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				keys := []string{s.key(roots[i], id)}
				if load {
					cmds[i] = stateLua.Eval(ctx, p, keys, id)
				} else {
					cmds[i] = stateLua.EvalSha(ctx, p, keys, id)
				}
			}
			return nil
		})
		return cmds, err
	}
	cmds, err := run(false)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmds, err = run(true)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: state: %w", err)
	}
	out := make([]authz.TaskState, len(ids))
	for i, c := range cmds {
		res, err := c.StringSlice()
		if err != nil {
			return nil, fmt.Errorf("redisstore: state: %w", err)
		}
		sts, err := decodeStates(res, 1)
		if err != nil {
			return nil, err
		}
		out[i] = sts[0]
	}
	return out, nil
}

// decodeStates decodes n encoded states.
func decodeStates(res []string, n int) ([]authz.TaskState, error) {
	if len(res) != n {
		return nil, fmt.Errorf("redisstore: %d states for %d tasks", len(res), n)
	}
	out := make([]authz.TaskState, n)
	for i, r := range res {
		st, err := decodeState(r)
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// errState is returned for a state that does not decode.
var errState = errors.New("redisstore: malformed task state")

// decodeState decodes one state (see the key layout in scripts.go).
func decodeState(s string) (authz.TaskState, error) {
	next := func() (string, bool) {
		i := strings.IndexByte(s, ':')
		if i <= 0 || i > 10 {
			return "", false
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > len(s)-i-1 {
			return "", false
		}
		f := s[i+1 : i+1+n]
		s = s[i+1+n:]
		return f, true
	}
	var st authz.TaskState
	var ok bool
	if st.ID, ok = next(); !ok {
		return st, errState
	}
	known, ok := next()
	if !ok {
		return st, errState
	}
	if known == "0" {
		if s != "" {
			return authz.TaskState{}, errState
		}
		return st, nil
	}
	var f [5]string
	for i := range f {
		if f[i], ok = next(); !ok {
			return authz.TaskState{}, errState
		}
	}
	v, err1 := strconv.ParseUint(f[1], 10, 64)
	sens, err2 := strconv.Atoi(f[2])
	n, err3 := strconv.Atoi(f[4])
	if err := errors.Join(err1, err2, err3); err != nil || sens < 0 || sens > math.MaxInt8 ||
		!authz.Sensitivity(sens).Valid() || n < 0 || n > maxSources {
		return authz.TaskState{}, errState
	}
	st.Known, st.Ended, st.TaintVersion = true, f[0] == "1", v
	st.Taint.Sensitivity, st.Taint.Untrusted = authz.Sensitivity(sens), f[3] == "1"
	if n > 0 {
		st.Taint.Sources = make([]string, n)
		for i := range n {
			if st.Taint.Sources[i], ok = next(); !ok {
				return authz.TaskState{}, errState
			}
		}
	}
	if s != "" {
		return authz.TaskState{}, errState
	}
	return st, nil
}
