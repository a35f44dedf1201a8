package dest

import (
	"fmt"
	"path"
	"strings"
)

// Parse canonicalises the destination of a tool call.
//
// raw is a URL, a file path, an e-mail address or an opaque scheme://name;
// the package documentation lists the accepted forms and how each is
// canonicalised. workdir is the task's working directory, used to resolve
// relative file paths; it must be absolute, and "" makes relative paths an
// error. The empty raw is the empty destination: Parse returns
// Destination{Kind: KindNone} and nil.
//
// On failure Parse returns the zero Destination and an [*Error] (wrapping
// [ErrInvalid]) whose message says what was wrong. Anything unparseable or
// ambiguous fails; callers must deny on error. Parse never panics, is safe
// for concurrent use and, for an already canonical https URL, does not
// allocate.
func Parse(raw, workdir string) (d Destination, err error) {
	if _, ok := parseFast(raw, &d); ok {
		return d, nil
	}
	return parseFull(raw, workdir)
}

// ParseText is [Parse] that also returns the canonical text of the
// destination, [Destination.String]. When raw is already canonical, text is
// raw itself and ParseText does not allocate; when raw is canonical but for
// a query or fragment, text is the prefix of raw without them. On failure
// text is "" and err is the error Parse returns. ParseText is safe for
// concurrent use and never panics.
//
// Most callers that need both should prefer ParseText to Parse followed by
// String: an already canonical http or https URL
// ("https://api.github.com/repos/x/y") is parsed in one pass.
func ParseText(raw, workdir string) (d Destination, text string, err error) {
	text, err = ParseInto(&d, raw, workdir)
	return d, text, err
}

// ParseInto is [ParseText] writing the destination to *d, for callers that
// keep it in a reused place: it saves copying the Destination. On failure
// *d is the zero Destination.
func ParseInto(d *Destination, raw, workdir string) (text string, err error) {
	if text, ok := parseFast(raw, d); ok {
		return text, nil
	}
	*d, err = parseFull(raw, workdir)
	if err != nil {
		*d = Destination{}
		return "", err
	}
	if textIs(*d, raw) {
		return raw, nil
	}
	return d.String(), nil
}

// parseFull is Parse without the fast path.
func parseFull(raw, workdir string) (Destination, error) {
	if raw == "" {
		return Destination{}, nil
	}
	space, reason := scanText(raw)
	if reason != "" {
		return fail(raw, "%s", reason)
	}
	if raw[0] == '/' {
		p, reason := filePath(raw)
		if reason != "" {
			return fail(raw, "%s", reason)
		}
		return Destination{Kind: KindFile, Scheme: "file", Path: p}, nil
	}
	if scheme, rest, ok := splitScheme(raw); ok {
		if len(scheme) == 1 {
			return fail(raw, "Windows drive path or single-letter scheme %q is not supported (only absolute POSIX paths)", scheme+":")
		}
		if space {
			return fail(raw, "whitespace in URL (percent-encode it in the path)")
		}
		return parseScheme(raw, lowerASCII(scheme), rest)
	}
	if strings.IndexByte(raw, '@') >= 0 && strings.IndexByte(raw, '/') < 0 {
		if space {
			return fail(raw, "whitespace in e-mail address")
		}
		return parseEmail(raw, raw)
	}
	switch {
	case raw[0] == '~':
		return fail(raw, "home-relative path (~) is not supported; use an absolute path")
	case raw[0] == '\\':
		return fail(raw, "backslash path (Windows or UNC) is not supported")
	case raw == "." || raw == ".." || strings.HasPrefix(raw, "./") || strings.HasPrefix(raw, "../"):
		return relPath(raw, workdir)
	}
	slash := strings.IndexByte(raw, '/')
	if slash < 0 {
		return fail(raw, "bare name: expected a URL with a scheme (https://host/...), an absolute path, a ./relative path or an e-mail address")
	}
	if first := raw[:slash]; first[0] != '.' && strings.IndexByte(first, '.') >= 0 || strings.ContainsAny(first, ":@") {
		return fail(raw, "ambiguous relative path: %q looks like a host; write https://%s for a URL or ./%s for a file", first, raw, raw)
	}
	return relPath(raw, workdir)
}

