// Package authztest helps application test suites test their taskguard
// policies with go test, the way net/http/httptest helps test handlers.
//
//	func TestPolicy(t *testing.T) {
//		p, err := authz.LoadPolicyFiles("policies/*.yaml")
//		require.NoError(t, err)
//		g, err := authz.New(authz.WithPolicy(p))
//		require.NoError(t, err)
//		authztest.Run(t, g, "policies/*.cases.yaml")
//	}
//
// [RunPolicy] does the same in one line and also fails the test on lint
// warnings for the tools the application registers:
//
//	func TestPolicy(t *testing.T) {
//		authztest.RunPolicy(t, "policies/*.yaml", "policies/*.cases.yaml", "http.fetch", "fs.read")
//	}
//
// # Case files
//
// A case file is YAML next to the policies:
//
//	task:                      # the default task of the file's cases
//	  agent: spiffe://corp/agent/researcher
//	  intents: [read, write]
//	  clearance: internal
//	  labels: {workdir: /workspace}
//	cases:
//	  - name: metadata SSRF is denied
//	    call: {tool: http.fetch, intent: read, destination: "http://169.254.169.254/"}
//	    want: {effect: deny, rule: no-private-network}
//	  - name: export after confidential data
//	    observe: [{source: db://salaries, sensitivity: confidential, trusted: true}]
//	    call: {tool: mail.send, intent: export, destination: "mailto:x@example.org"}
//	    want: {effect: deny, rule: no-export-after-confidential}
//
// Name case files *.cases.yaml: [authz.LoadPolicyFiles] skips them in a
// glob such as "policies/*.yaml", so policies and their cases share a
// directory.
//
// A case may override task (including parent, for a sub-task, and
// max_calls), list observe (taint) and prior (calls authorized first), and
// advance the clock (age). [Run] runs each case as a subtest and, on
// failure, reports it at the case's file:line with the guard's
// [authz.Explanation] of the call. Errors in a case file (an unknown key,
// effect or sensitivity, a case without a name or tool) name the file and
// line too.
//
// # Helpers
//
// [Clock] is a settable clock for [authz.WithClock]; [Approver] answers
// approvals from a script and records what it was asked; [AuditRecorder]
// captures audit records as values; [AssertAllowed], [AssertDenied] and
// [AssertAsks] check one decision and print the explanation when it is not
// the expected one.
//
// # Stores
//
// [StoreConformance] checks an [authz.Store] implementation against the
// semantics guards rely on when they share task state: rate limits,
// budgets and task.calls exact across replicas under concurrent load,
// approvals used once or for the task, ends and taint seen everywhere, and
// fail-closed behaviour during an outage. authz runs it on
// [authz.MemoryStore]; authz/redisstore runs it on Redis:
//
//	func TestConformance(t *testing.T) {
//		authztest.StoreConformance(t, func(t *testing.T) authztest.StoreBackend {
//			prefix := newPrefix(t) // a fresh, empty namespace per subtest
//			return authztest.StoreBackend{
//				Replica: func(t *testing.T) authz.Store { return openStore(t, prefix) },
//			}
//		})
//	}
package authztest
