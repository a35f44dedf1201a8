package authz

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two policies that decide the call fetchCall differently.
const (
	allowFetchPolicy = `rules:
  - name: fetch
    tools: [http.fetch]
    effect: allow
    when: "true"
`
	denyFetchPolicy = `rules:
  - name: no-fetch
    tools: [http.fetch]
    effect: deny
    when: "true"
  - name: query
    tools: [db.query]
    effect: allow
    when: "true"
`
	// brokenPolicy has an invalid effect on line 4.
	brokenPolicy = `rules:
  - name: fetch
    tools: [http.fetch]
    effect: maybe
    when: "true"
`
)

var fetchCall = Call{Tool: "http.fetch", Intent: "read"}

// reloadEvent is one OnReload call.
type reloadEvent struct {
	version string
	err     error
}

// reloadLog records OnReload calls.
type reloadLog struct {
	mu     sync.Mutex
	events []reloadEvent
}

func (l *reloadLog) record(version string, err error) {
	l.mu.Lock()
	l.events = append(l.events, reloadEvent{version, err})
	l.mu.Unlock()
}

func (l *reloadLog) all() []reloadEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]reloadEvent(nil), l.events...)
}

// writePolicy replaces the file's content atomically, so that a concurrent
// poll never reads a partial file.
func writePolicy(t testing.TB, path, src string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(src), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// watched is a guard whose policy comes from one watched file.
type watched struct {
	dir, file string
	g         *Guard
	w         *Watcher
	ctx       context.Context // carries a task of g
	log       *reloadLog
}

func newWatched(t testing.TB, src string, opts ...WatchOption) *watched {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	writePolicy(t, file, src)
	p, err := LoadPolicyFiles(file)
	require.NoError(t, err)
	clk := newFakeClock()
	g, err := New(WithPolicy(p), WithClock(clk.Now))
	require.NoError(t, err)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "agent"}})
	require.NoError(t, err)
	t.Cleanup(task.End)
	log := &reloadLog{}
	// Only the tests that pass their own interval see the polling goroutine
	// reload; the others call Reload.
	opts = append([]WatchOption{WatchInterval(time.Hour), OnReload(log.record)}, opts...)
	w, err := WatchPolicyFiles(g, []string{filepath.Join(dir, "*.yaml")}, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return &watched{dir: dir, file: file, g: g, w: w, ctx: ctx, log: log}
}

func (x *watched) check() Decision { return x.g.Check(x.ctx, fetchCall) }

func versionOf(t testing.TB, src string) string {
	t.Helper()
	return mustPolicy(t, src).Version()
}

func TestWatcherReload(t *testing.T) {
	t.Parallel()
	x := newWatched(t, allowFetchPolicy)
	require.Equal(t, Allow, x.check().Effect)
	assert.Empty(t, x.w.Version(), "no reload yet")
	assert.NoError(t, x.w.Err())

	// Unchanged files: nothing happens.
	require.NoError(t, x.w.Reload())
	assert.Empty(t, x.log.all())
	assert.Empty(t, x.w.Version())

	writePolicy(t, x.file, denyFetchPolicy)
	require.NoError(t, x.w.Reload())
	d := x.check()
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, "no-fetch", d.Rule)
	want := versionOf(t, denyFetchPolicy)
	assert.Equal(t, want, d.PolicyVersion)
	assert.Equal(t, want, x.g.Policy().Version())
	assert.Equal(t, want, x.w.Version())
	assert.NoError(t, x.w.Err())
	assert.Equal(t, []reloadEvent{{want, nil}}, x.log.all())

	// A new file matching the pattern counts as a change.
	writePolicy(t, filepath.Join(x.dir, "more.yaml"), `rules:
  - name: more
    tools: [mail.send]
    effect: ask
    when: "true"
`)
	require.NoError(t, x.w.Reload())
	assert.Len(t, x.g.Policy().Rules(), 3)
	assert.Equal(t, x.g.Policy().Version(), x.w.Version())
	assert.Len(t, x.log.all(), 2)
}

func TestWatcherBrokenFile(t *testing.T) {
	t.Parallel()
	x := newWatched(t, allowFetchPolicy)
	before := x.g.Policy().Version()

	writePolicy(t, x.file, brokenPolicy)
	err := x.w.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), x.file+":4:")
	var pe *PolicyError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, x.file, pe.File)
	assert.Equal(t, 4, pe.Line)

	// The old policy stays in force.
	d := x.check()
	assert.Equal(t, Allow, d.Effect)
	assert.Equal(t, before, d.PolicyVersion)
	assert.Equal(t, before, x.g.Policy().Version())
	assert.Equal(t, err, x.w.Err())
	assert.Empty(t, x.w.Version())
	assert.Equal(t, []reloadEvent{{"", err}}, x.log.all())

	// The same broken files are not attempted again; the error stays.
	require.NoError(t, x.w.Reload())
	assert.Equal(t, err, x.w.Err())
	assert.Len(t, x.log.all(), 1)

	// Fixing the file recovers.
	writePolicy(t, x.file, denyFetchPolicy)
	require.NoError(t, x.w.Reload())
	assert.NoError(t, x.w.Err())
	assert.Equal(t, Deny, x.check().Effect)
	want := versionOf(t, denyFetchPolicy)
	assert.Equal(t, want, x.w.Version())
	assert.Equal(t, []reloadEvent{{"", err}, {want, nil}}, x.log.all())
}