// relPath resolves a relative file path against workdir.
func relPath(raw, workdir string) (Destination, error) {
	if workdir == "" {
		return fail(raw, "relative path without a workdir")
	}
	if strings.IndexByte(raw, '\\') >= 0 {
		return fail(raw, "backslash in file path")
	}
	if _, reason := scanText(workdir); reason != "" {
		return fail(raw, "invalid workdir %q: %s", workdir, reason)
	}
	if workdir[0] != '/' || strings.HasPrefix(workdir, "//") || strings.IndexByte(workdir, '\\') >= 0 {
		return fail(raw, "workdir %q is not an absolute path", workdir)
	}
	rel := raw
	for strings.HasPrefix(rel, "./") {
		rel = rel[2:] // saves path.Clean from copying in the common case
	}
	return Destination{Kind: KindFile, Scheme: "file", Path: path.Clean(workdir + "/" + rel)}, nil
}

// parseScheme handles "scheme:rest"; scheme is lower-case.
func parseScheme(raw, scheme, rest string) (Destination, error) {
	switch {
	case scheme == "mailto":
		return parseMailto(raw, rest)
	case scheme == "file":
		return parseFileURL(raw, rest)
	case forbiddenScheme(scheme):
		return fail(raw, "scheme %q does not name a destination", scheme)
	case !strings.HasPrefix(rest, "//"):
		return fail(raw, `scheme %q without "//": expected scheme://host or scheme://name`, scheme)
	}
	rest = rest[2:]
	// The authority ends at the first '/', '?' or '#'; the path at '?' or
	// '#'. One pass finds both and notes the bytes the authority must not
	// contain.
	end, pathEnd := len(rest), len(rest)
	at, backslash := false, false
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '/':
			if end == len(rest) {
				end = i
			}
			continue
		case '?', '#':
			if end == len(rest) {
				end = i
			}
			pathEnd = i
		case '@':
			at = at || end == len(rest)
			continue
		case '\\':
			backslash = backslash || end == len(rest)
			continue
		default:
			continue
		}
		break
	}
	auth, p := rest[:end], rest[end:pathEnd]
	if tail := rest[pathEnd:]; strings.IndexByte(tail, '%') >= 0 {
		if err := checkEscapes(tail); err != nil {
			return fail(raw, "%v in query or fragment", err)
		}
	}
	if backslash {
		return fail(raw, "backslash in authority (some clients treat it as '/')")
	}
	if at {
		return fail(raw, "userinfo (user@ or user:password@ before the host) is not allowed")
	}
	host, port, reason := splitHostPort(auth)
	if reason != "" {
		return fail(raw, "%s", reason)
	}
	cp, err := canonURLPath(p)
	if err != nil {
		return fail(raw, "%v", err)
	}
	if port == 0 {
		port = defaultPort(scheme)
	}
	d := Destination{Kind: KindURL, Scheme: scheme, Port: port, Path: cp}
	if opaqueScheme(scheme) {
		return parseOpaque(raw, d, host)
	}
	if host == "" {
		return fail(raw, "empty host")
	}
	if d.Path == "" {
		d.Path = "/"
	}
	h, ip, err := canonHost(host, true)
	if err != nil {
		return fail(raw, "%v", err)
	}
	d.Host, d.IP = h, ip
	if ip.IsValid() {
		d.Private = privateIP(ip)
	} else {
		d.Private = privateName(h)
	}
	return d, nil
}

// splitHostPort splits an authority (without userinfo) into host and port.
// port is 0 when absent.
func splitHostPort(auth string) (host string, port int, reason string) {
	host = auth
	var portStr string
	hasPort := false
	if strings.HasPrefix(auth, "[") {
		i := strings.IndexByte(auth, ']')
		if i < 0 {
			return "", 0, "missing ']' in IPv6 host"
		}
		host = auth[:i+1]
		switch after := auth[i+1:]; {
		case after == "":
		case after[0] == ':':
			portStr, hasPort = after[1:], true
		default:
			return "", 0, "unexpected " + quote(after) + " after IPv6 host"
		}
	} else if i := strings.IndexByte(auth, ':'); i >= 0 {
		host, portStr, hasPort = auth[:i], auth[i+1:], true
		if strings.IndexByte(portStr, ':') >= 0 {
			return "", 0, "invalid host " + quote(auth) + ": IPv6 addresses must be in brackets"
		}
	}
	if !hasPort {
		return host, 0, ""
	}
	if portStr == "" {
		return "", 0, "empty port"
	}
	n := 0
	for i := 0; i < len(portStr); i++ {
		c := portStr[i]
		if c < '0' || c > '9' {
			return "", 0, "invalid port " + quote(portStr) + ": not a decimal number"
		}
		if n = n*10 + int(c-'0'); n > 65535 {
			return "", 0, "invalid port " + quote(portStr) + ": out of range 1-65535"
		}
	}
	if n == 0 {
		return "", 0, "invalid port " + quote(portStr) + ": out of range 1-65535"
	}
	return host, n, ""
}

