package dest_test

import (
	"errors"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/taskguard/taskguard/internal/dest"
)

// addSeeds seeds f with the adversarial corpus and the table cases.
func addSeeds(f *testing.F, add func(raw string)) {
	for _, c := range readCorpus(f) {
		add(c.raw)
	}
	for _, c := range parseCases {
		add(c.raw)
	}
	for _, c := range errorCases {
		add(c.raw)
	}
}

// FuzzParse checks that Parse never panics, that errors are well-formed
// *dest.Error values with a zero Destination, that the canonical form is a
// fixed point of Parse, and that Private is never false for an IP in a
// private range.
func FuzzParse(f *testing.F) {
	addSeeds(f, func(raw string) { f.Add(raw, wd) })
	f.Add("./a", "")
	f.Add("./a", "/a/../b/")
	f.Add("../../x", "/")
	f.Fuzz(checkParse)
}

// checkParse is the property FuzzParse checks for one input.
func checkParse(t *testing.T, raw, workdir string) {
	d, err := dest.Parse(raw, workdir)
	if err != nil {
		var de *dest.Error
		if !errors.As(err, &de) || !errors.Is(err, dest.ErrInvalid) {
			t.Fatalf("Parse(%q) error %v is not a *dest.Error wrapping ErrInvalid", raw, err)
		}
		if d != (dest.Destination{}) {
			t.Fatalf("Parse(%q) failed but returned %+v", raw, d)
		}
		if !strings.HasPrefix(err.Error(), "dest: ") {
			t.Fatalf("Parse(%q) error %q lacks the package prefix", raw, err)
		}
		return
	}
	if (raw == "") != (d.Kind == dest.KindNone) {
		t.Fatalf("Parse(%q) = kind %v", raw, d.Kind)
	}
	checkInvariants(t, raw, d)

	s := d.String()
	again, err := dest.Parse(s, workdir)
	if err != nil {
		t.Fatalf("Parse(%q) = %+v, but its String %q does not parse: %v", raw, d, s, err)
	}
	if again != d {
		t.Fatalf("canonical form is not a fixed point:\nParse(%q) = %+v\nParse(%q) = %+v", raw, d, s, again)
	}
	if s2 := again.String(); s2 != s {
		t.Fatalf("String not stable: %q then %q", s, s2)
	}
}

// checkInvariants checks what every successful Parse result satisfies.
func checkInvariants(t *testing.T, raw string, d dest.Destination) {
	t.Helper()
	for _, field := range []string{d.Scheme, d.Host, d.Path, d.User} {
		for _, r := range field {
			if r < 0x20 || r == 0x7f || r == utf8.RuneError {
				t.Fatalf("Parse(%q) = %+v: control or invalid character in %q", raw, d, field)
			}
		}
	}
	if d.Scheme != strings.ToLower(d.Scheme) {
		t.Fatalf("Parse(%q): scheme %q not lower-case", raw, d.Scheme)
	}
	if d.IP.IsValid() {
		if d.IP.Zone() != "" || d.IP.Is4In6() {
			t.Fatalf("Parse(%q): IP %v has a zone or is IPv4-mapped", raw, d.IP)
		}
		if d.Host != d.IP.String() {
			t.Fatalf("Parse(%q): host %q is not the canonical text of IP %v", raw, d.Host, d.IP)
		}
		if mustBePrivate(d.IP) && !d.Private {
			t.Fatalf("Parse(%q): IP %v is in a private range but Private is false", raw, d.IP)
		}
	}
	switch d.Kind {
	case dest.KindURL:
		if d.Host == "" || !strings.HasPrefix(d.Path, "/") || path.Clean(d.Path) != d.Path {
			t.Fatalf("Parse(%q) = %+v: bad URL host or path", raw, d)
		}
		if d.Port < 0 || d.Port > 65535 {
			t.Fatalf("Parse(%q): port %d", raw, d.Port)
		}
		if !d.IP.IsValid() && d.Host != strings.ToLower(d.Host) {
			t.Fatalf("Parse(%q): host %q not lower-case", raw, d.Host)
		}
		for i := 0; i < len(d.Host)+len(d.Path); i++ {
			if c := (d.Host + d.Path)[i]; c >= 0x80 || c == '\\' || c == ' ' {
				t.Fatalf("Parse(%q) = %+v: non-canonical byte %q", raw, d, c)
			}
		}
	case dest.KindFile:
		if !strings.HasPrefix(d.Path, "/") || path.Clean(d.Path) != d.Path || d.Host != "" || d.Scheme != "file" {
			t.Fatalf("Parse(%q) = %+v: bad file", raw, d)
		}
	case dest.KindEmail:
		if d.User == "" || d.Host == "" || strings.ContainsAny(d.User, "@/%! ") {
			t.Fatalf("Parse(%q) = %+v: bad e-mail", raw, d)
		}
	case dest.KindOther:
		if d.Host == "" || d.Path != "" && (!strings.HasPrefix(d.Path, "/") || path.Clean(d.Path) != d.Path || d.Path == "/") {
			t.Fatalf("Parse(%q) = %+v: bad opaque destination", raw, d)
		}
	}
}

