package provenance_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/taskguard/taskguard/internal/provenance"
)

// naiveSeen is the reference: value and texts normalised alike, and
// strings.Index at every position with an explicit boundary check.
func naiveSeen(texts []string, value string) bool {
	v := provenance.Normalize(value)
	if v == "" {
		return false
	}
	first, _ := utf8.DecodeRuneInString(v)
	last, _ := utf8.DecodeLastRuneInString(v)
	for _, text := range texts {
		t := provenance.Normalize(text)
		for off := 0; off+len(v) <= len(t); {
			i := strings.Index(t[off:], v)
			if i < 0 {
				break
			}
			i += off
			before, _ := utf8.DecodeLastRuneInString(t[:i])
			after, _ := utf8.DecodeRuneInString(t[i+len(v):])
			leftOK := i == 0 || !provenance.IsWord(before) || !provenance.IsWord(first)
			rightOK := i+len(v) == len(t) || !provenance.IsWord(after) || !provenance.IsWord(last)
			if leftOK && rightOK {
				return true
			}
			off = i + 1
		}
	}
	return false
}

// checkNormal checks invariants of the normalisation itself.
func checkNormal(t *testing.T, s string) {
	t.Helper()
	n := provenance.Normalize(s)
	if !utf8.ValidString(n) {
		t.Fatalf("Normalize(%q) = %q is not valid UTF-8", s, n)
	}
	if provenance.Normalize(n) != n {
		t.Fatalf("Normalize is not idempotent on %q: %q then %q", s, n, provenance.Normalize(n))
	}
	if general, fast, ascii := provenance.SymbolsBothWays(s); ascii && !slices.Equal(general, fast) {
		t.Fatalf("symbols of %q: fast path %v, general %v", s, fast, general)
	}
	if strings.HasPrefix(n, " ") || strings.HasSuffix(n, " ") || strings.Contains(n, "  ") {
		t.Fatalf("Normalize(%q) = %q has untrimmed or uncollapsed space", s, n)
	}
}

// FuzzSeen compares Seen with the naive reference over two untrusted texts
// and one trusted text, for the value itself and for values cut from the
// texts (so that matches are frequent), and checks the normalisation.
func FuzzSeen(f *testing.F) {
	f.Add("Pay DE89 3704 0044 0532 0130 00 now", "bob@example.com wrote", "user: pay alice", "DE89 3704", uint8(4), uint8(9))
	f.Add("XDE89370400440532013000Y", "de89370400440532013000", "", "DE89370400440532013000", uint8(1), uint8(22))
	f.Add("jbob@example.community <bob@example.com>.", "a_b a-b", "Müller \u212aelvin", "bob@example.com", uint8(0), uint8(30))
	f.Add("a\xffb \xc3", "\u200bzero\u00adwidth\u00a0nbsp", "ǅ ǆ Ǆ ß ẞ ſ", "\xc3", uint8(3), uint8(5))
	f.Add("aaaa aaaa aaaa aaab", "aaa", "aa", "aaaa aaab", uint8(2), uint8(7))
	f.Add("  lead  and\ttrail  ", "x@", "@x", "and trail", uint8(0), uint8(255))
	f.Add("İstanbul ıi Iİ", "Σσς", "ﬃ ﬀ", "i̇stanbul", uint8(0), uint8(4))
	f.Fuzz(func(t *testing.T, u1, u2, tr, value string, from, n uint8) {
		if len(u1)+len(u2)+len(tr)+len(value) > 8192 {
			return
		}
		for _, s := range []string{u1, u2, tr, value} {
			checkNormal(t, s)
		}
		ix := provenance.New(1 << 20)
		ix.Add(u1, false)
		ix.Add(tr, true)
		ix.Add(u2, false)
		if ix.Truncated() {
			t.Fatal("truncated below the cap")
		}
		untrusted, trusted := []string{u1, u2}, []string{tr}
		values := []string{value}
		for _, s := range []string{u1, u2, tr} {
			if len(s) > 0 {
				i := int(from) % len(s)
				j := min(len(s), i+int(n))
				values = append(values, s[i:j], s[:j], s[i:])
			}
		}
		for _, v := range values {
			if got, want := ix.Seen(v, false), naiveSeen(untrusted, v); got != want {
				t.Fatalf("Seen(%q, false) = %v, want %v; untrusted %q", v, got, want, untrusted)
			}
			if got, want := ix.Seen(v, true), naiveSeen(trusted, v); got != want {
				t.Fatalf("Seen(%q, true) = %v, want %v; trusted %q", v, got, want, trusted)
			}
		}
		// A cap that holds both untrusted texts but makes the second start
		// a new chunk, so that the first is compacted.
		small := provenance.New(len(provenance.Normalize(u1)) + len(provenance.Normalize(u2)) + 2)
		small.Add(u1, false)
		small.Add(u2, false)
		if small.Truncated() {
			t.Fatal("truncated below the cap")
		}
		for _, v := range values {
			if got, want := small.Seen(v, false), naiveSeen(untrusted, v); got != want {
				t.Fatalf("compacted: Seen(%q, false) = %v, want %v; untrusted %q", v, got, want, untrusted)
			}
		}
		ix.Wipe()
		for _, v := range values {
			if ix.Seen(v, false) || ix.Seen(v, true) {
				t.Fatalf("Seen(%q) after Wipe", v)
			}
		}
	})
}
