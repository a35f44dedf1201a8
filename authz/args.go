package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// DecodeArgs decodes JSON tool arguments into the shape policies see as
// args: an object whose integers are int64 and other numbers float64.
// Empty input or null is an empty object; any other non-object is an error.
//
// Input that a tool decoding the same bytes into a struct could read
// differently from the policy is refused. Go's encoding/json matches an
// object key to a struct field by exact name first and then by Unicode
// simple case folding, and lets the last of several matching keys win; a
// policy sees the keys as sent. So, in every object at every depth (objects
// inside arrays inside objects, and so on), DecodeArgs refuses:
//
//   - two keys encoding/json could map to the same field: keys equal under
//     its case folding (exactly the folding of encoding/json's foldName:
//     ASCII upper-casing plus [unicode.SimpleFold] to the smallest rune of
//     each fold orbit), after unescaping, so {"url": …, "URL": …},
//     {"url": …, "\u0075rl": …}, {"s": …, "ſ": …} (U+017F) and
//     {"k": …, "K": …} (U+212A) are all refused, as is a key repeated
//     exactly;
//   - a key containing a character that case-maps onto an ASCII letter
//     (U+0130 İ, U+0131 ı, U+017F ſ, U+212A K): such a key is a second
//     spelling of an ASCII field name for some decoder;
//   - a key containing U+FFFD, whether sent literally or produced by an
//     unpaired UTF-16 surrogate escape ("\ud800"): decoders differ on such
//     keys and encoding/json collapses distinct ones;
//   - invalid UTF-8 anywhere in the input, and anything that is not one
//     JSON value.
//
// A key that matches a struct field only by case folding ("URL" for a
// field tagged "url") is accepted and seen by policies under its own
// spelling: a rule reading args.url then finds no such key, which is an
// evaluation error and denies.
//
// Errors name the offending key (quoted, ASCII-escaped and truncated),
// never a value. DecodeArgs is safe for concurrent use.
func DecodeArgs(raw []byte) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]any{}, nil
	}
	if !utf8.Valid(raw) {
		return nil, errors.New("arguments are not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("arguments are not valid JSON: %w", err)
	}
	if dec.InputOffset() != int64(len(raw)) {
		return nil, errors.New("arguments have trailing data after the JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("arguments must be a JSON object")
	}
	if err := checkKeys(raw); err != nil {
		return nil, err
	}
	normalizeNumbers(m)
	return m, nil
}

// maxLinearKeys is the number of keys of one object compared pairwise
// before checkKeys switches to a set for that object.
const maxLinearKeys = 16

// keyFrame is one open object or array during checkKeys.
type keyFrame struct {
	obj       bool
	expectKey bool
	first     int                 // index in ends of the object's first key
	set       map[string]struct{} // folded keys, once the object has many
}

// checkKeys applies DecodeArgs's key rules to raw, which must be one valid
// JSON value (DecodeArgs decodes it first). It scans the bytes once.
func checkKeys(raw []byte) error {
	var (
		bufArr   [256]byte
		endsArr  [32]int
		stackArr [16]keyFrame
		buf      = bufArr[:0]  // folded keys of the open objects, back to back
		ends     = endsArr[:0] // ends[i]: end of the i-th folded key in buf
		stack    = stackArr[:0]
	)
	for i := 0; i < len(raw); {
		c := raw[i]
		switch c {
		case '{', '[':
			stack = append(stack, keyFrame{obj: c == '{', expectKey: c == '{', first: len(ends)})
			i++
		case '}', ']':
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top.obj {
				ends = ends[:top.first]
				if top.first == 0 {
					buf = buf[:0]
				} else {
					buf = buf[:ends[top.first-1]]
				}
			}
			i++
		case ',':
			if top := &stack[len(stack)-1]; top.obj {
				top.expectKey = true
			}
			i++
		case '"':
			end := stringEnd(raw, i)
			if len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].expectKey {
				top := &stack[len(stack)-1]
				top.expectKey = false
				key, err := unquoteKey(raw[i:end])
				if err != nil {
					return err
				}
				start := len(buf)
				buf, err = appendFoldedKey(buf, key)
				if err != nil {
					return err
				}
				folded := buf[start:]
				if dupKey(top, buf, ends, folded) {
					return fmt.Errorf("arguments repeat the key %s (keys equal ignoring case, as encoding/json matches them, name the same field)", quoteKey(key))
				}
				ends = append(ends, len(buf))
			}
			i = end
		default:
			i++
		}
	}
	return nil
}

// dupKey reports whether folded, the newest key of top (already in buf but
// not yet in ends), equals an earlier key of the same object, and records
// it in top's set when the object uses one.
func dupKey(top *keyFrame, buf []byte, ends []int, folded []byte) bool {
	n := len(ends) - top.first
	if top.set == nil && n >= maxLinearKeys {
		top.set = make(map[string]struct{}, 2*n)
		for j := top.first; j < len(ends); j++ {
			top.set[string(buf[keyStart(ends, j):ends[j]])] = struct{}{}
		}
	}
	if top.set != nil {
		if _, ok := top.set[string(folded)]; ok {
			return true
		}
		top.set[string(folded)] = struct{}{}
		return false
	}
	for j := top.first; j < len(ends); j++ {
		if bytes.Equal(buf[keyStart(ends, j):ends[j]], folded) {
			return true
		}
	}
	return false
}

func keyStart(ends []int, j int) int {
	if j == 0 {
		return 0
	}
	return ends[j-1]
}

// stringEnd returns the index just past the JSON string starting at
// raw[i] == '"'. raw is valid JSON.
func stringEnd(raw []byte, i int) int {
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(raw)
}

// unquoteKey returns the key of the quoted JSON string q, unescaped exactly
// as encoding/json does (an unpaired surrogate becomes U+FFFD).
func unquoteKey(q []byte) ([]byte, error) {
	inner := q[1 : len(q)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return nil, errors.New("arguments have a malformed key")
	}
	return []byte(s), nil
}

// appendFoldedKey appends the folded form of key to out: encoding/json's
// appendFoldedName (fold.go) for valid UTF-8, so two keys fold equal
// exactly when encoding/json treats them as the same field name. It
// refuses keys containing U+FFFD and characters that case-map onto ASCII
// letters.
func appendFoldedKey(out, key []byte) ([]byte, error) {
	for i := 0; i < len(key); {
		if c := key[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(key[i:])
		switch r {
		case utf8.RuneError:
			return out, fmt.Errorf("arguments have a key with U+FFFD or an unpaired surrogate: %s", quoteKey(key))
		case '\u0130', '\u0131', '\u017f', '\u212a':
			return out, fmt.Errorf("arguments have a key spelling an ASCII letter with a look-alike character: %s", quoteKey(key))
		}
		out = utf8.AppendRune(out, foldRune(r))
		i += n
	}
	return out, nil
}

// foldRune returns the smallest rune of r's simple case-folding orbit, as
// encoding/json's foldRune does.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// maxQuotedKey bounds the bytes of a key quoted in an error.
const maxQuotedKey = 64

// quoteKey quotes a key for an error message: ASCII only, at most
// maxQuotedKey bytes of the key.
func quoteKey(key []byte) string {
	cut := false
	if len(key) > maxQuotedKey {
		n := maxQuotedKey
		for n > 0 && !utf8.RuneStart(key[n]) {
			n--
		}
		key, cut = key[:n], true
	}
	q := strconv.QuoteToASCII(string(key))
	if cut {
		q += "..."
	}
	return q
}

func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
	}
	return v
}
