package glob_test

import (
	"fmt"
	"testing"

	"github.com/taskguard/taskguard/internal/glob"
)

var sinkBool bool

func BenchmarkMatch(b *testing.B) {
	cases := []struct{ name, pattern, in string }{
		{"exact", "github.create_issue", "github.create_issue"},
		{"prefix", "github.*", "github.create_issue"},
		{"two_stars", "*.create_*", "github.create_issue"},
		{"miss", "slack.*", "github.create_issue"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkBool = glob.Match(c.pattern, c.in)
			}
		})
	}
}

func BenchmarkHost(b *testing.B) {
	cases := []struct{ name, pattern, host string }{
		{"exact", "api.github.com", "api.github.com"},
		{"wildcard", "*.github.com", "api.github.com"},
		{"two_stars", "*.s3.*.amazonaws.com", "bucket.s3.eu-west-1.amazonaws.com"},
		{"miss", "*.github.com", "example.org"},
		{"ipv4", "169.254.169.254", "169.254.169.254"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ok, err := glob.Host(c.pattern, c.host)
				if err != nil {
					b.Fatal(err)
				}
				sinkBool = ok
			}
		})
	}
}

func BenchmarkHostParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := glob.Host("*.github.com", "api.github.com"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkWithin(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = glob.Within("/workspace/src/main.go", "/workspace")
	}
}

var sinkInts []int

// benchPatterns returns n patterns of three kinds: "tool.N.*", "*.N" and
// "a*N*b".
func benchPatterns(n int) []string {
	out := make([]string, n)
	for i := range out {
		switch i % 3 {
		case 0:
			out[i] = fmt.Sprintf("tool.%d.*", i)
		case 1:
			out[i] = fmt.Sprintf("*.%d", i)
		default:
			out[i] = fmt.Sprintf("a*%d*b", i)
		}
	}
	return out
}

// benchNames returns 20,000 distinct names. Matching names fit pattern
// k mod n (and possibly a few others); missing names share prefixes, digits
// and suffixes with the patterns but match none.
func benchNames(n int, match bool) []string {
	// tag spells k in letters so that it contains no pattern's digits.
	tag := func(k int) string {
		b := []byte(fmt.Sprint(k))
		for i := range b {
			b[i] += 'p' - '0'
		}
		return string(b)
	}
	out := make([]string, 20_000)
	for k := range out {
		i := k % n
		switch {
		case !match:
			out[k] = [...]string{"tool.%d", "x.%d.y", "a.%d.c"}[k%3]
			out[k] = fmt.Sprintf(out[k], k)
		case i%3 == 0:
			out[k] = fmt.Sprintf("tool.%d.%s", i, tag(k))
		case i%3 == 1:
			out[k] = fmt.Sprintf("%s.%d", tag(k), i)
		default:
			out[k] = fmt.Sprintf("a.%s.%d.b", tag(k), i)
		}
	}
	return out
}

// BenchmarkIndex looks up names rotating over 20,000 distinct names in an
// Index of 1, 50 and 10,000 patterns, reusing the result slice.
func BenchmarkIndex(b *testing.B) {
	for _, n := range []int{1, 50, 10_000} {
		ix := glob.NewIndex(benchPatterns(n))
		for _, match := range []bool{true, false} {
			names := benchNames(n, match)
			b.Run(fmt.Sprintf("patterns=%d/match=%v", n, match), func(b *testing.B) {
				b.ReportAllocs()
				buf := make([]int, 0, 64)
				k := 0
				for b.Loop() {
					buf = ix.AppendMatches(buf[:0], names[k])
					if match && len(buf) == 0 || !match && len(buf) != 0 {
						b.Fatalf("%q matched %v", names[k], buf)
					}
					if k++; k == len(names) {
						k = 0
					}
				}
				sinkInts = buf
			})
		}
	}
}

// BenchmarkIndexLinear is what BenchmarkIndex replaces: Match against every
// pattern in turn.
func BenchmarkIndexLinear(b *testing.B) {
	for _, n := range []int{50, 10_000} {
		patterns := benchPatterns(n)
		for _, match := range []bool{true, false} {
			names := benchNames(n, match)
			b.Run(fmt.Sprintf("patterns=%d/match=%v", n, match), func(b *testing.B) {
				b.ReportAllocs()
				buf := make([]int, 0, 64)
				k := 0
				for b.Loop() {
					buf = buf[:0]
					for i, p := range patterns {
						if glob.Match(p, names[k]) {
							buf = append(buf, i)
						}
					}
					if k++; k == len(names) {
						k = 0
					}
				}
				sinkInts = buf
			})
		}
	}
}

func BenchmarkIndexParallel(b *testing.B) {
	ix := glob.NewIndex(benchPatterns(10_000))
	names := benchNames(10_000, true)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]int, 0, 64)
		k := 0
		for pb.Next() {
			buf = ix.AppendMatches(buf[:0], names[k])
			if k++; k == len(names) {
				k = 0
			}
		}
	})
}

func BenchmarkNewIndex(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		patterns := benchPatterns(n)
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = glob.NewIndex(patterns)
			}
		})
	}
}
