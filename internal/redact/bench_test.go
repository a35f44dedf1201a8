package redact_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/internal/redact"
)

var (
	sinkString string
	sinkBool   bool
)

// benchSecrets returns n random tokens of length 20 to 40.
func benchSecrets(n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	secrets := make([][]byte, n)
	for i := range secrets {
		secrets[i] = randomToken(rng, 20+rng.IntN(21))
	}
	return secrets
}

// benchText returns 64 KiB of realistic text with the given number of
// occurrences of secrets.
func benchText(secrets [][]byte, occurrences int) string {
	rng := rand.New(rand.NewPCG(2, uint64(occurrences)))
	return buildText(rng, 64<<10, secrets, occurrences)[:64<<10]
}

func BenchmarkReplace(b *testing.B) {
	for _, bc := range []struct{ secrets, occurrences int }{
		{100, 20},
		{100, 0},
		{1000, 20},
		{1000, 0},
		{10, 20},
	} {
		secrets := benchSecrets(bc.secrets)
		text := benchText(secrets, bc.occurrences)
		m, err := redact.New(secrets)
		if err != nil {
			b.Fatal(err)
		}
		if got := strings.Count(m.Replace(text, "\x00"), "\x00"); got != bc.occurrences {
			b.Fatalf("text has %d occurrences, want %d", got, bc.occurrences)
		}
		b.Run(fmt.Sprintf("secrets=%d/occurrences=%d", bc.secrets, bc.occurrences), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				sinkString = m.Replace(text, "[REDACTED]")
			}
		})
	}
}

// BenchmarkReplaceNaive is the baseline Replace replaces: one
// strings.ReplaceAll per secret.
func BenchmarkReplaceNaive(b *testing.B) {
	secrets := benchSecrets(100)
	text := benchText(secrets, 20)
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		s := text
		for _, sec := range secrets {
			s = strings.ReplaceAll(s, string(sec), "[REDACTED]")
		}
		sinkString = s
	}
}

func BenchmarkReplaceParallel(b *testing.B) {
	secrets := benchSecrets(100)
	text := benchText(secrets, 20)
	m, err := redact.New(secrets)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if m.Replace(text, "[REDACTED]") == text {
				b.Error("nothing replaced")
				return
			}
		}
	})
}

func BenchmarkContains(b *testing.B) {
	for _, n := range []int{100, 1000} {
		secrets := benchSecrets(n)
		text := benchText(secrets, 0)
		m, err := redact.New(secrets)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("secrets=%d/miss", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				sinkBool = m.Contains(text)
			}
		})
	}
}

func BenchmarkNew(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		secrets := benchSecrets(n)
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := redact.New(secrets); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReplaceSharedPrefix measures a hard case for the index: many
// secrets that share their first bytes, in text full of that shared prefix
// but without any whole secret, so that most probes pass the filter.
func BenchmarkReplaceSharedPrefix(b *testing.B) {
	secrets := make([][]byte, 100)
	for i := range secrets {
		secrets[i] = fmt.Appendf(nil, "password-%03d", i)
	}
	m, err := redact.New(secrets)
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("password-xyz ", 64<<10/13)
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		sinkString = m.Replace(text, "[REDACTED]")
	}
}
