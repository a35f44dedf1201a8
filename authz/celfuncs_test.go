package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskguard/taskguard/internal/dest"
)

func TestExtractURLs(t *testing.T) {
	t.Parallel()
	got, err := extractURLs("See https://Docs.Example.org./a?x=1, and (http://example.net/b). Also HTTPS://x.example.com/c\"d <https://y.example.com/>; plain www.z.example is not a link")
	require.NoError(t, err)
	assert.Equal(t, []string{"https://docs.example.org/a", "http://example.net/b", "https://x.example.com/c", "https://y.example.com/"}, got)
	got, err = extractURLs("no links here")
	require.NoError(t, err)
	assert.Empty(t, got)
	_, err = extractURLs("click http://user@evil.example/ now")
	require.Error(t, err, "a link that does not canonicalise fails, it is not skipped")
}

func TestSHA256AndURLsInPolicies(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("correct horse"))
	pin := hex.EncodeToString(sum[:])
	g, _ := mustGuard(t, `rules:
  - name: pinned
    tools: ["vault.unlock"]
    effect: allow
    when: sha256(args.password) == task.labels.pin
  - name: links-stay-in-scope
    tools: ["mail.send"]
    effect: allow
    when: args.body.urls().all(u, u.startsWith("https://docs.example.org/"))
`)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Labels: map[string]string{"pin": pin}})
	require.NoError(t, err)
	defer task.End()
	check := func(tool string, args map[string]any) Decision {
		return g.Check(ctx, Call{Tool: tool, Intent: "write", Args: args})
	}
	assert.Equal(t, Allow, check("vault.unlock", map[string]any{"password": "correct horse"}).Effect)
	assert.Equal(t, Deny, check("vault.unlock", map[string]any{"password": "wrong"}).Effect)
	assert.Equal(t, Allow, check("mail.send", map[string]any{"body": "read https://docs.example.org/guide."}).Effect)
	assert.Equal(t, Deny, check("mail.send", map[string]any{"body": "read https://docs.example.org/guide and https://evil.example/x"}).Effect)
	d := check("mail.send", map[string]any{"body": "http://user@evil.example/"})
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, "links-stay-in-scope", d.Rule, "an unreadable link denies")
}

// FuzzExtractURLs: never panics, and every URL found is canonical (parses
// to itself).
func FuzzExtractURLs(f *testing.F) {
	for _, s := range []string{"see https://example.org/a, ok", "HTTP://X.example/..%2f", "https://[::1]:80/", "http://", "hhttps://a.b/c)", "https://a.example/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		urls, err := extractURLs(text)
		if err != nil {
			return
		}
		for _, u := range urls {
			_, canon, err := dest.ParseText(u, "")
			if err != nil || canon != u {
				t.Fatalf("url %q from %q is not canonical (%q, %v)", u, text, canon, err)
			}
		}
	})
}

// TestURLsElementsAreBounded: string functions whose cost grows with the
// length of each URL (contains, size, matches...) load under the default
// cost limit: each URL has a bounded size.
func TestURLsElementsAreBounded(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `rules:
  - name: links-to-named-hosts
    tools: ["chat.post"]
    effect: allow
    when: args.body.urls().all(u, u.startsWith("https://docs.example.org/") && !u.contains("%") && u.size() < 200)
`)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	check := func(body string) Effect {
		return g.Check(ctx, Call{Tool: "chat.post", Intent: "write", Args: map[string]any{"body": body}}).Effect
	}
	assert.Equal(t, Allow, check("see https://docs.example.org/guide"))
	assert.Equal(t, Deny, check("see https://docs.example.org/guide and https://evil.example/?q=docs.example.org"))
	assert.Equal(t, Deny, check("see https://docs.example.org/a%20b"))
	assert.Equal(t, Allow, check("no links"))
}

func TestURLsTooLongDenies(t *testing.T) {
	t.Parallel()
	long := "https://example.org/" + strings.Repeat("a", MaxDestinationSize)
	_, err := extractURLs("see " + long)
	require.Error(t, err)
}
