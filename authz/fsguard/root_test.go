package fsguard

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/secrets"
)

const workspacePolicy = `
rules:
  - name: workspace
    tools: ["fs.*"]
    effect: allow
    when: destination.path.within(task.labels.workdir)
`

// openPolicy allows every file operation anywhere: only the root confines.
const openPolicy = `
rules:
  - name: anywhere
    tools: ["fs.*"]
    effect: allow
    when: "true"
`

const outsideSecret = "outside secret"

// env is a workspace and a directory next to it, with a guard and a task
// whose workdir is the workspace.
type env struct {
	ws, outside string
	g           *authz.Guard
	ctx         context.Context
	task        *authz.Task
}

func newEnv(t *testing.T, policy string, spec authz.TaskSpec) *env {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	e := &env{ws: filepath.Join(base, "ws"), outside: filepath.Join(base, "outside")}
	require.NoError(t, os.MkdirAll(filepath.Join(e.ws, "sub"), 0o755))
	require.NoError(t, os.MkdirAll(e.outside, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.ws, "notes.txt"), []byte("hello"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(e.ws, "sub", "inner.txt"), []byte("inner"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(e.outside, "secret.txt"), []byte(outsideSecret), 0o600))
	p, err := authz.ParsePolicy("test.yaml", []byte(policy))
	require.NoError(t, err)
	e.g, err = authz.New(authz.WithPolicy(p))
	require.NoError(t, err)
	if spec.Agent.ID == "" {
		spec.Agent.ID = "agent"
	}
	if spec.Labels == nil {
		spec.Labels = map[string]string{"workdir": e.ws}
	}
	e.ctx, e.task, err = e.g.Begin(context.Background(), spec)
	require.NoError(t, err)
	t.Cleanup(e.task.End)
	return e
}

func (e *env) root(t *testing.T, opts ...Option) *Root {
	t.Helper()
	r, err := OpenRoot(e.ws, e.g, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// deniedRule returns the rule of the *authz.DeniedError in err.
func deniedRule(t *testing.T, err error) string {
	t.Helper()
	var de *authz.DeniedError
	require.ErrorAs(t, err, &de)
	return de.Decision.Rule
}

// ops runs every operation on name and returns its error.
func ops(ctx context.Context, r *Root) map[string]func(name string) error {
	return map[string]func(string) error{
		"ReadFile": func(n string) error { _, err := r.ReadFile(ctx, n); return err },
		"Open": func(n string) error {
			f, err := r.Open(ctx, n)
			if err == nil {
				f.Close()
			}
			return err
		},
		"ReadDir":   func(n string) error { _, err := r.ReadDir(ctx, n); return err },
		"Stat":      func(n string) error { _, err := r.Stat(ctx, n); return err },
		"WriteFile": func(n string) error { return r.WriteFile(ctx, n, []byte("written"), 0o600) },
		"Mkdir":     func(n string) error { return r.Mkdir(ctx, n, 0o755) },
		"MkdirAll":  func(n string) error { return r.MkdirAll(ctx, n, 0o755) },
		"Remove":    func(n string) error { return r.Remove(ctx, n) },
		"RemoveAll": func(n string) error { return r.RemoveAll(ctx, n) },
		"RenameTo":  func(n string) error { return r.Rename(ctx, "notes.txt", n) },
		"RenameFrom": func(n string) error {
			return r.Rename(ctx, n, "moved.txt")
		},
	}
}

func TestOperationsInTheWorkspace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, workspacePolicy, authz.TaskSpec{})
	r := e.root(t)
	ctx := e.ctx

	data, err := r.ReadFile(ctx, "notes.txt")
	require.NoError(t, err)
	assert.Equal(t, "hello", string(data))
	data, err = r.ReadFile(ctx, filepath.Join(e.ws, "sub", "inner.txt"))
	require.NoError(t, err, "an absolute name under the root")
	assert.Equal(t, "inner", string(data))
	data, err = r.ReadFile(ctx, "sub/../notes.txt")
	require.NoError(t, err, "'..' that stays inside")
	assert.Equal(t, "hello", string(data))

	require.NoError(t, r.MkdirAll(ctx, "out/deep", 0o755))
	require.NoError(t, r.Mkdir(ctx, "out/deep/er", 0o755))
	require.NoError(t, r.WriteFile(ctx, "out/deep/new.txt", []byte("new"), 0o600))
	got, err := os.ReadFile(filepath.Join(e.ws, "out", "deep", "new.txt"))
	require.NoError(t, err)
	assert.Equal(t, "new", string(got))

	fi, err := r.Stat(ctx, "out/deep/new.txt")
	require.NoError(t, err)
	assert.EqualValues(t, 3, fi.Size())

	entries, err := r.ReadDir(ctx, "out/deep")
	require.NoError(t, err)
	var names []string
	for _, de := range entries {
		names = append(names, de.Name())
	}
	assert.Equal(t, []string{"er", "new.txt"}, names)

	f, err := r.Open(ctx, "notes.txt")
	require.NoError(t, err)
	b, err := io.ReadAll(f)
	require.NoError(t, f.Close())
	require.NoError(t, err)
	assert.Equal(t, "hello", string(b))

	require.NoError(t, r.Rename(ctx, "out/deep/new.txt", "out/renamed.txt"))
	assert.FileExists(t, filepath.Join(e.ws, "out", "renamed.txt"))
	assert.NoFileExists(t, filepath.Join(e.ws, "out", "deep", "new.txt"))
	require.NoError(t, r.Remove(ctx, "out/renamed.txt"))
	assert.NoFileExists(t, filepath.Join(e.ws, "out", "renamed.txt"))
	require.NoError(t, r.RemoveAll(ctx, "out"))
	assert.NoDirExists(t, filepath.Join(e.ws, "out"))

	_, err = r.ReadFile(ctx, "missing.txt")
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.NotErrorIs(t, err, authz.ErrDenied, "a missing file is not a denial")
	assert.Equal(t, e.ws, r.Dir())
}

// Names that lead out of the root lexically are denied before any check or
// file access, by every operation.
func TestNamesOutOfTheRootAreDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openPolicy, authz.TaskSpec{})
	r := e.root(t)
	cases := []struct {
		name string
		want error
	}{
		{"../outside/secret.txt", ErrEscape},
		{"sub/../../outside/secret.txt", ErrEscape},
		{"..", ErrEscape},
		{"../ws/notes.txt", ErrEscape},
		{filepath.Join(e.outside, "secret.txt"), ErrEscape},
		{e.ws + "2/notes.txt", ErrEscape},
		{"/nonexistent-fsguard-test/x", ErrEscape},
		{"", ErrInvalidName},
		{"notes.txt\x00.png", ErrInvalidName},
	}
	for _, tc := range cases {
		for op, run := range ops(e.ctx, r) {
			t.Run(fmt.Sprintf("%s/%q", op, tc.name), func(t *testing.T) {
				err := run(tc.name)
				require.ErrorIs(t, err, authz.ErrDenied)
				require.ErrorIs(t, err, tc.want)
				rule := authz.RuleDescribe
				if errors.Is(tc.want, ErrEscape) {
					rule = authz.RuleEscape
				}
				assert.Equal(t, rule, deniedRule(t, err))
				assert.NotContains(t, err.Error(), outsideSecret)
			})
		}
	}
	got, err := os.ReadFile(filepath.Join(e.outside, "secret.txt"))
	require.NoError(t, err)
	assert.Equal(t, outsideSecret, string(got), "nothing outside was written")
	entries, err := os.ReadDir(e.outside)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing was created outside")
	assert.Equal(t, authz.Taint{}, e.task.Taint(), "nothing was read")
	assert.FileExists(t, filepath.Join(e.ws, "notes.txt"))
}

