package authz

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLint(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		src   string
		tools []string
		want  []string // Warning.String of each warning, in order
	}{
		{
			name: "clean",
			src: `rules:
  - name: read
    tools: [http.fetch, db.query]
    effect: allow
    when: intent == "read"
  - name: no-delete
    tools: [db.*]
    effect: deny
    when: intent == "delete"
  - name: export
    tools: [db.export]
    effect: ask
    when: "true"
    limit: {rate: 10/m}
  - name: watch-exports
    tools: [db.export]
    effect: deny
    mode: shadow
    when: task.depth > 0
`,
			tools: []string{"http.fetch", "db.query", "db.export"},
			want:  nil,
		},
		{
			name: "no allow or ask rule",
			src: `rules:
  - name: no-delete
    tools: ["*"]
    effect: deny
    when: intent == "delete"
`,
			want: []string{`test.yaml: no enforced allow or ask rule can match: every call is denied`},
		},
		{
			name: "only shadow and never-matching allow rules",
			src: `rules:
  - name: trial
    tools: ["*"]
    effect: allow
    mode: shadow
    when: "true"
  - name: off
    tools: ["*"]
    effect: allow
    when: "false"
`,
			want: []string{
				`test.yaml: no enforced allow or ask rule can match: every call is denied`,
				`test.yaml:7:5: rule "off": never matches: when is the constant false`,
			},
		},
		{
			name: "never matches",
			src: `rules:
  - name: read
    tools: ["*"]
    effect: allow
    when: "true"
  - name: off
    tools: [http.fetch]
    effect: deny
    when: "false"
`,
			want: []string{`test.yaml:6:5: rule "off": never matches: when is the constant false`},
		},
		{
			name: "unreachable by a deny of every tool",
			src: `rules:
  - name: lockdown
    tools: ["*"]
    effect: deny
    when: "true"
  - name: read
    tools: [http.fetch]
    effect: allow
    when: intent == "read"
  - name: export
    tools: ["db.*"]
    effect: ask
    when: "true"
`,
			want: []string{
				`test.yaml:6:5: rule "read": unreachable: rule "lockdown" denies every call of these tools`,
				`test.yaml:10:5: rule "export": unreachable: rule "lockdown" denies every call of these tools`,
			},
		},
		{
			name: "unreachable by a prefix deny",
			src: `rules:
  - name: read
    tools: [http.fetch, "http.get*"]
    effect: allow
    when: intent == "read"
  - name: no-http
    tools: ["http.*"]
    effect: deny
    when: "true"
`,
			want: []string{`test.yaml:2:5: rule "read": unreachable: rule "no-http" denies every call of these tools`},
		},
		{
			name: "unreachable by several denies",
			src: `rules:
  - name: no-fetch
    tools: [http.fetch]
    effect: deny
    when: "true"
  - name: no-db
    tools: ["db.*"]
    effect: deny
    when: "true"
  - name: both
    tools: [db.query, http.fetch]
    effect: allow
    when: "true"
`,
			want: []string{
				`test.yaml:10:5: rule "both": unreachable: rules "no-db", "no-fetch" deny every call of these tools`,
			},
		},
		{
			name: "reachable: partial, conditional or shadow deny",
			src: `rules:
  - name: no-fetch
    tools: [http.fetch]
    effect: deny
    when: "true"
  - name: maybe-no-db
    tools: ["db.*"]
    effect: deny
    when: intent == "delete"
  - name: shadow-no-mail
    tools: ["mail.*"]
    effect: deny
    mode: shadow
    when: "true"
  - name: fetch-or-get
    tools: [http.fetch, http.get]
    effect: allow
    when: "true"
  - name: db
    tools: [db.query]
    effect: allow
    when: "true"
  - name: mail
    tools: [mail.send]
    effect: ask
    when: "true"
  - name: star-child
    tools: ["*.fetch"]
    effect: allow
    when: "true"
`,
			want: nil,
		},
		{
			name: "duplicates",
			src: `rules:
  - name: first
    tools: [b, a]
    effect: allow
    when: intent == "read" && task.depth == 0
  - name: second
    tools: [a, b, a]
    effect: allow
    when: |
      intent=="read"
        && task.depth==0
  - name: other-effect
    tools: [a, b]
    effect: ask
    when: intent == "read" && task.depth == 0
  - name: shadow-copy
    tools: [a, b]
    effect: allow
    mode: shadow
    when: intent == "read" && task.depth == 0
  - name: other-literal
    tools: [a, b]
    effect: allow
    when: intent == "re ad" && task.depth == 0
  - name: other-literal-2
    tools: [a, b]
    effect: allow
    when: intent == "re  ad" && task.depth == 0
  - name: third
    tools: [a, b]
    effect: allow
    when: intent == "read" && task.depth == 0
`,
			want: []string{
				`test.yaml:6:5: rule "second": duplicate of rule "first"`,
				`test.yaml:29:5: rule "third": duplicate of rule "first"`,
			},
		},
		{
			name: "shadow rule with a limit",
			src: `rules:
  - name: read
    tools: ["*"]
    effect: allow
    when: "true"
  - name: trial-limit
    tools: [http.fetch]
    effect: allow
    mode: shadow
    when: "true"
    limit: {rate: 5/m, burst: 2}
`,
			want: []string{`test.yaml:6:5: rule "trial-limit": limits of shadow rules are not enforced`},
		},
		{
			name: "registered tools",
			src: `rules:
  - name: read
    tools: [http.fetch, "github.*", gitlab.get]
    effect: allow
    when: "true"
  - name: trial
    tools: [db.query]
    effect: allow
    mode: shadow
    when: "true"
  - name: no-db
    tools: ["db.*"]
    effect: deny
    when: intent == "delete"
`,
			tools: []string{"http.fetch", "github.issues", "db.query", "db.drop", "http.fetch"},
			want: []string{
				`test.yaml: no enforced allow or ask rule matches the registered tools "db.drop", "db.query": they are always denied`,
				`test.yaml:2:5: rule "read": tools pattern "gitlab.get" matches no registered tool`,
			},
		},
		{
			name: "registered tools matched by no pattern of a rule",
			src: `rules:
  - name: read
    tools: ["*"]
    effect: allow
    when: "true"
  - name: slack
    tools: ["slack.*", slack.post]
    effect: deny
    when: intent == "export"
`,
			tools: []string{"http.fetch"},
			want: []string{
				`test.yaml:6:5: rule "slack": tools pattern "slack.*" matches no registered tool`,
				`test.yaml:6:5: rule "slack": tools pattern "slack.post" matches no registered tool`,
			},
		},
		{
			name: "no rules",
			src:  "rules: []\n",
			want: []string{`policy: policy has no rules: every call is denied`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := ParsePolicy("test.yaml", []byte(tc.src))
			require.NoError(t, err)
			var got []string
			for _, w := range p.Lint(tc.tools...) {
				got = append(got, w.String())
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestLintNilPolicy(t *testing.T) {
	t.Parallel()
	var p *Policy
	assert.Equal(t, []Warning{{Pos: "policy", Msg: "policy has no rules: every call is denied"}}, p.Lint("http.fetch"))
}

func TestLintGoPolicy(t *testing.T) {
	t.Parallel()
	p, err := NewPolicy("go",
		Rule{Name: "deny-all", Tools: []string{"*"}, Effect: Deny, When: "true"},
		Rule{Name: "read", Tools: []string{"http.fetch"}, Effect: Allow, When: "true"},
		Rule{Name: "trial", Tools: []string{"http.fetch"}, Effect: Allow, When: "true", Mode: Shadow, Limit: &Limit{Rate: 1, Per: time.Second, Burst: 1}},
	)
	require.NoError(t, err)
	assert.Equal(t, []Warning{
		{Pos: "go#2", Rule: "read", Msg: `unreachable: rule "deny-all" denies every call of these tools`},
		{Pos: "go#3", Rule: "trial", Msg: "limits of shadow rules are not enforced"},
	}, p.Lint())
}

func TestLintPolicyFilesLabel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	require.NoError(t, os.WriteFile(a, []byte("rules:\n  - {name: d1, tools: [x], effect: deny, when: 'false'}\n"), 0o600))
	require.NoError(t, os.WriteFile(b, []byte("rules:\n  - {name: d2, tools: [y], effect: deny, when: 'true'}\n"), 0o600))
	p, err := LoadPolicyFiles(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	assert.Equal(t, []Warning{
		{Pos: a + ", " + b, Msg: "no enforced allow or ask rule can match: every call is denied"},
		{Pos: a + ":2:5", Rule: "d1", Msg: "never matches: when is the constant false"},
	}, p.Lint())
}

func TestWarningString(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		w    Warning
		want string
	}{
		{"rule", Warning{Pos: "p.yaml:3:5", Rule: "x", Msg: "never matches"}, `p.yaml:3:5: rule "x": never matches`},
		{"policy-wide", Warning{Pos: "p.yaml", Msg: "no rules"}, `p.yaml: no rules`},
		{"no position", Warning{Rule: "x", Msg: "m"}, `rule "x": m`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, tc.w.String())
		})
	}
}

// TestCoverIndexAgreesWithGlobCovers checks the index against the pairwise
// definition.
func TestCoverIndexAgreesWithGlobCovers(t *testing.T) {
	t.Parallel()
	patterns := []string{
		"*", "http.*", "http.fetch", "http.get*", "*.fetch", "h*p.*", "db.*.drop",
		"db.query", "db.*", "d*", "", "http.", "http.fetch*", "**",
	}
	for _, parent := range patterns {
		idx := newCoverIndex()
		idx.add(&rule{Rule: Rule{Name: "p", Tools: []string{parent}}})
		for _, child := range patterns {
			want := globCovers(parent, child)
			assert.Equal(t, want, idx.cover(child) != nil, "globCovers(%q, %q)", parent, child)
		}
	}
}

func TestSourceName(t *testing.T) {
	t.Parallel()
	cases := []struct{ pos, want string }{
		{"p.yaml:3:5", "p.yaml"},
		{`C:\p.yaml:3:5`, `C:\p.yaml`},
		{"go#12", "go"},
		{"a#b#2", "a#b"},
		{"plain", "plain"},
		{"x:12", "x:12"},
	}
	for _, tc := range cases {
		t.Run(tc.pos, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, sourceName(tc.pos))
		})
	}
}

func TestNormalizeWhen(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, a, b string
		same       bool
	}{
		{"spaces around operators", `intent == "read" && x`, "intent==\"read\"\n\t&&x", true},
		{"leading and trailing", "  true ", "true", true},
		{"identifiers stay apart", `a in b`, `ain b`, false},
		{"string contents kept", `x == "a  b"`, `x == "a b"`, false},
		{"escaped quote", `x == "a\" " && y`, `x == "a\" "&&y`, true},
		{"escaped quote contents", `x == "a\"  b"`, `x == "a\" b"`, false},
		{"raw string", `x == r"a\" && y == " "`, `x==r"a\"&&y==" "`, true},
		{"triple quotes", `x == '''it's  ok'''`, `x=='''it's  ok'''`, true},
		{"triple quotes contents", `x == '''it's  ok'''`, `x == '''it's ok'''`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.same, normalizeWhen(tc.a) == normalizeWhen(tc.b), "%q vs %q", normalizeWhen(tc.a), normalizeWhen(tc.b))
		})
	}
}
