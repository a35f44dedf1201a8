package dest

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// profile is the IDNA profile used for every host: UTS #46 mapping for lookup
// (case folding, width and compatibility mapping, so fullwidth dots and
// digits become ASCII), non-transitional (ß stays ß and becomes an A-label),
// STD3 ASCII rules (letters, digits and '-' only), hyphen and joiner checks,
// the Bidi rule and DNS length limits. It is idna.Lookup plus
// VerifyDNSLength.
var profile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
)

// errEmptyHost is returned by canonHost for an empty host.
var errEmptyHost = errors.New("empty host")

// canonHost canonicalises a URL or e-mail host. When decode is set,
// percent-escapes are decoded first (URL hosts). It returns the canonical
// host and, for IP literals, the address.
func canonHost(h string, decode bool) (string, netip.Addr, error) {
	if h == "" {
		return "", netip.Addr{}, errEmptyHost
	}
	if h[0] == '[' {
		return canonIPv6(h)
	}
	if decode && strings.IndexByte(h, '%') >= 0 {
		d, err := percentDecode(h)
		if err != nil {
			return "", netip.Addr{}, fmt.Errorf("invalid host %q: %v", h, err)
		}
		if space, reason := scanText(d); reason != "" || space {
			if reason == "" {
				reason = "whitespace"
			}
			return "", netip.Addr{}, fmt.Errorf("invalid host %q: decoded host has %s", h, reason)
		}
		h = d
	}
	name := strings.TrimRight(h, ".")
	if name == "" {
		return "", netip.Addr{}, fmt.Errorf("invalid host %q: no labels", h)
	}
	switch asciiHost(name) {
	case hostCanonical:
	case hostUpper:
		name = strings.ToLower(name)
	case hostEmptyLabel:
		return "", netip.Addr{}, fmt.Errorf("invalid host %q: empty label", h)
	default:
		if r, ok := unstableRune(name); ok {
			return "", netip.Addr{}, fmt.Errorf("invalid host %q: %U is mapped differently by the Unicode versions of the IDNA tables", h, r)
		}
		a, err := profile.ToASCII(name)
		if err != nil {
			return "", netip.Addr{}, fmt.Errorf("invalid host %q: %v", h, err)
		}
		name = strings.TrimRight(a, ".")
		if !validLDH(name) {
			return "", netip.Addr{}, fmt.Errorf("invalid host %q: IDNA result %q is not a valid host name", h, a)
		}
		if strings.Contains(name, "xn--") {
			// A-labels are decoded and validated with the same tables.
			u, err := profile.ToUnicode(name)
			if err != nil {
				return "", netip.Addr{}, fmt.Errorf("invalid host %q: %v", h, err)
			}
			if r, ok := unstableRune(u); ok {
				return "", netip.Addr{}, fmt.Errorf("invalid host %q: %U is mapped differently by the Unicode versions of the IDNA tables", h, r)
			}
		}
	}
	if endsInNumber(name) {
		ip, ok := parseIPv4(name)
		if !ok {
			return "", netip.Addr{}, fmt.Errorf("invalid IPv4 address %q", name)
		}
		return ipv4String(name, ip), ip, nil
	}
	return name, netip.Addr{}, nil
}

// unstableRune returns the first code point of s in unstableRanges: one the
// IDNA profile maps or validates differently depending on the Unicode
// version of the tables golang.org/x/net/idna was built with (the Go version
// selects them), such as U+1E9E capital sharp s ("ss" with Unicode 15, "ß"
// with 17). Hosts containing one are rejected, so the canonical host never
// depends on the toolchain.
func unstableRune(s string) (rune, bool) {
	for _, r := range s {
		if r < 0xA0 {
			continue
		}
		lo, hi := 0, len(unstableRanges)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			switch {
			case r < unstableRanges[m][0]:
				hi = m
			case r > unstableRanges[m][1]:
				lo = m + 1
			default:
				return r, true
			}
		}
	}
	return 0, false
}

