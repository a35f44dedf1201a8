package authztest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

func newGuard(t *testing.T, opts ...authz.Option) *authz.Guard {
	t.Helper()
	p, err := authz.LoadPolicyFiles("testdata/policy.yaml")
	require.NoError(t, err)
	g, err := authz.New(append([]authz.Option{authz.WithPolicy(p)}, opts...)...)
	require.NoError(t, err)
	return g
}

func TestRun(t *testing.T) {
	clock := authztest.NewClock(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	g := newGuard(t, authz.WithClock(clock.Now))
	authztest.RunWith(t, g, []authztest.RunOption{authztest.WithCaseClock(clock)}, "testdata/*.cases.yaml")
}

func TestLoadCasesRejects(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"unknown key": "cases:\n- {name: a, call: {tool: x}, wnat: {effect: allow}}\n",
		"no name":     "cases:\n- {call: {tool: x}}\n",
		"no tool":     "cases:\n- {name: a, call: {intent: read}}\n",
		"bad effect":  "cases:\n- {name: a, call: {tool: x}, want: {effect: permit}}\n",
	} {
		path := dir + "/" + strings.ReplaceAll(name, " ", "_") + ".yaml"
		require.NoError(t, writeFile(path, src))
		_, err := authztest.LoadCases(path)
		assert.Error(t, err, name)
	}
}

// recordingTB captures assertion failures.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestAssertions(t *testing.T) {
	g := newGuard(t)
	ctx, _ := authztest.Begin(t, g, nil, authz.TaskSpec{Intents: []string{"read", "delete"}})
	web := authz.Call{Tool: "http.get", Intent: "read", Destination: "https://example.org/"}
	ssrf := authz.Call{Tool: "http.get", Intent: "read", Destination: "http://127.1/"}
	del := authz.Call{Tool: "db.delete", Intent: "delete"}

	authztest.AssertAllowed(t, g, ctx, web)
	authztest.AssertDenied(t, g, ctx, ssrf, "no-private")
	authztest.AssertAsks(t, g, ctx, del, "deletes-reviewed")

	rec := &recordingTB{TB: t}
	authztest.AssertAllowed(rec, g, ctx, ssrf)
	authztest.AssertDenied(rec, g, ctx, ssrf, "some-other-rule")
	require.Len(t, rec.errors, 2)
	assert.Contains(t, rec.errors[0], "want allow, got deny by no-private")
	assert.Contains(t, rec.errors[0], "rule no-private (deny) matched", "the failure shows the explanation")
	assert.Contains(t, rec.errors[1], "want deny by some-other-rule")
}

func TestApproverAndAuditRecorder(t *testing.T) {
	ap := authztest.NewApprover(authz.Grant{Approved: true, By: "alice"})
	audit := authztest.NewAuditRecorder()
	g := newGuard(t, authz.WithApprover(ap), authz.WithLogger(audit.Logger()))
	ctx, _ := authztest.Begin(t, g, context.Background(), authz.TaskSpec{Intents: []string{"delete"}})
	del := authz.Call{Tool: "db.delete", Intent: "delete", Args: map[string]any{"id": 1}}
	require.NoError(t, g.Authorize(ctx, del))
	assert.ErrorIs(t, g.Authorize(ctx, del), authz.ErrDenied, "the script is exhausted: refused")

	reqs := ap.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "deletes-reviewed", reqs[0].Decision.Rule)
	assert.Equal(t, del, reqs[0].Call)

	recs := audit.Records()
	require.Len(t, recs, 4)
	assert.Equal(t, "taskguard decision", recs[0].Message)
	assert.Equal(t, "ask", recs[0].Effect())
	assert.Equal(t, "db.delete", recs[0].Tool())
	assert.Equal(t, "taskguard approval", recs[1].Message)
	assert.Equal(t, "allow", recs[1].Effect())
	assert.Equal(t, "alice", recs[1].Attrs["approved_by"])
	assert.Equal(t, "deny", recs[3].Effect())
	assert.Equal(t, "deletes-reviewed", recs[3].Rule(), "the approval record names the rule that asked")
	assert.Contains(t, recs[3].Attrs["reason"], "refused")
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := authztest.NewClock(start)
	c.Advance(time.Minute)
	assert.Equal(t, start.Add(time.Minute), c.Now())
	c.Set(start)
	assert.Equal(t, start, c.Now())
}
