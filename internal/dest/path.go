package dest

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// pathLiteral reports bytes that appear unencoded in a canonical URL path:
// RFC 3986 unreserved characters, sub-delimiters other than ';', ':', '@'
// and '/'. Every other byte is percent-encoded with upper-case hex digits.
func pathLiteral(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', // unreserved
		'!', '$', '&', '\'', '(', ')', '*', '+', ',', '=', // sub-delims but ';'
		':', '@', '/':
		return true
	}
	return false
}

const upperHex = "0123456789ABCDEF"

// canonURLPath canonicalises the path of a URL (everything between the
// authority and '?' or '#'). Percent-escapes of bytes that may appear
// literally (see pathLiteral), including "%2E", are decoded; all other bytes
// are percent-encoded with upper-case hex; the result is cleaned like
// path.Clean, with ".." never above the root. It returns "" for an empty
// path. An already canonical path is returned without allocating.
//
// Spellings that common servers (nginx, Apache, Tomcat and Spring, Node, Go
// net/http) route differently are rejected, never guessed: a backslash, ';'
// (path parameters, which servlet containers strip and others keep), encoded
// '/', '\', ';' and '%' (decoded once more by some servers and proxies),
// control characters, decoded bytes that are not UTF-8 (overlong forms of
// '.' and '/'), compatibility forms of path syntax ("%EF%BC%8F", a
// fullwidth solidus), and dot segments in a path with empty segments
// ("/a//../b" is /b to servers that merge slashes and /a to others).
func canonURLPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	s := p
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' {
			return "", fmt.Errorf("backslash in path %q (some clients treat it as '/')", p)
		}
		if c == ';' {
			return "", fmt.Errorf("';' in path %q (path parameters: some servers strip them, others do not)", p)
		}
		if c == '%' || !pathLiteral(c) {
			var err error
			if s, err = normalizePath(p, i); err != nil {
				return "", err
			}
			break
		}
	}
	if seg, ok := dotWithEmptySegment(s); ok {
		return "", fmt.Errorf("dot segment %q in a path with empty segments %q (servers that merge slashes resolve it differently)", seg, p)
	}
	return path.Clean(s), nil
}

// normalizePath is the slow part of canonURLPath: p[:i] is already canonical.
func normalizePath(p string, i int) (string, error) {
	b := make([]byte, 0, len(p)+16)
	b = append(b, p[:i]...)
	for ; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			switch {
			case c == '\\':
				return "", fmt.Errorf("backslash in path %q (some clients treat it as '/')", p)
			case c == ';':
				return "", fmt.Errorf("';' in path %q (path parameters: some servers strip them, others do not)", p)
			case pathLiteral(c):
				b = append(b, c)
			default:
				b = append(b, '%', upperHex[c>>4], upperHex[c&15])
			}
			continue
		}
		if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
			end := min(i+3, len(p))
			return "", fmt.Errorf("invalid percent-escape %q in path %q", p[i:end], p)
		}
		d := byte(unhex(p[i+1])<<4 | unhex(p[i+2]))
		switch {
		case d < 0x20 || d == 0x7f:
			return "", fmt.Errorf("percent-encoded control character %q in path %q", p[i:i+3], p)
		case d == '\\':
			return "", fmt.Errorf("percent-encoded backslash %q in path %q", p[i:i+3], p)
		case d == '/':
			return "", fmt.Errorf("percent-encoded slash %q in path %q (servers disagree on whether it separates segments)", p[i:i+3], p)
		case d == '%':
			return "", fmt.Errorf("percent-encoded percent sign %q in path %q (servers that decode twice read it differently)", p[i:i+3], p)
		case d == ';':
			return "", fmt.Errorf("percent-encoded ';' %q in path %q (path parameters: some servers strip them, others do not)", p[i:i+3], p)
		case pathLiteral(d):
			b = append(b, d)
		default:
			b = append(b, '%', upperHex[d>>4], upperHex[d&15])
		}
		i += 2
	}
	if reason := checkPathRunes(p, b); reason != "" {
		return "", errors.New(reason)
	}
	return string(b), nil
}

