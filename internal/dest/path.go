package dest

import (
	"fmt"
	"path"
	"strings"
)

// pathLiteral reports bytes that appear unencoded in a canonical URL path:
// RFC 3986 unreserved characters, sub-delimiters, ':', '@' and '/'. Every
// other byte is percent-encoded with upper-case hex digits.
func pathLiteral(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', // unreserved
		'!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', // sub-delims
		':', '@', '/':
		return true
	}
	return false
}

const upperHex = "0123456789ABCDEF"

// canonURLPath canonicalises the path of a URL (everything between the
// authority and '?' or '#'). Percent-escapes of bytes that may appear
// literally (see pathLiteral), including "%2F" and "%2E", are decoded; all
// other bytes are percent-encoded with upper-case hex; the result is cleaned
// like path.Clean, with ".." never above the root. It returns "" for an empty
// path. An already canonical path is returned without allocating.
func canonURLPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if strings.IndexByte(p, '\\') >= 0 {
		return "", fmt.Errorf("backslash in path %q (some clients treat it as '/')", p)
	}
	s, semi := p, false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == ';' {
			semi = true
		} else if c == '%' || !pathLiteral(c) {
			var err error
			if s, err = normalizePath(p, i); err != nil {
				return "", err
			}
			if i := doubleEncoded(s); i >= 0 {
				return "", fmt.Errorf("double percent-encoded %q in path %q", s[i:i+5], p)
			}
			semi = strings.IndexByte(s, ';') >= 0
			break
		}
	}
	if semi {
		if seg, ok := dotSegmentParams(s); ok {
			return "", fmt.Errorf("dot segment with parameters %q in path %q", seg, p)
		}
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
			if pathLiteral(c) {
				b = append(b, c)
			} else {
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
		case pathLiteral(d):
			b = append(b, d)
		default:
			b = append(b, '%', upperHex[d>>4], upperHex[d&15])
		}
		i += 2
	}
	return string(b), nil
}

// doubleEncoded returns the offset of an encoded '%' followed by the hex
// digits of '.', '/' or '\' ("%252e", "%252f", "%255c"), which a server that
// decodes twice would turn into a traversal, or -1.
func doubleEncoded(s string) int {
	for i := 0; ; {
		j := strings.Index(s[i:], "%25")
		if j < 0 || i+j+5 > len(s) {
			return -1
		}
		i += j
		switch x, y := s[i+3], s[i+4]|0x20; {
		case x == '2' && (y == 'e' || y == 'f'), x == '5' && y == 'c':
			return i
		}
		i += 3
	}
}

// dotSegmentParams reports a "." or ".." segment carrying ";parameters"
// ("/..;/admin"), which some servers resolve as a dot segment.
func dotSegmentParams(s string) (string, bool) {
	for rest := s; rest != ""; {
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if j := strings.IndexByte(seg, ';'); j >= 0 && (seg[:j] == "." || seg[:j] == "..") {
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