// parseOpaque finishes a scheme://name destination of an opaque scheme. A
// name that is IP-like (see ipLike) is parsed exactly like an http host, so
// it becomes an IP address or an error, never a name.
func parseOpaque(raw string, d Destination, name string) (Destination, error) {
	d.Kind = KindOther
	if d.Path == "/" {
		d.Path = ""
	}
	if name == "" {
		return fail(raw, "empty name after %q", d.Scheme+"://")
	}
	if name[0] == '[' {
		h, ip, err := canonIPv6(name)
		if err != nil {
			return fail(raw, "%v", err)
		}
		d.Host, d.IP, d.Private = h, ip, privateIP(ip)
		return d, nil
	}
	if strings.IndexByte(name, '%') >= 0 {
		dec, err := percentDecode(name)
		if err != nil {
			return fail(raw, "invalid name %q: %v", name, err)
		}
		name = dec
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return fail(raw, "invalid name %q: character %q is not one of A-Z a-z 0-9 - . _ ~", name, c)
		}
	}
	trimmed := strings.TrimRight(name, ".")
	if trimmed == "" {
		return fail(raw, "invalid name %q: no labels", name)
	}
	if ipLike(trimmed) {
		h, ip, err := canonHost(name, false)
		if err != nil {
			return fail(raw, "%v", err)
		}
		if !ip.IsValid() {
			return fail(raw, "invalid IPv4 address %q", name)
		}
		d.Host, d.IP, d.Private = h, ip, privateIP(ip)
		return d, nil
	}
	d.Host = trimmed
	d.Private = loopbackName(lowerASCII(trimmed))
	return d, nil
}

// parseFileURL handles "file:rest".
func parseFileURL(raw, rest string) (Destination, error) {
	if !strings.HasPrefix(rest, "//") {
		return fail(raw, "file URL must be file:///absolute/path or file://localhost/absolute/path")
	}
	rest = rest[2:]
	if strings.ContainsAny(rest, "?#") {
		return fail(raw, "query or fragment in file URL (percent-encode '?' as %%3F and '#' as %%23)")
	}
	if strings.IndexByte(rest, '\\') >= 0 {
		return fail(raw, "backslash in file URL")
	}
	auth, p := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		auth, p = rest[:i], rest[i:]
	}
	if auth != "" && !strings.EqualFold(auth, "localhost") {
		return fail(raw, "file URL host %q is not local (use file:///path or file://localhost/path)", auth)
	}
	dec, err := percentDecode(p)
	if err != nil {
		return fail(raw, "%v in file URL path", err)
	}
	if _, reason := scanText(dec); reason != "" {
		return fail(raw, "decoded file path has %s", reason)
	}
	if strings.IndexByte(dec, '\\') >= 0 {
		return fail(raw, "percent-encoded backslash in file URL path")
	}
	if dec == "" {
		dec = "/"
	}
	return Destination{Kind: KindFile, Scheme: "file", Path: path.Clean(dec)}, nil
}

// parseMailto handles "mailto:rest": one recipient, percent-decoded, and
// only the header fields checkMailtoHeaders allows.
func parseMailto(raw, rest string) (Destination, error) {
	if strings.HasPrefix(rest, "//") {
		return fail(raw, `mailto takes no "//": write mailto:user@host`)
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		if err := checkEscapes(rest[i:]); err != nil {
			return fail(raw, "%v in query or fragment", err)
		}
		if reason := checkMailtoHeaders(rest[i:]); reason != "" {
			return fail(raw, "%s", reason)
		}
		rest = rest[:i]
	}
	addr, err := percentDecode(rest)
	if err != nil {
		return fail(raw, "%v in mailto address", err)
	}
	if _, reason := scanText(addr); reason != "" {
		return fail(raw, "decoded mailto address has %s", reason)
	}
	if strings.ContainsAny(addr, ",;") {
		return fail(raw, "mailto with several recipients (',' or ';' in the address)")
	}
	return parseEmail(raw, addr)
}

