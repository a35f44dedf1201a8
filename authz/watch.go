package authz

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by the methods of a closed [Watcher], the one
// closable type of this package.
var ErrClosed = errors.New("authz: watcher closed")

// ErrWatcherClosed is the former name of [ErrClosed].
//
// Deprecated: use [ErrClosed].
var ErrWatcherClosed = ErrClosed

// Watch intervals: the default and the smallest allowed.
const (
	DefaultWatchInterval = 2 * time.Second
	MinWatchInterval     = 10 * time.Millisecond
)

// WatchOption configures [WatchPolicyFiles]. Options are validated there; a
// nil option is ignored.
type WatchOption func(*watchConfig) error

type watchConfig struct {
	interval time.Duration
	onReload []func(version string, err error)
}

// WatchInterval sets how often the files are polled. The default is
// [DefaultWatchInterval]; an interval below [MinWatchInterval] is an error.
// When repeated, the last one wins.
func WatchInterval(d time.Duration) WatchOption {
	return func(c *watchConfig) error {
		if d < MinWatchInterval {
			return fmt.Errorf("WatchInterval: %v is below the minimum of %v", d, MinWatchInterval)
		}
		c.interval = d
		return nil
	}
}

// OnReload registers f to be called after every reload attempt that found
// changed files: with the version of the installed policy and a nil error,
// or with "" and the error when the files failed to load, in which case the
// old policy stays in force. f is called without any lock held, on the
// polling goroutine or on the goroutine calling [Watcher.Reload]; calls for
// attempts running concurrently may run concurrently, so f must be safe for
// concurrent use. f must not call [Watcher.Close] from the polling
// goroutine (Close waits for that goroutine). A nil f is an error. When
// repeated, every f is called, in the order given.
func OnReload(f func(version string, err error)) WatchOption {
	return func(c *watchConfig) error {
		if f == nil {
			return errors.New("OnReload: nil function")
		}
		c.onReload = append(c.onReload, f)
		return nil
	}
}

// Watcher reloads a guard's policy when its files change. Create it with
// [WatchPolicyFiles]; it runs one polling goroutine until [Watcher.Close].
// A Watcher is safe for concurrent use; its zero value is not usable.
type Watcher struct {
	g        *Guard
	patterns []string
	cfg      watchConfig

	cancel context.CancelFunc
	done   chan struct{} // closed when the polling goroutine returns

	// mu serializes reload attempts and guards the fields below.
	mu          sync.Mutex
	closed      bool
	fingerprint [sha256.Size]byte // of the files at the last attempt

	// status is the outcome of the last attempt that found a change; it is
	// written with mu held and read without it.
	status atomic.Pointer[watchStatus]
}

type watchStatus struct {
	version string // of the last policy installed
	err     error  // of the last attempt
}

// WatchPolicyFiles watches the policy files matching patterns
// ([LoadPolicyFiles] syntax) and reloads g's policy when they change.
//
// It does not load the policy: g keeps the one it has until the files
// change. It records a fingerprint of the files, a SHA-256 over their sorted
// names and contents, so that added and removed files count as changes. A
// pattern that matches no file or a file that cannot be read is an error,
// and no Watcher is started.
//
// Every interval ([WatchInterval]) a goroutine compares the fingerprint
// with the files'. When it differs, the files are loaded with
// LoadPolicyFiles and, if that succeeds, the policy is installed with
// [Guard.Update] (unless the guard already has a policy of the same
// version, as after an edit of comments only). A policy that fails to load
// leaves the old one in force; its error goes to the [OnReload] callbacks
// and is returned by [Watcher.Err] until a later reload succeeds. The files
// are attempted again only once they change again.
//
// The caller owns the Watcher and must call [Watcher.Close] to stop the
// goroutine.
func WatchPolicyFiles(g *Guard, patterns []string, opts ...WatchOption) (*Watcher, error) {
	if g == nil {
		return nil, errors.New("authz: WatchPolicyFiles: nil guard")
	}
	if len(patterns) == 0 {
		return nil, errors.New("authz: WatchPolicyFiles: no file patterns")
	}
	cfg := watchConfig{interval: DefaultWatchInterval}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("authz: WatchPolicyFiles: %w", err)
		}
	}
	w := &Watcher{
		g:        g,
		patterns: slices.Clone(patterns),
		cfg:      cfg,
		done:     make(chan struct{}),
	}
	fp, err := fingerprintFiles(w.patterns)
	if err != nil {
		return nil, fmt.Errorf("authz: WatchPolicyFiles: %w", err)
	}
	w.fingerprint = fp
	w.status.Store(&watchStatus{})
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.poll(ctx, time.NewTicker(cfg.interval))
	return w, nil
}

