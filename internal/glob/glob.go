package glob

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
	"unicode/utf8"
)

// ErrInvalidPattern is wrapped by every error that [ValidPattern] and [Host]
// return for a malformed pattern. Test for it with [errors.Is].
var ErrInvalidPattern = errors.New("glob: invalid pattern")

// ErrInvalidHost is wrapped by the error [Host] returns for a host that is not
// a well-formed host name (for example one with empty labels).
var ErrInvalidHost = errors.New("glob: invalid host")

// Match reports whether name matches the tool-name pattern: `*` matches any
// run of bytes (possibly empty, including dots); every other byte is literal
// and the comparison is case-sensitive.
//
// Match does not validate pattern (use [ValidPattern] when compiling a
// policy); the empty pattern matches only the empty name. Match is safe for
// concurrent use, does not allocate and runs in O(len(pattern)·len(name)) time
// in the worst case, linear for patterns with at most one `*`.
func Match(pattern, name string) bool {
	p, n := 0, 0
	// Position of the last `*` seen and the name position it is currently
	// assumed to have consumed up to; -1 when no `*` has been seen.
	starP, starN := -1, 0
	for n < len(name) {
		if p < len(pattern) {
			switch c := pattern[p]; {
			case c == '*':
				starP, starN = p, n
				p++
				continue
			case c == name[n]:
				p++
				n++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last `*` swallow one more byte and retry.
		starN++
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// ValidPattern returns an error wrapping [ErrInvalidPattern] for an empty
// tool-name pattern or one containing a byte outside [A-Za-z0-9._*/:-], and nil
// otherwise. It is safe for concurrent use.
func ValidPattern(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("%w: empty pattern", ErrInvalidPattern)
	}
	for i := 0; i < len(pattern); i++ {
		if !validPatternByte(pattern[i]) {
			return fmt.Errorf("%w %q: character %s at offset %d is not one of A-Z a-z 0-9 . _ * / : -",
				ErrInvalidPattern, pattern, charAt(pattern, i), i)
		}
	}
	return nil
}

func validPatternByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '.', '_', '*', '/', ':', '-':
		return true
	}
	return false
}

// maxLabels bounds the number of labels in a pattern or host. A DNS name has
// at most 127 labels (253 bytes), so longer inputs are rejected.
const maxLabels = 127

// Host reports whether a canonical host matches a host pattern.
//
// Labels are compared ignoring ASCII case; a `*` label matches one or more
// whole labels, so "*.github.com" matches "api.github.com" and
// "a.b.github.com" but neither "github.com" nor "evilgithub.com"; `*` may
// stand for any label ("*.s3.*.amazonaws.com"); a pattern without `*` is an
// exact match; one trailing dot on either side is ignored.
//
// Host returns an error wrapping [ErrInvalidPattern] for an invalid pattern
// (see the package documentation for the rules) and one wrapping
// [ErrInvalidHost] for a host with empty labels or more than 127 labels; the
// boolean is then false. An empty host matches no pattern and is not an error,
// so destinations without a host (files) simply do not match.
//
// Host is safe for concurrent use and does not allocate unless it returns an
// error.
func Host(pattern, host string) (bool, error) {
	// Typical names have few labels; the arrays keep them on the stack and
	// append moves to the heap only for unusually long names.
	var pa, ha [16]string
	pl, err := splitPattern(pattern, pa[:0])
	if err != nil {
		return false, err
	}
	if host == "" {
		return false, nil
	}
	hl, err := splitHost(host, ha[:0])
	if err != nil {
		return false, err
	}
	return matchLabels(pl, hl), nil
}

// matchLabels matches host labels against pattern labels where "*" stands for
// one or more labels. It treats "*" as "?" (exactly one label) followed by a
// zero-or-more wildcard and runs the classic backtracking glob algorithm, which
// is O(len(p)·len(h)).
func matchLabels(p, h []string) bool {
	pi, hi := 0, 0
	// inStar reports that pattern position pi is the zero-or-more half of the
	// star label p[pi] (whose mandatory first label has been consumed).
	inStar := false
	starP, starH := -1, 0
	for hi < len(h) {
		if pi < len(p) {
			switch {
			case inStar:
				// Tentatively match zero further labels; remember where to
				// resume if that fails.
				starP, starH = pi, hi
				pi++
				inStar = false
				continue
			case p[pi] == "*":
				// Mandatory single label.
				hi++
				inStar = true
				continue
			case equalFoldASCII(p[pi], h[hi]):
				pi++
				hi++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starH++
		pi, hi = starP+1, starH
	}
	if inStar {
		pi++
	}
	// Remaining pattern labels can only match if nothing is left, and every
	// "*" needs at least one label, so any leftover pattern label fails.
	return pi == len(p)
}

// splitPattern validates pattern and appends its labels to out.
func splitPattern(pattern string, out []string) ([]string, error) {
	p := strings.TrimSuffix(pattern, ".")
	if p == "" {
		return nil, fmt.Errorf("%w %q: empty host pattern", ErrInvalidPattern, pattern)
	}
	stars, colon := false, false
	for rest := p; ; {
		label := rest
		i := strings.IndexByte(rest, '.')
		if i >= 0 {
			label = rest[:i]
		}
		if label == "" {
			return nil, fmt.Errorf("%w %q: empty label", ErrInvalidPattern, pattern)
		}
		if len(out) == maxLabels {
			return nil, fmt.Errorf("%w %q: more than %d labels", ErrInvalidPattern, pattern, maxLabels)
		}
		if label == "*" {
			stars = true
		} else {
			for j := 0; j < len(label); j++ {
				switch c := label[j]; {
				case c == '*':
					return nil, fmt.Errorf("%w %q: '*' must be a whole label, not part of %q", ErrInvalidPattern, pattern, label)
				case c == ':':
					colon = true
				case !hostByte(c):
					return nil, fmt.Errorf("%w %q: character %s is not allowed in a host pattern", ErrInvalidPattern, pattern, charAt(label, j))
				}
			}
		}
		out = append(out, label)
		if i < 0 {
			break
		}
		rest = rest[i+1:]
	}
	if colon {
		if stars || len(out) != 1 {
			return nil, fmt.Errorf("%w %q: an IPv6 pattern must be one exact address", ErrInvalidPattern, pattern)
		}
		if !canonicalIP(p, true) {
			return nil, fmt.Errorf("%w %q: not a canonical IPv6 address (write it unbracketed, without zone, in shortest form; IPv4-mapped addresses in IPv4 form)",
				ErrInvalidPattern, pattern)
		}
	} else if !stars && numericLabel(out[len(out)-1]) && !canonicalIP(p, false) {
		return nil, fmt.Errorf("%w %q: a pattern ending in a number must be a dotted-quad IPv4 address", ErrInvalidPattern, pattern)
	}
	return out, nil
}

// splitHost appends the labels of host to out.
func splitHost(host string, out []string) ([]string, error) {
	h := strings.TrimSuffix(host, ".")
	for rest := h; ; {
		label := rest
		i := strings.IndexByte(rest, '.')
		if i >= 0 {
			label = rest[:i]
		}
		if label == "" {
			return nil, fmt.Errorf("%w %q: empty label", ErrInvalidHost, host)
		}
		if len(out) == maxLabels {
			return nil, fmt.Errorf("%w %q: more than %d labels", ErrInvalidHost, host, maxLabels)
		}
		out = append(out, label)
		if i < 0 {
			return out, nil
		}
		rest = rest[i+1:]
	}
}

// charAt describes the character starting at s[i] for an error message.
func charAt(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte %#02x", s[i])
	}
	return fmt.Sprintf("%q", r)
}

func hostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// numericLabel reports whether label is a number in the sense of the WHATWG
// host parser: all decimal digits, or "0x" followed by hex digits.
func numericLabel(label string) bool {
	if len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		for i := 2; i < len(label); i++ {
			c := label[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(label); i++ {
		if label[i] < '0' || label[i] > '9' {
			return false
		}
	}
	return label != ""
}

// canonicalIP reports whether s is an IP address in the canonical form used
// for hosts: IPv6 (when v6) in shortest form without zone and not IPv4-mapped,
// or IPv4 (when !v6) as a plain dotted quad.
func canonicalIP(s string, v6 bool) bool {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() || a.Is6() != v6 {
		return false
	}
	var buf [64]byte
	return equalFoldASCII(string(a.AppendTo(buf[:0])), s)
}

// equalFoldASCII reports whether a and b are equal ignoring ASCII case only,
// so that no Unicode case folding (such as KELVIN SIGN to 'k') applies.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Within reports whether the absolute path p is root itself or lies below it.
// Both are cleaned with [path.Clean] first and compared element by element:
// Within("/workspace/a", "/workspace") is true, Within("/workspace2",
// "/workspace") and Within("/workspace/../etc", "/workspace") are false, and
// root "/" contains every absolute path. A relative (or empty) p or root is
// never within anything. Within is safe for concurrent use and allocates only
// when p or root is not already clean.
func Within(p, root string) bool {
	if !strings.HasPrefix(p, "/") || !strings.HasPrefix(root, "/") {
		return false
	}
	p, root = path.Clean(p), path.Clean(root)
	if root == "/" {
		return true
	}
	return strings.HasPrefix(p, root) && (len(p) == len(root) || p[len(root)] == '/')
}