// parseEmail handles addr, a bare or decoded mailto address.
func parseEmail(raw, addr string) (Destination, error) {
	at := strings.IndexByte(addr, '@')
	switch {
	case at < 0:
		return fail(raw, "e-mail address without '@'")
	case strings.IndexByte(addr[at+1:], '@') >= 0:
		return fail(raw, "e-mail address with more than one '@'")
	}
	user, domain := addr[:at], addr[at+1:]
	if reason := checkLocalPart(user); reason != "" {
		return fail(raw, "%s", reason)
	}
	if domain == "" {
		return fail(raw, "e-mail address with an empty domain")
	}
	if domain[0] == '[' {
		return fail(raw, "e-mail address literals like [192.0.2.1] are not supported")
	}
	h, ip, err := canonHost(domain, false)
	if err != nil {
		return fail(raw, "%v", err)
	}
	d := Destination{Kind: KindEmail, Scheme: "mailto", Host: h, User: user, IP: ip}
	if ip.IsValid() {
		d.Private = privateIP(ip)
	} else {
		d.Private = privateName(h)
	}
	return d, nil
}

// checkLocalPart accepts an unquoted dot-atom local part made of ASCII
// letters, digits and the atext symbols other than '%', '!', '/', '?' and
// '#' (which route mail elsewhere or clash with URL syntax).
func checkLocalPart(user string) string {
	if user == "" {
		return "e-mail address with an empty local part"
	}
	if user[0] == '.' || user[len(user)-1] == '.' || strings.Contains(user, "..") {
		return "e-mail local part " + quote(user) + " has a misplaced '.'"
	}
	for i := 0; i < len(user); i++ {
		c := user[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			continue
		}
		switch c {
		case '.', '-', '_', '+', '=', '&', '\'', '*', '^', '`', '{', '|', '}', '~', '$':
			continue
		}
		return fmt.Sprintf("e-mail local part %q has unsupported character %q", user, c)
	}
	return ""
}

// checkMailtoHeaders checks the header fields of a mailto: URL; tail starts
// with '?' or '#'. Only "subject" and "body" are allowed (RFC 6068 lets
// "to", "cc", "bcc" and any other header add recipients or rewrite the
// message). Field names are compared after percent-decoding and ignoring
// case; a fragment, a second '?', ';' (a separator to some clients), an
// empty or nameless field, and a value that decodes to CR, LF or any other
// control character (header injection) are rejected. It returns "" or the
// reason, which never repeats a value.
func checkMailtoHeaders(tail string) string {
	if tail[0] == '#' {
		return "fragment in mailto URL"
	}
	q := tail[1:]
	switch {
	case strings.IndexByte(q, '#') >= 0:
		return "fragment in mailto URL"
	case strings.IndexByte(q, '?') >= 0:
		return "second '?' in mailto header fields"
	case strings.IndexByte(q, ';') >= 0:
		return "';' in mailto header fields"
	case q == "":
		return "empty mailto header fields"
	}
	for q != "" {
		field := q
		if i := strings.IndexByte(q, '&'); i >= 0 {
			field, q = q[:i], q[i+1:]
			if q == "" {
				return "empty mailto header field"
			}
		} else {
			q = ""
		}
		name, value, ok := strings.Cut(field, "=")
		if !ok || name == "" {
			return "mailto header field without a name or '='"
		}
		dec, err := percentDecode(name)
		if err != nil {
			return "invalid percent-escape in mailto header name"
		}
		switch strings.ToLower(dec) {
		case "subject", "body":
		case "to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc", "reply-to", "from", "sender":
			return "mailto header " + quote(strings.ToLower(dec)) + " adds recipients"
		default:
			return "mailto header field other than subject and body"
		}
		v, err := percentDecode(value)
		if err != nil {
			return "invalid percent-escape in mailto " + strings.ToLower(dec)
		}
		if _, reason := scanText(v); reason != "" {
			return "mailto " + strings.ToLower(dec) + " has " + reason + " (header injection)"
		}
	}
	return ""
}
