package redact_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/internal/redact"
)

// encodings are the ways a text may carry a secret that Forms covers. Each
// gets the whole text (secret with neighbours) to encode.
var encodings = []struct {
	name string
	enc  func(string) string
}{
	{"raw", func(s string) string { return s }},
	{"hex", func(s string) string { return hex.EncodeToString([]byte(s)) }},
	{"HEX", func(s string) string { return strings.ToUpper(hex.EncodeToString([]byte(s))) }},
	{"%x", func(s string) string { return fmt.Sprintf("%x", s) }},
	{"% X", func(s string) string { return strings.ReplaceAll(fmt.Sprintf("% X", s), " ", "") }},
	{"query", url.QueryEscape},
	{"query lower", func(s string) string { return lowerHex(url.QueryEscape(s)) }},
	{"path", url.PathEscape},
	{"path lower", func(s string) string { return lowerHex(url.PathEscape(s)) }},
	{"url.Values", func(s string) string { return url.Values{"k": {s}}.Encode() }},
	{"every byte", func(s string) string { return escapeEvery(s, "%%%02X") }},
	{"every byte lower", func(s string) string { return escapeEvery(s, "%%%02x") }},
	{"base64 std", func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }},
	{"base64 url", func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }},
	{"base64 raw std", func(s string) string { return base64.RawStdEncoding.EncodeToString([]byte(s)) }},
	{"base64 raw url", func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }},
	{"json", func(s string) string { b, _ := json.Marshal(s); return string(b) }},
	{"json no html escape", func(s string) string {
		var b strings.Builder
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		_ = e.Encode(s)
		return b.String()
	}},
}

func lowerHex(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			b.WriteString("%" + strings.ToLower(s[i+1:i+3]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func escapeEvery(s, format string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, format, s[i])
	}
	return b.String()
}

func formsMatcher(t testing.TB, secrets ...string) *redact.Matcher {
	t.Helper()
	var all [][]byte
	for _, s := range secrets {
		all = append(all, redact.Forms([]byte(s))...)
	}
	m, err := redact.New(all)
	require.NoError(t, err)
	return m
}

func TestFormsFindEveryEncoding(t *testing.T) {
	t.Parallel()
	secrets := []string{
		"ghp_0123456789abcdefSECRET",
		"p@ss w/ord+&=?#%é",
		"short!",
		"\x00\xff\xfe binary \x80\x81",
		"<script>&\"quoted\"</script>",
	}
	// Neighbours of every length mod 3 shift the secret's base64 alignment.
	around := []struct{ before, after string }{
		{"", ""}, {"u:", ""}, {"user:", ":x"}, {"ab", "c"}, {"a", "bcdef"}, {"Authorization: Bearer ", "\n"},
	}
	for _, sec := range secrets {
		m := formsMatcher(t, sec)
		for _, enc := range encodings {
			if strings.HasPrefix(enc.name, "json") && !utf8.ValidString(sec) {
				continue // JSON replaces invalid UTF-8: the secret is gone
			}
			for _, a := range around {
				text := "pre " + enc.enc(a.before+sec+a.after) + " post"
				assert.True(t, m.Contains(text), "%s, %d+%d bytes around", enc.name, len(a.before), len(a.after))
				out := m.Replace(text, "[R]")
				assert.NotContains(t, out, enc.enc(sec), enc.name)
				assert.Contains(t, out, "[R]", enc.name)
			}
		}
	}
}

func TestFormsHTTPBasic(t *testing.T) {
	t.Parallel()
	const sec = "s3cr3t-Pa55word-XYZ"
	m := formsMatcher(t, sec)
	for _, user := range []string{"", "a", "ab", "abc", "admin", "some.user@example.org", "x:y"} {
		for _, cred := range []string{user + ":" + sec, sec + ":" + user} {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
				h := "Authorization: Basic " + enc.EncodeToString([]byte(cred))
				assert.True(t, m.Contains(h), "user of %d bytes", len(user))
				assert.NotContains(t, m.Replace(h, "[R]"), enc.EncodeToString([]byte(cred)))
			}
		}
	}
}

func TestFormsNoFalseMatches(t *testing.T) {
	t.Parallel()
	m := formsMatcher(t, "ghp_0123456789abcdefSECRET", "correct horse battery staple")
	for _, enc := range encodings {
		for _, s := range []string{"ghp_0123456789abcdefSECRE", "hp_0123456789abcdefSECRET", "correct horse battery", "an ordinary sentence of some length"} {
			assert.False(t, m.Contains(enc.enc(s)), "%s of a near miss", enc.name)
		}
	}
}

func TestFormsShapes(t *testing.T) {
	t.Parallel()
	assert.Nil(t, redact.Forms([]byte("abc")), "shorter than MinLen")
	forms := redact.Forms([]byte("abcdef"))
	require.NotEmpty(t, forms)
	assert.Equal(t, "abcdef", string(forms[0]), "the secret itself comes first")
	for i, f := range forms {
		assert.GreaterOrEqual(t, len(f), redact.MinLen)
		assert.NotContains(t, string(f), "\x00", "no form is made of bytes the secret lacks")
		for _, g := range forms[:i] {
			assert.NotEqual(t, string(g), string(f), "forms are distinct")
		}
	}
	// Alphanumeric secrets have no distinct percent or JSON form.
	assert.False(t, slices.ContainsFunc(forms, func(f []byte) bool { return strings.Contains(string(f), "\\") }))
}

func TestUnescape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"a%20b", "a b"},
		{"%41%42%43", "ABC"},
		{"%6a%6B", "jk"},
		{"100%", "100%"},
		{"%zz%4", "%zz%4"},
		{"%%41", "%A"},
		{"a+b%2Bc", "a+b+c"},
		{"%2541", "%41"},
		{"%e2%82%ac", "€"},
	} {
		assert.Equal(t, tc.want, redact.Unescape(tc.in), tc.in)
	}
	s := "no escapes here"
	assert.Same(t, unsafeData(s), unsafeData(redact.Unescape(s)), "returns its input when there is nothing to decode")
}

func TestFind(t *testing.T) {
	t.Parallel()
	m, err := redact.New(secretsOf("abcdef", "defghi", "abcdef", "zzzzzzzz", "abcdefgX"))
	require.NoError(t, err)
	find := func(s string) []int {
		var got []int
		m.Find(s, func(i int) bool { got = append(got, i); return true })
		slices.Sort(got)
		return got
	}
	assert.Empty(t, find("nothing here at all"))
	assert.Empty(t, find("abc"))
	assert.Equal(t, []int{0, 2}, find("xxabcdefxx"), "a secret given twice is reported at both positions")
	assert.Equal(t, []int{0, 1, 2}, find("abcdefghi"), "overlapping occurrences")
	assert.Equal(t, []int{0, 0, 1, 2, 2, 4}, find("abcdefgX abcdefghi"), "nested and overlapping occurrences")
	assert.Equal(t, []int{0, 0, 2, 2, 3}, find("abcdef zzzzzzzz abcdef"), "every occurrence")
	var n int
	m.Find("abcdef abcdef abcdef", func(int) bool { n++; return false })
	assert.Equal(t, 1, n, "Find stops when f returns false")
	var nilM *redact.Matcher
	nilM.Find("abcdef", func(int) bool { t.Fatal("nil matcher found something"); return true })
	assert.Equal(t, 6, m.MinMatchLen())
	assert.Zero(t, nilM.MinMatchLen())
}
