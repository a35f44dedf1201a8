package glob_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/internal/glob"
)

// linearMatches is the definition AppendMatches must agree with.
func linearMatches(patterns []string, name string) []int {
	var out []int
	for i, p := range patterns {
		if glob.Match(p, name) {
			out = append(out, i)
		}
	}
	return out
}

// assertIndexAgrees checks AppendMatches against linearMatches for every
// name, with and without elements already in dst.
func assertIndexAgrees(t *testing.T, patterns []string, names ...string) {
	t.Helper()
	ix := glob.NewIndex(patterns)
	require.Equal(t, len(patterns), ix.Len())
	for _, name := range names {
		want := linearMatches(patterns, name)
		got := ix.AppendMatches(nil, name)
		if !assert.Equal(t, want, got, "patterns %q, name %q", patterns, name) {
			return
		}
		pre := []int{-7, 99}
		got = ix.AppendMatches(pre, name)
		assert.Equal(t, append([]int{-7, 99}, want...), got, "existing elements of dst must stay")
	}
}

func TestIndex(t *testing.T) {
	t.Parallel()
	// Every node of the tries and the automaton has a child for every
	// letter and digit.
	var wide []string
	for c := range byte(128) {
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			wide = append(wide, "t."+string(c)+".*", "*."+string(c), "*"+string(c)+string(c)+"*")
		}
	}
	tests := []struct {
		name     string
		patterns []string
		names    []string
	}{
		{"empty", nil, []string{"", "a"}},
		{"empty pattern", []string{"", "*", "a"}, []string{"", "a", "b"}},
		{"exact", []string{"github.create_issue", "github.close_issue"}, []string{"github.create_issue", "github.create_issuE", "github.close_issue", "github"}},
		{"stars only", []string{"*", "**", "***"}, []string{"", "x", "anything.at.all"}},
		{"prefix", []string{"github.*", "git*", "g*", "github.create*"}, []string{"github.create_issue", "github.", "github", "gitlab.x", "x"}},
		{"suffix", []string{"*.read", "*read", "*d", "*.read.more"}, []string{"fs.read", "fs.read.more", "read", "d", "x"}},
		{"middle", []string{"*read*", "*a*", "*ea*", "*.*.*"}, []string{"fs.read.more", "a", "ea", "a.b.c", "x"}},
		{"prefix and suffix", []string{"fs.*.file", "fs.*", "*.file", "fs*file"}, []string{"fs.read.file", "fs.file", "fs..file", "fsfile", "fs.filex"}},
		{"overlapping literals", []string{"a*b*c", "a*c", "*b*", "*bc", "ab*"}, []string{"abc", "aXbYc", "aXbYcZ", "acb", "bc"}},
		{"repeated middle", []string{"*aa*", "*a*a*", "*aaa*", "*a*aa*a*"}, []string{"a", "aa", "aaa", "aaaa", "aXaXa", strings.Repeat("a", 50)}},
		{"pathological", []string{"*a*a*a*a*b"}, []string{strings.Repeat("a", 100), strings.Repeat("a", 100) + "b"}},
		{"duplicates", []string{"x.*", "*", "x.*", "x.y", "x.y", "*"}, []string{"x.y", "x.z", "y"}},
		{"same key", []string{"tool.*a", "tool.*b", "tool.*a*", "tool.*"}, []string{"tool.a", "tool.b", "tool.ab", "tool.", "tool"}},
		{"case", []string{"GitHub.*", "*.Read"}, []string{"github.x", "GitHub.x", "fs.read", "fs.Read"}},
		{"colons and slashes", []string{"mcp:server/*", "*/tool", "mcp:*:x"}, []string{"mcp:server/tool", "mcp:a:x", "other/tool"}},
		{"non-ASCII", []string{"é*", "*é", "*\xff*"}, []string{"é-x", "x-é", "a\xffb", "\xff"}},
		{"wide fanout", wide, []string{"t.0.x", "t.9.x", "t.Z.x", "t.z.x", "t.~.x", "x.0", "x.z", "x.~", "0z.", "z0."}},
		{"long name", []string{"a*", "*z", "*m*"}, []string{strings.Repeat("am", 5000) + "z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertIndexAgrees(t, tt.patterns, tt.names...)
		})
	}
}

func TestIndexMatchCases(t *testing.T) {
	t.Parallel()
	var patterns, names []string
	for _, c := range matchCases {
		patterns = append(patterns, c.pattern)
		names = append(names, c.name)
	}
	assertIndexAgrees(t, patterns, names...)
}

func TestIndexNil(t *testing.T) {
	t.Parallel()
	var ix *glob.Index
	assert.Zero(t, ix.Len())
	assert.Nil(t, ix.AppendMatches(nil, "x"))
	assert.Equal(t, []int{1}, ix.AppendMatches([]int{1}, "x"))

	var zero glob.Index
	assert.Zero(t, zero.Len())
	assert.Nil(t, zero.AppendMatches(nil, ""))
}

func TestIndexCopiesPatterns(t *testing.T) {
	t.Parallel()
	patterns := []string{"a.*", "b.*"}
	ix := glob.NewIndex(patterns)
	patterns[0] = "c.*"
	assert.Equal(t, []int{0}, ix.AppendMatches(nil, "a.x"))
}

// randomPatterns returns n patterns over alphabet and `*`.
func randomPatterns(r *rand.Rand, alphabet string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = randomString(r, alphabet+"**", r.IntN(7))
	}
	return out
}

// randomString returns a string of up to n bytes from alphabet, half of
// them starting with "t." so that trie nodes below the root fan out too.
func randomString(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, 0, n+2)
	if r.IntN(2) == 0 {
		b = append(b, "t."...)
	}
	for range n {
		b = append(b, alphabet[r.IntN(len(alphabet))])
	}
	return string(b)
}

func TestIndexDifferential(t *testing.T) {
	t.Parallel()
	rounds := 500
	if testing.Short() {
		rounds = 200
	}
	// A small alphabet makes literals overlap, share prefixes and repeat; a
	// large one gives trie nodes many children.
	alphabets := []string{"ab.", "ab.", "abcdefghijklmnopqrstuvwxyz0123456789.", "0123456789abcdef"}
	for seed, alphabet := range alphabets {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(uint64(seed), 1))
			for range rounds {
				patterns := randomPatterns(r, alphabet, 1+r.IntN(200))
				names := make([]string, 20)
				for i := range names {
					names[i] = randomString(r, alphabet, r.IntN(12))
				}
				assertIndexAgrees(t, patterns, names...)
				if t.Failed() {
					return
				}
			}
		})
	}
}

func TestIndexConcurrent(t *testing.T) {
	t.Parallel()
	patterns := []string{"tool.*", "*.read", "*a*b*", "*", "x.y", "*ab*"}
	ix := glob.NewIndex(patterns)
	names := []string{"tool.read", "a.b", "x.y", "abab.read", ""}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var buf []int
			for i := range 500 {
				name := names[(g+i)%len(names)]
				buf = ix.AppendMatches(buf[:0], name)
				if !assert.Equal(t, linearMatches(patterns, name), buf) {
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestIndexNoAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are checked in the full run without -race")
	}
	ix := glob.NewIndex([]string{"tool.*", "*.read", "*a*b*", "*", "x.y", "*ab*", "x.y"})
	buf := make([]int, 0, 16)
	allocs := testing.AllocsPerRun(200, func() {
		for _, name := range []string{"tool.read", "abab.read", "x.y", "nothing"} {
			buf = ix.AppendMatches(buf[:0], name)
		}
	})
	assert.Zero(t, allocs)
}
