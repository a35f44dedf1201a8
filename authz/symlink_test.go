package authz

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Rules see the real path of a file destination: a symlink inside the
// workspace that points outside is outside.
func TestFileDestinationsResolveSymlinks(t *testing.T) {
	t.Parallel()
	root, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	ws := filepath.Join(root, "ws")
	outside := filepath.Join(root, "outside")
	require.NoError(t, os.MkdirAll(filepath.Join(ws, "sub"), 0o755))
	require.NoError(t, os.MkdirAll(outside, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("x"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(ws, "escape")))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(ws, "passwd")))
	require.NoError(t, os.Symlink("sub", filepath.Join(ws, "inner")))
	require.NoError(t, os.Symlink("escape", filepath.Join(ws, "chain")))
	require.NoError(t, os.Symlink("loop", filepath.Join(ws, "loop")))

	g, _ := mustGuard(t, `rules: [{name: workspace, tools: ["fs.*"], effect: allow, when: 'destination.path.within(task.labels.workdir)'}]`)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Labels: map[string]string{"workdir": ws}})
	require.NoError(t, err)
	defer task.End()
	cases := []struct {
		dest string
		want Effect
		rule string
		path string
	}{
		{"escape/secret.txt", Deny, RuleNoMatch, filepath.Join(outside, "secret.txt")},
		{filepath.Join(ws, "escape", "new-file"), Deny, RuleNoMatch, filepath.Join(outside, "new-file")},
		{"./passwd", Deny, RuleNoMatch, "/etc/passwd"},
		{"chain/secret.txt", Deny, RuleNoMatch, filepath.Join(outside, "secret.txt")},
		{"file://" + filepath.Join(ws, "escape", "secret.txt"), Deny, RuleNoMatch, filepath.Join(outside, "secret.txt")},
		{"inner/notes.txt", Allow, "workspace", filepath.Join(ws, "sub", "notes.txt")},
		{"sub/new/deeper.txt", Allow, "workspace", filepath.Join(ws, "sub", "new", "deeper.txt")},
		{"loop/x", Deny, RuleDestination, ""},
	}
	for _, tc := range cases {
		d := g.Check(ctx, Call{Tool: "fs.read", Intent: "read", Destination: tc.dest})
		assert.Equal(t, tc.want, d.Effect, "%s: %s", tc.dest, d.Reason)
		assert.Equal(t, tc.rule, d.Rule, "%s: %s", tc.dest, d.Reason)
		if tc.path != "" {
			assert.Equal(t, tc.path, d.Destination, tc.dest)
		}
	}
}