// Results of asciiHost.
const (
	hostCanonical  = iota // lower-case LDH that IDNA would return unchanged
	hostUpper             // as hostCanonical once ASCII letters are lowered
	hostEmptyLabel        // has an empty label
	hostComplex           // needs full IDNA processing (or is an error)
)

// asciiHost classifies name (without trailing dots) for the fast path. It
// returns hostCanonical or hostUpper only when profile.ToASCII would return
// the lower-cased name unchanged: ASCII letters, digits and '-', labels of
// 1-63 bytes that neither start nor end with '-' and have no "--" in the
// third and fourth position (which covers "xn--" A-labels, whose punycode
// IDNA must validate), at most 253 bytes in all.
func asciiHost(name string) int {
	if len(name) > 253 {
		return hostComplex
	}
	upper := false
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			case 'A' <= c && c <= 'Z':
				upper = true
			default:
				return hostComplex
			}
			continue
		}
		label := name[start:i]
		switch {
		case label == "":
			return hostEmptyLabel
		case len(label) > 63, label[0] == '-', label[len(label)-1] == '-',
			len(label) >= 4 && label[2] == '-' && label[3] == '-':
			return hostComplex
		}
		start = i + 1
	}
	if upper {
		return hostUpper
	}
	return hostCanonical
}

// validLDH reports whether name is a non-empty DNS name of lower-case ASCII
// letters, digits and '-' with labels of 1-63 bytes and at most 253 bytes in
// all. It double-checks the IDNA result.
func validLDH(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	n := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if n == 0 {
				return false
			}
			n = 0
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
		default:
			return false
		}
		if n++; n > 63 {
			return false
		}
	}
	return n > 0
}

// canonIPv6 parses a bracketed IPv6 literal with an optional RFC 6874 zone
// ("[fe80::1%25eth0]"). The address itself must be written literally; only
// the zone may hold percent-escapes. The zone is dropped: it selects an
// interface, not a different address.
func canonIPv6(h string) (string, netip.Addr, error) {
	if len(h) < 2 || h[len(h)-1] != ']' {
		return "", netip.Addr{}, fmt.Errorf("invalid IPv6 address %q: missing ']'", h)
	}
	in := h[1 : len(h)-1]
	if i := strings.IndexByte(in, '%'); i >= 0 {
		if !strings.HasPrefix(in[i:], "%25") || len(in) == i+3 {
			return "", netip.Addr{}, fmt.Errorf("invalid IPv6 address %q: a zone must be written %%25zone", h)
		}
		zone, err := percentDecode(in[i+3:])
		if err != nil {
			return "", netip.Addr{}, fmt.Errorf("invalid IPv6 address %q: %v in zone", h, err)
		}
		if space, reason := scanText(zone); reason != "" || space || strings.ContainsAny(zone, "%[]/") {
			return "", netip.Addr{}, fmt.Errorf("invalid IPv6 address %q: invalid zone %q", h, zone)
		}
		in = in[:i]
	}
	addr, err := netip.ParseAddr(in)
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("invalid IPv6 address %q", h)
	}
	if addr.Is4() {
		return "", netip.Addr{}, fmt.Errorf("invalid IPv6 address %q: IPv4 address in brackets", h)
	}
	if addr.Is4In6() {
		addr = addr.Unmap()
	}
	var buf [64]byte
	if s := addr.AppendTo(buf[:0]); string(s) != in {
		return string(s), addr, nil
	}
	return in, addr, nil
}

// ipv4String returns the dotted-quad text of ip, reusing host when it is
// already that text.
func ipv4String(host string, ip netip.Addr) string {
	var buf [16]byte
	s := ip.AppendTo(buf[:0])
	if string(s) == host {
		return host
	}
	return string(s)
}

