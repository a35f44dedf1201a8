package dest_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/internal/dest"
)

// TestEverySchemeParsesIPHosts checks that an IP literal is an IP under
// every scheme with an authority, whatever the spelling.
func TestEverySchemeParsesIPHosts(t *testing.T) {
	t.Parallel()
	hosts := []struct {
		host, ip string
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"0X7F.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"169.254.169.254", "169.254.169.254"},
		{"169.254.43518", "169.254.169.254"},
		{"0xa9fea9fe", "169.254.169.254"},
		{"0", "0.0.0.0"},
		{"10.1", "10.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"%31%32%37.0.0.1", "127.0.0.1"},
		{"[::1]", "::1"},
		{"[::ffff:127.0.0.1]", "127.0.0.1"},
		{"[::ffff:7f00:1]", "127.0.0.1"},
		{"[fe80::1%25eth0]", "fe80::1"},
		{"[fd00:ec2::254]", "fd00:ec2::254"},
	}
	schemes := []string{"http", "redis", "ftp", "gopher", "foo+bar", "x-custom", "ldap", "tcp", "db", "secret", "s3", "queue"}
	for _, s := range schemes {
		for _, h := range hosts {
			raw := s + "://" + h.host + "/"
			t.Run(raw, func(t *testing.T) {
				t.Parallel()
				d, err := dest.Parse(raw, wd)
				require.NoError(t, err)
				assert.Equal(t, netip.MustParseAddr(h.ip), d.IP)
				assert.Equal(t, h.ip, d.Host)
				assert.True(t, d.Private, "%+v", d)
				assert.Equal(t, s, d.Scheme)
			})
		}
	}
}

// TestIPLikeHostsFailClosed checks that a host that looks like an IP
// address but is not a valid one is an error under every scheme, never a
// name.
func TestIPLikeHostsFailClosed(t *testing.T) {
	t.Parallel()
	hosts := []string{"1.2.3.4.5", "256.0.0.1", "4294967296", "0x100000000", "08.1", "0x7g.1", "orders.1",
		"foo.0x1f", "a.b.c.123", "127.0.0.256", "99999999999999999999", "[127.0.0.1]", "[::g]", "[::1"}
	for _, s := range []string{"http", "redis", "foo+bar", "db", "secret", "issue"} {
		for _, h := range hosts {
			raw := s + "://" + h + "/"
			t.Run(raw, func(t *testing.T) {
				t.Parallel()
				d, err := dest.Parse(raw, wd)
				require.Error(t, err, "parsed as %+v", d)
				assert.ErrorIs(t, err, dest.ErrInvalid)
			})
		}
	}
}

// TestSchemeKinds checks which schemes are opaque names and which are URLs.
func TestSchemeKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want dest.Destination
	}{
		{"db://Orders", other("db", "Orders", 0, "")},
		{"db://orders.", other("db", "orders", 0, "")},
		{"secret://GitHub_Token", other("secret", "GitHub_Token", 0, "")},
		{"s3://my.bucket/key", other("s3", "my.bucket", 0, "/key")},
		{"queue://jobs", other("queue", "jobs", 0, "")},
		{"vault://kv~prod", other("vault", "kv~prod", 0, "")},
		{"db://orders.v2", other("db", "orders.v2", 0, "")},
		{"db://deadbeef", other("db", "deadbeef", 0, "")},
		{"foo+bar://Example.COM/x", web("foo+bar", "example.com", 0, "/x")},
		{"custom://api.example.com:9000", web("custom", "api.example.com", 9000, "/")},
		{"spiffe://example.org/agent", web("spiffe", "example.org", 0, "/agent")},
		{"redis://cache.example.com", web("redis", "cache.example.com", 6379, "/")},
		{"foo://bücher.example/", web("foo", "xn--bcher-kva.example", 0, "/")},
		{"foo://jobs", private(web("foo", "jobs", 0, "/"))},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			d, err := dest.Parse(tt.raw, wd)
			require.NoError(t, err)
			assert.Equal(t, tt.want, d)
		})
	}
	for _, raw := range []string{"foo://a_b.example.com/", "foo://ex ample/", "foo://[v1.x]/"} {
		_, err := dest.Parse(raw, wd)
		assert.Error(t, err, raw)
	}
}

