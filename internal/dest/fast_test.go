package dest

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fastSeeds are inputs around the edges of the fast path.
var fastSeeds = []string{
	"https://api.github.com/repos/taskguard/taskguard",
	"https://api.github.com/repos/x/y?page=2&per_page=100#readme",
	"http://example.com:8080/a",
	"https://example.com:443/", "https://example.com:0443/", "http://example.com:80/",
	"https://example.com", "https://example.com/", "https://example.com/a/", "https://example.com//a",
	"https://example.com/./a", "https://example.com/a/..", "https://example.com/a/.", "https://example.com/a/...",
	"https://Example.com/", "https://example.com./", "https://127.0.0.1/", "https://0x7f.1/", "https://foo.123/",
	"https://localhost/", "https://intranet/", "https://metadata.google.internal/", "https://xn--pple-43d.com/",
	"https://xn--a.com/", "https://a--b.com/", "https://ab--c.com/", "https://-a.com/", "https://a-.com/",
	"https://a_b.com/", "https://user@example.com/", "https://example.com:/", "https://example.com:65536/",
	"https://example.com/a;b", "https://example.com/%41", "https://example.com/a b", "https://example.com/a?b c",
	"https://example.com/a?%zz", "https://example.com/a#%", "https://example.com/a?\\", "https://example.com/é",
	"https://example.com/a?é", "https://" + strings.Repeat("a", 63) + ".com/", "https://" + strings.Repeat("a", 64) + ".com/",
	"https://" + strings.Repeat("a.", 126) + "a/", "https://" + strings.Repeat("a.", 127) + "a/",
	"ws://example.com/", "HTTPS://example.com/", "https:/example.com/", "https://", "http://", "https://a",
	"https://example.com/@user/x:y!$&'()*+,=-._~",
}

// corpusInputs returns every input of the adversarial corpus, without
// depending on the external test package.
func corpusInputs(tb testing.TB) []string {
	tb.Helper()
	f, err := os.Open("testdata/adversarial.txt")
	require.NoError(tb, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		_, raw, _ := strings.Cut(line, " ")
		if strings.HasPrefix(raw, `"`) {
			raw, err = strconv.Unquote(raw)
			require.NoError(tb, err)
		}
		out = append(out, raw)
	}
	require.NoError(tb, sc.Err())
	return out
}

// TestFastPathMatchesFullParser runs the fast path and the full parser on
// the corpus, the fast-path seeds and the canonical text of every accepted
// input, and checks that whenever the fast path answers it agrees with the
// full parser.
func TestFastPathMatchesFullParser(t *testing.T) {
	t.Parallel()
	inputs := append(corpusInputs(t), fastSeeds...)
	fast := 0
	for _, raw := range inputs {
		if d, err := parseFull(raw, "/workspace"); err == nil {
			inputs = append(inputs, d.String())
		}
	}
	for _, raw := range inputs {
		if checkFastPath(t, raw) {
			fast++
		}
	}
	assert.Greater(t, fast, 40, "the fast path answers for the canonical URLs")
}

func FuzzFastPath(f *testing.F) {
	for _, raw := range corpusInputs(f) {
		f.Add(raw)
	}
	for _, raw := range fastSeeds {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkFastPath(t, raw) })
}

// FuzzFastPathParts builds http(s) URLs from fuzzed parts, so that most
// inputs reach deep into the fast path, and checks it like FuzzFastPath.
func FuzzFastPathParts(f *testing.F) {
	f.Add(true, "api.github.com", "", "/repos/taskguard/taskguard", "")
	f.Add(false, "example.com", ":8080", "/a/b", "?q=1#f")
	f.Add(true, "a--b.example", ":443", "/a/./b", "")
	f.Add(true, "xn--pple-43d.com", "", "/", "#%41")
	f.Add(false, "intranet", ":0080", "//a", "?%zz")
	f.Add(true, "foo.123", "", "/a;b", "")
	f.Fuzz(func(t *testing.T, https bool, host, port, path, tail string) {
		scheme := "http://"
		if https {
			scheme = "https://"
		}
		checkFastPath(t, scheme+host+port+path+tail)
	})
}

// checkFastPath checks parseFast against parseFull, and ParseText against
// Parse and String, for one input. It reports whether the fast path
// answered.
func checkFastPath(t *testing.T, raw string) bool {
	t.Helper()
	full, ferr := parseFull(raw, "/workspace")
	var d Destination
	text, ok := parseFast(raw, &d)
	if ok {
		if ferr != nil {
			t.Fatalf("fast path accepts %q as %+v, full parser fails: %v", raw, d, ferr)
		}
		if d != full || text != full.String() {
			t.Fatalf("fast path on %q:\n %+v %q\nfull parser:\n %+v %q", raw, d, text, full, full.String())
		}
		if !strings.HasPrefix(raw, text) {
			t.Fatalf("fast path text %q is not a prefix of %q", text, raw)
		}
	}
	pd, perr := Parse(raw, "/workspace")
	td, ttext, terr := ParseText(raw, "/workspace")
	if (perr == nil) != (ferr == nil) || (terr == nil) != (ferr == nil) {
		t.Fatalf("%q: Parse error %v, ParseText error %v, full parser error %v", raw, perr, terr, ferr)
	}
	if ferr != nil {
		if perr.Error() != ferr.Error() || terr.Error() != ferr.Error() || ttext != "" || td != (Destination{}) {
			t.Fatalf("%q: errors differ: %v / %v / %v (text %q)", raw, perr, terr, ferr, ttext)
		}
		return ok
	}
	if pd != full || td != full || ttext != full.String() {
		t.Fatalf("%q: Parse %+v, ParseText %+v %q, full parser %+v %q", raw, pd, td, ttext, full, full.String())
	}
	if textIs(full, raw) != (raw == full.String()) {
		t.Fatalf("textIs(%+v, %q) is wrong", full, raw)
	}
	return ok
}

func TestParseTextNoCopy(t *testing.T) { // not parallel: AllocsPerRun
	for _, raw := range []string{
		"https://api.github.com/repos/taskguard/taskguard", "http://example.com:8080/a", "/workspace/a",
		"bob@example.org", "db://orders", "https://[2606:4700::1111]/", "s3://bucket:9000/key", "redis://cache.example.com/",
	} {
		d, text, err := ParseText(raw, "/workspace")
		require.NoError(t, err)
		assert.Equal(t, raw, text)
		assert.Equal(t, d.String(), text)
		assert.Equal(t, 0.0, testing.AllocsPerRun(10, func() { _, _, _ = ParseText(raw, "/workspace") }), raw)
	}
	d, text, err := ParseText("https://api.github.com/x?token=1#f", "")
	require.NoError(t, err)
	assert.Equal(t, "https://api.github.com/x", text)
	assert.Equal(t, "/x", d.Path)
	d, text, err = ParseText("HTTPS://API.github.com:443/a/../b/", "")
	require.NoError(t, err)
	assert.Equal(t, "https://api.github.com/b", text)
	assert.Equal(t, "api.github.com", d.Host)
	_, text, err = ParseText("https://a_b/", "")
	require.Error(t, err)
	assert.Empty(t, text)
}

// BenchmarkFastVsFull compares the fast path with the full parser on the
// same canonical URL, in one run.
func BenchmarkFastVsFull(b *testing.B) {
	const raw = "https://api.github.com/repos/taskguard/taskguard"
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		var d Destination
		for b.Loop() {
			if _, ok := parseFast(raw, &d); !ok {
				b.Fatal("not on the fast path")
			}
		}
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseFull(raw, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}