// A symbolic link inside the root that leads out is denied by a workspace
// policy at check time, since the guard resolves links; with a policy that
// allows everything, the root refuses it at open time.
func TestSymlinksOutOfTheRoot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy string
		rule   string
		escape bool
	}{
		{workspacePolicy, authz.RuleNoMatch, false},
		{openPolicy, authz.RuleEscape, true},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.policy, authz.TaskSpec{})
			r := e.root(t)
			require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(e.ws, "passwd")))
			require.NoError(t, os.Symlink(e.outside, filepath.Join(e.ws, "abs-dir")))
			require.NoError(t, os.Symlink("../outside", filepath.Join(e.ws, "rel-dir")))
			require.NoError(t, os.Symlink(filepath.Join(e.outside, "secret.txt"), filepath.Join(e.ws, "abs-file")))
			require.NoError(t, os.Symlink("../outside/secret.txt", filepath.Join(e.ws, "rel-file")))
			require.NoError(t, os.Symlink("rel-dir", filepath.Join(e.ws, "chain")))
			for _, name := range []string{"passwd", "abs-file", "abs-dir/secret.txt", "rel-dir/secret.txt", "rel-file", "chain/secret.txt"} {
				for _, op := range []string{"ReadFile", "Open", "WriteFile", "Stat"} {
					if op == "WriteFile" && name == "passwd" {
						continue // never aim a write at a system file, even one that must be refused
					}
					t.Run(op+"/"+name, func(t *testing.T) {
						err := ops(e.ctx, r)[op](name)
						require.ErrorIs(t, err, authz.ErrDenied)
						assert.Equal(t, tc.rule, deniedRule(t, err))
						if tc.escape {
							assert.ErrorIs(t, err, ErrEscape)
						}
						assert.NotContains(t, err.Error(), outsideSecret)
					})
				}
			}
			for _, name := range []string{"abs-dir", "rel-dir", "chain"} {
				_, err := r.ReadDir(e.ctx, name)
				require.ErrorIs(t, err, authz.ErrDenied, name)
				require.ErrorIs(t, r.WriteFile(e.ctx, name+"/new.txt", []byte("x"), 0o600), authz.ErrDenied, name)
			}
			got, err := os.ReadFile(filepath.Join(e.outside, "secret.txt"))
			require.NoError(t, err)
			assert.Equal(t, outsideSecret, string(got), "nothing outside was written")
			assert.NoFileExists(t, filepath.Join(e.outside, "new.txt"))
			assert.Equal(t, authz.Taint{}, e.task.Taint(), "nothing was read")
		})
	}
}

