package fsguard

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/dest"
)

// Errors. Denials wrap the *[authz.DeniedError], so errors.Is(err,
// authz.ErrDenied) holds for every refusal; ErrEscape and ErrInvalidName
// say why a name was refused before or at open time.
var (
	// ErrClosed is returned by every operation on a closed Root.
	ErrClosed = errors.New("fsguard: root closed")
	// ErrEscape is a name that leads out of the root: lexically ("..", an
	// absolute name elsewhere), or through a symbolic link or ".." that the
	// open refused. It is always a denial.
	ErrEscape = errors.New("fsguard: path escapes the root")
	// ErrInvalidName is an empty name or one holding a NUL byte. It is
	// always a denial.
	ErrInvalidName = errors.New("fsguard: invalid file name")
)

// Root is a directory whose files an agent's tools may use, one authorized
// operation at a time. Every method authorizes its operation with the
// guard under the task in its context, then performs it through an
// [os.Root] opened on the directory, so that a symbolic link or ".." that
// leads out of the directory fails at open time, however the file system
// changed since the check.
//
// A Root is safe for concurrent use. Its zero value is not usable: create
// one with [OpenRoot] or [OpenTaskRoot], and Close it when done.
type Root struct {
	g    *authz.Guard
	root *os.Root
	// dir is the directory's real path (symbolic links resolved), the
	// directory the os.Root holds; alias is the absolute, cleaned path it
	// was opened by, when that differs.
	dir, alias string
	cfg        config
	closed     atomic.Bool

	// afterCheck, when set (by tests only), runs between the
	// authorization and the operation.
	afterCheck func(op Op, rel string)
}

// OpenRoot opens the directory dir for guarded access with guard g. dir is
// made absolute and its symbolic links are resolved once, here: every
// operation's destination is the real path of dir joined with the name
// it is given. The options set tool names and intents, sensitivity and
// trust (see [Option]).
//
// OpenRoot blocks on the file system. It returns an error for a nil
// guard, an invalid option, or a dir that is not a directory that can be
// opened.
func OpenRoot(dir string, g *authz.Guard, opts ...Option) (*Root, error) {
	if g == nil {
		return nil, errors.New("fsguard: open root: nil guard")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if dir == "" || strings.IndexByte(dir, 0) >= 0 {
		return nil, fmt.Errorf("fsguard: open root %q: %w", dir, ErrInvalidName)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fsguard: open root: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("fsguard: open root: %w", err)
	}
	root, err := os.OpenRoot(real)
	if err != nil {
		return nil, fmt.Errorf("fsguard: open root: %w", err)
	}
	// The directory the root holds must be the one real names: a link
	// swapped between the two steps is refused.
	want, err1 := os.Stat(real)
	got, err2 := root.Stat(".")
	if err := errors.Join(err1, err2); err != nil || !os.SameFile(want, got) {
		_ = root.Close()
		if err == nil {
			err = errors.New("the directory changed while it was opened")
		}
		return nil, fmt.Errorf("fsguard: open root %s: %w", real, err)
	}
	r := &Root{g: g, root: root, dir: real, cfg: cfg}
	if abs != real {
		r.alias = abs
	}
	return r, nil
}

// OpenTaskRoot is [OpenRoot] on the "workdir" label of the task in ctx,
// the directory the guard resolves the task's relative file destinations
// against. It returns an error when ctx carries no task or the task has no
// workdir label. The Root is not bound to that task: each operation runs
// under the task in its own context.
func OpenTaskRoot(ctx context.Context, g *authz.Guard, opts ...Option) (*Root, error) {
	t, ok := authz.TaskFrom(ctx)
	if !ok {
		return nil, errors.New("fsguard: open task root: no task in the context")
	}
	wd := t.Labels()["workdir"]
	if wd == "" {
		return nil, fmt.Errorf("fsguard: open task root: task %s has no workdir label", t.ID())
	}
	return OpenRoot(wd, g, opts...)
}

// Dir returns the real path of the root directory: the directory as given
// to [OpenRoot], made absolute, with its symbolic links resolved.
func (r *Root) Dir() string { return r.dir }

// Close closes the root. Operations after Close fail with [ErrClosed];
// operations in flight finish or fail with it. Close is idempotent: only
// the first call closes and reports the error of closing.
func (r *Root) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	return r.root.Close()
}

