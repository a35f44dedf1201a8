package glob

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestIndexCandidates checks that the number of patterns a lookup tries does
// not grow with the number of patterns that do not match: the same names
// try as many candidates among 100 patterns as among 10,000.
func TestIndexCandidates(t *testing.T) {
	t.Parallel()
	families := []struct {
		name    string
		pattern func(i int) string
		names   []string
		max     int // candidates tried per name, at most
	}{
		{"prefix", func(i int) string { return fmt.Sprintf("tool.%d.*", i) },
			[]string{"tool.7.run", "tool.x", "other.7.run", "tool.77777777.x"}, 1},
		{"suffix", func(i int) string { return fmt.Sprintf("*.%d", i) },
			[]string{"x.7", "x.y", "7.x", "x.77777777"}, 1},
		{"middle", func(i int) string { return fmt.Sprintf("a*.%d.*b", i) },
			[]string{"a.7.b", "x.7.y", "a.x.b", "a.12345.b"}, 5},
		{"shared prefix, distinct suffix", func(i int) string { return fmt.Sprintf("tool.*.%d", i) },
			[]string{"tool.x.7", "tool.x.y", "tool.7", "tool.x.777777"}, 1},
		{"shared prefix and suffix, distinct middle", func(i int) string { return fmt.Sprintf("tool.*.%d.*.run", i) },
			[]string{"tool.x.7.y.run", "tool.x.y.run", "tool.7.run", "tool.x.12.34.run"}, 5},
		{"mixed", func(i int) string {
			switch i % 3 {
			case 0:
				return fmt.Sprintf("tool.%d.*", i)
			case 1:
				return fmt.Sprintf("*.%d", i)
			}
			return fmt.Sprintf("a*%d*b", i)
		}, []string{"tool.3.x", "x.4", "a5b", "zzz", "a123b", "q.123.r"}, 20},
	}
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			tried := func(n int) []int {
				patterns := make([]string, n)
				for i := range patterns {
					patterns[i] = f.pattern(i)
				}
				ix := NewIndex(patterns)
				var out []int
				for _, name := range f.names {
					_, c := ix.lookup(nil, name)
					out = append(out, c)
				}
				return out
			}
			small, large := tried(100), tried(10_000)
			for i, name := range f.names {
				assert.LessOrEqual(t, large[i], f.max, "name %q", name)
				// Keys over 100 patterns are a subset of those over 10,000;
				// the extra candidates are the longer literals occurring in
				// the name, which is bounded by len(name), not the count.
				assert.LessOrEqual(t, large[i]-small[i], len(name), "name %q", name)
			}
		})
	}
}

// TestIndexRepeatedKey checks that a middle literal occurring many times in
// a name tries its patterns once.
func TestIndexRepeatedKey(t *testing.T) {
	t.Parallel()
	ix := NewIndex([]string{"*a*z", "*aa*z", "*aaa*z"})
	got, tried := ix.lookup(nil, strings.Repeat("a", 1000))
	assert.Empty(t, got)
	assert.Equal(t, 3, tried)
}

// TestIndexDuplicatePatterns checks that identical patterns are tried once.
func TestIndexDuplicatePatterns(t *testing.T) {
	t.Parallel()
	patterns := make([]string, 1000)
	for i := range patterns {
		patterns[i] = "x*y"
	}
	ix := NewIndex(patterns)
	got, tried := ix.lookup(nil, "xz")
	assert.Empty(t, got)
	assert.Equal(t, 1, tried)
	got, tried = ix.lookup(nil, "xzy")
	assert.Len(t, got, 1000)
	assert.Equal(t, 1, tried)
}

func TestKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern string
		want    []key
	}{
		{"*", nil},
		{"***", nil},
		{"a*", []key{{atStart, "a"}}},
		{"*a", []key{{atEnd, "a"}}},
		{"*a*", []key{{inside, "a"}}},
		{"a*b", []key{{atStart, "a"}, {atEnd, "b"}}},
		{"a**b*c**d", []key{{atStart, "a"}, {atEnd, "d"}, {inside, "b"}, {inside, "c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			t.Parallel()
			var got []key
			keys(tt.pattern, func(k key) { got = append(got, k) })
			assert.Equal(t, tt.want, got)
		})
	}
}
