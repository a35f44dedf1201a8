package dest_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/internal/dest"
)

// tree builds a workspace under a temporary directory and returns the real
// (symlink-free) path of the temporary directory.
func tree(t *testing.T) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	for _, dir := range []string{"ws/src", "ws/docs", "outside/secret"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(root, "ws/src/main.go"), []byte("package main"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "outside/secret/key"), []byte("k"), 0o600))
	links := map[string]string{
		"ws/etc":        "/etc",                        // absolute, outside
		"ws/code":       filepath.Join(root, "ws/src"), // absolute, inside
		"ws/rel-in":     "src",                         // relative, inside
		"ws/rel-out":    "../outside/secret",           // relative, outside
		"ws/docs/up":    "../..",                       // relative, climbs out
		"ws/chain1":     "chain2",                      // chain ending outside
		"ws/chain2":     "chain3",
		"ws/chain3":     "../outside",
		"ws/chain-in":   "rel-in", // chain staying inside
		"ws/loop1":      "loop2",
		"ws/loop2":      "loop1",
		"ws/dangling":   "does-not-exist",
		"ws/src/parent": "..", // inside, points at ws
	}
	for name, target := range links {
		require.NoError(t, os.Symlink(target, filepath.Join(root, name)))
	}
	return root
}

// within is glob.Within for clean absolute paths (kept local so these tests
// do not depend on another package).
func within(p, root string) bool {
	return p == root || strings.HasPrefix(p, root+"/")
}

func TestResolve(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("POSIX paths and symlinks")
	}
	root := tree(t)
	ws := root + "/ws"
	tests := []struct {
		name, path, want string
		within           bool // want within ws
	}{
		{"plain file", ws + "/src/main.go", ws + "/src/main.go", true},
		{"workspace itself", ws, ws, true},
		{"link to etc", ws + "/etc/passwd", "/etc/passwd", false},
		{"link to etc itself", ws + "/etc", "/etc", false},
		{"absolute link inside", ws + "/code/main.go", ws + "/src/main.go", true},
		{"relative link inside", ws + "/rel-in/main.go", ws + "/src/main.go", true},
		{"relative link outside", ws + "/rel-out/key", root + "/outside/secret/key", false},
		{"relative link climbing", ws + "/docs/up/outside/secret/key", root + "/outside/secret/key", false},
		{"chain outside", ws + "/chain1/secret/key", root + "/outside/secret/key", false},
		{"chain inside", ws + "/chain-in/main.go", ws + "/src/main.go", true},
		{"missing tail kept", ws + "/src/new/dir/file.txt", ws + "/src/new/dir/file.txt", true},
		{"missing tail under link", ws + "/etc/nope/x", "/etc/nope/x", false},
		{"missing tail under relative link", ws + "/rel-out/new.txt", root + "/outside/secret/new.txt", false},
		{"link to parent", ws + "/src/parent/docs", ws + "/docs", true},
		{"file used as directory", ws + "/src/main.go/x", ws + "/src/main.go/x", true},
		{"nothing exists", "/no-such-root-dir-xyz/a/b", "/no-such-root-dir-xyz/a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := dest.Parse(tt.path, "")
			require.NoError(t, err)
			got, err := dest.Resolve(d)
			require.NoError(t, err)
			assert.Equal(t, dest.KindFile, got.Kind)
			assert.Equal(t, tt.want, got.Path)
			assert.Equal(t, tt.within, within(got.Path, ws), "within the workspace")
			again, err := dest.Resolve(got)
			require.NoError(t, err)
			assert.Equal(t, got, again, "Resolve is idempotent")
		})
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("POSIX paths and symlinks")
	}
	root := tree(t)
	ws := root + "/ws"
	tests := []struct {
		name, path, want string
	}{
		{"loop", ws + "/loop1", "cannot resolve"},
		{"under loop", ws + "/loop1/x", "cannot resolve"},
		{"dangling", ws + "/dangling", "cannot resolve symlinks"},
		{"under dangling", ws + "/dangling/x", "cannot resolve symlinks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := dest.Resolve(dest.Destination{Kind: dest.KindFile, Scheme: "file", Path: tt.path})
			require.Error(t, err)
			assert.ErrorIs(t, err, dest.ErrInvalid)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, dest.Destination{}, got)
		})
	}
	_, err := dest.Resolve(dest.Destination{Kind: dest.KindFile, Path: "relative"})
	require.Error(t, err)
}

func TestResolvePermission(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("needs a non-root POSIX user")
	}
	root := tree(t)
	locked := root + "/ws/locked"
	require.NoError(t, os.Mkdir(locked, 0o755))
	require.NoError(t, os.Chmod(locked, 0))
	t.Cleanup(func() { _ = os.Chmod(locked, 0o755) })
	_, err := dest.Resolve(dest.Destination{Kind: dest.KindFile, Scheme: "file", Path: locked + "/x"})
	require.Error(t, err)
	assert.ErrorIs(t, err, dest.ErrInvalid)
}

func TestResolveOtherKinds(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "https://example.com/a", "bob@example.org", "db://orders"} {
		d, err := dest.Parse(raw, "")
		require.NoError(t, err)
		got, err := dest.Resolve(d)
		require.NoError(t, err)
		assert.Equal(t, d, got)
	}
}
