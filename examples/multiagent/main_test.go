package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz/authztest"
)

func TestMultiAgent(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	got := out.String()
	for _, want := range []string{
		"allow crm.read db://crm/acme: planner-reads-crm",
		`widening sub-task refused: authz: begin: sub-task intent "delete" is not an intent of the parent task`,
		"worker (depth 1, clearance internal) received 2 of 3 entries",
		"allow web.search https://api.search.example/v1: workers-research-the-web",
		"deny  web.search https://collector.example.net/: @inspect:secrets",
		"deny  crm.read : @tool",
		"deny  docs.write : @intent",
		"lease: secrets: lease revoked",
		"worker memory: contextguard: task ended",
		"planner taint: sensitivity confidential, untrusted true",
	} {
		assert.Contains(t, got, want)
	}
	assert.NotContains(t, got, "sk_search_9f8e7d6c5b4a", "the key never reaches the output")
}

// TestPolicyCases runs the policy's test cases (policy.cases.yaml).
func TestPolicyCases(t *testing.T) {
	authztest.RunPolicy(t, "policy.yaml", "policy.cases.yaml")
}
