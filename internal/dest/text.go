package dest

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// scanText checks s for characters that are never part of a destination:
// ASCII and C1 control characters (NUL included), invalid UTF-8, line and
// paragraph separators and invisible format characters (category Cf: bidi
// overrides, zero-width joiners, BOM). It reports whether s contains
// whitespace, which only file paths may, and a reason when s is rejected.
func scanText(s string) (space bool, reason string) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c < 0x20 || c == 0x7f:
				return space, fmt.Sprintf("control character %q at offset %d", c, i)
			case c == ' ':
				space = true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return space, fmt.Sprintf("invalid UTF-8 at offset %d", i)
		case unicode.IsControl(r), unicode.In(r, unicode.Zl, unicode.Zp):
			return space, fmt.Sprintf("control character %U at offset %d", r, i)
		case unicode.Is(unicode.Cf, r):
			return space, fmt.Sprintf("invisible format character %U at offset %d", r, i)
		case unicode.IsSpace(r):
			space = true
		}
		i += size
	}
	return space, ""
}

// splitScheme splits "scheme:rest" where scheme matches
// [A-Za-z][A-Za-z0-9+.-]*. ok is false when s does not start with a scheme.
func splitScheme(s string) (scheme, rest string, ok bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9', c == '+', c == '-', c == '.':
			if i == 0 {
				return "", s, false
			}
		case c == ':':
			if i == 0 {
				return "", s, false
			}
			return s[:i], s[i+1:], true
		default:
			return "", s, false
		}
	}
	return "", s, false
}

// lowerASCII lower-cases ASCII letters, allocating only when s has upper-case
// letters.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

var errEscape = errors.New("invalid percent-escape")

// checkEscapes reports a '%' in s that is not followed by two hex digits.
func checkEscapes(s string) error {
	for i := strings.IndexByte(s, '%'); i >= 0; {
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return fmt.Errorf("%w %q", errEscape, s[i:min(i+3, len(s))])
		}
		j := strings.IndexByte(s[i+3:], '%')
		if j < 0 {
			return nil
		}
		i += 3 + j
	}
	return nil
}

// percentDecode decodes every %XX escape in s. A '%' not followed by two hex
// digits is an error.
func percentDecode(s string) (string, error) {
	n := strings.IndexByte(s, '%')
	if n < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:n]...)
	for i := n; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%w %q", errEscape, s[i:])
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("%w %q", errEscape, s[i:i+3])
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b), nil
}

// quote is strconv.Quote, for the error path.
func quote(s string) string { return fmt.Sprintf("%q", s) }