// endsInNumber implements the WHATWG URL "ends in a number" check: the last
// label (host has no trailing dot) is all decimal digits or "0x" followed by
// hex digits. Such a host must be an IPv4 address.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		for i := 2; i < len(last); i++ {
			if unhex(last[i]) < 0 {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

// parseIPv4 implements the WHATWG URL IPv4 parser on host (no trailing dot):
// one to four dot-separated numbers, each decimal, octal (leading "0") or hex
// ("0x", which alone means 0); all but the last must be at most 255 and the
// last fills the remaining bytes ("127.1" is 127.0.0.1, "2130706433" is
// 127.0.0.1).
func parseIPv4(host string) (netip.Addr, bool) {
	var parts [4]uint64
	n := 0
	for rest := host; ; {
		part := rest
		i := strings.IndexByte(rest, '.')
		if i >= 0 {
			part = rest[:i]
		}
		if n == 4 {
			return netip.Addr{}, false
		}
		v, ok := parseIPv4Number(part)
		if !ok {
			return netip.Addr{}, false
		}
		parts[n] = v
		n++
		if i < 0 {
			break
		}
		rest = rest[i+1:]
	}
	var ip uint64
	for i := 0; i < n-1; i++ {
		if parts[i] > 255 {
			return netip.Addr{}, false
		}
		ip = ip<<8 | parts[i]
	}
	shift := 8 * uint(5-n)
	if parts[n-1] >= 1<<shift {
		return netip.Addr{}, false
	}
	ip = ip<<shift | parts[n-1]
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

// parseIPv4Number parses one part of a WHATWG IPv4 address. Values above
// 2^32 saturate (they are out of range for every part anyway).
func parseIPv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d := unhex(s[i])
		if d < 0 || uint64(d) >= base {
			return 0, false
		}
		if v <= 1<<32 {
			v = v*base + uint64(d)
		}
	}
	return v, true
}

// privateName reports host names that only resolve inside a private network:
// single-label names (resolved through search domains, LLMNR or mDNS),
// loopback names (see loopbackName), the special-use or conventionally
// internal suffixes below, and the cloud metadata name
// metadata.google.internal. host is canonical.
func privateName(host string) bool {
	dot := strings.LastIndexByte(host, '.')
	return dot < 0 || privateSuffix(host, dot)
}

// privateSuffix is privateName for a host whose last '.' is at dot: the
// last label is one of the private top-level names, or host is under
// home.arpa. (Multi-label loopback names are those under localhost and
// localdomain*.)
func privateSuffix(host string, dot int) bool {
	switch host[dot+1:] {
	case "localhost", "localdomain", "localdomain4", "localdomain6", // RFC 6761, hosts files
		"local",                                      // RFC 6762 mDNS
		"internal",                                   // ICANN private-use TLD; includes metadata.google.internal
		"lan", "home", "corp", "intranet", "private": // RFC 6762 appendix G
		return true
	case "arpa":
		return host == "home.arpa" || strings.HasSuffix(host, ".home.arpa") // RFC 8375
	}
	return false
}

// loopbackName reports names that resolve to a loopback, local or
// multicast address on a host without asking DNS: "localhost" and names
// under it (RFC 6761), names under the localdomain, localdomain4 and
// localdomain6 pseudo-domains, and the names the default hosts files of
// Debian, Ubuntu, RHEL, Fedora, SUSE, Alpine and Docker images map
// (ip6-localhost, ipv6-loopback, localhost6, ip6-allnodes, ...), plus
// systemd's synthesized _gateway and _outbound. name is lower-case without a
// trailing dot.
func loopbackName(name string) bool {
	switch name {
	case "localhost", "localhost4", "localhost6",
		"ip6-localhost", "ip6-loopback", "ip6-localnet", "ip6-mcastprefix",
		"ip6-allnodes", "ip6-allrouters", "ip6-allhosts",
		"ipv6-localhost", "ipv6-loopback", "ipv6-localnet", "ipv6-mcastprefix",
		"ipv6-allnodes", "ipv6-allrouters", "ipv6-allhosts",
		"_gateway", "_outbound", "loopback":
		return true
	}
	tld := name[strings.LastIndexByte(name, '.')+1:]
	switch tld {
	case "localhost", "localdomain", "localdomain4", "localdomain6":
		return true
	}
	return false
}

