package authz

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy("p.yaml", []byte(`
rules:
  - name: github-read
    tools: ["http.fetch", "http.get"]
    effect: allow
    when: intent in ["read", "search"] && destination.host.glob("*.github.com") && sensitivity <= INTERNAL
  - name: single-tool
    tools: db.query
    effect: ask
    when: true
    reason: every query is reviewed
`))
	require.NoError(t, err)
	rules := p.Rules()
	require.Len(t, rules, 2)
	assert.Equal(t, Rule{Name: "github-read", Tools: []string{"http.fetch", "http.get"}, Effect: Allow,
		When: `intent in ["read", "search"] && destination.host.glob("*.github.com") && sensitivity <= INTERNAL`}, rules[0])
	assert.Equal(t, Rule{Name: "single-tool", Tools: []string{"db.query"}, Effect: Ask, When: "true", Reason: "every query is reviewed"}, rules[1])
	assert.True(t, strings.HasPrefix(p.Version(), "sha256:"))

	same, err := ParsePolicy("other-name.yaml", []byte(`
rules:
  - {name: github-read, tools: ["http.fetch", "http.get"], effect: allow, when: 'intent in ["read", "search"] && destination.host.glob("*.github.com") && sensitivity <= INTERNAL'}
  - {name: single-tool, tools: [db.query], effect: ask, when: "true", reason: every query is reviewed}
`))
	require.NoError(t, err)
	assert.Equal(t, p.Version(), same.Version(), "the version depends on the rules only")
}

// policyErrors returns the PolicyErrors joined in err.
func policyErrors(t *testing.T, err error) []*PolicyError {
	t.Helper()
	require.Error(t, err)
	var out []*PolicyError
	var walk func(error)
	walk = func(e error) {
		if pe, ok := e.(*PolicyError); ok {
			out = append(out, pe)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}

func TestParsePolicyErrorsNamePositionAndRule(t *testing.T) {
	t.Parallel()
	src := `rules:
  - name: unknown-field
    tools: ["http.fetch"]
    effect: allow
    when: destination.hots == "x"
  - name: not-bool
    tools: ["http.fetch"]
    effect: allow
    when: '"yes"'
  - name: bad-effect
    tools: ["http.fetch"]
    effect: permit
    when: "true"
  - name: unknown-variable
    tools: ["x"]
    effect: deny
    when: |
      true &&
        user.admin
  - name: extra-key
    tools: ["x"]
    effect: deny
    when: "true"
    priority: 3
  - tools: ["x"]
    effect: deny
    when: "true"
`
	_, err := ParsePolicy("bad.yaml", []byte(src))
	errs := policyErrors(t, err)
	msg := err.Error()
	require.Len(t, errs, 6, msg)

	assert.Equal(t, "unknown-field", errs[0].Rule)
	assert.Equal(t, 5, errs[0].Line)
	assert.Equal(t, 22, errs[0].Col, "column of .hots")
	assert.Contains(t, errs[0].Msg, "hots")
	assert.Contains(t, msg, `bad.yaml:5:22: rule "unknown-field": when:`)

	assert.Equal(t, "not-bool", errs[1].Rule)
	assert.Contains(t, errs[1].Msg, "must be a bool")

	assert.Equal(t, "bad-effect", errs[2].Rule)
	assert.Equal(t, 12, errs[2].Line)
	assert.Contains(t, errs[2].Msg, "permit")

	assert.Equal(t, "unknown-variable", errs[3].Rule)
	assert.Equal(t, 19, errs[3].Line, "second line of the block scalar")
	assert.Contains(t, errs[3].Msg, "user")

	assert.Equal(t, "extra-key", errs[4].Rule)
	assert.Equal(t, 24, errs[4].Line)
	assert.Contains(t, errs[4].Msg, `unknown key "priority"`)

	assert.Equal(t, 25, errs[5].Line)
	assert.Contains(t, errs[5].Msg, "missing name")
}

func TestParsePolicyRejects(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ src, want string }{
		"empty":          {"", "empty policy"},
		"not a mapping":  {"- a\n- b\n", "mapping"},
		"no rules":       {"other: 1\n", "unknown key"},
		"rules not list": {"rules: 3\n", "must be a list"},
		"yaml syntax":    {"rules: [\n", "t.yaml:"},
		"duplicate name": {"rules:\n- {name: a, tools: [x], effect: allow, when: 'true'}\n- {name: a, tools: [y], effect: deny, when: 'true'}\n", "duplicate rule name"},
		"empty when":     {"rules:\n- {name: a, tools: [x], effect: allow, when: ''}\n", "expression is empty"},
		"no tools":       {"rules:\n- {name: a, tools: [], effect: allow, when: 'true'}\n", "at least one tool"},
		"bad tool glob":  {"rules:\n- {name: a, tools: ['http fetch'], effect: allow, when: 'true'}\n", "tools:"},
		"bad name":       {"rules:\n- {name: '@no-match', tools: [x], effect: allow, when: 'true'}\n", "name"},
		"null when":      {"rules:\n- {name: a, tools: [x], effect: allow, when: ~}\n", "must be a string"},
		"syntax error":   {"rules:\n- {name: a, tools: [x], effect: allow, when: 'intent =='}\n", "when:"},
		"bad arg type":   {"rules:\n- {name: a, tools: [x], effect: allow, when: 'destination.host.glob(3)'}\n", "when:"},
		"duplicate key":  {"rules:\n- {name: a, tools: [x], effect: allow, effect: deny, when: 'true'}\n", "duplicate key"},
		"too costly": {"rules:\n- {name: a, tools: [x], effect: allow, when: " +
			"'args.all(k, args.all(k2, args.all(k3, k + k2 + k3 != \"\")))'}\n", "exceeds the limit"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePolicy("t.yaml", []byte(tc.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestNewPolicy(t *testing.T) {
	t.Parallel()
	p, err := NewPolicy("inline",
		Rule{Name: "a", Tools: []string{"x"}, Effect: Allow, When: "true"},
		Rule{Name: "b", Tools: []string{"y.*"}, Effect: Deny, When: `intent == "delete"`},
	)
	require.NoError(t, err)
	assert.Len(t, p.Rules(), 2)

	_, err = NewPolicy("inline",
		Rule{Name: "ok", Tools: []string{"x"}, Effect: Allow, When: "true"},
		Rule{Name: "bad", Tools: []string{"x"}, Effect: Allow, When: "nope"},
		Rule{Name: "", Tools: nil, Effect: 7, When: ""},
	)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `inline#2: rule "bad": when:`)
	assert.Contains(t, err.Error(), `inline#3: `)
	assert.GreaterOrEqual(t, len(policyErrors(t, err)), 4, "all problems are reported")
}

func TestLoadPolicyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, src string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600))
	}
	write("a.yaml", "rules:\n- {name: a, tools: [x], effect: allow, when: 'true'}\n")
	write("b.yaml", "rules:\n- {name: b, tools: [y], effect: deny, when: 'true'}\n")
	p, err := LoadPolicyFiles(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, []string{p.Rules()[0].Name, p.Rules()[1].Name})

	_, err = LoadPolicyFiles(filepath.Join(dir, "*.yml"))
	assert.ErrorContains(t, err, "matches no file")
	_, err = LoadPolicyFiles()
	assert.Error(t, err)

	write("c.yaml", "rules:\n- {name: a, tools: [z], effect: allow, when: 'true'}\n")
	write("d.yaml", "rules:\n- {name: d, tools: [z], effect: allow, when: 'nope'}\n")
	_, err = LoadPolicyFiles(filepath.Join(dir, "*.yaml"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "duplicate rule name")
	assert.Contains(t, err.Error(), "a.yaml:2:3")
	assert.Contains(t, err.Error(), "d.yaml:2:")
	assert.False(t, errors.Is(err, ErrDenied))
}

// An unquoted expression starting with "!" is a YAML tag; the error says
// to quote it, at the expression's position.
func TestParsePolicyUnquotedNegation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ src, want string }{
		{"rules:\n- name: a\n  tools: [x]\n  effect: deny\n  when: !destination.private\n",
			`t.yaml:5:9: rule "a": when: YAML reads the unquoted !destination.private as a tag: quote the expression, e.g. when: "!destination.private"`},
		{"rules:\n- name: a\n  tools: [x]\n  effect: deny\n  when: !task.taint.untrusted && intent == 'export'\n",
			`t.yaml:5:9: YAML: did not find expected alphabetic or numeric character: an unquoted value starting with "!" is a YAML tag: quote the expression`},
		{"rules:\n- name: a\n  tools: [x]\n  effect: deny\n  when: 'true'\n  reason: !oops\n",
			`t.yaml:6:11: rule "a": reason: YAML reads the unquoted !oops as a tag`},
	} {
		_, err := ParsePolicy("t.yaml", []byte(tc.src))
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), "empty")
	}
	p, err := ParsePolicy("t.yaml", []byte("rules:\n- {name: a, tools: [x], effect: deny, when: '!destination.private'}\n"))
	require.NoError(t, err)
	assert.Equal(t, "!destination.private", p.Rules()[0].When)
}