// TestLoopbackNames checks that the names default hosts files map to
// loopback or local addresses are Private in any case, with and without a
// trailing dot, under every scheme and as e-mail domains.
func TestLoopbackNames(t *testing.T) {
	t.Parallel()
	names := []string{"localhost", "localhost.localdomain", "localhost4", "localhost4.localdomain4",
		"localhost6", "localhost6.localdomain6", "ip6-localhost", "ip6-loopback", "ip6-localnet",
		"ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters", "ipv6-localhost", "ipv6-loopback",
		"a.localhost", "anything.localdomain", "loopback"}
	for _, n := range names {
		for _, spelling := range []string{n, strings.ToUpper(n), n + ".", strings.ToUpper(n[:1]) + n[1:] + "."} {
			for _, raw := range []string{"http://" + spelling + "/", "https://" + spelling + ":8443/x",
				"redis://" + spelling, "foo+bar://" + spelling, "db://" + spelling, "secret://" + spelling,
				"bob@" + spelling, "mailto:bob@" + spelling} {
				t.Run(raw, func(t *testing.T) {
					t.Parallel()
					d, err := dest.Parse(raw, wd)
					require.NoError(t, err)
					assert.True(t, d.Private, "%+v", d)
				})
			}
		}
	}
	for _, raw := range []string{"http://localhost.localdomain.example.com/", "http://ip6-localhost.example.com/",
		"db://orders", "db://localhostx"} {
		d, err := dest.Parse(raw, wd)
		require.NoError(t, err)
		assert.False(t, d.Private, raw)
	}
}

// TestMailtoHeaders checks that a mailto: URL can only carry a subject and
// a body, and never another recipient or an injected header.
func TestMailtoHeaders(t *testing.T) {
	t.Parallel()
	ok := []string{
		"mailto:bob@example.org?subject=hi",
		"mailto:bob@example.org?body=hello%20there",
		"mailto:bob@example.org?Subject=a&BODY=b",
		"mailto:bob@example.org?%73ubject=x",
		"mailto:bob@example.org?subject=",
		"mailto:bob@example.org?subject=a=b",
	}
	for _, raw := range ok {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			d, err := dest.Parse(raw, wd)
			require.NoError(t, err)
			assert.Equal(t, email("bob", "example.org"), d)
		})
	}
	bad := []struct{ raw, want string }{
		{"mailto:bob@example.org?cc=eve@evil.com", "adds recipients"},
		{"mailto:bob@example.org?CC=eve@evil.com", "adds recipients"},
		{"mailto:bob@example.org?Bcc=eve@evil.com", "adds recipients"},
		{"mailto:bob@example.org?to=eve@evil.com", "adds recipients"},
		{"mailto:?to=eve@evil.com", "adds recipients"},
		{"mailto:bob@example.org?%63%63=eve@evil.com", "adds recipients"},
		{"mailto:bob@example.org?%43c=eve@evil.com", "adds recipients"},
		{"mailto:bob@example.org?subject=x&bcc=eve@evil.com", "adds recipients"},
		{"mailto:bob@example.org?reply-to=eve@evil.com", "adds recipients"},
		{"mailto:bob@example.org?resent-cc=eve@evil.com", "adds recipients"},
		{"mailto:bob@example.org?x-header=1", "other than subject and body"},
		{"mailto:bob@example.org?%20cc=eve@evil.com", "other than subject and body"},
		{"mailto:bob@example.org?cc%00=eve@evil.com", "other than subject and body"},
		{"mailto:bob@example.org?subject=x?cc=eve@evil.com", "second '?'"},
		{"mailto:bob@example.org??cc=eve@evil.com", "second '?'"},
		{"mailto:bob@example.org?subject=x;cc=eve@evil.com", "';'"},
		{"mailto:bob@example.org?subject=x%0D%0ABcc:%20eve@evil.com", "header injection"},
		{"mailto:bob@example.org?subject=x%0abcc:eve@evil.com", "header injection"},
		{"mailto:bob@example.org?body=line1%0D%0Aline2", "header injection"},
		{"mailto:bob@example.org?subject=%00", "header injection"},
		{"mailto:bob@example.org?subject=%E2%80%AE", "header injection"},
		{"mailto:bob@example.org?subject", "without a name or '='"},
		{"mailto:bob@example.org?=x", "without a name or '='"},
		{"mailto:bob@example.org?subject=x&", "empty mailto header field"},
		{"mailto:bob@example.org?subject=x&&cc=y", "without a name"},
		{"mailto:bob@example.org?", "empty mailto header fields"},
		{"mailto:bob@example.org#cc=eve@evil.com", "fragment"},
		{"mailto:bob@example.org?subject=x#y", "fragment"},
		{"mailto:bob@example.org,eve@evil.com", "several recipients"},
		{"mailto:bob@example.org;eve@evil.com", "several recipients"},
		{"mailto:bob@example.org%2Ceve@evil.com", "several recipients"},
		{"mailto:bob@example.org%2C", "several recipients"},
		{"mailto:bob@example.org%3Fcc=eve@evil.com", "more than one '@'"},
		{"mailto:bob%40example.org@evil.com", "more than one '@'"},
		{"mailto:bob@example.org%0d%0abcc:eve@evil.com", "control character"},
	}
	for _, tt := range bad {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			d, err := dest.Parse(tt.raw, wd)
			require.Error(t, err, "parsed as %+v", d)
			assert.Contains(t, err.Error(), tt.want)
			if q := strings.IndexAny(tt.raw, "?#"); q >= 0 && !strings.Contains(tt.raw[:q], "evil") {
				assert.NotContains(t, err.Error(), "evil.com", "the query is redacted")
			}
		})
	}
}