// checkPathRunes checks the non-ASCII bytes of the normalised path b
// (percent-encoded, upper-case hex): decoded, they must be valid UTF-8 and
// no code point may be a compatibility form of path syntax (see
// confusableSeparator), which some servers fold to ASCII before routing. p
// is the input, for the message.
func checkPathRunes(p string, b []byte) string {
	var buf []byte
	for i := 0; i < len(b); i++ {
		if b[i] != '%' || i+2 >= len(b) {
			continue
		}
		d := byte(unhex(b[i+1])<<4 | unhex(b[i+2]))
		if d < 0x80 {
			continue
		}
		// Collect the run of encoded non-ASCII bytes starting here.
		buf = buf[:0]
		j := i
		for j+2 < len(b) && b[j] == '%' {
			d := byte(unhex(b[j+1])<<4 | unhex(b[j+2]))
			if d < 0x80 {
				break
			}
			buf = append(buf, d)
			j += 3
		}
		for k := 0; k < len(buf); {
			r, size := utf8.DecodeRune(buf[k:])
			if r == utf8.RuneError && size <= 1 {
				return fmt.Sprintf("percent-encoded bytes in path %q are not UTF-8", p)
			}
			if confusableSeparator(r) {
				return fmt.Sprintf("%U in path %q is a compatibility form of path syntax", r, p)
			}
			k += size
		}
		i = j - 1
	}
	return ""
}

// confusableSeparator reports code points whose compatibility decomposition
// (NFKC) contains '.', '/', '\\', ';', '%', '?' or '#', which servers that fold
// Unicode before routing turn into path syntax, and the look-alike slashes
// U+2044, U+2215, U+29F8 and U+29F9. TestConfusableSeparators checks the
// list against golang.org/x/text/unicode/norm.
func confusableSeparator(r rune) bool {
	switch {
	case 0x2024 <= r && r <= 0x2026, // one, two, three dot leader
		0x2488 <= r && r <= 0x249B: // digit full stop
		return true
	}
	switch r {
	case 0x037E, // Greek question mark (NFKC ';')
		0x2100, 0x2101, 0x2105, 0x2106, // account of, addressed to, care of, cada una
		0x2044, 0x2215, 0x29F8, 0x29F9, // fraction, division, big solidus and reverse solidus
		0x2047, 0x2048, 0x2049, // ??, ?!, !?
		0x33C2, 0x33C7, 0x33D8, // a.m., Co., p.m.
		0xFE14, 0xFE16, 0xFE19, 0xFE30, 0xFE52, 0xFE54, 0xFE56, 0xFE5F, 0xFE68, 0xFE6A, // presentation forms
		0xFF03, 0xFF05, 0xFF0E, 0xFF0F, 0xFF1B, 0xFF1F, 0xFF3C, // fullwidth # % . / ; ? \\
		0x1F100: // digit zero full stop
		return true
	}
	return false
}

// dotWithEmptySegment reports a "." or ".." segment in a path that also has
// an empty segment ("//"): servers that merge slashes before resolving dot
// segments and servers that do not reach different places.
func dotWithEmptySegment(s string) (string, bool) {
	if !strings.Contains(s, "//") || !strings.Contains(s, "/.") {
		return "", false
	}
	for rest := s; rest != ""; {
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if seg == "." || seg == ".." {
			return seg, true
		}
	}
	return "", false
}

// filePath validates and cleans an absolute file path given literally. It is
// never percent-decoded.
func filePath(p string) (string, string) {
	if strings.HasPrefix(p, "//") {
		return "", `path starts with "//" (network path or URL without scheme)`
	}
	if strings.IndexByte(p, '\\') >= 0 {
		return "", "backslash in file path"
	}
	return path.Clean(p), ""
}
