package authz

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdversarialDestinations runs the adversarial destination corpus
// through the quickstart's example policy: every private address and every
// malformed destination is denied whatever its spelling, traversal never
// leaves the workspace, and the public controls still pass.
func TestAdversarialDestinations(t *testing.T) {
	t.Parallel()
	policy, err := LoadPolicyFiles("../examples/quickstart/policy.yaml")
	require.NoError(t, err)
	g, err := New(WithPolicy(policy))
	require.NoError(t, err)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{
		Agent:   Agent{ID: "spiffe://test/agent"},
		Intents: []string{"read"},
		Labels:  map[string]string{"workdir": "/workspace"},
	})
	require.NoError(t, err)
	defer task.End()

	f, err := os.Open("../internal/dest/testdata/adversarial.txt")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	counts := map[string]int{}
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		class, raw, ok := strings.Cut(text, " ")
		require.True(t, ok, "line %d", line)
		raw = strings.TrimSpace(raw)
		if strings.HasPrefix(raw, `"`) {
			raw, err = strconv.Unquote(raw)
			require.NoError(t, err, "line %d", line)
		}
		kind, want, _ := strings.Cut(class, ":") // public:<host> is checked by the dest corpus
		counts[kind]++
		t.Run(strconv.Itoa(line), func(t *testing.T) {
			fetch := g.Check(ctx, Call{Tool: "http.fetch", Intent: "read", Destination: raw})
			read := g.Check(ctx, Call{Tool: "fs.read", Intent: "read", Destination: raw})
			switch kind {
			case "private", "invalid":
				assert.Equal(t, Deny, fetch.Effect, "fetch %q: %+v", raw, fetch)
				assert.Equal(t, Deny, read.Effect, "read %q: %+v", raw, read)
			case "file":
				assert.Equal(t, Deny, fetch.Effect, "fetch %q", raw)
				inside := want == "/workspace" || strings.HasPrefix(want, "/workspace/")
				assert.Equal(t, inside, read.Effect == Allow, "read %q → %s: %+v", raw, want, read)
			case "public":
				if strings.HasPrefix(strings.ToLower(raw), "https://") {
					assert.Equal(t, Allow, fetch.Effect, "fetch %q: %+v", raw, fetch)
				}
				assert.Equal(t, Deny, read.Effect, "read %q", raw)
			default:
				t.Fatalf("line %d: unknown class %q", line, class)
			}
		})
	}
	require.NoError(t, sc.Err())
	assert.GreaterOrEqual(t, counts["private"]+counts["invalid"]+counts["file"], 40)
	assert.GreaterOrEqual(t, counts["public"], 10)
}
