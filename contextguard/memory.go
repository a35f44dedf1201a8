package contextguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/taskguard/taskguard/authz"
)

// ErrTaskEnded is returned by every method of a Memory or Cache whose task
// has ended (or that has no task).
var ErrTaskEnded = errors.New("contextguard: task ended")

// ErrAncestorMemory is returned when code running under a sub-task (its
// context carries a task that descends from the memory's task) reaches for
// an ancestor's memory through a method that takes a context: a sub-task
// may neither read nor write above its clearance. The documented way for a
// sub-task to receive its ancestor's context is [Memory.Handoff].
var ErrAncestorMemory = errors.New("contextguard: a sub-task may not use an ancestor's memory")

// errZeroStore is returned by the memories of a Store not built with
// NewStore.
var errZeroStore = errors.New("contextguard: Store not built with NewStore")

// Entry is one item of a task's conversation memory.
type Entry struct {
	// Role is the speaker: "user", "assistant", "tool", "system".
	Role string
	// Content is the text. It passes through the store's redactor before
	// it is stored.
	Content string
	// Source says where the content came from ("http.fetch",
	// "https://example.org", "db://orders"); it becomes a taint source.
	Source string
	// Sensitivity classifies the content; it may not exceed the task's
	// clearance.
	Sensitivity authz.Sensitivity
	// Trusted marks content the host vouches for. The zero value, false,
	// means untrusted: web pages, tool output, anything a third party
	// wrote.
	Trusted bool
	// Time is when the entry was added; set by Add when zero.
	Time time.Time
}

// Redactor rewrites text before it is stored. It is [authz.Redactor], so
// one value (a *secrets.Broker) serves the audit log and memory alike.
type Redactor = authz.Redactor

// Option configures a [Store]. [WithClock] and [WithMaxEntries] are
// Options too (and [CacheOption]s). A nil Option is skipped.
type Option interface{ applyStore(*Store) error }

type storeOption func(*Store) error

func (f storeOption) applyStore(s *Store) error { return f(s) }

// WithRedactor passes every entry's Content and Source through r before it
// is stored, so live secrets never reach memory or the model. The last
// WithRedactor wins; a nil r is an error.
func WithRedactor(r Redactor) Option {
	return storeOption(func(s *Store) error {
		if r == nil {
			return errors.New("WithRedactor: nil redactor")
		}
		s.redactor = r
		return nil
	})
}

// WithBackend stores entries in b instead of in process memory. The last
// WithBackend wins; a nil b is an error (without WithBackend the store
// uses [NewMemoryBackend]).
func WithBackend(b Backend) Option {
	return storeOption(func(s *Store) error {
		if b == nil {
			return errors.New("WithBackend: nil backend")
		}
		s.backend = b
		return nil
	})
}

// WithLogger logs failures of the end-of-task wipe. The last WithLogger
// wins; nil means no logging.
func WithLogger(l *slog.Logger) Option {
	return storeOption(func(s *Store) error {
		s.logger = l
		return nil
	})
}

// WithWipeTimeout bounds the backend's Wipe when a task ends (default 10
// seconds); d must be positive. The wipe runs in the task's end hooks, so
// this is how long ending a task may wait for a remote backend. A failed or
// timed-out wipe is logged (see [WithLogger]); wrap a persistent backend
// with [Encrypted], whose key is destroyed before the wipe starts, so the
// entries are unreadable even then. The last WithWipeTimeout wins.
func WithWipeTimeout(d time.Duration) Option {
	return storeOption(func(s *Store) error {
		if d <= 0 {
			return fmt.Errorf("WithWipeTimeout: %v is not positive", d)
		}
		s.wipeTimeout = d
		return nil
	})
}

// defaultWipeTimeout is the wipe timeout without WithWipeTimeout.
const defaultWipeTimeout = 10 * time.Second

// DefaultMaxEntries bounds a task's memory unless WithMaxEntries says otherwise.
const DefaultMaxEntries = 100_000

// Store holds the memories of tasks. The only way to a memory is through
// its task: [Store.For]. There is no way to list tasks or to read another
// task's entries. A Store is safe for concurrent use. Build it with
// [NewStore]: a zero Store is inert, and every method of the memories it
// hands out returns an error.
type Store struct {
	redactor   Redactor
	backend    Backend
	clock      func() time.Time
	logger     *slog.Logger
	maxEntries int
	// wipeTimeout bounds the backend's Wipe at task end.
	wipeTimeout time.Duration
	err         error // the first invalid option: the store is inert

	mu       sync.Mutex
	memories map[*authz.Task]*Memory
}