func TestWatcherFilesDeleted(t *testing.T) {
	t.Parallel()
	x := newWatched(t, allowFetchPolicy)
	before := x.g.Policy().Version()

	require.NoError(t, os.Remove(x.file))
	err := x.w.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "matches no file")
	assert.Equal(t, Allow, x.check().Effect)
	assert.Equal(t, before, x.g.Policy().Version())
	assert.Equal(t, err, x.w.Err())

	writePolicy(t, x.file, denyFetchPolicy)
	require.NoError(t, x.w.Reload())
	assert.NoError(t, x.w.Err())
	assert.Equal(t, Deny, x.check().Effect)
}

func TestWatcherSameVersionKeepsPolicy(t *testing.T) {
	t.Parallel()
	x := newWatched(t, allowFetchPolicy)
	before := x.g.Policy()

	writePolicy(t, x.file, "# a comment changes the file, not the rules\n"+allowFetchPolicy)
	require.NoError(t, x.w.Reload())
	assert.Same(t, before, x.g.Policy(), "the guard keeps its policy")
	assert.Equal(t, before.Version(), x.w.Version())
	assert.Equal(t, []reloadEvent{{before.Version(), nil}}, x.log.all())
}

func TestWatcherCallbackMayUseWatcher(t *testing.T) {
	t.Parallel()
	var w atomic.Pointer[Watcher]
	var inner []error
	x := newWatched(t, allowFetchPolicy, OnReload(func(string, error) {
		// No lock is held: the watcher's methods do not deadlock.
		inner = append(inner, w.Load().Reload(), w.Load().Err())
	}))
	w.Store(x.w)
	writePolicy(t, x.file, denyFetchPolicy)
	require.NoError(t, x.w.Reload())
	assert.Equal(t, []error{nil, nil}, inner)
}

func TestWatcherClose(t *testing.T) {
	t.Parallel()
	x := newWatched(t, allowFetchPolicy)
	require.NoError(t, x.w.Close())
	assert.ErrorIs(t, x.w.Close(), ErrClosed)
	assert.ErrorIs(t, x.w.Reload(), ErrClosed)

	// A closed watcher no longer changes the guard.
	writePolicy(t, x.file, denyFetchPolicy)
	assert.ErrorIs(t, x.w.Reload(), ErrClosed)
	assert.Equal(t, Allow, x.check().Effect)
	assert.Empty(t, x.log.all())
}

func TestWatcherConcurrentClose(t *testing.T) {
	t.Parallel()
	x := newWatched(t, allowFetchPolicy)
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { errs <- x.w.Close() })
	}
	wg.Wait()
	close(errs)
	var ok, closed int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrClosed):
			closed++
		default:
			t.Errorf("Close: %v", err)
		}
	}
	assert.Equal(t, 1, ok)
	assert.Equal(t, n-1, closed)
}

func TestWatcherPolls(t *testing.T) {
	t.Parallel()
	x := newWatched(t, allowFetchPolicy, WatchInterval(10*time.Millisecond))
	writePolicy(t, x.file, denyFetchPolicy)
	want := versionOf(t, denyFetchPolicy)
	require.Eventually(t, func() bool { return x.w.Version() == want }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, Deny, x.check().Effect)
	require.NoError(t, x.w.Close())
}

func TestWatchPolicyFilesErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	writePolicy(t, file, allowFetchPolicy)
	g, err := New()
	require.NoError(t, err)
	cases := []struct {
		name     string
		g        *Guard
		patterns []string
		opts     []WatchOption
		want     string
	}{
		{"nil guard", nil, []string{file}, nil, "nil guard"},
		{"no patterns", g, nil, nil, "no file patterns"},
		{"no match", g, []string{file, filepath.Join(dir, "*.yml")}, nil, "matches no file"},
		{"bad pattern", g, []string{filepath.Join(dir, "[")}, nil, "syntax error in pattern"},
		{"interval too small", g, []string{file}, []WatchOption{WatchInterval(time.Millisecond)}, "below the minimum"},
		{"nil callback", g, []string{file}, []WatchOption{OnReload(nil)}, "nil function"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, err := WatchPolicyFiles(tc.g, tc.patterns, tc.opts...)
			require.Error(t, err)
			assert.Nil(t, w)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestWatcherReloadRace swaps policies while checks run; every decision is
// the one of the policy version it reports.
func TestWatcherReloadRace(t *testing.T) {
	t.Parallel()
	x := newWatched(t, allowFetchPolicy)
	va, vb := versionOf(t, allowFetchPolicy), versionOf(t, denyFetchPolicy)
	want := map[string]struct {
		effect Effect
		rule   string
	}{
		va: {Allow, "fetch"},
		vb: {Deny, "no-fetch"},
	}

	var stop atomic.Bool
	var checks atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				d := x.check()
				checks.Add(1)
				w, ok := want[d.PolicyVersion]
				if !assert.True(t, ok, "unexpected policy version %q", d.PolicyVersion) {
					return
				}
				if !assert.Equal(t, w.effect, d.Effect) || !assert.Equal(t, w.rule, d.Rule) {
					return
				}
			}
		})
	}
	for i := range 50 {
		src := denyFetchPolicy
		if i%2 == 1 {
			src = allowFetchPolicy
		}
		writePolicy(t, x.file, src)
		assert.NoError(t, x.w.Reload())
		assert.Equal(t, versionOf(t, src), x.g.Policy().Version())
	}
	stop.Store(true)
	wg.Wait()
	assert.Positive(t, checks.Load())
}

func TestErrWatcherClosedIsErrClosed(t *testing.T) {
	t.Parallel()
	assert.Same(t, ErrClosed, ErrWatcherClosed) //nolint:staticcheck // the deprecated alias must stay the same error
}
