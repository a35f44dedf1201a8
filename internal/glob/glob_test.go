package glob_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/internal/glob"
)

var matchCases = []struct {
	pattern, name string
	want          bool
}{
	{"", "", true},
	{"", "a", false},
	{"*", "", true},
	{"*", "anything.at.all", true},
	{"github.create_issue", "github.create_issue", true},
	{"github.create_issue", "github.create_issuE", false},
	{"github.*", "github.create_issue", true},
	{"github.*", "github.", true},
	{"github.*", "github", false},
	{"github.*", "githubx.create", false},
	{"*.read", "fs.read", true},
	{"*.read", "fs.read.more", false},
	{"*.read*", "fs.read.more", true},
	{"fs.*.file", "fs.read.file", true},
	{"fs.*.file", "fs.a.b.file", true},
	{"fs.*.file", "fs.file", false},
	{"fs.*.file", "fs..file", true},
	{"a*b*c", "abc", true},
	{"a*b*c", "aXbYc", true},
	{"a*b*c", "aXbYcZ", false},
	{"a*b*c", "acb", false},
	{"**", "x", true},
	{"a**b", "ab", true},
	{"*a*a*a*a*b", strings.Repeat("a", 100), false},
	{"GitHub.*", "github.x", false},
	{"mcp:server/tool", "mcp:server/tool", true},
	{"é*", "é-x", true},
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tt := range matchCases {
		t.Run(tt.pattern+"|"+tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, glob.Match(tt.pattern, tt.name))
			assert.Equal(t, tt.want, naiveMatch(tt.pattern, tt.name), "reference matcher disagrees with the table")
		})
	}
}

func TestValidPattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, wantErr string
	}{
		{"github.*", ""},
		{"*", ""},
		{"mcp:server/tool-name_2", ""},
		{"A-Z.a-z.0-9", ""},
		{"", "empty pattern"},
		{"a b", `character ' ' at offset 1`},
		{"a?b", `character '?' at offset 1`},
		{"a[b]", `character '['`},
		{"é", `character 'é' at offset 0`},
		{"a\xff", `character byte 0xff at offset 1`},
		{"a\x00", `character '\x00'`},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			t.Parallel()
			err := glob.ValidPattern(tt.pattern)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, glob.ErrInvalidPattern)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

var hostCases = []struct {
	pattern, host string
	want          bool
}{
	{"*.github.com", "api.github.com", true},
	{"*.github.com", "a.b.github.com", true},
	{"*.github.com", "github.com", false},
	{"*.github.com", "evilgithub.com", false},
	{"*.github.com", "api.github.com.evil.com", false},
	{"*.github.com", "API.GitHub.COM", true},
	{"*.GitHub.com", "api.github.com", true},
	{"*.github.com", "api.github.com.", true},
	{"*.github.com.", "api.github.com", true},
	{"github.com", "github.com", true},
	{"github.com", "api.github.com", false},
	{"github.com", "github.co", false},
	{"github.com", "github.com.", true},
	{"github.com.", "GITHUB.COM", true},
	{"*", "localhost", true},
	{"*", "a.b.c", true},
	{"*.*", "a", false},
	{"*.*", "a.b", true},
	{"*.*", "a.b.c", true},
	{"*.s3.*.amazonaws.com", "bucket.s3.eu-west-1.amazonaws.com", true},
	{"*.s3.*.amazonaws.com", "a.b.s3.x.y.amazonaws.com", true},
	{"*.s3.*.amazonaws.com", "s3.eu-west-1.amazonaws.com", false},
	{"*.s3.*.amazonaws.com", "bucket.s3.amazonaws.com", false},
	{"api.*", "api.github.com", true},
	{"api.*", "api", false},
	{"a.*.c", "a.b.c", true},
	{"a.*.c", "a.c", false},
	{"a.*.c", "a.b.b.c", true},
	{"*.a.*.a", "x.a.a.a", true},
	{"*.a.*.a", "x.a.a", false},
	{"127.0.0.1", "127.0.0.1", true},
	{"127.0.0.1", "127.0.0.2", false},
	{"10.*", "10.1.2.3", true},
	{"::1", "::1", true},
	{"2606:4700::1111", "2606:4700::1111", true},
	{"2606:4700::ABCD", "2606:4700::abcd", true},
	{"github-token", "GitHub-Token", true},
	{"k.example.com", "\u212a.example.com", false}, // KELVIN SIGN does not fold to k
	{"*.github.com", "", false},
	{"*.com", strings.Repeat("a.", 40) + "com", true},
	{strings.Repeat("a.", 40) + "*", strings.Repeat("a.", 40) + "b.c", true},
	{strings.Repeat("a.", 40) + "*", strings.Repeat("a.", 40), false},
}