// A link that stays inside the root is followed.
func TestSymlinksWithinTheRoot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, workspacePolicy, authz.TaskSpec{})
	r := e.root(t)
	require.NoError(t, os.Symlink("sub/inner.txt", filepath.Join(e.ws, "link")))
	data, err := r.ReadFile(e.ctx, "link")
	require.NoError(t, err)
	assert.Equal(t, "inner", string(data))
	assert.Equal(t, []string{"file:" + filepath.Join(e.ws, "sub", "inner.txt")}, e.task.Taint().Sources,
		"the task observes the file the link leads to")
}

// A file or directory swapped for a link out of the root after the check
// and before the open: the open fails, nothing outside is read or written.
func TestSwapAfterCheck(t *testing.T) {
	t.Parallel()
	targets := []struct {
		name   string
		target func(e *env, rel string) string
	}{
		{"absolute", func(e *env, rel string) string { return filepath.Join(e.outside, filepath.Base(rel)) }},
		{"relative", func(e *env, rel string) string {
			up := strings.Repeat("../", strings.Count(rel, "/")+1)
			return up + "outside/" + filepath.Base(rel)
		}},
	}
	cases := []struct {
		op, name string
	}{
		{"ReadFile", "secret.txt"},
		{"Open", "secret.txt"},
		{"ReadFile", "sub/secret.txt"},
		{"WriteFile", "secret.txt"},
		{"WriteFile", "created.txt"},
		{"Stat", "secret.txt"},
	}
	for _, tg := range targets {
		for _, tc := range cases {
			t.Run(tg.name+"/"+tc.op+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, workspacePolicy, authz.TaskSpec{})
				require.NoError(t, os.WriteFile(filepath.Join(e.ws, "secret.txt"), []byte("inside"), 0o600))
				require.NoError(t, os.WriteFile(filepath.Join(e.ws, "sub", "secret.txt"), []byte("inside"), 0o600))
				r := e.root(t)
				swapped := 0
				r.afterCheck = func(_ Op, rel string) {
					swapped++
					p := filepath.Join(e.ws, rel)
					require.NoError(t, os.RemoveAll(p))
					require.NoError(t, os.Symlink(tg.target(e, rel), p))
				}
				err := ops(e.ctx, r)[tc.op](tc.name)
				assert.Equal(t, 1, swapped)
				require.ErrorIs(t, err, authz.ErrDenied)
				require.ErrorIs(t, err, ErrEscape)
				assert.Equal(t, authz.RuleEscape, deniedRule(t, err))
				assert.NotContains(t, err.Error(), outsideSecret)
				got, err := os.ReadFile(filepath.Join(e.outside, "secret.txt"))
				require.NoError(t, err)
				assert.Equal(t, outsideSecret, string(got))
				assert.NoFileExists(t, filepath.Join(e.outside, "created.txt"))
				assert.Equal(t, authz.Taint{}, e.task.Taint())
			})
		}
	}
	// A directory on the way swapped for a link out.
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, workspacePolicy, authz.TaskSpec{})
		require.NoError(t, os.WriteFile(filepath.Join(e.outside, "inner.txt"), []byte(outsideSecret), 0o600))
		r := e.root(t)
		r.afterCheck = func(Op, string) {
			require.NoError(t, os.RemoveAll(filepath.Join(e.ws, "sub")))
			require.NoError(t, os.Symlink("../outside", filepath.Join(e.ws, "sub")))
		}
		data, err := r.ReadFile(e.ctx, "sub/inner.txt")
		require.ErrorIs(t, err, ErrEscape)
		assert.Nil(t, data)
		assert.Equal(t, authz.Taint{}, e.task.Taint())
	})
}

