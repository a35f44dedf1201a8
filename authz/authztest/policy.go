package authztest

import (
	"testing"

	"github.com/taskguard/taskguard/authz"
)

// RunPolicy tests a policy with its case files in one line:
//
//	func TestPolicyCases(t *testing.T) {
//		authztest.RunPolicy(t, "policy.yaml", "policy.cases.yaml", "http.fetch", "fs.read")
//	}
//
// It loads the policy files matching policy with [authz.LoadPolicyFiles],
// builds a Guard with that policy and no other option, runs the case files
// matching cases with [Run], and fails t on every warning of
// [authz.Policy.Lint] given tools, the names of the tools the application
// registers (with none, only the policy-wide findings count). A policy that
// does not load fails t at once. RunPolicy returns the guard for further
// checks; build the guard yourself and call [RunWith] when it needs other
// options (a clock, an approver).
func RunPolicy(t *testing.T, policy, cases string, tools ...string) *authz.Guard {
	t.Helper()
	p, err := authz.LoadPolicyFiles(policy)
	if err != nil {
		t.Fatalf("authztest: load policy: %v", err)
	}
	g, err := authz.New(authz.WithPolicy(p))
	if err != nil {
		t.Fatalf("authztest: build guard: %v", err)
	}
	Run(t, g, cases)
	for _, w := range p.Lint(tools...) {
		t.Errorf("authztest: policy lint: %v", w)
	}
	return g
}
