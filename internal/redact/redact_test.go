package redact_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/internal/redact"
)

// naiveReplace is the reference: it marks every byte covered by any
// occurrence of any secret, found by comparing every secret at every index,
// and replaces each maximal run of marked bytes by one repl.
func naiveReplace(s string, secrets [][]byte, repl string) string {
	out, _ := naiveReplaceMask(s, secrets, repl)
	return out
}

// naiveReplaceMask is naiveReplace that also reports which output bytes
// come from repl.
func naiveReplaceMask(s string, secrets [][]byte, repl string) (string, []bool) {
	marked := make([]bool, len(s))
	for _, sec := range secrets {
		for i := 0; i+len(sec) <= len(s); i++ {
			if s[i:i+len(sec)] == string(sec) {
				for j := i; j < i+len(sec); j++ {
					marked[j] = true
				}
			}
		}
	}
	var b strings.Builder
	var fromRepl []bool
	for i := 0; i < len(s); {
		if !marked[i] {
			b.WriteByte(s[i])
			fromRepl = append(fromRepl, false)
			i++
			continue
		}
		b.WriteString(repl)
		for range len(repl) {
			fromRepl = append(fromRepl, true)
		}
		for i < len(s) && marked[i] {
			i++
		}
	}
	return b.String(), fromRepl
}

// naiveContains reports whether any secret occurs in s.
func naiveContains(s string, secrets [][]byte) bool {
	for _, sec := range secrets {
		if strings.Contains(s, string(sec)) {
			return true
		}
	}
	return false
}

func secretsOf(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func TestReplace(t *testing.T) {
	t.Parallel()
	const R = "[R]"
	tests := []struct {
		name    string
		secrets []string
		in      string
		repl    string
		want    string
	}{
		{"no secrets", nil, "token abcdef here", R, "token abcdef here"},
		{"empty text", []string{"abcdef"}, "", R, ""},
		{"no occurrence", []string{"abcdef"}, "abcde fabcd efabc", R, "abcde fabcd efabc"},
		{"whole text", []string{"abcdef"}, "abcdef", R, R},
		{"at start", []string{"s3cr3t-token"}, "s3cr3t-token and more", R, R + " and more"},
		{"in middle", []string{"s3cr3t-token"}, "before s3cr3t-token after", R, "before " + R + " after"},
		{"at end", []string{"s3cr3t-token"}, "ends with s3cr3t-token", R, "ends with " + R},
		{"repeated", []string{"abcdef"}, "abcdef x abcdef y abcdef", R, R + " x " + R + " y " + R},
		{"two secrets", []string{"alpha-secret", "bravo-secret"}, "a=alpha-secret b=bravo-secret", R, "a=" + R + " b=" + R},
		{"prefix of another", []string{"abcdef", "abcdefghij"}, "x abcdefghij y abcdef z", R, "x " + R + " y " + R + " z"},
		{"suffix of another", []string{"ghijkl", "abcdefghijkl"}, "x abcdefghijkl y ghijkl z", R, "x " + R + " y " + R + " z"},
		{"overlapping different", []string{"abcdef", "defghi"}, "xabcdefghiy", R, "x" + R + "y"},
		{"overlapping same", []string{"abcabc"}, "xabcabcabcy", R, "x" + R + "y"},
		{"overlap chain", []string{"aaaaaa"}, "b" + strings.Repeat("a", 40) + "b", R, "b" + R + "b"},
		{"adjacent same", []string{"abcdef"}, "xabcdefabcdefy", R, "x" + R + "y"},
		{"adjacent different", []string{"abcdef", "ghijkl"}, "xabcdefghijkly", R, "x" + R + "y"},
		{"one byte gap", []string{"abcdef", "ghijkl"}, "abcdef-ghijkl", R, R + "-" + R},
		{"contained", []string{"0123456789", "345678"}, "x0123456789y345678z", R, "x" + R + "y" + R + "z"},
		{"binary secret", []string{"\x00\xff\xfe\x80\x00\x01"}, "a\x00\xff\xfe\x80\x00\x01b", R, "a" + R + "b"},
		{"invalid utf8 in text", []string{"\xc3\x28\xa0\xa1\xe2\x28"}, "\xff\xc3\x28\xa0\xa1\xe2\x28\xff", R, "\xff" + R + "\xff"},
		{"utf8 secret", []string{"pässwörd"}, "my pässwörd!", R, "my " + R + "!"},
		{"longer than text", []string{"abcdefghijklmnop"}, "abcdefgh", R, "abcdefgh"},
		{"text shorter than window", []string{"abcdef"}, "abc", R, "abc"},
		{"truncated at end", []string{"abcdefgh"}, "xxabcdefg", R, "xxabcdefg"},
		{"empty repl", []string{"abcdef"}, "xabcdefyabcdefz", "", "xyz"},
		{"repl contains secret", []string{"abcdef"}, "xabcdefy", "abcdef", "xabcdefy"},
		{"duplicates", []string{"abcdef", "abcdef", "abcdef"}, "abcdef abcdef", R, R + " " + R},
		{"mixed lengths", []string{"abcdef", strings.Repeat("z", 70)}, "abcdef " + strings.Repeat("z", 71) + " abcdef", R, R + " " + R + " " + R},
		{"long secrets only", []string{strings.Repeat("0123456789", 20)}, "<" + strings.Repeat("0123456789", 21) + ">", R, "<" + R + ">"},
		{"long secret cut short", []string{strings.Repeat("0123456789", 20)}, "<" + strings.Repeat("0123456789", 20)[:199] + ">", R, "<" + strings.Repeat("0123456789", 20)[:199] + ">"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			secrets := secretsOf(tt.secrets...)
			m, err := redact.New(secrets)
			require.NoError(t, err)
			assert.Equal(t, tt.want, m.Replace(tt.in, tt.repl))
			assert.Equal(t, tt.want, naiveReplace(tt.in, secrets, tt.repl), "reference disagrees with the table")
			assert.Equal(t, naiveContains(tt.in, secrets), m.Contains(tt.in))
		})
	}
}

func TestNewShortSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
		wantMsg string
	}{
		{"empty", []string{"abcdefgh", ""}, "secret 1 has length 0"},
		{"five bytes", []string{"hunt2"}, "secret 0 has length 5"},
		{"first of several", []string{"abcdefgh", "pw1", "abcdefghij", "x"}, "secret 1 has length 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := redact.New(secretsOf(tt.secrets...))
			require.Error(t, err)
			assert.Nil(t, m)
			require.ErrorIs(t, err, redact.ErrShortSecret)
			assert.Contains(t, err.Error(), tt.wantMsg)
			for _, s := range tt.secrets {
				if len(s) > 0 && len(s) < redact.MinLen {
					assert.NotContains(t, err.Error(), s, "error message leaks a short secret")
				}
			}
		})
	}
}

func TestNilAndZeroMatcher(t *testing.T) {
	t.Parallel()
	empty, err := redact.New(nil)
	require.NoError(t, err)
	for name, m := range map[string]*redact.Matcher{"nil": nil, "zero": {}, "empty": empty} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := "some text abcdefgh"
			assert.Equal(t, s, m.Replace(s, "[R]"))
			assert.False(t, m.Contains(s))
			assert.Equal(t, 0, m.Len())
			assert.Equal(t, "redact.Matcher(0 secrets)", m.String())
		})
	}
}

func TestLen(t *testing.T) {
	t.Parallel()
	m, err := redact.New(secretsOf("abcdef", "abcdefg", "abcdef", "zzzzzz", "abcdefg"))
	require.NoError(t, err)
	assert.Equal(t, 3, m.Len())
}

func TestNewCopiesSecrets(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cr3t-token")
	m, err := redact.New([][]byte{secret})
	require.NoError(t, err)
	copy(secret, "XXXXXXXXXXXX")
	assert.Equal(t, "a [R] b", m.Replace("a s3cr3t-token b", "[R]"))
	assert.Equal(t, "a XXXXXXXXXXXX b", m.Replace("a XXXXXXXXXXXX b", "[R]"))
}

// TestReplaceNoMatchReturnsInput is not parallel: testing.AllocsPerRun
// refuses to run in a parallel test.
func TestReplaceNoMatchReturnsInput(t *testing.T) {
	m, err := redact.New(secretsOf("s3cr3t-token"))
	require.NoError(t, err)
	s := strings.Repeat("nothing to see here ", 100)
	got := m.Replace(s, "[R]")
	require.Equal(t, s, got)
	assert.Equal(t, unsafeData(s), unsafeData(got), "Replace copied a string without matches")
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = m.Replace(s, "[R]") }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = m.Contains(s) }))
}