// TestPathsServersRouteDifferently checks that paths common servers route
// differently are rejected, and that every accepted path is within a root
// exactly when its canonical text is.
func TestPathsServersRouteDifferently(t *testing.T) {
	t.Parallel()
	bad := []string{
		"/public/..;/admin", "/public;/../admin", "/admin;jsessionid=ABC", "/admin;", "/a/;x/b",
		"/public/%2e%2e%3b/admin", "/admin%3bx", "/admin%3B",
		"/public/..%2fadmin", "/public%2F..%2Fadmin", "/a%2fb",
		"/public/..%5cadmin", "/a%5Cb", `/public/..\admin`,
		"/public/%252e%252e/admin", "/public/%25", "/%2525", "/a%2541",
		"/public/%C0%AE%C0%AE/admin", "/%E0%80%AE", "/%C0%AF", "/%ED%A0%80", "/%FF",
		"/public/..%EF%BC%8Fadmin", "/public/%EF%BC%8E%EF%BC%8E/admin", "/a%E2%80%A5", "/a%EF%B9%92",
		"/public//../admin", "/public/..//admin", "/public//./admin", "//../admin",
	}
	for _, scheme := range []string{"https", "http", "ws", "foo", "s3"} {
		for _, p := range bad {
			raw := scheme + "://example.com" + p
			t.Run(raw, func(t *testing.T) {
				t.Parallel()
				d, err := dest.Parse(raw, wd)
				require.Error(t, err, "parsed as %+v", d)
			})
		}
	}
	good := []struct{ p, want string }{
		{"/public/%2e%2e/admin", "/admin"},
		{"/public/./x", "/public/x"},
		{"/public//x", "/public/x"},
		{"/public/x/", "/public/x"},
		{"/caf%C3%A9", "/caf%C3%A9"},
		{"/%E2%82%AC", "/%E2%82%AC"},
		{"/a%2Cb", "/a,b"},
		{"/a%3Fb", "/a%3Fb"},
	}
	for _, tt := range good {
		t.Run(tt.p, func(t *testing.T) {
			t.Parallel()
			d, err := dest.Parse("https://example.com"+tt.p, wd)
			require.NoError(t, err)
			assert.Equal(t, tt.want, d.Path)
		})
	}
}

// TestUnicodeVersionDependentHosts checks that hosts whose IDNA result
// depends on the Unicode version of the tables are rejected, in every
// spelling, while stable Unicode hosts still parse.
func TestUnicodeVersionDependentHosts(t *testing.T) {
	t.Parallel()
	bad := []string{
		"https://stra\u1E9Ee.de/",      // capital sharp s: "ss" or "ß"
		"https://STRA%E1%BA%9EE.de/",   // percent-encoded
		"https://a\u00A8b.com/",        // diaeresis: disallowed or " ̈"
		"https://\u2474.example/",      // parenthesized digit one
		"https://a\uFF01b.com/",        // fullwidth exclamation mark
		"https://\u3200.example/",      // parenthesized hangul
		"https://a\U000323B0.example/", // assigned in Unicode 15.1
		"https://xn--031o.example/",    // its A-label
		"https://a\u1C89.example/",     // assigned in Unicode 16
		"https://\U0001F101.example/",  // digit zero comma
		"bob@stra\u1E9Ee.de",           // e-mail domains too
		"mailto:bob@stra%E1%BA%9Ee.de", // percent-encoded in mailto
		"foo+bar://stra\u1E9Ee.de/",    // every scheme
		"redis://x\u2000y.example/",    // en quad
	}
	for _, raw := range bad {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			d, err := dest.Parse(raw, wd)
			require.Error(t, err, "parsed as %+v", d)
		})
	}
	good := []struct{ raw, host string }{
		{"https://straße.de/", "xn--strae-oqa.de"},
		{"https://xn--strae-oqa.de/", "xn--strae-oqa.de"},
		{"https://bücher.example/", "xn--bcher-kva.example"},
		{"https://ｅｘａｍｐｌｅ．ｃｏｍ/", "example.com"},
		{"https://例え.jp/", "xn--r8jz45g.jp"},
	}
	for _, tt := range good {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			d, err := dest.Parse(tt.raw, wd)
			require.NoError(t, err)
			assert.Equal(t, tt.host, d.Host)
		})
	}
}