// NewStore returns a store configured by opts. An invalid option (a nil
// argument, a non-positive bound) makes the store inert: every method of
// its memories returns that error, wrapped, and nothing is stored.
func NewStore(opts ...Option) *Store {
	s := &Store{clock: time.Now, maxEntries: DefaultMaxEntries, wipeTimeout: defaultWipeTimeout, memories: map[*authz.Task]*Memory{}}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyStore(s); err != nil {
			s.err = fmt.Errorf("contextguard: NewStore: %w", err)
			break
		}
	}
	if s.backend == nil {
		s.backend = NewMemoryBackend()
	}
	return s
}

// For returns the memory of task t; the same task always gets the same
// Memory. For a nil or ended task it returns a Memory whose methods return
// ErrTaskEnded. When t ends its memory is wiped.
func (s *Store) For(t *authz.Task) *Memory {
	if t == nil || s.err != nil || s.backend == nil {
		return &Memory{store: s, ended: true}
	}
	s.mu.Lock()
	if m, ok := s.memories[t]; ok {
		s.mu.Unlock()
		return m
	}
	m := &Memory{store: s, task: t}
	s.memories[t] = m
	s.mu.Unlock()
	t.OnEnd(m.wipe)
	return m
}

// Memory is one task's conversation memory. It is safe for concurrent use.
type Memory struct {
	store *Store
	task  *authz.Task

	// mu is held shared by Add while it stores, and exclusively by the
	// wipe, so no entry is stored after the wipe.
	mu    sync.RWMutex
	ended bool
	n     atomic.Int64 // entries added
}

// Task returns the task the memory belongs to (nil for an inert memory).
func (m *Memory) Task() *authz.Task { return m.task }