func TestHost(t *testing.T) {
	t.Parallel()
	for _, tt := range hostCases {
		t.Run(tt.pattern+"|"+tt.host, func(t *testing.T) {
			t.Parallel()
			got, err := glob.Host(tt.pattern, tt.host)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestHostErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern, host, want string
	}{
		{"empty pattern", "", "a.com", "empty host pattern"},
		{"only dot", ".", "a.com", "empty host pattern"},
		{"empty label", "a..com", "a.com", "empty label"},
		{"leading dot", ".a.com", "a.com", "empty label"},
		{"two trailing dots", "a.com..", "a.com", "empty label"},
		{"partial star", "a*b.com", "a.com", "'*' must be a whole label"},
		{"star prefix", "*github.com", "a.com", "'*' must be a whole label"},
		{"double star label", "**.com", "a.com", "'*' must be a whole label"},
		{"space", "a b.com", "a.com", "not allowed"},
		{"unicode", "аpple.com", "a.com", "not allowed"},
		{"bracketed ipv6", "[::1]", "::1", "not allowed"},
		{"slash", "a.com/x", "a.com", "not allowed"},
		{"non-canonical ipv4", "127.1", "127.0.0.1", "dotted-quad"},
		{"octal ipv4", "0177.0.0.1", "127.0.0.1", "dotted-quad"},
		{"numeric tld", "foo.123", "foo.123", "dotted-quad"},
		{"long ipv6", "0:0:0:0:0:0:0:1", "::1", "not a canonical IPv6"},
		{"mapped ipv6", "::ffff:127.0.0.1", "127.0.0.1", "an IPv6 pattern must be one exact address"},
		{"mapped ipv6 hex", "::ffff:7f00:1", "127.0.0.1", "not a canonical IPv6"},
		{"star ipv6", "*.::1", "::1", "an IPv6 pattern"},
		{"star in ipv6", "*:1", "::1", "'*' must be a whole label"},
		{"bad host", "*.com", "a..com", "empty label"},
		{"host leading dot", "*.com", ".a.com", "empty label"},
		{"too many labels", strings.Repeat("a.", 127) + "a", "a", "more than 127 labels"},
		{"host too many labels", "*", strings.Repeat("a.", 127) + "a", "more than 127 labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := glob.Host(tt.pattern, tt.host)
			require.Error(t, err)
			assert.False(t, got)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "glob: "), err.Error())
		})
	}
}

func TestHostErrorKinds(t *testing.T) {
	t.Parallel()
	_, err := glob.Host("a*.com", "a.com")
	assert.ErrorIs(t, err, glob.ErrInvalidPattern)
	_, err = glob.Host("*.com", "a..com")
	assert.ErrorIs(t, err, glob.ErrInvalidHost)
}

func TestWithin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p, root string
		want    bool
	}{
		{"/workspace/a", "/workspace", true},
		{"/workspace", "/workspace", true},
		{"/workspace/", "/workspace", true},
		{"/workspace/a/b/c", "/workspace/", true},
		{"/workspace2", "/workspace", false},
		{"/workspace2/a", "/workspace", false},
		{"/work", "/workspace", false},
		{"/", "/workspace", false},
		{"/etc/passwd", "/", true},
		{"/", "/", true},
		{"/workspace/../etc", "/workspace", false},
		{"/workspace/a/../../etc", "/workspace", false},
		{"/workspace/./a", "/workspace", true},
		{"/etc/passwd", "/workspace/../etc", true},
		{"//workspace/a", "/workspace", true},
		{"workspace/a", "/workspace", false},
		{"/workspace/a", "workspace", false},
		{"", "/", false},
		{"/a", "", false},
		{"/workspace/a", "/workspace/a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.p+"|"+tt.root, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, glob.Within(tt.p, tt.root))
		})
	}
}

func TestNoAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are checked in the full run")
	}
	allocs := testing.AllocsPerRun(100, func() {
		_ = glob.Match("github.*.issue*", "github.create.issue_comment")
		_, _ = glob.Host("*.s3.*.amazonaws.com", "bucket.s3.eu-west-1.amazonaws.com")
		_, _ = glob.Host("127.0.0.1", "127.0.0.1")
		_, _ = glob.Host("2606:4700::1111", "2606:4700::1111")
		_ = glob.Within("/workspace/src/main.go", "/workspace")
	})
	assert.Zero(t, allocs)
}

// naiveMatch is an obviously correct reference for Match: exponential in
// the worst case, so only used on short inputs.
func naiveMatch(pattern, name string) bool {
	if pattern == "" {
		return name == ""
	}
	if pattern[0] == '*' {
		for i := 0; i <= len(name); i++ {
			if naiveMatch(pattern[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	return name != "" && pattern[0] == name[0] && naiveMatch(pattern[1:], name[1:])
}

// naiveHost is an obviously correct reference for Host on valid inputs:
// labels compared ignoring ASCII case, "*" consuming one or more labels.
func naiveHost(p, h []string) bool {
	if len(p) == 0 {
		return len(h) == 0
	}
	if p[0] == "*" {
		for i := 1; i <= len(h); i++ {
			if naiveHost(p[1:], h[i:]) {
				return true
			}
		}
		return false
	}
	return len(h) > 0 && strings.EqualFold(p[0], h[0]) && isASCII(p[0]+h[0]) && naiveHost(p[1:], h[1:]) ||
		len(h) > 0 && !isASCII(p[0]+h[0]) && asciiFold(p[0]) == asciiFold(h[0]) && naiveHost(p[1:], h[1:])
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func asciiFold(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
