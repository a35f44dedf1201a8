package redact_test

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/taskguard/taskguard/internal/redact"
)

// FuzzReplace compares Replace and Contains with the naive reference for up
// to three secrets, checks that New rejects exactly the short secrets, and
// that no secret survives redaction when the replacement cannot form one.
func FuzzReplace(f *testing.F) {
	f.Add([]byte("xabcdefghiy"), []byte("abcdef"), []byte("defghi"), []byte(""))
	f.Add([]byte("aaaaaaaaaaaaaaaaaaaa"), []byte("aaaaaa"), []byte("aaaaaaa"), []byte("aaaaaaaaaaaaaaaaaaaaaaa"))
	f.Add([]byte("token=s3cr3t-token; pw=hunter22!"), []byte("s3cr3t-token"), []byte("hunter22!"), []byte("pw"))
	f.Add([]byte("a\x00\xff\xfe\x80\x00\x01b\x00\xff\xfe"), []byte("\x00\xff\xfe\x80\x00\x01"), []byte("\xfe\x80\x00\x01b\x00"), []byte("\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("abcdefabcdef-abcdef"), []byte("abcdef"), []byte("fabcde"), []byte("cdef-abc"))
	f.Add([]byte("[REDACTED]ACTED]"), []byte("ACTED]"), []byte("[REDACTED]"), []byte("DACTED]AC"))
	f.Fuzz(func(t *testing.T, data, s1, s2, s3 []byte) {
		if len(data) > 4096 || len(s1)+len(s2)+len(s3) > 512 {
			return // keep the quadratic reference fast
		}
		all := [][]byte{s1, s2, s3}
		var secrets [][]byte
		for _, s := range all {
			if len(s) >= redact.MinLen {
				secrets = append(secrets, s)
			}
		}
		m, err := redact.New(all)
		if len(secrets) < len(all) {
			if err == nil || m != nil {
				t.Fatalf("New accepted a secret shorter than MinLen: %q", all)
			}
			first := slices.IndexFunc(all, func(s []byte) bool { return len(s) < redact.MinLen })
			want := fmt.Sprintf("redact: secret too short: secret %d has length %d, want at least %d", first, len(all[first]), redact.MinLen)
			if err.Error() != want {
				t.Fatalf("New error %q, want %q", err, want)
			}
			if m, err = redact.New(secrets); err != nil {
				t.Fatalf("New(%q): %v", secrets, err)
			}
		} else if err != nil {
			t.Fatalf("New(%q): %v", all, err)
		}

		// Besides data itself, check a text that data spells out of whole
		// secrets, halves of secrets and literal bytes, so that occurrences,
		// overlaps and near misses are common.
		var spelled []byte
		for i, c := range data {
			if len(spelled) > 4096 {
				break
			}
			switch c % 8 {
			case 0, 1, 2:
				spelled = append(spelled, all[c%8]...)
			case 3:
				sec := all[i%3]
				spelled = append(spelled, sec[len(sec)/2:]...)
			case 4:
				sec := all[i%3]
				spelled = append(spelled, sec[:len(sec)/2]...)
			default:
				spelled = append(spelled, c)
			}
		}
		for _, text := range [][]byte{data, spelled} {
			checkReplace(t, string(text), secrets, m)
		}
	})
}

// checkReplace compares m with the reference on s.
func checkReplace(t *testing.T, s string, secrets [][]byte, m *redact.Matcher) {
	t.Helper()
	for _, repl := range []string{"[REDACTED]", ""} {
		got, want := m.Replace(s, repl), naiveReplace(s, secrets, repl)
		if got != want {
			t.Fatalf("Replace(%q, %q) with secrets %q\n got %q\nwant %q", s, repl, secrets, got, want)
		}
	}
	// Text kept from s contains no whole secret: a secret may appear in
	// the output only where it overlaps a replacement.
	out, fromRepl := naiveReplaceMask(s, secrets, "[REDACTED]")
	for _, sec := range secrets {
		for i := 0; i+len(sec) <= len(out); i++ {
			if out[i:i+len(sec)] == string(sec) && !slices.Contains(fromRepl[i:i+len(sec)], true) {
				t.Fatalf("secret %q survives in %q at %d", sec, out, i)
			}
		}
	}
	// Find reports each occurrence of each secret exactly once.
	got := make([]int, len(secrets))
	m.Find(s, func(i int) bool { got[i]++; return true })
	for i, sec := range secrets {
		want := 0
		for j := 0; j+len(sec) <= len(s); j++ {
			if s[j:j+len(sec)] == string(sec) {
				want++
			}
		}
		if got[i] != want {
			t.Fatalf("Find(%q) with secrets %q found secret %d %d times, want %d", s, secrets, i, got[i], want)
		}
	}
	contains := m.Contains(s)
	if want := naiveContains(s, secrets); contains != want {
		t.Fatalf("Contains(%q) with secrets %q = %v, want %v", s, secrets, contains, want)
	}
	if got := m.Replace(s, "[REDACTED]"); !contains && got != s {
		t.Fatalf("Replace changed %q to %q although nothing matched", s, got)
	}
}

// FuzzForms checks that a matcher of the forms of a secret finds the secret
// in every encoding of any text containing it, and that replacing leaves
// no encoding of the secret itself. Unescape must undo every escaping.
func FuzzForms(f *testing.F) {
	f.Add([]byte("ghp_0123456789abcdefSECRET"), []byte("user:"), []byte(""), uint8(0))
	f.Add([]byte("p@ss w/ord+&=?#%"), []byte("a"), []byte(":b"), uint8(5))
	f.Add([]byte("\x00\xff\xfe\x80\x81\x82"), []byte("ab"), []byte("c"), uint8(12))
	f.Add([]byte("<tag>&\"x\"</tag>"), []byte(""), []byte("tail"), uint8(16))
	f.Add([]byte("abcdef"), []byte("Basic "), []byte(""), uint8(14))
	f.Fuzz(func(t *testing.T, secret, before, after []byte, which uint8) {
		if len(secret) > 256 || len(before) > 64 || len(after) > 64 {
			return
		}
		forms := redact.Forms(secret)
		if len(secret) < redact.MinLen {
			if forms != nil {
				t.Fatalf("Forms of a %d-byte secret: %d forms", len(secret), len(forms))
			}
			return
		}
		for i, f := range forms {
			if !bytes.Contains(secret, []byte{0}) && bytes.Contains(f, []byte{0}) {
				t.Fatalf("form %d of %q has a NUL byte the secret lacks: %q", i, secret, f)
			}
		}
		m, err := redact.New(forms)
		if err != nil {
			t.Fatalf("New(Forms(%q)): %v", secret, err)
		}
		enc := encodings[int(which)%len(encodings)]
		if strings.HasPrefix(enc.name, "json") && !utf8.Valid(secret) {
			return // JSON does not keep invalid UTF-8
		}
		text := enc.enc(string(before) + string(secret) + string(after))
		if !m.Contains(text) {
			t.Fatalf("%s: %q not found in %q", enc.name, secret, text)
		}
		// A replacement byte that the encoded secret lacks cannot help
		// spell it again.
		whole := enc.enc(string(secret))
		repl := "\x00"
		for c := range 256 {
			if !strings.ContainsRune(whole, rune(c)) && c < 128 {
				repl = string(rune(c))
				break
			}
		}
		if out := m.Replace(text, repl); strings.Contains(out, whole) {
			t.Fatalf("%s: %q survives in %q", enc.name, whole, out)
		}
		for _, esc := range []func(string) string{url.QueryEscape, url.PathEscape} {
			plain := string(before) + string(secret) + string(after)
			if got := redact.Unescape(esc(plain)); got != plain && !strings.Contains(esc(plain), "+") {
				t.Fatalf("Unescape(%q) = %q, want %q", esc(plain), got, plain)
			}
		}
		if got := redact.Unescape(escapeEvery(string(secret), "%%%02x")); got != string(secret) {
			t.Fatalf("Unescape of every byte of %q = %q", secret, got)
		}
	})
}