// Reads taint the task exactly once per successful read; denied and failed
// reads, stats and writes never do. The trust predicate runs once per
// observation, so it counts them.
func TestReadsTaintOnce(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		run     func(r *Root, ctx context.Context) error
		observe int
	}{
		{"ReadFile", func(r *Root, ctx context.Context) error { _, err := r.ReadFile(ctx, "notes.txt"); return err }, 1},
		{"ReadDir", func(r *Root, ctx context.Context) error { _, err := r.ReadDir(ctx, "sub"); return err }, 1},
		{"Open", func(r *Root, ctx context.Context) error {
			f, err := r.Open(ctx, "notes.txt")
			if err != nil {
				return err
			}
			_, _ = io.ReadAll(f)
			return f.Close()
		}, 1},
		{"FS.ReadFile", func(r *Root, ctx context.Context) error { _, err := fs.ReadFile(r.FS(ctx), "notes.txt"); return err }, 1},
		{"Stat", func(r *Root, ctx context.Context) error { _, err := r.Stat(ctx, "notes.txt"); return err }, 0},
		{"WriteFile", func(r *Root, ctx context.Context) error { return r.WriteFile(ctx, "w.txt", []byte("x"), 0o600) }, 0},
		{"missing", func(r *Root, ctx context.Context) error { _, err := r.ReadFile(ctx, "missing.txt"); return err }, 0},
		{"directory", func(r *Root, ctx context.Context) error { _, err := r.ReadFile(ctx, "sub"); return err }, 0},
		{"not a directory", func(r *Root, ctx context.Context) error { _, err := r.ReadDir(ctx, "notes.txt"); return err }, 0},
		{"escape", func(r *Root, ctx context.Context) error {
			_, err := r.ReadFile(ctx, "../outside/secret.txt")
			return err
		}, 0},
		{"denied", func(r *Root, ctx context.Context) error { _, err := r.ReadFile(ctx, "private/key"); return err }, 0},
	}
	policy := workspacePolicy + `
  - name: no-private
    tools: ["fs.*"]
    effect: deny
    when: destination.path.contains("/private/")
`
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, policy, authz.TaskSpec{})
			require.NoError(t, os.MkdirAll(filepath.Join(e.ws, "private"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(e.ws, "private", "key"), []byte("k"), 0o600))
			var n atomic.Int32
			r := e.root(t, WithTrusted(func(string) bool { n.Add(1); return false }))
			err := tc.run(r, e.ctx)
			taint := e.task.Taint()
			assert.EqualValues(t, tc.observe, n.Load())
			if tc.observe == 0 {
				assert.Equal(t, authz.Taint{}, taint)
				return
			}
			require.NoError(t, err)
			assert.True(t, taint.Untrusted)
			assert.Len(t, taint.Sources, 1)
			assert.True(t, strings.HasPrefix(taint.Sources[0], "file:"+e.ws+"/"), taint.Sources[0])
		})
	}
}

