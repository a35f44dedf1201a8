package authz

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeArgsRefusesKeysOneFieldReads(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, raw, want string }{
		{"ascii case", `{"url": "https://ok.example", "URL": "http://169.254.169.254/"}`, "repeat the key"},
		{"exact repeat", `{"a": 1, "a": 2}`, "repeat the key"},
		{"escaped repeat", `{"url": "https://ok.example", "\u0075rl": "http://169.254.169.254/"}`, "repeat the key"},
		{"escaped case", `{"url": 1, "\u0055RL": 2}`, "repeat the key"},
		{"long s", `{"s": "ok", "ſ": "evil"}`, "look-alike"},
		{"long s inside a name", `{"host": "ok", "hoſt": "169.254.169.254"}`, "look-alike"},
		{"long s escaped", `{"host": "ok", "ho\u017ft": "169.254.169.254"}`, "look-alike"},
		{"kelvin", "{\"k\": 1, \"\u212a\": 2}", "look-alike"},
		{"kelvin alone", "{\"\u212aind\": \"x\"}", "look-alike"},
		{"kelvin escaped", `{"\u212aind": "x"}`, "look-alike"},
		{"dotted I", `{"İd": 1}`, "look-alike"},
		{"dotless i", `{"ıd": 1}`, "look-alike"},
		{"nested object", `{"x": {"k": 1, "K": 2}}`, "repeat the key"},
		{"object in array", `{"l": [1, {"Path": "/a", "path": "/etc"}]}`, "repeat the key"},
		{"deep", `{"a": [[{"b": {"c": [{"u": 1, "U": 2}]}}]]}`, "repeat the key"},
		{"unicode fold", `{"σ": 1, "Σ": 2}`, "repeat the key"},
		{"final sigma", `{"σ": 1, "ς": 2}`, "repeat the key"},
		{"lone surrogates", `{"a\ud800": 1, "a\udc00": 2}`, "U+FFFD"},
		{"surrogate vs replacement", `{"a\ud800": 1}`, "U+FFFD"},
		{"replacement literal", "{\"a\uFFFD\": 1}", "U+FFFD"},
		{"many keys then repeat", manyKeys(40) + `, "K0": 1}`, "repeat the key"},
		{"invalid utf-8 key", "{\"\xff\": 1}", "UTF-8"},
		{"invalid utf-8 value", "{\"s\": \"\xff\"}", "UTF-8"},
		{"trailing data", `{} {}`, "trailing"},
		{"trailing bracket", `{}]`, "trailing"},
		{"not an object", `[1]`, "object"},
		{"truncated", `{"a":`, "JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeArgs([]byte(tc.raw))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "169.254", "errors never name values")
			assert.NotContains(t, err.Error(), "evil")
		})
	}
}

func TestDecodeArgsAcceptsDistinctKeys(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}`,
		`{"url": "x", "urls": ["y"]}`,
		`{"a": {"k": 1}, "b": {"k": 2}}`,
		`{"x": "{\"k\":1,\"K\":2}"}`,
		`{"k\"": 1, "k": 2}`,
		`{"user_id": 1, "userid": 2, "user-id": 3}`,
		`{"é": 1, "e": 2}`,
		`{"i": 1, "ǆ": 2}`,
		manyKeys(100) + "}",
		`{}`,
		` {"a": 1} `,
	} {
		_, err := DecodeArgs([]byte(raw))
		assert.NoError(t, err, raw)
	}
}

func TestDecodeArgsErrorQuotesKeysSafely(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 500)
	_, err := DecodeArgs([]byte(`{"` + long + `": 1, "` + strings.ToUpper(long) + `": 2}`))
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 250, "the key is truncated")
	_, err = DecodeArgs([]byte(`{"a\u001b[31m": 1, "A\u001b[31m": 2}`))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "\x1b", "control characters are escaped")
}

func TestDecodeArgsMatchesEncodingJSONFold(t *testing.T) {
	t.Parallel()
	// Every pair of keys encoding/json maps to the same field is refused.
	type target struct {
		URL string `json:"url"`
	}
	for _, key := range []string{"URL", "Url", "uRl", `\u0055rl`} {
		raw := `{"url": "a", "` + key + `": "b"}`
		var v target
		require.NoError(t, json.Unmarshal([]byte(raw), &v))
		require.Equal(t, "b", v.URL, "encoding/json reads the second key into the field")
		_, err := DecodeArgs([]byte(raw))
		assert.Error(t, err, raw)
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	b.WriteString(`{"k0": 0`)
	for i := 1; i < n; i++ {
		b.WriteString(`, "k`)
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(`": 0`)
	}
	return b.String()
}

var benchArgs = []byte(`{"url": "https://api.example.org/v1/items?q=widgets", "method": "GET", "timeout": 30, "headers": {"accept": "application/json"}, "retry": true}`)

// BenchmarkDecodeArgs decodes a typical five-key arguments object; the
// json sub-benchmark is the same decoding without the key rules, so the
// difference is their cost.
func BenchmarkDecodeArgs(b *testing.B) {
	b.Run("DecodeArgs", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := DecodeArgs(benchArgs); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("checkKeys", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := checkKeys(benchArgs); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				var m map[string]any
				if err := json.Unmarshal(benchArgs, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