// mustBePrivate is an independent statement of the ranges Private must
// cover, written with net/netip predicates.
func mustBePrivate(a netip.Addr) bool {
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() ||
		a.IsMulticast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range []string{"0.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "240.0.0.0/4", "::/96"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return mustBePrivate4(a)
		}
	}
	b := a.As16()
	switch {
	case netip.MustParsePrefix("64:ff9b::/96").Contains(a):
		return mustBePrivate(netip.AddrFrom4([4]byte(b[12:])))
	case netip.MustParsePrefix("2002::/16").Contains(a):
		return mustBePrivate(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return false
}

func mustBePrivate4(a netip.Addr) bool {
	if a.Is6() {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
		// ::/96 embeds an IPv4 address; all of 0/8 counts.
	}
	for _, p := range []string{"0.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "240.0.0.0/4"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return true
		}
	}
	return mustBePrivate(a)
}

// FuzzParseVsNetURL checks the hand-written URL parser against net/url:
// whenever net/url sees userinfo, Parse must fail, and whenever Parse accepts
// a URL whose authority is plain ASCII, net/url must agree on scheme, host,
// port and (decoded, cleaned) path.
func FuzzParseVsNetURL(f *testing.F) {
	addSeeds(f, func(raw string) { f.Add(raw) })
	f.Fuzz(checkNetURL)
}

// checkNetURL is the property FuzzParseVsNetURL checks for one input.
func checkNetURL(t *testing.T, raw string) {
	d, err := dest.Parse(raw, wd)
	u, uerr := url.Parse(raw)
	if uerr == nil && u.User != nil && err == nil && d.Kind != dest.KindEmail {
		t.Fatalf("net/url sees userinfo %q in %q, but Parse accepted %+v", u.User.Username(), raw, d)
	}
	if err != nil || d.Kind != dest.KindURL && d.Kind != dest.KindOther {
		return
	}
	auth := raw[strings.Index(raw, "://")+3:]
	if i := strings.IndexAny(auth, "/?#"); i >= 0 {
		auth = auth[:i]
	}
	for i := 0; i < len(auth); i++ {
		if auth[i] >= 0x80 || auth[i] == '%' && !strings.HasPrefix(auth, "[") {
			return // net/url does no IDNA and rejects escaped ASCII in hosts
		}
	}
	if uerr != nil {
		t.Fatalf("Parse(%q) = %+v but net/url fails: %v", raw, d, uerr)
	}
	if !strings.EqualFold(u.Scheme, d.Scheme) || u.Opaque != "" {
		t.Fatalf("Parse(%q): scheme %q, net/url scheme %q opaque %q", raw, d.Scheme, u.Scheme, u.Opaque)
	}
	h := strings.TrimRight(strings.ToLower(u.Hostname()), ".")
	switch {
	case d.IP.IsValid():
		if a, err := netip.ParseAddr(h); err == nil && a.WithZone("").Unmap() != d.IP {
			t.Fatalf("Parse(%q): IP %v, net/url host %q", raw, d.IP, h)
		}
	case d.Kind == dest.KindOther:
		if !strings.EqualFold(d.Host, strings.TrimRight(u.Hostname(), ".")) && !strings.Contains(auth, "%") {
			t.Fatalf("Parse(%q): name %q, net/url host %q", raw, d.Host, u.Hostname())
		}
	case h != d.Host:
		t.Fatalf("Parse(%q): host %q, net/url host %q", raw, d.Host, h)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n != d.Port {
			t.Fatalf("Parse(%q): port %d, net/url port %q", raw, d.Port, p)
		}
	}
	want := path.Clean("/" + u.Path)
	got, err := url.PathUnescape(d.Path)
	if err != nil {
		t.Fatalf("Parse(%q): path %q does not unescape: %v", raw, d.Path, err)
	}
	if got == "" {
		got = "/"
	}
	if want != got {
		t.Fatalf("Parse(%q): path %q (decoded %q), net/url path %q (cleaned %q)", raw, d.Path, got, u.Path, want)
	}
}