// The classifier and the trust predicate see the real path, so a link
// cannot launder a confidential or untrusted file.
func TestClassifierAndTrust(t *testing.T) {
	t.Parallel()
	e := newEnv(t, workspacePolicy, authz.TaskSpec{Clearance: authz.Confidential})
	require.NoError(t, os.MkdirAll(filepath.Join(e.ws, "hr"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.ws, "hr", "pay.csv"), []byte("pay"), 0o600))
	require.NoError(t, os.Symlink("hr/pay.csv", filepath.Join(e.ws, "innocent.txt")))
	var seen sync.Map
	r := e.root(t,
		WithClassifier(func(p string) authz.Sensitivity {
			seen.Store(p, true)
			if strings.HasPrefix(p, filepath.Join(e.ws, "hr")+"/") {
				return authz.Confidential
			}
			return authz.Internal
		}),
		WithTrusted(func(p string) bool { return p == filepath.Join(e.ws, "notes.txt") }),
	)
	_, err := r.ReadFile(e.ctx, "notes.txt")
	require.NoError(t, err)
	taint := e.task.Taint()
	assert.Equal(t, authz.Internal, taint.Sensitivity)
	assert.False(t, taint.Untrusted, "notes.txt is trusted")

	_, err = r.ReadFile(e.ctx, "innocent.txt")
	require.NoError(t, err)
	taint = e.task.Taint()
	assert.Equal(t, authz.Confidential, taint.Sensitivity, "classified by where the link leads")
	assert.True(t, taint.Untrusted)
	assert.Equal(t, []string{"file:" + filepath.Join(e.ws, "notes.txt"), "file:" + filepath.Join(e.ws, "hr", "pay.csv")}, taint.Sources)
	_, lexical := seen.Load(filepath.Join(e.ws, "innocent.txt"))
	assert.False(t, lexical)

	// A link to a directory on the way.
	require.NoError(t, os.MkdirAll(filepath.Join(e.ws, "public"), 0o755))
	require.NoError(t, os.Symlink("../hr", filepath.Join(e.ws, "public", "reports")))
	ctx3, task3, err := e.g.Begin(context.Background(), authz.TaskSpec{
		Agent: authz.Agent{ID: "a"}, Clearance: authz.Confidential, Labels: map[string]string{"workdir": e.ws},
	})
	require.NoError(t, err)
	defer task3.End()
	_, err = r.ReadFile(ctx3, "public/reports/pay.csv")
	require.NoError(t, err)
	assert.Equal(t, authz.Confidential, task3.Taint().Sensitivity)
	assert.Equal(t, []string{"file:" + filepath.Join(e.ws, "hr", "pay.csv")}, task3.Taint().Sources)

	// Above the task's clearance: denied by the guard.
	r2 := e.root(t, WithSensitivity(authz.Restricted))
	_, err = r2.ReadFile(e.ctx, "notes.txt")
	require.ErrorIs(t, err, authz.ErrDenied)
	assert.Equal(t, authz.RuleClearance, deniedRule(t, err))

	// A panicking classifier denies; a panicking predicate is untrusted.
	r3 := e.root(t, WithClassifier(func(string) authz.Sensitivity { panic("boom") }))
	_, err = r3.ReadFile(e.ctx, "notes.txt")
	require.ErrorIs(t, err, authz.ErrDenied)
	e2 := newEnv(t, workspacePolicy, authz.TaskSpec{})
	r4 := e2.root(t, WithTrusted(func(string) bool { panic("boom") }))
	_, err = r4.ReadFile(e2.ctx, "notes.txt")
	require.NoError(t, err)
	assert.True(t, e2.task.Taint().Untrusted)
}

// A denied write creates and changes nothing.
func TestDeniedWritesLeaveNoFile(t *testing.T) {
	t.Parallel()
	readOnly := `
rules:
  - name: read-workspace
    tools: ["fs.read", "fs.list", "fs.stat"]
    effect: allow
    when: destination.path.within(task.labels.workdir)
`
	cases := []struct {
		name   string
		policy string
		spec   authz.TaskSpec
		rule   string
	}{
		{"policy", readOnly, authz.TaskSpec{}, authz.RuleNoMatch},
		{"intent", workspacePolicy, authz.TaskSpec{Intents: []string{"read"}}, authz.RuleIntent},
		{"tool", workspacePolicy, authz.TaskSpec{Tools: []string{"fs.read"}}, authz.RuleTool},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.policy, tc.spec)
			r := e.root(t)
			err := r.WriteFile(e.ctx, "new.txt", []byte("data"), 0o600)
			require.ErrorIs(t, err, authz.ErrDenied)
			assert.Equal(t, tc.rule, deniedRule(t, err))
			assert.NotContains(t, err.Error(), "data")
			assert.NoFileExists(t, filepath.Join(e.ws, "new.txt"))
			require.ErrorIs(t, r.WriteFile(e.ctx, "notes.txt", []byte("data"), 0o600), authz.ErrDenied)
			require.ErrorIs(t, r.MkdirAll(e.ctx, "newdir/x", 0o755), authz.ErrDenied)
			assert.NoDirExists(t, filepath.Join(e.ws, "newdir"))
			require.ErrorIs(t, r.Remove(e.ctx, "notes.txt"), authz.ErrDenied)
			require.ErrorIs(t, r.Rename(e.ctx, "notes.txt", "moved.txt"), authz.ErrDenied)
			got, err := os.ReadFile(filepath.Join(e.ws, "notes.txt"))
			require.NoError(t, err)
			assert.Equal(t, "hello", string(got))
		})
	}
}

