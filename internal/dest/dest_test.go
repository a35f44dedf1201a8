package dest_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/internal/dest"
)

const wd = "/workspace"

func web(scheme, host string, port int, path string) dest.Destination {
	return dest.Destination{Kind: dest.KindURL, Scheme: scheme, Host: host, Port: port, Path: path}
}

func ipURL(scheme, ip string, port int, path string, private bool) dest.Destination {
	a := netip.MustParseAddr(ip)
	return dest.Destination{Kind: dest.KindURL, Scheme: scheme, Host: a.String(), Port: port, Path: path, IP: a, Private: private}
}

func file(p string) dest.Destination {
	return dest.Destination{Kind: dest.KindFile, Scheme: "file", Path: p}
}

func email(user, host string) dest.Destination {
	return dest.Destination{Kind: dest.KindEmail, Scheme: "mailto", User: user, Host: host}
}

func other(scheme, name string, port int, path string) dest.Destination {
	return dest.Destination{Kind: dest.KindOther, Scheme: scheme, Host: name, Port: port, Path: path}
}

func private(d dest.Destination) dest.Destination {
	d.Private = true
	return d
}

// parseCases are accepted inputs with their exact canonical Destination. They
// also seed FuzzParse.
var parseCases = []struct {
	name, raw, workdir string
	want               dest.Destination
}{
	{"empty", "", wd, dest.Destination{}},

	// URLs: scheme, host, port.
	{"canonical https", "https://api.github.com/repos/x/y", wd, web("https", "api.github.com", 443, "/repos/x/y")},
	{"upper case and trailing dot", "HTTPS://API.GitHub.COM./repos/x/../y/", wd, web("https", "api.github.com", 443, "/repos/y")},
	{"several trailing dots", "https://example.com.../", wd, web("https", "example.com", 443, "/")},
	{"empty path", "http://example.com", wd, web("http", "example.com", 80, "/")},
	{"explicit port", "http://example.com:8080/a", wd, web("http", "example.com", 8080, "/a")},
	{"default port written", "https://example.com:443/", wd, web("https", "example.com", 443, "/")},
	{"port with leading zeros", "https://example.com:0443", wd, web("https", "example.com", 443, "/")},
	{"ws", "ws://example.com/s", wd, web("ws", "example.com", 80, "/s")},
	{"wss", "wss://example.com", wd, web("wss", "example.com", 443, "/")},
	{"ftp", "ftp://example.com/f.txt", wd, web("ftp", "example.com", 21, "/f.txt")},
	{"ssh", "ssh://github.com/x/y.git", wd, web("ssh", "github.com", 22, "/x/y.git")},
	{"postgres", "postgres://db.example.com/prod", wd, web("postgres", "db.example.com", 5432, "/prod")},
	{"scheme without default port", "mongodb+srv://cluster.example.com/", wd, web("mongodb+srv", "cluster.example.com", 0, "/")},
	{"query and fragment dropped", "https://example.com?q=1#frag", wd, web("https", "example.com", 443, "/")},
	{"query with at and backslash", `https://example.com/a?next=\@evil.com`, wd, web("https", "example.com", 443, "/a")},
	{"percent-encoded host", "https://%65xample.com/", wd, web("https", "example.com", 443, "/")},
	{"idna", "https://Bücher.example/", wd, web("https", "xn--bcher-kva.example", 443, "/")},
	{"homoglyph", "https://аpple.com/", wd, web("https", "xn--pple-43d.com", 443, "/")},
	{"a-label upper case", "https://XN--PPLE-43D.COM/", wd, web("https", "xn--pple-43d.com", 443, "/")},
	{"non-transitional sharp s", "https://faß.de/", wd, web("https", "xn--fa-hia.de", 443, "/")},
	{"fullwidth host", "https://ｅｘａｍｐｌｅ．ｃｏｍ/", wd, web("https", "example.com", 443, "/")},

	// URL paths.
	{"trailing slash", "https://example.com/a/b/", wd, web("https", "example.com", 443, "/a/b")},
	{"repeated slashes", "https://example.com//a///b", wd, web("https", "example.com", 443, "/a/b")},
	{"encoded dot dot", "https://example.com/a/%2e%2e/b", wd, web("https", "example.com", 443, "/b")},
	{"mixed encoded dot dot", "https://example.com/a/.%2E/b", wd, web("https", "example.com", 443, "/b")},
	{"traversal above root", "https://example.com/../../x", wd, web("https", "example.com", 443, "/x")},
	{"sub-delims decoded", "https://example.com/a%2cb%21%40%3d", wd, web("https", "example.com", 443, "/a,b!@=")},
	{"unreserved decoded", "https://example.com/%7euser/%41%42", wd, web("https", "example.com", 443, "/~user/AB")},
	{"escape case normalised", "https://example.com/caf%c3%a9", wd, web("https", "example.com", 443, "/caf%C3%A9")},
	{"unicode path encoded", "https://example.com/café", wd, web("https", "example.com", 443, "/caf%C3%A9")},
	{"encoded space kept", "https://example.com/a%20b", wd, web("https", "example.com", 443, "/a%20b")},
	{"encoded question mark kept", "https://example.com/a%3fb", wd, web("https", "example.com", 443, "/a%3Fb")},
	{"unsafe ascii encoded", "https://example.com/a|b{c}", wd, web("https", "example.com", 443, "/a%7Cb%7Bc%7D")},
	{"at and colon in path", "https://medium.com/@user/x:y", wd, web("https", "medium.com", 443, "/@user/x:y")},

	// IP literals.
	{"decimal", "http://2130706433/", wd, ipURL("http", "127.0.0.1", 80, "/", true)},
	{"octal", "http://0177.0.0.1/", wd, ipURL("http", "127.0.0.1", 80, "/", true)},
	{"hex", "http://0x7f.0.0.1/", wd, ipURL("http", "127.0.0.1", 80, "/", true)},
	{"hex whole", "http://0x7f000001/", wd, ipURL("http", "127.0.0.1", 80, "/", true)},
	{"short", "http://127.1/", wd, ipURL("http", "127.0.0.1", 80, "/", true)},
	{"short three parts", "http://10.1.1/", wd, ipURL("http", "10.1.0.1", 80, "/", true)},
	{"bare 0x", "http://0x.0x.0x.0x/", wd, ipURL("http", "0.0.0.0", 80, "/", true)},
	{"trailing dot ip", "http://8.8.8.8./", wd, ipURL("http", "8.8.8.8", 80, "/", false)},
	{"ipv6 loopback", "http://[::1]:8080/", wd, ipURL("http", "::1", 8080, "/", true)},
	{"ipv4 mapped dotted", "http://[::ffff:127.0.0.1]/", wd, ipURL("http", "127.0.0.1", 80, "/", true)},
	{"ipv4 mapped hex", "http://[::ffff:7f00:1]/", wd, ipURL("http", "127.0.0.1", 80, "/", true)},
	{"zone dropped", "http://[fe80::1%25eth0]/", wd, ipURL("http", "fe80::1", 80, "/", true)},
	{"encoded zone dropped", "http://[fe80::1%25en%30]/", wd, ipURL("http", "fe80::1", 80, "/", true)},
	{"ipv6 shortened", "https://[2606:4700:0:0:0:0:0:1111]/", wd, ipURL("https", "2606:4700::1111", 443, "/", false)},
	{"ipv6 upper case", "https://[2606:4700::ABCD]/", wd, ipURL("https", "2606:4700::abcd", 443, "/", false)},
	{"documentation ipv6", "http://[2001:DB8::1]/", wd, ipURL("http", "2001:db8::1", 80, "/", true)},
	{"public ipv4", "https://8.8.8.8", wd, ipURL("https", "8.8.8.8", 443, "/", false)},

	// Private names.
	{"localhost", "http://localhost:3000/", wd, private(web("http", "localhost", 3000, "/"))},
	{"sub localhost", "http://a.b.localhost/", wd, private(web("http", "a.b.localhost", 80, "/"))},
	{"metadata name", "http://metadata.google.internal./x", wd, private(web("http", "metadata.google.internal", 80, "/x"))},
	{"single label", "http://intranet/", wd, private(web("http", "intranet", 80, "/"))},
	{"mdns", "http://printer.local/", wd, private(web("http", "printer.local", 80, "/"))},
	{"localhost lookalike is public", "http://localhost.example.com/", wd, web("http", "localhost.example.com", 80, "/")},

	// Files.
	{"absolute", "/etc/passwd", wd, file("/etc/passwd")},
	{"absolute traversal", "/workspace/../etc/passwd", wd, file("/etc/passwd")},
	{"absolute above root", "/../../x", wd, file("/x")},
	{"root", "/", wd, file("/")},
	{"absolute trailing slash", "/a/b/", wd, file("/a/b")},
	{"absolute with spaces", "/workspace/my docs/a.txt", wd, file("/workspace/my docs/a.txt")},
	{"absolute not decoded", "/workspace/%2e%2e/x", wd, file("/workspace/%2e%2e/x")},
	{"absolute unicode", "/workspace/café.txt", wd, file("/workspace/café.txt")},
	{"file url", "file:///etc/passwd", wd, file("/etc/passwd")},
	{"file url localhost", "file://localhost/etc/passwd", wd, file("/etc/passwd")},
	{"file url upper", "FILE://LocalHost/etc/passwd", wd, file("/etc/passwd")},
	{"file url decoded", "file:///workspace/my%20docs/a.txt", wd, file("/workspace/my docs/a.txt")},
	{"file url traversal", "file:///workspace/%2e%2e/etc/shadow", wd, file("/etc/shadow")},
	{"file url unicode", "file:///caf%C3%A9", wd, file("/café")},
	{"file url empty", "file://", wd, file("/")},
	{"relative dot", "./a", wd, file("/workspace/a")},
	{"relative plain", "a/b", wd, file("/workspace/a/b")},
	{"relative dotfile", ".git/config", wd, file("/workspace/.git/config")},
	{"relative parent", "../x", wd, file("/x")},
	{"relative far above", "./../../../etc", wd, file("/etc")},
	{"relative dot only", ".", wd, file("/workspace")},
	{"relative dot dot only", "..", wd, file("/")},
	{"relative with spaces", "my dir/f.txt", wd, file("/workspace/my dir/f.txt")},
	{"workdir cleaned", "./x", "/a/../b/", file("/b/x")},

	// E-mail.
	{"bare email", "bob@example.org", wd, email("bob", "example.org")},
	{"mailto", "mailto:bob@Example.ORG", wd, email("bob", "example.org")},
	{"mailto query dropped", "MAILTO:Bob.Smith+tag@Example.ORG.?subject=Hi&body=x", wd, email("Bob.Smith+tag", "example.org")},
	{"mailto decoded", "mailto:%62ob@example.org", wd, email("bob", "example.org")},
	{"email idna", "bob@bücher.example", wd, email("bob", "xn--bcher-kva.example")},
	{"email localhost", "root@localhost", wd, private(email("root", "localhost"))},
	{"email ip", "a@127.0.0.1", wd, dest.Destination{Kind: dest.KindEmail, Scheme: "mailto", User: "a", Host: "127.0.0.1",
		IP: netip.MustParseAddr("127.0.0.1"), Private: true}},

	// Opaque names.
	{"opaque", "db://orders", wd, other("db", "orders", 0, "")},
	{"opaque case", "DB://Orders", wd, other("db", "Orders", 0, "")},
	{"opaque secret", "secret://github-token", wd, other("secret", "github-token", 0, "")},
	{"opaque path", "s3://bucket/key", wd, other("s3", "bucket", 0, "/key")},
	{"opaque path cleaned", "s3://bucket/a/../b/", wd, other("s3", "bucket", 0, "/b")},
	{"opaque root path", "s3://bucket/", wd, other("s3", "bucket", 0, "")},
	{"opaque port", "db://orders:5432", wd, other("db", "orders", 5432, "")},
	{"opaque query dropped", "db://orders?x=1", wd, other("db", "orders", 0, "")},
	{"opaque decoded", "secret://github%2Dtoken", wd, other("secret", "github-token", 0, "")},
	{"opaque number is an address", "issue://1234", wd, dest.Destination{Kind: dest.KindOther, Scheme: "issue", Host: "0.0.4.210",
		IP: netip.MustParseAddr("0.0.4.210"), Private: true}},
	{"opaque localhost", "db://localhost", wd, private(other("db", "localhost", 0, ""))},
	{"opaque ipv4", "db://0x7f.0.0.1", wd, dest.Destination{Kind: dest.KindOther, Scheme: "db", Host: "127.0.0.1",
		IP: netip.MustParseAddr("127.0.0.1"), Private: true}},
	{"opaque ipv6", "db://[::1]/x", wd, dest.Destination{Kind: dest.KindOther, Scheme: "db", Host: "::1", Path: "/x",
		IP: netip.MustParseAddr("::1"), Private: true}},
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tt := range parseCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := dest.Parse(tt.raw, tt.workdir)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// errorCases are rejected inputs and a fragment their error must contain.
// They also seed FuzzParse.
var errorCases = []struct {
	name, raw, workdir, want string
}{
	// Text.
	{"nul", "/a\x00b", wd, "control character"},
	{"newline", "https://example.com/\n", wd, "control character"},
	{"del", "bob\x7f@example.org", wd, "control character"},
	{"c1 control", "/a\u0085b", wd, "control character"},
	{"line separator", "/a\u2028b", wd, "control character"},
	{"invalid utf8", "/a\xffb", wd, "invalid UTF-8"},
	{"bidi override", "/a\u202eb", wd, "invisible format character"},
	{"zero width joiner", "https://exa\u200dmple.com/", wd, "invisible format character"},
	{"space in url", "https://exa mple.com/", wd, "whitespace"},
	{"space in email", "bob smith@example.org", wd, "whitespace"},

	// Form.
	{"bare host", "example.com", wd, "bare name"},
	{"bare word", "README", wd, "bare name"},
	{"host-like relative", "example.com/path", wd, "ambiguous relative path"},
	{"host port relative", "127.0.0.1:80/x", wd, "ambiguous relative path"},
	{"scheme without slashes", "http:example.com", wd, `without "//"`},
	{"host port without scheme", "localhost:8080", wd, `without "//"`},
	{"javascript", "javascript:alert(1)", wd, "does not name a destination"},
	{"javascript slashes", "JavaScript://x", wd, "does not name a destination"},
	{"data", "data:text/plain,x", wd, "does not name a destination"},
	{"windows drive", `C:\x`, wd, "Windows drive"},
	{"windows drive slash", "c:/x", wd, "Windows drive"},
	{"unc", `\\server\share`, wd, "backslash"},
	{"home", "~/x", wd, "home-relative"},
	{"home user", "~root/x", wd, "home-relative"},

	// URL authority.
	{"ipv4 five parts", "http://1.2.3.4.5/", wd, `invalid IPv4 address "1.2.3.4.5"`},
	{"ipv4 part too big", "http://256.1.1.1/", wd, "invalid IPv4 address"},
	{"ipv4 last too big", "http://1.2.65536/", wd, "invalid IPv4 address"},
	{"ipv4 overflow", "http://4294967296/", wd, "invalid IPv4 address"},
	{"ipv4 bad octal", "http://09.1.1.1/", wd, "invalid IPv4 address"},
	{"numeric tld", "http://foo.123/", wd, "invalid IPv4 address"},
	{"ipv4 in brackets", "http://[127.0.0.1]/", wd, "IPv4 address in brackets"},
	{"unclosed bracket", "http://[::1/", wd, "missing ']'"},
	{"junk after bracket", "http://[::1]x/", wd, "after IPv6 host"},
	{"bad ipv6", "http://[::g]/", wd, "invalid IPv6 address"},
	{"unencoded zone", "http://[fe80::1%eth0]/", wd, "a zone must be written %25zone"},
	{"empty zone", "http://[fe80::1%25]/", wd, "a zone must be written %25zone"},
	{"bad zone escape", "http://[fe80::1%25%zz]/", wd, "invalid percent-escape"},
	{"zone with slash", "http://[fe80::1%25a%2fb]/", wd, "invalid zone"},
	{"encoded ipv6", "http://[%3A%3A1]/", wd, "a zone must be written %25zone"},
	{"unbracketed ipv6", "http://::1/", wd, "must be in brackets"},
	{"userinfo", "https://github.com@evil.com/", wd, "userinfo"},
	{"userinfo password", "https://user:pass@example.com", wd, "userinfo"},
	{"empty userinfo", "https://@example.com", wd, "userinfo"},
	{"ssh userinfo", "ssh://git@github.com/x", wd, "userinfo"},
	{"backslash authority", `https://evil.com\@github.com/`, wd, "backslash in authority"},
	{"empty host", "https://", wd, "empty host"},
	{"empty host with path", "http:///etc/passwd", wd, "empty host"},
	{"port zero", "http://example.com:0/", wd, "out of range"},
	{"port too big", "http://example.com:65536/", wd, "out of range"},
	{"port huge", "http://example.com:99999999999999999999/", wd, "out of range"},
	{"port not number", "http://example.com:http/", wd, "not a decimal number"},
	{"port negative", "http://example.com:-1/", wd, "not a decimal number"},
	{"port empty", "http://example.com:/", wd, "empty port"},
	{"underscore", "https://a_b.example.com/", wd, "invalid host"},
	{"bad punycode", "https://xn--a.com/", wd, "invalid host"},
	{"empty punycode", "https://example.xn--/", wd, "invalid host"},
	{"leading hyphen", "https://-example.com/", wd, "invalid host"},
	{"empty label", "https://a..b.com/", wd, "empty label"},
	{"leading dot", "https://.example.com/", wd, "empty label"},
	{"only dots", "https://.../", wd, "no labels"},
	{"label too long", "https://" + strings.Repeat("a", 64) + ".com/", wd, "invalid host"},
	{"decoded at", "https://github.com%40evil.com/", wd, "invalid host"},
	{"decoded nul", "https://example.com%00.evil.com/", wd, "control character"},
	{"bad host escape", "https://exa%zzmple.com/", wd, "invalid percent-escape"},

	// URL path.
	{"backslash path", `https://example.com/a\b`, wd, "backslash in path"},
	{"bad escape", "https://example.com/%zz", wd, "invalid percent-escape"},
	{"truncated escape", "https://example.com/%4", wd, "invalid percent-escape"},
	{"encoded nul", "https://example.com/%00", wd, "percent-encoded control character"},
	{"encoded crlf", "https://example.com/%0d%0aSet-Cookie:x", wd, "percent-encoded control character"},
	{"encoded backslash", "https://example.com/%5c..%5c", wd, "percent-encoded backslash"},
	{"double encoded dot", "https://example.com/%252e%252e/", wd, "percent-encoded percent sign"},
	{"double encoded slash", "https://example.com/a%252Fb", wd, "percent-encoded percent sign"},
	{"encoded percent", "https://example.com/%25", wd, "percent-encoded percent sign"},
	{"encoded percent letters", "https://example.com/a%2541", wd, "percent-encoded percent sign"},
	{"dot segment params", "https://example.com/a/..;/admin", wd, "';' in path"},
	{"servlet session id", "https://example.com/admin;jsessionid=1", wd, "';' in path"},
	{"matrix params", "https://example.com/a;v=1/b", wd, "';' in path"},
	{"semicolon alone", "https://example.com/public/;/../admin", wd, "';' in path"},
	{"encoded dot segment params", "https://example.com/a/%2e%2e%3bx/admin", wd, "percent-encoded ';'"},
	{"encoded semicolon", "https://example.com/a%3Bb", wd, "percent-encoded ';'"},
	{"encoded slash", "https://example.com/a%2fb", wd, "percent-encoded slash"},
	{"encoded slash upper", "https://example.com/a%2Fb", wd, "percent-encoded slash"},
	{"encoded traversal", "https://example.com/a/..%2f..%2f..%2fetc", wd, "percent-encoded slash"},
	{"encoded backslash upper", "https://example.com/a%5Cb", wd, "percent-encoded backslash"},
	{"backslash after escape", `https://example.com/%41\b`, wd, "backslash in path"},
	{"overlong dot", "https://example.com/%C0%AE%C0%AE/etc", wd, "not UTF-8"},
	{"overlong slash", "https://example.com/..%C0%AFetc", wd, "not UTF-8"},
	{"latin-1 byte", "https://example.com/caf%E9", wd, "not UTF-8"},
	{"truncated utf8", "https://example.com/%C3", wd, "not UTF-8"},
	{"fullwidth solidus", "https://example.com/..%EF%BC%8Fetc", wd, "compatibility form"},
	{"fullwidth full stop raw", "https://example.com/\uff0e\uff0e/etc", wd, "compatibility form"},
	{"fullwidth reverse solidus", "https://example.com/a%EF%BC%BCb", wd, "compatibility form"},
	{"two dot leader", "https://example.com/\u2025/etc", wd, "compatibility form"},
	{"dot segment after empty", "https://example.com/a//../b", wd, "empty segments"},
	{"dot segment before empty", "https://example.com/a/..//b", wd, "empty segments"},
	{"encoded dot after empty", "https://example.com/a//%2e%2e/b", wd, "empty segments"},
	{"opaque path semicolon", "s3://bucket/a;b", wd, "';' in path"},
	{"opaque path encoded slash", "s3://bucket/a%2Fb", wd, "percent-encoded slash"},
	{"unknown scheme path percent", "foo://example.com/%25", wd, "percent-encoded percent sign"},

	{"bad escape in fragment", "https://example.com/#%", wd, "invalid percent-escape \"%\" in query or fragment"},
	{"bad escape in query", "https://example.com/?a=%zz", wd, "invalid percent-escape \"%zz\" in query or fragment"},
	{"bad escape in mailto query", "mailto:bob@example.org?subject=%g1", wd, "invalid percent-escape"},

	// Files.
	{"double slash", "//server/share", wd, `starts with "//"`},
	{"backslash file", `/a\b`, wd, "backslash"},
	{"relative backslash", `a/b\c`, wd, "backslash"},
	{"relative without workdir", "./a", "", "relative path without a workdir"},
	{"relative workdir not absolute", "./a", "work", "is not an absolute path"},
	{"relative workdir nul", "./a", "/w\x00", "invalid workdir"},
	{"file url other host", "file://server/x", wd, "is not local"},
	{"file url ip host", "file://127.0.0.1/x", wd, "is not local"},
	{"file url one slash", "file:/etc/passwd", wd, "file URL must be"},
	{"file url query", "file:///a?b", wd, "query or fragment"},
	{"file url nul", "file:///a%00", wd, "control character"},
	{"file url invalid utf8", "file:///a%ff", wd, "invalid UTF-8"},
	{"file url backslash", "file:///a%5cb", wd, "backslash"},
	{"file url bad escape", "file:///a%zz", wd, "invalid percent-escape"},

	// E-mail.
	{"email empty local", "@example.org", wd, "empty local part"},
	{"email empty domain", "bob@", wd, "empty domain"},
	{"email two ats", "a@b@example.org", wd, "more than one '@'"},
	{"mailto empty", "mailto:", wd, "without '@'"},
	{"mailto slashes", "mailto://bob@example.org", wd, `takes no "//"`},
	{"mailto cc", "mailto:bob@example.org?subject=x&cc=eve@evil.com", wd, "adds recipients"},
	{"mailto encoded to", "mailto:?%74o=eve@evil.com", wd, "adds recipients"},
	{"mailto two recipients", "mailto:bob@example.org,eve@evil.com", wd, "several recipients"},
	{"mailto bad escape", "mailto:bob%zz@example.org", wd, "invalid percent-escape"},
	{"email literal", "bob@[127.0.0.1]", wd, "address literals"},
	{"email percent hack", "bob%evil.com@example.org", wd, "unsupported character"},
	{"email quoted", `"bob"@example.org`, wd, "unsupported character"},
	{"email leading dot", ".bob@example.org", wd, "misplaced '.'"},
	{"email double dot", "b..ob@example.org", wd, "misplaced '.'"},
	{"email bad domain", "bob@exa_mple.org", wd, "invalid host"},
	{"email bad ip", "bob@1.2.3.4.5", wd, "invalid IPv4 address"},

	// Opaque.
	{"opaque empty", "db://", wd, "empty name"},
	{"opaque empty with path", "db:///x", wd, "empty name"},
	{"opaque bad char", "db://ord*ers", wd, "invalid name"},
	{"opaque decoded slash", "db://a%2fb", wd, "invalid name"},
	{"opaque userinfo", "db://user@orders", wd, "userinfo"},
	{"opaque port", "db://orders:0", wd, "out of range"},
	{"opaque bad path", "s3://bucket/%zz", wd, "invalid percent-escape"},
	{"opaque unicode", "db://ördérs", wd, "invalid name"},
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := dest.Parse(tt.raw, tt.workdir)
			require.Error(t, err)
			assert.Equal(t, dest.Destination{}, got, "a failed Parse returns the zero Destination")
			assert.ErrorIs(t, err, dest.ErrInvalid)
			var de *dest.Error
			require.ErrorAs(t, err, &de)
			assert.True(t, strings.HasPrefix(err.Error(), "dest: "), err.Error())
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := dest.Parse("http://1.2.3.4.5/", "")
	require.Error(t, err)
	assert.EqualError(t, err, `dest: "http://1.2.3.4.5/": invalid IPv4 address "1.2.3.4.5"`)
}

func TestErrorRedactsCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, want string
	}{
		{"userinfo and query", "https://user:hunter2@example.com/x?token=s3cr3t#frag", `"https://REDACTED@example.com/x?REDACTED"`},
		{"slash in password", "https://user:hun/ter2@example.com/%zz", `"https://REDACTED@example.com/%zz"`},
		{"no slashes", "admin:hunter2@db.example.com", `"admin:REDACTED@db.example.com"`},
		{"mailto keeps local part", "mailto:bob@exa_mple.org?body=hunter2", `"mailto:bob@exa_mple.org?REDACTED"`},
		{"file path untouched", "/a\x00hunter2", `"/a\x00hunter2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := dest.Parse(tt.raw, wd)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			if !strings.HasPrefix(tt.raw, "/") {
				assert.NotContains(t, err.Error(), "hunter2")
				assert.NotContains(t, err.Error(), "s3cr3t")
			}
		})
	}
}

func TestErrorTruncatesLongInput(t *testing.T) {
	t.Parallel()
	raw := "https://example.com/" + strings.Repeat("é", 500) + "%zz"
	_, err := dest.Parse(raw, wd)
	require.Error(t, err)
	var de *dest.Error
	require.ErrorAs(t, err, &de)
	assert.Equal(t, raw, de.Input)
	msg := err.Error()
	assert.Less(t, len(msg), 2*len(raw))
	assert.Contains(t, msg, `..."`)
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, want string
	}{
		{"empty", "", ""},
		{"https", "HTTPS://API.GitHub.com:443/a/../b/?q#f", "https://api.github.com/b"},
		{"root path", "https://example.com", "https://example.com/"},
		{"non-default port", "http://example.com:8443/x", "http://example.com:8443/x"},
		{"https on port 80", "https://example.com:80", "https://example.com:80/"},
		{"ipv6", "http://[::1]:8080/x", "http://[::1]:8080/x"},
		{"ipv6 default port", "https://[2606:4700::1111]:443/", "https://[2606:4700::1111]/"},
		{"mapped ipv4", "http://[::ffff:127.0.0.1]/", "http://127.0.0.1/"},
		{"ipv4 spelling", "http://0x7f.1:80", "http://127.0.0.1/"},
		{"file", "file:///workspace/%2e%2e/etc/shadow", "/etc/shadow"},
		{"relative", "./a/b/../c", "/workspace/a/c"},
		{"email", "mailto:Bob@Example.ORG?subject=x", "Bob@example.org"},
		{"opaque", "DB://Orders", "db://Orders"},
		{"opaque port and path", "s3://bucket:9000/a/../key/", "s3://bucket:9000/key"},
		{"opaque ipv6", "db://[::1]", "db://[::1]"},
		{"ssh default port", "ssh://github.com:22/x", "ssh://github.com/x"},
		{"port on no-default scheme", "tcp://example.com:7000", "tcp://example.com:7000/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := dest.Parse(tt.raw, wd)
			require.NoError(t, err)
			assert.Equal(t, tt.want, d.String())
			again, err := dest.Parse(d.String(), wd)
			require.NoError(t, err)
			assert.Equal(t, d, again, "String is a fixed point of Parse")
		})
	}
}

func TestStringZeroAndHandBuilt(t *testing.T) {
	t.Parallel()
	assert.Empty(t, dest.Destination{}.String())
	assert.Empty(t, dest.Destination{Kind: dest.Kind(200), Host: "x"}.String())
	assert.Equal(t, "https://example.com/", dest.Destination{Kind: dest.KindURL, Scheme: "https", Host: "example.com"}.String())
}

func TestKindString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind dest.Kind
		want string
	}{
		{dest.KindNone, "none"},
		{dest.KindURL, "url"},
		{dest.KindFile, "file"},
		{dest.KindEmail, "email"},
		{dest.KindOther, "other"},
		{dest.Kind(99), "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, tt.kind.String())
		})
	}
}

func TestErrorUnwrap(t *testing.T) {
	t.Parallel()
	_, err := dest.Parse("example.com", "")
	require.Error(t, err)
	assert.True(t, errors.Is(err, dest.ErrInvalid))
}