// The documented layout keeps case files next to the policies: a glob skips
// them, and a case file loaded as a policy says what it is.
func TestLoadPolicyFilesSkipsCaseFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, src string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600))
	}
	write("policy.yaml", "rules:\n- {name: a, tools: [x], effect: allow, when: 'true'}\n")
	cases := "task: {intents: [read]}\ncases:\n- name: c\n  call: {tool: x}\n  want: {effect: allow}\n"
	write("policy.cases.yaml", cases)
	write("more.cases.yml", cases)
	p, err := LoadPolicyFiles(filepath.Join(dir, "*.yaml"), filepath.Join(dir, "*"))
	require.NoError(t, err)
	assert.Len(t, p.Rules(), 1)

	_, err = LoadPolicyFiles(filepath.Join(dir, "*.cases.yaml"))
	assert.ErrorContains(t, err, "matches only policy test files")

	_, err = LoadPolicyFiles(filepath.Join(dir, "policy.cases.yaml"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "policy.cases.yaml:2:1: this is a policy test file (authztest cases), not a policy")
	assert.Contains(t, err.Error(), "authztest.Run")
	assert.Len(t, policyErrors(t, err), 1, "one error, not one per unknown key")

	_, err = ParsePolicy("x.yaml", []byte(cases))
	assert.ErrorContains(t, err, "x.yaml:2:1: this is a policy test file")
}

func TestWithPolicyCombines(t *testing.T) {
	t.Parallel()
	a := mustPolicy(t, "rules:\n- {name: a, tools: [x], effect: allow, when: 'true'}\n")
	b := mustPolicy(t, "rules:\n- {name: b, tools: [x], effect: deny, when: 'true'}\n")
	g, err := New(WithPolicy(a), WithPolicy(b))
	require.NoError(t, err)
	assert.Len(t, g.Policy().Rules(), 2)
	_, err = New(WithPolicy(a), WithPolicy(a))
	assert.ErrorContains(t, err, "duplicate rule name")
	_, err = New(WithPolicy(nil))
	assert.Error(t, err)
}