// The written data is the call's arguments, for policies.
func TestWriteArgs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
rules:
  - name: small-writes
    tools: ["fs.write"]
    effect: allow
    when: destination.path.within(task.labels.workdir) && args.size <= 4 && !string(args.data).contains("KEY")
`, authz.TaskSpec{})
	r := e.root(t)
	require.NoError(t, r.WriteFile(e.ctx, "ok.txt", []byte("fine"), 0o600))
	require.ErrorIs(t, r.WriteFile(e.ctx, "big.txt", []byte("too big"), 0o600), authz.ErrDenied)
	require.ErrorIs(t, r.WriteFile(e.ctx, "key.txt", []byte("KEY"), 0o600), authz.ErrDenied)
	assert.NoFileExists(t, filepath.Join(e.ws, "big.txt"))
	assert.NoFileExists(t, filepath.Join(e.ws, "key.txt"))
}

func TestClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, workspacePolicy, authz.TaskSpec{})
	r, err := OpenRoot(e.ws, e.g)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close(), "Close is idempotent")
	for op, run := range ops(e.ctx, r) {
		err := run("notes.txt")
		require.ErrorIs(t, err, ErrClosed, op)
		assert.NotErrorIs(t, err, authz.ErrDenied, op)
	}
	assert.Equal(t, "fsguard: root closed", ErrClosed.Error())
	assert.Equal(t, authz.Taint{}, e.task.Taint())
}

func TestNoTaskDenies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, workspacePolicy, authz.TaskSpec{})
	r := e.root(t)
	_, err := r.ReadFile(context.Background(), "notes.txt")
	require.ErrorIs(t, err, authz.ErrDenied)
	assert.Equal(t, authz.RuleNoTask, deniedRule(t, err))
	e.task.End()
	_, err = r.ReadFile(e.ctx, "notes.txt")
	require.ErrorIs(t, err, authz.ErrDenied)
}

func TestOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
rules:
  - name: get
    tools: ["files.get"]
    effect: allow
    when: intent == "fetch"
`, authz.TaskSpec{})
	r := e.root(t, WithTool(OpRead, "files.get", "fetch"))
	_, err := r.ReadFile(e.ctx, "notes.txt")
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		opt  Option
	}{
		{"unknown op", WithTool(Op(42), "t", "i")},
		{"empty tool", WithTool(OpRead, "", "read")},
		{"empty intent", WithTool(OpRead, "fs.read", "")},
		{"bad sensitivity", WithSensitivity(authz.Sensitivity(9))},
		{"nil classifier", WithClassifier(nil)},
		{"nil predicate", WithTrusted(nil)},
	} {
		_, err := OpenRoot(e.ws, e.g, tc.opt)
		assert.Error(t, err, tc.name)
	}
	_, err = OpenRoot(e.ws, nil)
	assert.Error(t, err)
	_, err = OpenRoot(filepath.Join(e.ws, "notes.txt"), e.g)
	assert.Error(t, err, "not a directory")
	_, err = OpenRoot(filepath.Join(e.ws, "missing"), e.g)
	assert.Error(t, err)
	assert.Equal(t, "list", OpList.String())
	assert.Equal(t, "op(42)", Op(42).String())
}

func TestOpenTaskRoot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, workspacePolicy, authz.TaskSpec{})
	r, err := OpenTaskRoot(e.ctx, e.g)
	require.NoError(t, err)
	defer r.Close()
	assert.Equal(t, e.ws, r.Dir())
	_, err = r.ReadFile(e.ctx, "notes.txt")
	require.NoError(t, err)

	_, err = OpenTaskRoot(context.Background(), e.g)
	assert.Error(t, err, "no task")
	ctx, task, err := e.g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	_, err = OpenTaskRoot(ctx, e.g)
	assert.Error(t, err, "no workdir")
}

