package dest_test

import (
	"testing"

	"github.com/taskguard/taskguard/internal/dest"
)

var benchInputs = []struct {
	name, raw string
}{
	{"canonical_https", "https://api.github.com/repos/x/y"},
	{"ip_url", "http://10.0.0.1:8080/metrics"},
	{"file_path", "/workspace/src/main.go"},
	{"relative_path", "./src/main.go"},
	{"email", "bob@example.org"},
	{"opaque", "db://orders"},
	{"mixed_case_url", "HTTPS://API.GitHub.com./repos/x/../y/"},
	{"unicode_host", "https://bücher.example/x"},
	{"ipv6_url", "https://[2606:4700::1111]/"},
}

// sink keeps the compiler from discarding benchmark results.
var sink dest.Destination

func BenchmarkParse(b *testing.B) {
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d, err := dest.Parse(in.raw, "/workspace")
				if err != nil {
					b.Fatal(err)
				}
				sink = d
			}
		})
	}
}

func BenchmarkParseParallel(b *testing.B) {
	for _, in := range benchInputs[:5] {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := dest.Parse(in.raw, "/workspace"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkString(b *testing.B) {
	d, err := dest.Parse("https://api.github.com/repos/x/y", "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = d.String()
	}
}

// textSink keeps the compiler from discarding ParseText's text.
var textSink string

func BenchmarkParseText(b *testing.B) {
	inputs := []struct{ name, raw string }{
		{"canonical", "https://api.github.com/repos/taskguard/taskguard"},
		{"canonical_query", "https://api.github.com/repos/taskguard/taskguard?page=2"},
		{"canonical_port", "http://example.com:8080/metrics"},
		{"non_canonical", "HTTPS://API.GitHub.com./repos/x/../y/"},
		{"ip_url", "http://10.0.0.1:8080/metrics"},
		{"file_path", "/workspace/src/main.go"},
		{"email", "bob@example.org"},
		{"opaque", "db://orders"},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d, text, err := dest.ParseText(in.raw, "/workspace")
				if err != nil {
					b.Fatal(err)
				}
				sink, textSink = d, text
			}
		})
	}
}

// BenchmarkParseThenText is what ParseText replaces: Parse, then the
// canonical text rebuilt and compared with the input.
func BenchmarkParseThenText(b *testing.B) {
	raw := "https://api.github.com/repos/taskguard/taskguard"
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		d, err := dest.Parse(raw, "/workspace")
		if err != nil {
			b.Fatal(err)
		}
		buf = d.AppendText(buf[:0])
		if string(buf) == raw {
			textSink = raw
		}
		sink = d
	}
}
