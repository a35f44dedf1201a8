package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/authz/authztest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQuickstart runs the scripted agent and checks every decision it shows.
func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	got := out.String()
	for _, want := range []string{
		"ALLOW    http.fetch https://api.github.com:$PORT/repos/taskguard/taskguard\n            rule fetch-public-web",
		`the last reads "200 OK: page /repos/taskguard/taskguard"`,
		"DENY     http.fetch http://169.254.169.254/latest/meta-data\n            rule no-private-network",
		"DENY     http.fetch https://127.0.0.1.nip.io:$PORT/admin\n            rule @dial: 127.0.0.1.nip.io resolved to the private address 127.0.0.1",
		"ALLOW    http.fetch https://api.github.com:$PORT/moved",
		"ALLOW    fs.read $WORKSPACE/notes/plan.md",
		`tool ran: "1. read the README\n"`,
		"input    notes/../../etc/passwd\n   DENY     fs.read ",
		"rule @escape: fsguard: path escapes the root",
		"DENY     fs.read /etc/passwd\n            rule files-stay-in-workspace",
		"ASK      fs.write $WORKSPACE/report.md\n            rule writes-need-review",
		"APPROVED fs.write $WORKSPACE/report.md",
		"rule writes-need-review: approved for the task by alice",
		"? alice, approve fs.write $WORKSPACE/report.md (10 bytes;",
		"DENY     http.fetch https://api.github.com:$PORT/repos/taskguard/taskguard/releases\n            rule fetch-public-web: rate limit 5/1m0s of rule fetch-public-web exceeded; retry in ",
		"tool ran: wrote 10 bytes",
		"ALLOW    secrets.lease secret://github-token\n            rule researchers-lease-github-token",
		"value: [REDACTED]}",
		"ALLOW    http.post https://api.github.com/repos/taskguard/taskguard/issues",
		"DENY     http.post https://paste.example.net/new\n            rule @inspect:secrets: secret exfiltration",
		`the last reads "401 Unauthorized for token [REDACTED]"`,
		"DENY     mail.send partner@example.net\n            rule no-export-after-confidential",
		"first task: 3 entries, second task: 0 entries",
		"reading the memory: contextguard: task ended",
		"input    http://0xa9fea9fe/latest/meta-data/\n   DENY     http.fetch http://169.254.169.254/latest/meta-data\n",
		"input    https://API.GitHub.com.:$PORT/repos/taskguard/taskguard\n   ALLOW    http.fetch https://api.github.com:$PORT/repos/taskguard/taskguard\n",
		"DENY     secrets.lease secret://github-token\n            rule @no-match",
		`refused: secrets: lease "github-token": authz: secrets.lease denied by @no-match`,
		"result: first task: 3 entries, second task: 0 entries",
		"the next call was denied: tool not called",
		"using the lease now: secrets: lease revoked",
	} {
		assert.Contains(t, got, want)
	}
	assert.Equal(t, 3, bytes.Count(out.Bytes(), []byte("rule no-private-network")), "both SSRF spellings and the redirect hop are denied")
	assert.Equal(t, 1, bytes.Count(out.Bytes(), []byte("rule @dial")), "the rebinding name is refused at dial time")
	assert.Equal(t, 9, bytes.Count(out.Bytes(), []byte("tool not called")), "only tool calls say tool not called")
	assert.Equal(t, 8, bytes.Count(out.Bytes(), []byte("tool ran:")), "only tool calls say tool ran")
	assert.NotContains(t, got, "tool ran: lease", "a lease is not a tool call")
	assert.NotContains(t, got, "tool ran: first task", "starting a task is not a tool call")
	lines := strings.Split(strings.TrimSpace(got), "\n")
	assert.Equal(t, "summary: 21 steps, 22 decisions (9 allowed, 10 denied, 3 asked for approval, 3 approved); of the tool steps 7 ran and 9 were stopped by the guard",
		lines[len(lines)-1], "the output ends with a one-line summary")
	assert.Equal(t, 2, bytes.Count(out.Bytes(), []byte("? alice, approve")), "the identical call is not asked again; the changed one is")
	assert.NotContains(t, got, "root:x:0:0", "nothing outside the workspace was read")
	assert.NotContains(t, got, "ghp_quickstartExampleToken", "the token never reaches the output")
}

// TestPolicyCases runs the policy's test cases (policy.cases.yaml).
func TestPolicyCases(t *testing.T) {
	authztest.RunPolicy(t, "policy.yaml", "policy.cases.yaml", "http.fetch", "http.post", "fs.read", "fs.write", "db.query", "mail.send", "secrets.lease")
}