// A root opened through a symbolic link decides on the real path and also
// accepts absolute names under the path it was opened by.
func TestRootThroughALink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, workspacePolicy, authz.TaskSpec{})
	link := filepath.Join(filepath.Dir(e.ws), "ws-link")
	require.NoError(t, os.Symlink(e.ws, link))
	r, err := OpenRoot(link, e.g)
	require.NoError(t, err)
	defer r.Close()
	assert.Equal(t, e.ws, r.Dir())
	for _, name := range []string{"notes.txt", filepath.Join(link, "notes.txt"), filepath.Join(e.ws, "notes.txt")} {
		data, err := r.ReadFile(e.ctx, name)
		require.NoError(t, err, name)
		assert.Equal(t, "hello", string(data))
	}
}

func TestFS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, workspacePolicy, authz.TaskSpec{})
	r := e.root(t)
	fsys := r.FS(e.ctx)
	require.NoError(t, fstest.TestFS(fsys, "notes.txt", "sub/inner.txt"))

	var walked []string
	require.NoError(t, fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		walked = append(walked, p)
		return err
	}))
	assert.Equal(t, []string{".", "notes.txt", "sub", "sub/inner.txt"}, walked)

	for _, name := range []string{"../outside/secret.txt", "/etc/passwd", "sub/../notes.txt", ""} {
		_, err := fs.ReadFile(fsys, name)
		require.ErrorIs(t, err, fs.ErrInvalid, name)
	}
	_, err := r.FS(context.Background()).Open("notes.txt")
	require.ErrorIs(t, err, authz.ErrDenied, "no task")
}

// Concurrent reads, writes and a Close from many goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, workspacePolicy, authz.TaskSpec{})
	r := e.root(t)
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("f%d.txt", i)
			data := fmt.Appendf(nil, "content %d", i)
			if err := r.WriteFile(e.ctx, name, data, 0o600); err != nil {
				errs <- err
				return
			}
			got, err := r.ReadFile(e.ctx, name)
			if err != nil {
				errs <- err
				return
			}
			if string(got) != string(data) {
				errs <- fmt.Errorf("%s: got %q", name, got)
			}
			if _, err := r.ReadFile(e.ctx, "../outside/secret.txt"); !errors.Is(err, ErrEscape) {
				errs <- fmt.Errorf("escape not denied: %v", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Len(t, e.task.Taint().Sources, n)

	// Close racing with operations: each either succeeds or fails with ErrClosed.
	start := make(chan struct{})
	results := make(chan error, n)
	for range n {
		wg.Go(func() {
			<-start
			_, err := r.ReadFile(e.ctx, "notes.txt")
			results <- err
		})
	}
	close(start)
	require.NoError(t, r.Close())
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			assert.ErrorIs(t, err, ErrClosed)
		}
	}
}

// WriteFile passes the data as the call's arguments, so the secrets
// broker refuses a leased value written to a file: a file is not in any
// host audience.
func TestLeasedValueNeverWrittenToAFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, workspacePolicy+`
  - name: lease
    tools: [secrets.lease]
    effect: allow
    when: "true"
`, authz.TaskSpec{Clearance: authz.Confidential})
	const value = "ghp_0123456789abcdefghij0123456789abcd"
	b, err := secrets.NewBroker(e.g, secrets.Static(map[string]string{"github-token": value}))
	require.NoError(t, err)
	lease, err := b.Lease(e.ctx, "github-token", secrets.Audience("api.github.com"))
	require.NoError(t, err)
	r := e.root(t)
	require.NoError(t, r.WriteFile(e.ctx, "plain.txt", []byte("no secret here"), 0o600))
	for _, data := range []string{value, "token=" + base64.StdEncoding.EncodeToString([]byte(value))} {
		err = r.WriteFile(e.ctx, "leak.txt", []byte(data), 0o600)
		require.ErrorIs(t, err, authz.ErrDenied)
		assert.True(t, strings.HasPrefix(deniedRule(t, err), authz.RuleInspect), deniedRule(t, err))
		assert.NotContains(t, err.Error(), value)
		assert.NoFileExists(t, filepath.Join(e.ws, "leak.txt"))
	}
	lease.Revoke()
}