// Add stores e in the task's memory and records it in the task's taint and
// provenance (task.ObserveText(e.Source, e.Content, e.Sensitivity,
// e.Trusted)), so policies see what the task has read and where a value
// came from (value.fromUntrusted()). Content and Source pass through the
// redactor first: a secret is never indexed.
// An entry above the task's clearance is refused; after the task ends Add
// returns ErrTaskEnded. When ctx carries a sub-task of the memory's task,
// Add returns ErrAncestorMemory: a sub-task does not write into its
// ancestor's memory (nor taint it).
func (m *Memory) Add(ctx context.Context, e Entry) error {
	if err := m.check(); err != nil {
		return err
	}
	if err := m.checkCaller(ctx); err != nil {
		return err
	}
	if !e.Sensitivity.Valid() {
		return fmt.Errorf("contextguard: entry has invalid sensitivity %d", e.Sensitivity)
	}
	if e.Sensitivity > m.task.Clearance() {
		return fmt.Errorf("contextguard: entry of sensitivity %v exceeds the task's clearance %v", e.Sensitivity, m.task.Clearance())
	}
	if r := m.store.redactor; r != nil {
		e.Content = r.Redact(e.Content)
		e.Source = r.Redact(e.Source)
	}
	if e.Time.IsZero() {
		e.Time = m.store.clock()
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.ended {
		return ErrTaskEnded
	}
	if m.n.Add(1) > int64(m.store.maxEntries) {
		m.n.Add(-1)
		return fmt.Errorf("contextguard: task memory is full (%d entries)", m.store.maxEntries)
	}
	// Taint and provenance first: if storing fails, the task has still
	// seen the content.
	m.task.ObserveText(e.Source, e.Content, e.Sensitivity, e.Trusted)
	if err := m.store.backend.Append(ctx, m.task.ID(), e); err != nil {
		return fmt.Errorf("contextguard: store entry: %w", err)
	}
	return nil
}

// Entries returns a copy of the task's entries, oldest first, reading
// them from the backend with ctx (which bounds a remote backend's I/O).
// Entries above the task's clearance are never returned (Add refuses them;
// a backend shared by several tasks of one ID could hold some). When ctx
// carries a sub-task of the memory's task, Entries returns
// ErrAncestorMemory: hand a sub-agent the memory [Memory.Handoff] returns,
// never its ancestor's.
func (m *Memory) Entries(ctx context.Context) ([]Entry, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	if err := m.checkCaller(ctx); err != nil {
		return nil, err
	}
	return m.entries(ctx)
}

// entries is Entries without the caller check; requires m.check() passed.
func (m *Memory) entries(ctx context.Context) ([]Entry, error) {
	es, err := m.store.backend.Load(ctx, m.task.ID())
	if err != nil {
		return nil, fmt.Errorf("contextguard: load entries: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m.withinClearance(es), nil
}

// withinClearance drops the entries above the task's clearance, in place.
func (m *Memory) withinClearance(es []Entry) []Entry {
	c := m.task.Clearance()
	return slices.DeleteFunc(es, func(e Entry) bool { return e.Sensitivity > c || !e.Sensitivity.Valid() })
}

// checkCaller refuses a ctx whose task is a strict descendant of the
// memory's task.
func (m *Memory) checkCaller(ctx context.Context) error {
	if ct, ok := authz.TaskFrom(ctx); ok && ct.DescendsFrom(m.task) {
		return ErrAncestorMemory
	}
	return nil
}

// Window returns the newest entries that fit in at most maxEntries entries
// and maxChars characters of content (a limit <= 0 is no limit), oldest
// first, for building a model prompt. ctx and the errors are as for
// [Memory.Entries].
func (m *Memory) Window(ctx context.Context, maxEntries, maxChars int) ([]Entry, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	if err := m.checkCaller(ctx); err != nil {
		return nil, err
	}
	if t, ok := m.store.backend.(tailer); ok {
		es, err := t.Tail(ctx, m.task.ID(), maxEntries, maxChars)
		if err != nil {
			return nil, fmt.Errorf("contextguard: load entries: %w", err)
		}
		if err := m.check(); err != nil {
			return nil, err
		}
		return m.withinClearance(es), nil
	}
	es, err := m.entries(ctx)
	if err != nil {
		return nil, err
	}
	start, chars := len(es), 0
	for start > 0 {
		n := utf8.RuneCountInString(es[start-1].Content)
		if maxEntries > 0 && len(es)-start >= maxEntries || maxChars > 0 && chars+n > maxChars {
			break
		}
		chars += n
		start--
	}
	return es[start:], nil
}

// HandoffOption configures [Memory.Handoff].
type HandoffOption func(*handoff)

type handoff struct{ trustedOnly bool }

// TrustedOnly hands off only entries marked Trusted.
func TrustedOnly() HandoffOption { return func(h *handoff) { h.trustedOnly = true } }

// Handoff copies the entries a sub-task may see into its memory and returns
// that memory: only entries at or below the child's clearance (and, with
// TrustedOnly, only trusted ones). The child's taint records what it
// received. child must be a sub-task (at any depth) of this memory's task;
// nothing else of the parent's memory is reachable from the child.
//
// Handoff is the one path by which code running under a sub-task may draw
// on an ancestor's memory: when ctx carries a sub-task of this memory's
// task, child must be that sub-task or one of its own sub-tasks (so the
// caller never receives more than its own clearance allows); any other
// target is refused with ErrAncestorMemory.
func (m *Memory) Handoff(ctx context.Context, child *authz.Task, opts ...HandoffOption) (*Memory, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	if child == nil || !child.DescendsFrom(m.task) {
		return nil, errors.New("contextguard: handoff target is not a sub-task of this memory's task")
	}
	if ct, ok := authz.TaskFrom(ctx); ok && ct.DescendsFrom(m.task) && ct != child && !child.DescendsFrom(ct) {
		return nil, ErrAncestorMemory
	}
	var h handoff
	for _, o := range opts {
		if o != nil {
			o(&h)
		}
	}
	es, err := m.entries(ctx)
	if err != nil {
		return nil, err
	}
	cm := m.store.For(child)
	for _, e := range es {
		if e.Sensitivity > child.Clearance() || h.trustedOnly && !e.Trusted {
			continue
		}
		if err := cm.Add(ctx, e); err != nil {
			return nil, err
		}
	}
	return cm, nil
}

func (m *Memory) check() error {
	if err := m.store.err; err != nil {
		return err
	}
	if m.store.backend == nil {
		return errZeroStore
	}
	if m.task == nil || m.task.Ended() {
		return ErrTaskEnded
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.ended {
		return ErrTaskEnded
	}
	return nil
}

// wipe ends the memory: later calls fail and the backend destroys the
// entries.
func (m *Memory) wipe() {
	m.mu.Lock()
	m.ended = true
	m.mu.Unlock()
	s := m.store
	s.mu.Lock()
	delete(s.memories, m.task)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.wipeTimeout)
	defer cancel()
	if err := s.backend.Wipe(ctx, m.task.ID()); err != nil && s.logger != nil {
		s.logger.Error("taskguard memory wipe failed", "task", m.task.ID(), "error", err.Error())
	}
}
