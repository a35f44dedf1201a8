package dest

import "strconv"

// parseFast parses an already canonical http or https URL in one pass:
// lower-case scheme and host name (letters, digits, '-' and '.', not ending
// in a number), no port or a decimal non-default port without leading
// zeros, and a clean path of literal path bytes (no '%', no empty, "." or
// ".." segment, no trailing '/' but for the root), optionally followed by a
// query or fragment of printable ASCII with valid percent-escapes. ok is
// false for anything else (and *d untouched), and the caller must use
// parseFull; when ok, *d is exactly what parseFull returns, and text is its
// canonical text, a prefix of raw. Host and Path are substrings of raw, so parseFast does not
// allocate. FuzzFastPath checks it against parseFull.
func parseFast(raw string, d *Destination) (text string, ok bool) {
	var scheme string
	var port int
	switch {
	case len(raw) > 8 && raw[:8] == "https://":
		scheme, port = "https", 443
	case len(raw) > 7 && raw[:7] == "http://":
		scheme, port = "http", 80
	default:
		return "", false
	}
	rest := raw[len(scheme)+3:]

	// Host: lower-case LDH labels of 1-63 bytes, not starting or ending
	// with '-', no "--" in the third and fourth position, 253 bytes at most,
	// the last label not starting with a digit (IP literals and hosts that
	// end in a number take the full parser).
	i, label, dot := 0, 0, -1
	for ; i < len(rest); i++ {
		switch fastClass[rest[i]] {
		case fastLDH:
			if label++; label > 63 {
				return "", false
			}
			continue
		case fastHyphen:
			if label == 0 || label == 2 && i+1 < len(rest) && rest[i+1] == '-' {
				return "", false
			}
			if label++; label > 63 {
				return "", false
			}
			continue
		case fastDot:
			if label == 0 || rest[i-1] == '-' {
				return "", false
			}
			label, dot = 0, i
			continue
		}
		break
	}
	if label == 0 || i > 253 || rest[i-1] == '-' || rest[dot+1] <= '9' {
		return "", false
	}
	host := rest[:i]
	rest = rest[i:]

	// Port: ":" and 1-65535 without leading zeros, not the default.
	if rest != "" && rest[0] == ':' {
		j, n := 1, 0
		for ; j < len(rest) && '0' <= rest[j] && rest[j] <= '9'; j++ {
			if n = n*10 + int(rest[j]-'0'); n > 65535 {
				return "", false
			}
		}
		if j == 1 || rest[1] == '0' || n == port {
			return "", false
		}
		port, rest = n, rest[j:]
	}

	// Path: '/' and clean segments of literal bytes.
	if rest == "" || rest[0] != '/' {
		return "", false
	}
	j, seg := 1, 1 // seg is the start of the current segment
	for ; j < len(rest); j++ {
		k := fastClass[rest[j]]
		if k-fastLDH <= fastPath-fastLDH {
			continue // a literal path byte
		}
		if k != fastSlash {
			if k != fastEnd {
				return "", false
			}
			break
		}
		if !cleanSegment(rest[seg:j]) {
			return "", false
		}
		seg = j + 1
	}
	if j > 1 && !cleanSegment(rest[seg:j]) {
		return "", false
	}
	p := rest[:j]

	// Query and fragment: dropped, but printable ASCII with valid escapes.
	if tail := rest[j:]; tail != "" {
		for k := 0; k < len(tail); k++ {
			if c := tail[k]; c <= ' ' || c >= 0x7f || c == '\\' {
				return "", false
			}
		}
		if checkEscapes(tail) != nil {
			return "", false
		}
	}
	text = raw[:len(raw)-len(rest)+j]
	*d = Destination{Kind: KindURL, Scheme: scheme, Host: host, Port: port, Path: p, Private: dot < 0 || privateSuffix(host, dot)}
	return text, true
}

// Byte classes of the fast path.
const (
	fastOther  = iota // anything else: the full parser decides
	fastLDH           // a-z 0-9
	fastHyphen        // -
	fastDot           // .
	fastPath          // other literal path bytes (pathLiteral)
	fastSlash         // /
	fastEnd           // ? #
)

// fastClass maps each byte to its class for parseFast.
var fastClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch b := byte(c); {
		case 'a' <= b && b <= 'z', '0' <= b && b <= '9':
			t[c] = fastLDH
		case b == '-':
			t[c] = fastHyphen
		case b == '.':
			t[c] = fastDot
		case b == '/':
			t[c] = fastSlash
		case b == '?', b == '#':
			t[c] = fastEnd
		case pathLiteral(b):
			t[c] = fastPath
		}
	}
	return t
}()

// cleanSegment reports a path segment that path.Clean keeps as it is: not
// empty, "." or "..".
func cleanSegment(s string) bool {
	return s != "" && s != "." && s != ".."
}

// textIs reports whether s is the canonical text of d, without building it.
func textIs(d Destination, s string) bool {
	switch d.Kind {
	case KindNone:
		return s == ""
	case KindFile:
		return s == d.Path
	case KindEmail:
		n := len(d.User)
		return len(s) == n+1+len(d.Host) && s[:n] == d.User && s[n] == '@' && s[n+1:] == d.Host
	case KindURL, KindOther:
	default:
		return false
	}
	var ok bool
	if s, ok = cutPrefix(s, d.Scheme); !ok {
		return false
	}
	if s, ok = cutPrefix(s, "://"); !ok {
		return false
	}
	if d.IP.Is6() {
		if s, ok = cutPrefix(s, "["); !ok {
			return false
		}
		if s, ok = cutPrefix(s, d.Host); !ok {
			return false
		}
		if s, ok = cutPrefix(s, "]"); !ok {
			return false
		}
	} else if s, ok = cutPrefix(s, d.Host); !ok {
		return false
	}
	if d.Port != 0 && d.Port != defaultPort(d.Scheme) {
		var buf [8]byte
		b := append(buf[:0], ':')
		b = strconv.AppendInt(b, int64(d.Port), 10)
		if len(s) < len(b) || s[:len(b)] != string(b) {
			return false
		}
		s = s[len(b):]
	}
	if d.Kind == KindURL && d.Path == "" {
		return s == "/"
	}
	return s == d.Path
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return s, false
	}
	return s[len(prefix):], true
}
