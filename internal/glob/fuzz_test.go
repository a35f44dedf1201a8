package glob_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/internal/glob"
)

// FuzzHost checks that Host never panics, never matches on error, agrees
// with a naive reference matcher, ignores ASCII case, and that "*.x" never
// matches x itself.
func FuzzHost(f *testing.F) {
	for _, c := range hostCases {
		f.Add(c.pattern, c.host)
	}
	f.Add("*.*.*.*.*.*.*.*.*.*.b", strings.Repeat("a.", 60)+"c")
	f.Add("a*b", "ab")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, pattern, host string) {
		ok, err := glob.Host(pattern, host)
		if err != nil && ok {
			t.Fatalf("Host(%q, %q) = true with error %v", pattern, host, err)
		}
		if self, err := glob.Host("*."+pattern, pattern); self {
			t.Fatalf("Host(%q, %q) = true, %v", "*."+pattern, pattern, err)
		}
		if err != nil {
			return
		}
		if upper, err := glob.Host(pattern, strings.ToUpper(host)); strings.ToUpper(host) != host && isASCII(host) && (err != nil || upper != ok) {
			t.Fatalf("Host(%q, %q) = %v but upper-case host gives %v, %v", pattern, host, ok, upper, err)
		}
		if host == "" {
			if ok {
				t.Fatalf("Host(%q, \"\") = true", pattern)
			}
			return
		}
		p := strings.Split(strings.TrimSuffix(pattern, "."), ".")
		h := strings.Split(strings.TrimSuffix(host, "."), ".")
		if len(p)*len(h) > 400 {
			return // keep the exponential reference fast
		}
		if want := naiveHost(p, h); want != ok {
			t.Fatalf("Host(%q, %q) = %v, reference says %v", pattern, host, ok, want)
		}
	})
}

// FuzzMatch checks Match against a naive reference matcher.
func FuzzMatch(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.pattern, c.name)
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 24 || len(name) > 48 || strings.Count(pattern, "*") > 6 {
			return // keep the exponential reference fast
		}
		if got, want := glob.Match(pattern, name), naiveMatch(pattern, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, name, got, want)
		}
	})
}

// FuzzWithin checks Within against a definition by path elements.
func FuzzWithin(f *testing.F) {
	f.Add("/workspace/a", "/workspace")
	f.Add("/workspace2", "/workspace")
	f.Add("/workspace/../etc", "/workspace")
	f.Add("/", "/")
	f.Fuzz(func(t *testing.T, p, root string) {
		got := glob.Within(p, root)
		if !strings.HasPrefix(p, "/") || !strings.HasPrefix(root, "/") {
			if got {
				t.Fatalf("Within(%q, %q) = true for a relative path", p, root)
			}
			return
		}
		pe := elems(p)
		re := elems(root)
		want := len(pe) >= len(re)
		for i := 0; want && i < len(re); i++ {
			want = pe[i] == re[i]
		}
		if got != want {
			t.Fatalf("Within(%q, %q) = %v, want %v", p, root, got, want)
		}
	})
}

// elems returns the elements of an absolute path after resolving "." and
// "..", never above the root.
func elems(p string) []string {
	var out []string
	for _, e := range strings.Split(p, "/") {
		switch e {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, e)
		}
	}
	return out
}

// FuzzIndex checks that Index.AppendMatches reports exactly the patterns
// that Match accepts, in ascending order. Patterns are given one a line.
func FuzzIndex(f *testing.F) {
	var all []string
	for _, c := range matchCases {
		all = append(all, c.pattern)
		f.Add(c.pattern, c.name)
	}
	f.Add(strings.Join(all, "\n"), "github.create_issue")
	f.Add("tool.*\n*.read\n*a*b*\n*\nx.y\n*ab*\nx.y", "abab.read")
	f.Add("*a*z\n*aa*z\n*aaa*z\n*a*a*", "aaaaaaaa")
	f.Add("fs.*.file\nfs.*\n*.file\nfs*file", "fs..file")
	f.Add("t.0.*\nt.1.*\nt.2.*\nt.3.*\nt.4.*\nt.5.*\nt.6.*\nt.7.*\nt.8.*\nt.9.*\nt.a.*", "t.5.x")
	f.Fuzz(func(t *testing.T, lines, name string) {
		patterns := strings.Split(lines, "\n")
		if len(patterns) > 64 || len(lines) > 1024 || len(name) > 256 {
			return
		}
		ix := glob.NewIndex(patterns)
		if ix.Len() != len(patterns) {
			t.Fatalf("Len() = %d for %d patterns", ix.Len(), len(patterns))
		}
		got := ix.AppendMatches([]int{-1}, name)
		want := append([]int{-1}, linearMatches(patterns, name)...)
		if !slices.Equal(got, want) {
			t.Fatalf("AppendMatches(%q) over %q = %v, Match says %v", name, patterns, got[1:], want[1:])
		}
	})
}