// ipLike reports whether name (ASCII, no trailing dot) must be an IP
// address: a WHATWG host that ends in a number (the last label is all
// decimal digits, or "0x" and hex digits). Such a name is parsed as IPv4
// under every scheme, and is an error when it is not a valid address.
func ipLike(name string) bool {
	return name != "" && endsInNumber(name)
}

// privateIP reports addresses that are not globally routable unicast:
// IANA special-purpose IPv4 blocks, and for IPv6 the unspecified, loopback,
// link-local, site-local, unique-local, multicast, documentation and discard
// blocks, plus IPv6 forms that embed an IPv4 address (IPv4-compatible,
// IPv4-mapped, IPv4-translated, NAT64, 6to4 and Teredo) whose embedded address
// is private.
// PrivateIP reports whether a is not on the public Internet, by the same
// classification as [Destination.Private] for an IP literal. It is safe for
// concurrent use and does not allocate.
func PrivateIP(a netip.Addr) bool { return privateIP(a) }

func privateIP(a netip.Addr) bool {
	if a.Is4() {
		return privateIPv4(a.As4())
	}
	b := a.As16()
	var v4 [4]byte
	switch {
	case allZero(b[:12]): // ::/96: ::, ::1 and IPv4-compatible ::a.b.c.d
		copy(v4[:], b[12:])
		return privateIPv4(v4)
	case allZero(b[:10]) && b[10] == 0xff && b[11] == 0xff, // ::ffff:0:0/96 mapped
		allZero(b[:8]) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0,       // ::ffff:0:0:0/96 translated
		b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && allZero(b[4:12]): // 64:ff9b::/96 NAT64
		copy(v4[:], b[12:])
		return privateIPv4(v4)
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1: // 64:ff9b:1::/48 local NAT64
		return true
	case b[0] == 0x20 && b[1] == 0x02: // 2002::/16 6to4
		copy(v4[:], b[2:6])
		return privateIPv4(v4)
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0: // 2001::/32 Teredo
		for i := range v4 {
			v4[i] = ^b[12+i]
		}
		var server [4]byte
		copy(server[:], b[4:8])
		return privateIPv4(v4) || privateIPv4(server)
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8: // 2001:db8::/32 documentation
		return true
	case b[0] == 0x01 && b[1] == 0x00 && allZero(b[2:8]): // 100::/64 discard
		return true
	case b[0] == 0xfe && b[1]&0x80 == 0x80: // fe80::/10 link-local, fec0::/10 site-local
		return true
	case b[0]&0xfe == 0xfc: // fc00::/7 unique local
		return true
	case b[0] == 0xff: // ff00::/8 multicast
		return true
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// privateIPv4 reports the IANA special-purpose IPv4 blocks that are not
// globally routable unicast.
func privateIPv4(a [4]byte) bool {
	switch {
	case a[0] == 0, // 0.0.0.0/8 "this network", includes 0.0.0.0
		a[0] == 10,                               // 10/8 private
		a[0] == 100 && a[1]&0xc0 == 64,           // 100.64/10 CGNAT shared
		a[0] == 127,                              // 127/8 loopback
		a[0] == 169 && a[1] == 254,               // 169.254/16 link-local, cloud metadata
		a[0] == 172 && a[1]&0xf0 == 16,           // 172.16/12 private
		a[0] == 192 && a[1] == 0 && a[2] == 0,    // 192.0.0/24 IETF protocol assignments
		a[0] == 192 && a[1] == 0 && a[2] == 2,    // 192.0.2/24 TEST-NET-1
		a[0] == 192 && a[1] == 168,               // 192.168/16 private
		a[0] == 198 && a[1]&0xfe == 18,           // 198.18/15 benchmarking
		a[0] == 198 && a[1] == 51 && a[2] == 100, // 198.51.100/24 TEST-NET-2
		a[0] == 203 && a[1] == 0 && a[2] == 113,  // 203.0.113/24 TEST-NET-3
		a[0] >= 224:                              // 224/4 multicast, 240/4 reserved, 255.255.255.255 broadcast
		return true
	}
	return false
}
