package authztest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz/authztest"
)

// Errors in case files name the file and the line of the problem.
func TestLoadCasesErrorsNameFileAndLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct{ name, src, want string }{
		{"unknown_effect", "cases:\n- name: a\n  call: {tool: x}\n  want:\n    effect: permit\n",
			`unknown_effect.yaml:5: authz: unknown effect "permit"`},
		{"unknown_sensitivity", "task:\n  clearance: secret\ncases: []\n",
			`unknown_sensitivity.yaml:2: authz: unknown sensitivity "secret"`},
		{"unknown_field", "cases:\n- name: a\n  call: {tool: x}\n  wnat: {effect: allow}\n",
			`unknown_field.yaml:4: field wnat not found`},
		{"unknown_call_field", "cases:\n- name: a\n  call:\n    tool: x\n    destnation: https://example.org/\n",
			`unknown_call_field.yaml:5: field destnation not found`},
		{"no_name", "cases:\n- name: a\n  call: {tool: x}\n- call: {tool: x}\n",
			`no_name.yaml:4: case 2 has no name`},
		{"no_tool", "cases:\n- name: a\n  call: {intent: read}\n",
			`no_tool.yaml:2: case "a" has no call.tool`},
		{"syntax", "cases:\n- name: a\n   call: {tool: x}\n",
			`syntax.yaml:3: `},
		{"policy", "# a policy\nrules:\n- {name: a, tools: [x], effect: allow, when: 'true'}\n",
			`policy.yaml:2: this is a policy, not a case file`},
	} {
		path := filepath.Join(dir, tc.name+".yaml")
		require.NoError(t, writeFile(path, tc.src))
		_, err := authztest.LoadCases(path)
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), filepath.Join(dir, tc.want), tc.name)
	}
}

func TestLoadCasesPositions(t *testing.T) {
	t.Parallel()
	cf, err := authztest.LoadCases("testdata/policy.cases.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, cf.Cases)
	assert.Equal(t, "testdata/policy.cases.yaml:6", cf.Cases[0].At())
	assert.Equal(t, "testdata/policy.cases.yaml:9", cf.Cases[1].At())
}

// A failing case is reported at the case's file:line, not at the runner's
// source line. The failing run happens in a child process, so this test
// passes when the child's cases fail as expected.
func TestRunReportsCasePosition(t *testing.T) {
	if dir := os.Getenv("AUTHZTEST_FAILING_CASES"); dir != "" {
		g := newGuard(t)
		authztest.Run(t, g, filepath.Join(dir, "*.cases.yaml"))
		return
	}
	dir := t.TempDir()
	require.NoError(t, writeFile(filepath.Join(dir, "wrong.cases.yaml"), `task: {intents: [read]}
cases:
  - name: right
    call: {tool: http.get, intent: read, destination: "https://example.org/"}
    want: {effect: allow}
  - name: wrong
    call: {tool: http.get, intent: read, destination: "http://127.1/"}
    want: {effect: allow}
`))
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunReportsCasePosition$", "-test.v")
	cmd.Env = append(os.Environ(), "AUTHZTEST_FAILING_CASES="+dir)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the wrong case fails the child test:\n%s", out)
	got := string(out)
	assert.Contains(t, got, filepath.Join(dir, "wrong.cases.yaml")+`:6: case "wrong": want allow, got deny by no-private`)
	assert.Contains(t, got, "rule no-private (deny) matched", "the failure shows the explanation")
	assert.Contains(t, got, "--- PASS: TestRunReportsCasePosition/wrong.cases.yaml/right")
	assert.NotContains(t, got, "run.go:", "no runner source line")
	assert.Equal(t, 1, strings.Count(got, "want allow, got"))
}
