// Package efficacy holds the prompt-injection efficacy suite of taskguard:
// a scripted agent replays user tasks of four workspaces (email and
// calendar, banking, travel, team chat) through the policies a user of
// the library would write, once as asked and once for every injection
// planted in what the task reads, and the test measures how many attacks
// succeed, how many are stopped by deny and by ask, and how many benign
// tasks run without a prompt.
//
// The package has no API: the suite is efficacy_test.go and its data,
// testdata/suites (traces), testdata/policies (one policy per workspace)
// and testdata/wrappers.yaml (framings of injected text). Run it with
//
//	go test -run TestEfficacy -v ./authz/efficacy
//
// to see the table of results.
package efficacy