// FuzzParseURLParts builds URLs from fuzzed parts so that the fuzzer spends
// its time in host, port and path handling, and checks both the FuzzParse
// and the FuzzParseVsNetURL properties.
func FuzzParseURLParts(f *testing.F) {
	f.Add("https", "api.github.com", "", "/repos/x/y")
	f.Add("http", "0x7f.1", ":8080", "/a/%2e%2e/b")
	f.Add("http", "[::ffff:127.0.0.1]", "", "")
	f.Add("http", "[fe80::1%25eth0]", ":80", "/")
	f.Add("https", "xn--pple-43d.com", ":443", "/caf%C3%A9")
	f.Add("https", "аpple.com", "", "/")
	f.Add("http", "%31%32%37.0.0.1", "", "/x;y")
	f.Add("db", "orders", ":5432", "/a/../b")
	f.Add("ws", "localhost.", ":0080", "?q#f")
	f.Fuzz(func(t *testing.T, scheme, host, port, path string) {
		raw := scheme + "://" + host + port + path
		checkParse(t, raw, wd)
		checkNetURL(t, raw)
	})
}

// hostSeeds seed FuzzHostSchemes.
var hostSeeds = []string{
	"example.com", "API.GitHub.com.", "127.0.0.1", "0x7f.1", "2130706433", "0177.0.0.1", "127.1",
	"[::1]", "[::ffff:127.0.0.1]", "[fe80::1%25eth0]", "169.254.169.254", "%31%32%37.0.0.1",
	"localhost", "localhost.localdomain", "IP6-LOCALHOST.", "orders", "orders.1", "1.2.3.4.5",
	"bücher.example", "ｅｘａｍｐｌｅ．ｃｏｍ", "a_b", "deadbeef", "0x", "0", "1234", "host:8080",
	"x.0X1F", "a..b", "...", "[127.0.0.1]",
}

// FuzzHostSchemes is a differential check of host parsing across schemes:
// any scheme that is not opaque gives exactly the http result, and an
// opaque scheme gives the same IP address or an error for every host http
// parses as an IP, and never an opaque name that is IP-like.
func FuzzHostSchemes(f *testing.F) {
	for _, h := range hostSeeds {
		f.Add(h)
	}
	f.Fuzz(checkHostSchemes)
}

func checkHostSchemes(t *testing.T, host string) {
	web, werr := dest.Parse("http://"+host+"/", wd)
	for _, scheme := range []string{"redis", "foo+bar", "gopher", "x-y.z", "spiffe"} {
		d, err := dest.Parse(scheme+"://"+host+"/", wd)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%s://%s: error %v, but http error %v", scheme, host, err, werr)
		}
		if err != nil {
			continue
		}
		if d.Kind != dest.KindURL || d.Host != web.Host || d.IP != web.IP || d.Private != web.Private || d.Path != web.Path {
			t.Fatalf("%s://%s = %+v, http = %+v", scheme, host, d, web)
		}
	}
	for _, scheme := range []string{"db", "secret", "s3"} {
		d, err := dest.Parse(scheme+"://"+host+"/", wd)
		if err != nil {
			if werr == nil && !web.IP.IsValid() {
				continue // opaque names are stricter than host names
			}
			continue
		}
		if d.Kind != dest.KindOther {
			t.Fatalf("%s://%s = %+v, want KindOther", scheme, host, d)
		}
		if d.IP.IsValid() {
			if werr != nil || web.IP != d.IP || web.Private != d.Private {
				t.Fatalf("%s://%s = %+v, http = %+v, %v", scheme, host, d, web, werr)
			}
			continue
		}
		if ipLikeName(d.Host) || strings.HasPrefix(d.Host, "[") {
			t.Fatalf("%s://%s = %+v: IP-like name", scheme, host, d)
		}
		if werr == nil && web.IP.IsValid() {
			t.Fatalf("%s://%s = name %q, but http parses the host as IP %v", scheme, host, d.Host, web.IP)
		}
		if werr != nil && strings.Contains(werr.Error(), "invalid IPv4") {
			t.Fatalf("%s://%s = name %q, but http says: %v", scheme, host, d.Host, werr)
		}
		if werr == nil && web.Private && d.Private != web.Private && strings.IndexByte(web.Host, '.') >= 0 &&
			!strings.HasSuffix(web.Host, ".local") && !strings.HasSuffix(web.Host, "arpa") {
			// Multi-label private names other than mDNS and the RFC 6762
			// suffixes are loopback names: Private under every scheme.
			switch web.Host[strings.LastIndexByte(web.Host, '.')+1:] {
			case "internal", "lan", "home", "corp", "intranet", "private":
			default:
				t.Fatalf("%s://%s = %+v not Private, http = %+v", scheme, host, d, web)
			}
		}
	}
}

// ipLikeName is an independent statement of the WHATWG "ends in a number"
// rule: the last label, ignoring trailing dots, is decimal digits or "0x"
// and hex digits.
func ipLikeName(name string) bool {
	name = strings.ToLower(strings.TrimRight(name, "."))
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}
