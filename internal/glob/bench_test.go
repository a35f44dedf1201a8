package glob_test

import (
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
