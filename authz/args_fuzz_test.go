package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// argsFuzzInner and argsFuzzTarget are what a tool handler might decode
// its arguments into: ASCII names in several cases, names one look-alike
// away from each other, and nested structs.
type argsFuzzInner struct {
	URL  json.RawMessage `json:"url"`
	Host json.RawMessage `json:"Host"`
	K    json.RawMessage `json:"k"`
	Path json.RawMessage
}

type argsFuzzTarget struct {
	URL    json.RawMessage `json:"url"`
	URLs   json.RawMessage `json:"URLS"`
	Host   json.RawMessage `json:"host"`
	K      json.RawMessage `json:"k"`
	Kelvin json.RawMessage "json:\"\u212a\"" // U+212A KELVIN SIGN
	S      json.RawMessage `json:"s"`
	LongS  json.RawMessage `json:"ſ"` // U+017F LATIN SMALL LETTER LONG S
	Sigma  json.RawMessage `json:"σ"`
	Method json.RawMessage
	Nested *argsFuzzInner   `json:"nested"`
	Items  []*argsFuzzInner `json:"items"`
}

var argsFuzzSeeds = []string{
	`{"url": "https://ok.example", "URL": "http://169.254.169.254/"}`,
	`{"url": "https://ok.example", "\u0055RL": "http://169.254.169.254/"}`,
	`{"url": "https://ok.example", "\u0075rl": "http://169.254.169.254/"}`,
	`{"url": "https://ok.example", "url": "http://169.254.169.254/"}`,
	`{"s": "ok", "ſ": "evil"}`,
	`{"host": "ok", "hoſt": "169.254.169.254"}`,
	"{\"k\": \"ok\", \"\u212a\": \"evil\"}",
	"{\"\u212a\": \"evil\"}",
	`{"\u212a": "evil"}`,
	`{"ſ": "evil"}`,
	`{"σ": 1, "Σ": 2, "ς": 3}`,
	`{"nested": {"url": "https://ok", "URL": "http://169.254.169.254"}}`,
	`{"nested": {"path": "/ok", "Path": "/etc/passwd"}}`,
	`{"items": [{"url": "a"}, {"k": 1, "K": 2}]}`,
	`{"items": [{"host": "a"}, {"Host": "b", "HOST": "c"}]}`,
	`{"a\ud800": 1, "a\udc00": 2}`,
	`{"url\ud800": 1}`,
	`{"url": "https://x", "method": "GET", "timeout": 30, "nested": {"k": [1, 2.5]}, "items": [{"url": null}]}`,
	`{"URLS": ["a"], "urls": ["b"]}`,
	`{"url": 1e400}`,
	`{"url": "x"}]`,
	`{} {}`,
	``,
	`null`,
	`[]`,
}

// FuzzDecodeArgsDifferential: for every input DecodeArgs accepts, a struct
// decoded from the same bytes by encoding/json holds, in every field, the
// value the policy's map view holds under the one key encoding/json
// assigns to that field (exact name first, then the first field equal
// under case folding, by bytes.EqualFold), at every depth. Two keys
// reaching one field fail.
func FuzzDecodeArgsDifferential(f *testing.F) {
	for _, s := range argsFuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		m, err := DecodeArgs([]byte(raw))
		if err != nil {
			return
		}
		var v argsFuzzTarget
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			if trimmed := strings.TrimSpace(raw); trimmed == "" {
				return // DecodeArgs reads empty input as {}
			}
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) {
				t.Fatalf("accepted what encoding/json rejects: %q: %v", raw, err)
			}
		}
		compareFields(t, raw, "", m, reflect.ValueOf(&v).Elem())
	})
}

// compareFields checks struct s against the map view m.
func compareFields(t *testing.T, raw, path string, m map[string]any, s reflect.Value) {
	t.Helper()
	typ := s.Type()
	names := make([]string, typ.NumField())
	for i := range names {
		names[i] = typ.Field(i).Name
		if tag := typ.Field(i).Tag.Get("json"); tag != "" {
			names[i] = tag
		}
	}
	// Which key does encoding/json store in which field?
	byField := make([][]string, len(names))
	for k := range m {
		fi := -1
		for i, n := range names {
			if n == k {
				fi = i
				break
			}
		}
		if fi < 0 {
			for i, n := range names {
				if bytes.EqualFold([]byte(n), []byte(k)) {
					fi = i
					break
				}
			}
		}
		if fi >= 0 {
			byField[fi] = append(byField[fi], k)
		}
	}
	for i, keys := range byField {
		fv := s.Field(i)
		where := path + "." + names[i]
		switch len(keys) {
		case 0:
			if !fv.IsZero() {
				t.Fatalf("%q: field %s set by encoding/json, absent from the map view", raw, where)
			}
			continue
		case 1:
		default:
			t.Fatalf("%q: keys %q all reach field %s", raw, keys, where)
		}
		mv := m[keys[0]]
		switch x := fv.Interface().(type) {
		case json.RawMessage:
			got := decodeValue(t, x)
			if !reflect.DeepEqual(got, mv) {
				t.Fatalf("%q: field %s = %#v, map view %q = %#v", raw, where, got, keys[0], mv)
			}
		case *argsFuzzInner:
			if sub, ok := mv.(map[string]any); ok {
				if x == nil {
					t.Fatalf("%q: field %s nil, map view has an object", raw, where)
				}
				compareFields(t, raw, where, sub, reflect.ValueOf(x).Elem())
			}
		case []*argsFuzzInner:
			l, ok := mv.([]any)
			if !ok {
				continue
			}
			if len(x) != len(l) {
				t.Fatalf("%q: field %s has %d items, map view %d", raw, where, len(x), len(l))
			}
			for j, e := range l {
				if sub, ok := e.(map[string]any); ok {
					compareFields(t, raw, where+"[]", sub, reflect.ValueOf(x[j]).Elem())
				}
			}
		}
	}
}

// decodeValue decodes one raw JSON value as DecodeArgs decodes values.
func decodeValue(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	if raw == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("raw field value %q does not decode: %v", raw, err)
	}
	return normalizeNumbers(v)
}