// TestMatcherDoesNotPrintSecrets checks that no way of printing, encoding or
// logging a Matcher reveals a secret.
func TestMatcherDoesNotPrintSecrets(t *testing.T) {
	t.Parallel()
	const secret = "SUPERSECRETVALUE"
	m, err := redact.New(secretsOf(secret, "another-secret"))
	require.NoError(t, err)
	hexSecret := fmt.Sprintf("%x", secret)

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v"} {
		outputs = append(outputs,
			fmt.Sprintf(verb, m),
			fmt.Sprintf(verb, *m),
			fmt.Sprintf(verb, []*redact.Matcher{m}),
			fmt.Sprintf(verb, struct{ M *redact.Matcher }{m}),
			fmt.Sprintf(verb, struct{ m *redact.Matcher }{m}),
			fmt.Sprintf(verb, struct{ M redact.Matcher }{*m}),
			fmt.Sprintf(verb, struct{ m redact.Matcher }{*m}),
		)
	}
	outputs = append(outputs, m.String(), m.GoString())
	js, err := json.Marshal(map[string]any{"m": m})
	require.NoError(t, err)
	outputs = append(outputs, string(js))
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("built", "matcher", m)
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("built", "matcher", m)
	outputs = append(outputs, logBuf.String())

	for _, out := range outputs {
		assert.NotContains(t, out, secret)
		assert.NotContains(t, strings.ToLower(out), hexSecret)
		assert.NotContains(t, out, "SUPE", "output shows part of a secret")
	}
	assert.Equal(t, "redact.Matcher(2 secrets)", fmt.Sprint(m))
	assert.JSONEq(t, `{"m":{"secrets":2}}`, string(js))
	assert.Contains(t, logBuf.String(), "matcher.secrets=2")
}

// TestReplaceMatchesReference compares Replace and Contains with the naive
// reference on random inputs over small alphabets, where overlapping,
// adjacent and nested occurrences are common.
func TestReplaceMatchesReference(t *testing.T) {
	t.Parallel()
	iterations := 20000
	if testing.Short() {
		iterations = 2000
	}
	for _, alphabet := range []string{"ab", "abc", "abcd\x00\xff", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"} {
		t.Run(fmt.Sprintf("alphabet=%q", alphabet), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(len(alphabet)), 42))
			randString := func(n int) string {
				b := make([]byte, n)
				for i := range b {
					b[i] = alphabet[rng.IntN(len(alphabet))]
				}
				return string(b)
			}
			for i := range iterations {
				secrets := make([][]byte, rng.IntN(6))
				for j := range secrets {
					secrets[j] = []byte(randString(redact.MinLen + rng.IntN(10)))
				}
				// Build the text from random filler and copies or pieces of
				// the secrets so that occurrences actually happen.
				var b strings.Builder
				for b.Len() < rng.IntN(200) {
					switch {
					case len(secrets) > 0 && rng.IntN(3) == 0:
						sec := secrets[rng.IntN(len(secrets))]
						lo := rng.IntN(len(sec))
						hi := lo + rng.IntN(len(sec)-lo+1)
						if rng.IntN(2) == 0 {
							lo, hi = 0, len(sec)
						}
						b.Write(sec[lo:hi])
					default:
						b.WriteString(randString(rng.IntN(8)))
					}
				}
				s := b.String()
				m, err := redact.New(secrets)
				require.NoError(t, err)
				for _, repl := range []string{"[REDACTED]", ""} {
					want := naiveReplace(s, secrets, repl)
					if got := m.Replace(s, repl); got != want {
						t.Fatalf("iteration %d: Replace(%q, %q) with secrets %q\n got %q\nwant %q", i, s, repl, secrets, got, want)
					}
				}
				if got, want := m.Contains(s), naiveContains(s, secrets); got != want {
					t.Fatalf("iteration %d: Contains(%q) with secrets %q = %v, want %v", i, s, secrets, got, want)
				}
			}
		})
	}
}

// TestManySecrets checks a large secret set of mixed lengths against the
// reference, so that buckets hold many entries.
func TestManySecrets(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	secrets := make([][]byte, 2000)
	for i := range secrets {
		secrets[i] = randomToken(rng, redact.MinLen+rng.IntN(60))
	}
	m, err := redact.New(secrets)
	require.NoError(t, err)
	require.Equal(t, len(secrets), m.Len())
	text := buildText(rng, 1<<14, secrets, 200)
	assert.Equal(t, naiveReplace(text, secrets, "[R]"), m.Replace(text, "[R]"))
	assert.True(t, m.Contains(text))
}