// ReadFile authorizes reading the file name (by default as tool fs.read,
// intent read) and returns its contents, read through the root. name is
// relative to the root directory, or absolute and under it.
//
// After a successful read, and only then, the task in ctx observes the
// file ([authz.Task.Observe]) as "file:" followed by its real path, with
// the sensitivity of the call and the trust of [WithTrusted] (untrusted by
// default). A denied or failed read observes nothing.
func (r *Root) ReadFile(ctx context.Context, name string) ([]byte, error) {
	var data []byte
	err := r.do(ctx, OpRead, "read", name, nil, func(rel string) (err error) {
		data, err = r.root.ReadFile(rel)
		return err
	})
	if err != nil {
		return nil, err
	}
	return data, nil
}

// Open authorizes reading the file name as [Root.ReadFile] does and opens
// it for reading through the root. The task observes the file when the
// open succeeds, once, whatever is then read from it. The caller owns the
// *os.File and must close it; it stays usable after the Root is closed.
// Opening a directory is authorized as a read of it, and the caller may
// then list it ([os.File.ReadDir]) without a separate list call; use
// [Root.ReadDir] to list under the list tool.
func (r *Root) Open(ctx context.Context, name string) (*os.File, error) {
	var f *os.File
	err := r.do(ctx, OpRead, "open", name, nil, func(rel string) (err error) {
		f, err = r.root.Open(rel)
		return err
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ReadDir authorizes listing the directory name (by default as tool
// fs.list, intent read) and returns its entries sorted by name. The
// entries' names are content too: after a successful listing the task
// observes the directory as a read does.
func (r *Root) ReadDir(ctx context.Context, name string) ([]fs.DirEntry, error) {
	var entries []fs.DirEntry
	err := r.do(ctx, OpList, "readdir", name, nil, func(rel string) error {
		f, err := r.root.Open(rel)
		if err != nil {
			return err
		}
		defer f.Close()
		entries, err = f.ReadDir(-1)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// Stat authorizes reading the metadata of the file name (by default as
// tool fs.stat, intent read) and returns it, following symbolic links
// within the root. Metadata does not taint the task.
func (r *Root) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	var fi fs.FileInfo
	err := r.do(ctx, OpStat, "stat", name, nil, func(rel string) (err error) {
		fi, err = r.root.Stat(rel)
		return err
	})
	if err != nil {
		return nil, err
	}
	return fi, nil
}

// WriteFile authorizes writing data to the file name (by default as tool
// fs.write, intent write) and writes it through the root, creating the
// file with permissions perm (before the umask) or truncating it. The
// call's arguments are {"data": data, "size": len(data), "perm": perm}, so
// policies can bound what is written and the secrets broker's inspector
// finds a leased value written to a file. A denied write creates and
// changes nothing.
func (r *Root) WriteFile(ctx context.Context, name string, data []byte, perm fs.FileMode) error {
	args := map[string]any{"data": data, "size": int64(len(data)), "perm": int64(perm)}
	return r.do(ctx, OpWrite, "write", name, args, func(rel string) error {
		return r.root.WriteFile(rel, data, perm)
	})
}

// Mkdir authorizes creating the directory name (by default as tool
// fs.mkdir, intent write) and creates it with permissions perm.
func (r *Root) Mkdir(ctx context.Context, name string, perm fs.FileMode) error {
	return r.do(ctx, OpMkdir, "mkdir", name, nil, func(rel string) error {
		return r.root.Mkdir(rel, perm)
	})
}

// MkdirAll is [Root.Mkdir] creating any missing parents too. It is one
// operation, authorized on name.
func (r *Root) MkdirAll(ctx context.Context, name string, perm fs.FileMode) error {
	return r.do(ctx, OpMkdir, "mkdir", name, nil, func(rel string) error {
		return r.root.MkdirAll(rel, perm)
	})
}

// Remove authorizes deleting the file or empty directory name (by default
// as tool fs.delete, intent delete) and removes it.
func (r *Root) Remove(ctx context.Context, name string) error {
	return r.do(ctx, OpDelete, "remove", name, nil, func(rel string) error {
		return r.root.Remove(rel)
	})
}

// RemoveAll is [Root.Remove] for a directory and everything below it. It
// is one operation, authorized on name with the argument
// {"recursive": true}; it stays inside the root.
func (r *Root) RemoveAll(ctx context.Context, name string) error {
	return r.do(ctx, OpDelete, "remove", name, map[string]any{"recursive": true}, func(rel string) error {
		if rel == "." {
			// Removing the root itself would leave the Root dangling.
			return &fs.PathError{Op: "removeall", Path: rel, Err: fs.ErrInvalid}
		}
		return r.root.RemoveAll(rel)
	})
}

// Rename authorizes moving oldname to newname as two calls, both of which
// must be allowed: a delete of oldname and a write of newname (the
// [OpDelete] and [OpWrite] tools, each with the argument {"rename":
// true}), then renames through the root.
// Neither file's content reaches the task, so nothing is observed.
func (r *Root) Rename(ctx context.Context, oldname, newname string) error {
	var newRel string
	err := r.do(ctx, OpWrite, "rename", newname, map[string]any{"rename": true}, func(rel string) error {
		newRel = rel
		return nil
	})
	if err != nil {
		return err
	}
	return r.do(ctx, OpDelete, "rename", oldname, map[string]any{"rename": true}, func(rel string) error {
		return r.root.Rename(rel, newRel)
	})
}

// do authorizes operation op on name and then runs act with the name
// relative to the root. verb names the operation in errors. Reads (OpRead,
// OpList) taint the task once act has succeeded.
func (r *Root) do(ctx context.Context, op Op, verb, name string, args map[string]any, act func(rel string) error) error {
	if r.closed.Load() {
		return &fs.PathError{Op: verb, Path: name, Err: ErrClosed}
	}
	rel, abs, err := r.local(name)
	if err != nil {
		return r.deny(ctx, op, verb, name, err)
	}
	reads := op == OpRead || op == OpList
	real := abs
	if reads || r.cfg.classify != nil || r.cfg.trusted != nil {
		// Classify, trust and observe the file the policy decides on.
		if real, err = r.realPath(rel, abs); err != nil {
			return r.deny(ctx, op, verb, name, err)
		}
	}
	s, err := r.sensitivity(real)
	if err != nil {
		return r.deny(ctx, op, verb, name, err)
	}
	spec := r.cfg.tools[op]
	call := authz.Call{Tool: spec.tool, Intent: spec.intent, Destination: abs, Sensitivity: s, Args: args}
	if err := r.g.Authorize(ctx, call); err != nil {
		return &fs.PathError{Op: verb, Path: name, Err: err}
	}
	if r.afterCheck != nil {
		r.afterCheck(op, rel)
	}
	if err := act(rel); err != nil {
		switch {
		case isEscape(err):
			return r.deny(ctx, op, verb, name, fmt.Errorf("%w: refused at open: %w", ErrEscape, err))
		case r.closed.Load() && errors.Is(err, os.ErrClosed):
			return &fs.PathError{Op: verb, Path: name, Err: ErrClosed}
		}
		return err
	}
	if reads {
		if t, ok := authz.TaskFrom(ctx); ok {
			t.Observe("file:"+real, s, r.trusted(real))
		}
	}
	return nil
}

// local maps name to its path relative to the root and the absolute path
// the policy decides on, refusing names that lead out of the root
// lexically. It touches no file.
func (r *Root) local(name string) (rel, abs string, err error) {
	switch {
	case name == "":
		return "", "", fmt.Errorf("%w: empty name", ErrInvalidName)
	case strings.IndexByte(name, 0) >= 0:
		return "", "", fmt.Errorf("%w: name holds a NUL byte", ErrInvalidName)
	case filepath.IsAbs(name):
		c := filepath.Clean(name)
		for _, base := range [...]string{r.dir, r.alias} {
			if rel, ok := under(base, c); ok {
				return rel, filepath.Join(r.dir, rel), nil
			}
		}
		return "", "", fmt.Errorf("%w: absolute name outside the root", ErrEscape)
	}
	c := filepath.Clean(name)
	if !filepath.IsLocal(c) {
		return "", "", fmt.Errorf("%w: \"..\" leads out of the root", ErrEscape)
	}
	return c, filepath.Join(r.dir, c), nil
}

// realPath returns abs with the symbolic links of its existing part
// resolved, as the guard resolves a file destination. dir is a real path,
// so only the names below it are looked at, one Lstat each; the first
// link found hands the whole path to [dest.Resolve]. It fails closed as
// dest.Resolve does: an error other than "does not exist" is an error.
func (r *Root) realPath(rel, abs string) (string, error) {
	if rel == "." {
		return r.dir, nil
	}
	p := r.dir
	for part := range strings.SplitSeq(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return abs, nil // the rest does not exist yet
		case err != nil:
			return "", fmt.Errorf("fsguard: cannot resolve %s: %w", p, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			d, err := dest.Resolve(dest.Destination{Kind: dest.KindFile, Scheme: "file", Path: abs})
			if err != nil {
				return "", err
			}
			return d.Path, nil
		}
	}
	return abs, nil
}

// under returns p relative to base when p is base or below it; both are
// clean absolute paths. An empty base contains nothing.
func under(base, p string) (string, bool) {
	switch {
	case base == "":
		return "", false
	case p == base:
		return ".", true
	case base == string(filepath.Separator):
		return p[1:], true
	case strings.HasPrefix(p, base) && p[len(base)] == filepath.Separator:
		return p[len(base)+1:], true
	}
	return "", false
}

// deny records a refusal of the root's own as a denied call and returns
// it: a name that leaves the root is [authz.RuleEscape], anything else (a
// path that cannot be classified) [authz.RuleDescribe].
func (r *Root) deny(ctx context.Context, op Op, verb, name string, cause error) error {
	tool := r.cfg.tools[op]
	if errors.Is(cause, ErrEscape) {
		// The audit record shows where the name leads lexically (a ".."
		// out of the root), next to the rule that refused it.
		c := authz.Call{Tool: tool.tool, Intent: tool.intent}
		if !strings.ContainsRune(name, 0) {
			c.Destination = filepath.Join(r.dir, name)
		}
		return &fs.PathError{Op: verb, Path: name, Err: r.g.Deny(ctx, c, authz.RuleEscape, cause.Error(), cause)}
	}
	return &fs.PathError{Op: verb, Path: name, Err: r.g.DescribeError(ctx, tool.tool, cause)}
}

// sensitivity classifies the file at path, recovering a panicking
// classifier as an error.
func (r *Root) sensitivity(path string) (s authz.Sensitivity, err error) {
	if r.cfg.classify == nil {
		return r.cfg.sensitivity, nil
	}
	defer func() {
		if p := recover(); p != nil {
			s, err = authz.Restricted, errors.New("fsguard: the classifier panicked")
		}
	}()
	return r.cfg.classify(path), nil
}

// trusted reports whether the file at path holds trusted content; a
// panicking predicate means untrusted.
func (r *Root) trusted(path string) (ok bool) {
	if r.cfg.trusted == nil {
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			ok = false
		}
	}()
	return r.cfg.trusted(path)
}

// isEscape reports whether err is os.Root refusing a name that leads out
// of the root (its unexported "path escapes from parent" error).
func isEscape(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}