// poll reloads on every tick until ctx is cancelled.
func (w *Watcher) poll(ctx context.Context, t *time.Ticker) {
	defer close(w.done)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = w.Reload() // reported through Err and OnReload
		}
	}
}

// Reload checks the files now and, if they changed since the last attempt,
// reloads them as the polling goroutine would. It returns the load error,
// nil when the files are unchanged or the reload succeeded, or
// [ErrClosed]. It blocks while another reload attempt runs and
// while the files are read; it calls the [OnReload] callbacks before
// returning when the files changed. Most callers let the polling goroutine
// reload; Reload is for callers that know the files just changed.
func (w *Watcher) Reload() error {
	version, changed, err := w.reload()
	if !changed {
		return err
	}
	for _, f := range w.cfg.onReload {
		f(version, err)
	}
	return err
}

// reload does the work of Reload without calling the callbacks. changed
// reports an attempt that found changed files.
func (w *Watcher) reload() (version string, changed bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return "", false, ErrClosed
	}
	// A read error is part of the fingerprint; LoadPolicyFiles reports it.
	fp, _ := fingerprintFiles(w.patterns)
	if fp == w.fingerprint {
		return "", false, nil
	}
	w.fingerprint = fp
	prev := w.status.Load()
	p, err := LoadPolicyFiles(w.patterns...)
	if err == nil && p.Version() != w.g.Policy().Version() {
		err = w.g.Update(p)
	}
	if err != nil {
		w.status.Store(&watchStatus{version: prev.version, err: err})
		return "", true, err
	}
	w.status.Store(&watchStatus{version: p.Version()})
	return p.Version(), true, nil
}

// Err returns the error of the last reload attempt that found changed
// files, or nil when it succeeded or there was none. It does not block.
func (w *Watcher) Err() error { return w.status.Load().err }

// Version returns the version of the last policy the watcher installed, ""
// before the first successful reload. It does not block.
func (w *Watcher) Version() string { return w.status.Load().version }

// Close stops the polling goroutine and waits for it and for a reload
// attempt in progress to finish; after Close returns the watcher no longer
// changes the guard's policy, which stays in force. Close returns nil the
// first time and [ErrClosed] afterwards. It must not be called from
// an [OnReload] callback running on the polling goroutine.
func (w *Watcher) Close() error {
	w.mu.Lock() // waits for a reload attempt in progress
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		w.cancel()
	}
	<-w.done
	if already {
		return ErrClosed
	}
	return nil
}

// fingerprintFiles hashes the sorted names and contents of the files
// matching patterns. Problems (a bad pattern, a pattern without a match, an
// unreadable file) are hashed too, so that they count as a change, and
// returned joined.
func fingerprintFiles(patterns []string) ([sha256.Size]byte, error) {
	h := sha256.New()
	var errs []error
	var files []string
	problem := func(err error) {
		errs = append(errs, err)
		fmt.Fprintf(h, "error %q\n", err.Error())
	}
	for _, pat := range patterns {
		m, err := filepath.Glob(pat)
		if err != nil {
			problem(fmt.Errorf("policy pattern %q: %w", pat, err))
			continue
		}
		if len(m) == 0 {
			problem(fmt.Errorf("policy pattern %q matches no file", pat))
			continue
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	files = slices.Compact(files)
	for _, f := range files {
		sum, err := hashFile(f)
		if err != nil {
			problem(err)
			continue
		}
		fmt.Fprintf(h, "file %q %x\n", f, sum)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out, errors.Join(errs...)
}

func hashFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
