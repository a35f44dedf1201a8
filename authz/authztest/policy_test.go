package authztest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

const runPolicyYAML = `rules:
  - name: read-docs
    tools: [docs.read]
    effect: allow
    when: intent == "read"
`

const runPolicyCases = `task: {agent: spiffe://test/agent}
cases:
  - name: reading docs is allowed
    call: {tool: docs.read, intent: read}
    want: {effect: allow, rule: read-docs}
  - name: writing is denied
    call: {tool: docs.write, intent: write}
    want: {effect: deny}
`

func writePolicy(t *testing.T, policy, cases string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policy), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "policy.cases.yaml"), []byte(cases), 0o600))
	return dir
}

func TestRunPolicy(t *testing.T) {
	dir := writePolicy(t, runPolicyYAML, runPolicyCases)
	g := authztest.RunPolicy(t, filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "*.cases.yaml"), "docs.read")
	require.NotNil(t, g)
	ctx, _ := authztest.Begin(t, g, t.Context(), authz.TaskSpec{Agent: authz.Agent{ID: "spiffe://test/agent"}})
	authztest.AssertAllowed(t, g, ctx, authz.Call{Tool: "docs.read", Intent: "read"})
}

// TestRunPolicyFails runs RunPolicy in a child process on a policy that
// lints dirty (a registered tool no rule allows) and a case that fails:
// both must fail the test.
func TestRunPolicyFails(t *testing.T) {
	if dir := os.Getenv("AUTHZTEST_RUNPOLICY_DIR"); dir != "" {
		authztest.RunPolicy(t, filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "policy.cases.yaml"), "docs.read", "mail.send")
		return
	}
	cases := runPolicyCases + `  - name: a wrong expectation
    call: {tool: docs.read, intent: read}
    want: {effect: deny}
`
	dir := writePolicy(t, runPolicyYAML, cases)
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^TestRunPolicyFails$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "AUTHZTEST_RUNPOLICY_DIR="+dir)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "output:\n%s", out)
	assert.Contains(t, string(out), "--- FAIL: TestRunPolicyFails/policy.cases.yaml/a_wrong_expectation")
	assert.Contains(t, string(out), "--- PASS: TestRunPolicyFails/policy.cases.yaml/reading_docs_is_allowed")
	assert.Contains(t, string(out), `authztest: policy lint: `)
	assert.Contains(t, string(out), `"mail.send"`)
}
