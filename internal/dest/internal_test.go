package dest

import (
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"
)

var asciiHostSeeds = []string{
	"example.com", "EXAMPLE.com", "a-b.c", "a--b.com", "ab--c.com", "xn--pple-43d.com", "xn--a.com",
	"-a.com", "a-.com", "a..b", ".a", "a.", "1.2.3.4", "0x7f.1", strings.Repeat("a", 63) + ".com",
	strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 126) + "a", "a_b.com", "r3---sn-abc.example",
	"XN--PPLE-43D.COM", "xn--", "localhost",
}

// TestASCIIHostMatchesIDNA checks that the fast path only accepts hosts that
// the IDNA profile maps to their lower-case form without error.
func TestASCIIHostMatchesIDNA(t *testing.T) {
	t.Parallel()
	for _, h := range asciiHostSeeds {
		t.Run(h, func(t *testing.T) {
			t.Parallel()
			checkASCIIHost(t, h)
		})
	}
}

func FuzzASCIIHost(f *testing.F) {
	for _, h := range asciiHostSeeds {
		f.Add(h)
	}
	f.Fuzz(checkASCIIHost)
}

func checkASCIIHost(t *testing.T, h string) {
	switch asciiHost(h) {
	case hostCanonical, hostUpper:
		a, err := profile.ToASCII(h)
		if err != nil || a != strings.ToLower(h) {
			t.Fatalf("fast path accepts %q but IDNA gives %q, %v", h, a, err)
		}
	case hostEmptyLabel:
		if !strings.HasPrefix(h, ".") && !strings.Contains(h, "..") && !strings.HasSuffix(h, ".") && h != "" {
			t.Fatalf("asciiHost(%q) reports an empty label", h)
		}
	}
}

func TestParseIPv4(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string // "" for failure
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"0x.0x", "0.0.0.0"},
		{"00", "0.0.0.0"},
		{"255.255.255.255", "255.255.255.255"},
		{"4294967295", "255.255.255.255"},
		{"1.16777215", "1.255.255.255"},
		{"1.2.65535", "1.2.255.255"},
		{"0000000000000000000000000010.1", "8.0.0.1"},
		{"0x0000000000000000000000000000000a.1", "10.0.0.1"},
		{"4294967296", ""},
		{"99999999999999999999999999", ""},
		{"0x100000000", ""},
		{"1.16777216", ""},
		{"1.2.65536", ""},
		{"1.2.3.256", ""},
		{"256.0.0.1", ""},
		{"1.2.3.4.5", ""},
		{"08", ""},
		{"0x1g", ""},
		{"1..1", ""},
		{"", ""},
		{"a.1", ""},
		{"-1", ""},
		{"+1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, ok := parseIPv4(tt.in)
			if tt.want == "" {
				assert.False(t, ok, "got %v", got)
				return
			}
			require.True(t, ok)
			assert.Equal(t, netip.MustParseAddr(tt.want), got)
		})
	}
}

func TestEndsInNumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"1.2.3.4", true}, {"foo.1", true}, {"foo.0x", true}, {"foo.0xAB", true}, {"123", true},
		{"foo.bar", false}, {"foo.0xg", false}, {"1.2.3.com", false}, {"foo.1a", false}, {"foo.x1", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, endsInNumber(tt.in))
		})
	}
}

func TestPrivateIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ip   string
		want bool
	}{
		{"0.0.0.0", true}, {"0.255.255.255", true}, {"10.0.0.1", true}, {"100.64.0.1", true}, {"100.127.255.255", true},
		{"100.63.255.255", false}, {"100.128.0.0", false}, {"127.0.0.1", true}, {"127.255.255.255", true},
		{"169.254.169.254", true}, {"172.15.255.255", false}, {"172.16.0.0", true}, {"172.31.255.255", true},
		{"172.32.0.0", false}, {"192.0.0.8", true}, {"192.0.2.1", true}, {"192.168.0.1", true}, {"192.169.0.1", false},
		{"198.18.0.1", true}, {"198.19.255.255", true}, {"198.20.0.0", false}, {"198.51.100.1", true},
		{"203.0.113.1", true}, {"224.0.0.1", true}, {"239.255.255.255", true}, {"240.0.0.1", true},
		{"255.255.255.255", true}, {"8.8.8.8", false}, {"1.1.1.1", false}, {"223.255.255.255", false},

		{"::", true}, {"::1", true}, {"::2", true}, {"::8.8.8.8", false}, {"::127.0.0.1", true},
		{"::ffff:0:7f00:1", true}, {"::ffff:0:808:808", false},
		{"64:ff9b::a9fe:a9fe", true}, {"64:ff9b::808:808", false}, {"64:ff9b:1::808:808", true},
		{"2002:a00:1::", true}, {"2002:808:808::", false},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", true}, {"2001:0:4136:e378:8000:63bf:f7f7:f7f7", false},
		{"2001:0:a00:1:8000:63bf:f7f7:f7f7", true},
		{"2001:db8::1", true}, {"100::1", true}, {"100:0:0:1::1", false},
		{"fe80::1", true}, {"febf::1", true}, {"fec0::1", true}, {"fc00::1", true}, {"fdff::1", true},
		{"ff02::1", true}, {"2606:4700::1111", false}, {"2001:4860:4860::8888", false},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, privateIP(netip.MustParseAddr(tt.ip)))
		})
	}
}

func TestPrivateName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true}, {"a.localhost", true}, {"metadata", true}, {"metadata.google.internal", true},
		{"printer.local", true}, {"home.arpa", true}, {"nas.home.arpa", true}, {"x.lan", true}, {"x.corp", true},
		{"example.com", false}, {"localhost.example.com", false}, {"arpa.com", false}, {"in-addr.arpa", false},
		{"internal.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, privateName(tt.host))
		})
	}
}

func TestValidLDH(t *testing.T) {
	t.Parallel()
	assert.True(t, validLDH("a.b-c.xn--pple-43d"))
	assert.False(t, validLDH(""))
	assert.False(t, validLDH("a..b"))
	assert.False(t, validLDH(".a"))
	assert.False(t, validLDH("a."))
	assert.False(t, validLDH("A.b"))
	assert.False(t, validLDH("a_b"))
	assert.False(t, validLDH(strings.Repeat("a", 64)))
	assert.False(t, validLDH(strings.Repeat("a.", 127)+"a"))
}

// TestConfusableSeparators checks confusableSeparator against the NFKC
// decomposition of every code point.
func TestConfusableSeparators(t *testing.T) {
	t.Parallel()
	for r := rune(0x80); r <= utf8.MaxRune; r++ {
		if strings.ContainsAny(norm.NFKC.String(string(r)), `./\;%?#`) {
			require.True(t, confusableSeparator(r), "%U folds to %q", r, norm.NFKC.String(string(r)))
		}
	}
	for _, r := range []rune{'é', 0x2474, 0x1F101, 0x3002} {
		assert.False(t, confusableSeparator(r), "%U", r)
	}
}
