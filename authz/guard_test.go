package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func begin(t testing.TB, g *Guard, spec TaskSpec) (context.Context, *Task) {
	t.Helper()
	if spec.Agent.ID == "" {
		spec.Agent.ID = "spiffe://test/agent"
	}
	ctx, task, err := g.Begin(context.Background(), spec)
	require.NoError(t, err)
	t.Cleanup(task.End)
	return ctx, task
}

func TestCheckInvariants(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	ctx, _ := begin(t, g, TaskSpec{
		Intents:   []string{"read"},
		Tools:     []string{"http.*"},
		Clearance: Internal,
	})
	ok := Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}
	require.Equal(t, Allow, g.Check(ctx, ok).Effect)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	endedCtx, ended := begin(t, g, TaskSpec{})
	ended.End()
	other, _ := mustGuard(t, allowAll)
	otherCtx, _ := begin(t, other, TaskSpec{})

	for name, tc := range map[string]struct {
		ctx  context.Context
		call func(Call) Call
		rule string
	}{
		"no task":       {context.Background(), nil, RuleNoTask},
		"cancelled":     {cancelled, nil, RuleContext},
		"ended":         {endedCtx, nil, RuleTaskEnded},
		"other guard":   {otherCtx, nil, RuleNoTask},
		"no tool":       {ctx, func(c Call) Call { c.Tool = ""; return c }, RuleCall},
		"no intent":     {ctx, func(c Call) Call { c.Intent = ""; return c }, RuleCall},
		"bad sens":      {ctx, func(c Call) Call { c.Sensitivity = -1; return c }, RuleCall},
		"intent":        {ctx, func(c Call) Call { c.Intent = "write"; return c }, RuleIntent},
		"tool":          {ctx, func(c Call) Call { c.Tool = "shell.exec"; return c }, RuleTool},
		"clearance":     {ctx, func(c Call) Call { c.Sensitivity = Confidential; return c }, RuleClearance},
		"destination":   {ctx, func(c Call) Call { c.Destination = "http://[::1"; return c }, RuleDestination},
		"relative path": {ctx, func(c Call) Call { c.Destination = "notes.txt"; return c }, RuleDestination},
		"userinfo":      {ctx, func(c Call) Call { c.Destination = "https://github.com@evil.example/"; return c }, RuleDestination},
	} {
		t.Run(name, func(t *testing.T) {
			c := ok
			if tc.call != nil {
				c = tc.call(c)
			}
			d := g.Check(tc.ctx, c)
			assert.Equal(t, Deny, d.Effect)
			assert.Equal(t, tc.rule, d.Rule)
			assert.NotEmpty(t, d.Reason)
			err := g.Authorize(tc.ctx, c)
			assert.ErrorIs(t, err, ErrDenied)
		})
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: allow-all, tools: ["*"], effect: allow, when: "true"}
  - {name: ask-writes, tools: ["fs.*"], effect: ask, when: 'intent == "write"'}
  - {name: deny-etc, tools: ["fs.*"], effect: deny, when: 'destination.path.within("/etc")', reason: no system files}
  - {name: allow-etc-too, tools: ["fs.write"], effect: allow, when: "true"}
`)
	ctx, _ := begin(t, g, TaskSpec{})
	for _, tc := range []struct {
		call   Call
		effect Effect
		rule   string
	}{
		{Call{Tool: "fs.read", Intent: "read", Destination: "/tmp/x"}, Allow, "allow-all"},
		{Call{Tool: "fs.write", Intent: "write", Destination: "/tmp/x"}, Ask, "ask-writes"},
		{Call{Tool: "fs.write", Intent: "write", Destination: "/etc/passwd"}, Deny, "deny-etc"},
		{Call{Tool: "fs.read", Intent: "read", Destination: "/etc/../etc/passwd"}, Deny, "deny-etc"},
	} {
		d := g.Check(ctx, tc.call)
		assert.Equal(t, tc.effect, d.Effect, "%+v", tc.call)
		assert.Equal(t, tc.rule, d.Rule, "%+v", tc.call)
	}
	d := g.Check(ctx, Call{Tool: "fs.read", Intent: "read", Destination: "/etc/hosts"})
	assert.Equal(t, "no system files", d.Reason)
	assert.Equal(t, "/etc/hosts", d.Destination)
}

func TestNoMatchDenies(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: only-x, tools: [x], effect: allow, when: 'intent == "read"'}
`)
	ctx, _ := begin(t, g, TaskSpec{})
	d := g.Check(ctx, Call{Tool: "x", Intent: "write"})
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, RuleNoMatch, d.Rule)
	d = g.Check(ctx, Call{Tool: "y", Intent: "read"})
	assert.Equal(t, RuleNoMatch, d.Rule)

	empty, err := New()
	require.NoError(t, err)
	ctx2, _ := begin(t, empty, TaskSpec{})
	assert.Equal(t, RuleNoMatch, empty.Check(ctx2, Call{Tool: "x", Intent: "read"}).Rule)
}

func TestRuntimeErrorDenies(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - {name: allow-all, tools: ["*"], effect: allow, when: "true"}
  - {name: needs-limit, tools: [db.query], effect: allow, when: 'args.limit <= 100'}
  - {name: deny-big, tools: [db.query], effect: deny, when: 'args.rows > 1000'}
  - {name: expensive, tools: [loop], effect: allow, when: 'args.items.all(x, x.matches("^(a|b)+$"))'}
`)
	ctx, _ := begin(t, g, TaskSpec{})
	// An allow rule that errors denies even though another rule allows.
	d := g.Check(ctx, Call{Tool: "db.query", Intent: "read", Args: map[string]any{"rows": 1}})
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, "needs-limit", d.Rule)
	require.Error(t, d.Err)
	assert.Contains(t, d.Reason, "limit")

	// A deny rule that errors denies too (it is not skipped).
	d = g.Check(ctx, Call{Tool: "db.query", Intent: "read", Args: map[string]any{"limit": 5}})
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, "deny-big", d.Rule)

	d = g.Check(ctx, Call{Tool: "db.query", Intent: "read", Args: map[string]any{"limit": 5, "rows": 10}})
	assert.Equal(t, Allow, d.Effect)

	// The runtime cost limit stops a runaway evaluation.
	items := make([]any, 10000)
	long := strings.Repeat("ab", 500)
	for i := range items {
		items[i] = long
	}
	d = g.Check(ctx, Call{Tool: "loop", Intent: "read", Args: map[string]any{"items": items}})
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, "expensive", d.Rule)
	assert.ErrorContains(t, d.Err, "cost")
}

func TestCELVariables(t *testing.T) {
	t.Parallel()
	g, clk := mustGuard(t, `
rules:
  - name: everything
    tools: ["t"]
    effect: allow
    when: >-
      agent.id == "spiffe://test/agent" && agent.attrs.team == "red" &&
      task.purpose == "p" && task.intents == ["read"] && task.tools == ["t", "u"] &&
      task.clearance == CONFIDENTIAL && task.labels.tenant == "acme" && task.depth == 0 &&
      task.age == duration("1m") && task.remaining == duration("9m") &&
      task.calls == {"u": 1} && task.taint.sensitivity == INTERNAL &&
      task.taint.untrusted && task.taint.sources == ["web"] && task.id != "" &&
      tool == "t" && intent == "read" && sensitivity == INTERNAL &&
      destination.kind == "url" && destination.scheme == "https" &&
      destination.host == "api.example.org" && destination.port == 8443 &&
      destination.path == "/a/c" && destination.ip == "" && !destination.private &&
      destination.canonical == "https://api.example.org:8443/a/c" &&
      args.n == 3 && args.s == "x" && now == timestamp("2026-01-02T03:05:05Z")
  - {name: u, tools: ["u"], effect: allow, when: "true"}
`)
	ctx, task := begin(t, g, TaskSpec{
		Agent: Agent{ID: "spiffe://test/agent", Attrs: map[string]string{"team": "red"}}, Purpose: "p",
		Intents: []string{"read"}, Tools: []string{"t", "u"}, Clearance: Confidential, TTL: 10 * time.Minute,
		Labels: map[string]string{"tenant": "acme"},
	})
	require.NoError(t, g.Authorize(ctx, Call{Tool: "u", Intent: "read"}))
	task.Observe("web", Internal, false)
	clk.Add(time.Minute)
	d := g.Check(ctx, Call{Tool: "t", Intent: "read", Sensitivity: Internal,
		Destination: "https://API.example.org.:8443/a/b/../c/", Args: map[string]any{"n": 3, "s": "x"}})
	assert.Equal(t, Allow, d.Effect, "%+v", d)
}

func TestCELFunctions(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `
rules:
  - name: hosts
    tools: [net]
    effect: allow
    when: destination.host.glob("*.github.com") && !destination.host.glob("*.evil.com")
  - name: paths
    tools: [fs]
    effect: allow
    when: destination.path.within("/workspace")
  - name: cidr
    tools: [ip]
    effect: allow
    when: destination.ip != "" && cidr("203.0.113.0/24").containsIP(ip(destination.ip))
  - name: ext
    tools: [ext]
    effect: allow
    when: >-
      args.name.lowerAscii().startsWith("rep") && sets.contains(["a", "b", "c"], args.tags) &&
      args.tags.slice(0, 1) == ["a"]
`)
	ctx, _ := begin(t, g, TaskSpec{Labels: map[string]string{"workdir": "/workspace"}})
	for _, tc := range []struct {
		call Call
		want Effect
	}{
		{Call{Tool: "net", Intent: "read", Destination: "https://api.github.com/"}, Allow},
		{Call{Tool: "net", Intent: "read", Destination: "https://a.b.github.com/"}, Allow},
		{Call{Tool: "net", Intent: "read", Destination: "https://github.com/"}, Deny},
		{Call{Tool: "net", Intent: "read", Destination: "https://evilgithub.com/"}, Deny},
		{Call{Tool: "net", Intent: "read", Destination: "https://github.com.evil.com/"}, Deny},
		{Call{Tool: "fs", Intent: "read", Destination: "/workspace"}, Allow},
		{Call{Tool: "fs", Intent: "read", Destination: "src/main.go"}, Allow},
		{Call{Tool: "fs", Intent: "read", Destination: "/workspace2/x"}, Deny},
		{Call{Tool: "fs", Intent: "read", Destination: "/workspace/../etc/passwd"}, Deny},
		{Call{Tool: "fs", Intent: "read", Destination: "../etc/passwd"}, Deny},
		{Call{Tool: "ip", Intent: "read", Destination: "https://203.0.113.7/"}, Allow},
		{Call{Tool: "ip", Intent: "read", Destination: "https://198.51.100.7/"}, Deny},
		{Call{Tool: "ext", Intent: "read", Args: map[string]any{"name": "REPORT", "tags": []any{"a", "b"}}}, Allow},
		{Call{Tool: "ext", Intent: "read", Args: map[string]any{"name": "REPORT", "tags": []any{"b", "a"}}}, Deny},
	} {
		assert.Equal(t, tc.want, g.Check(ctx, tc.call).Effect, "%+v", tc.call)
	}
}

func TestAuthorizeApprovals(t *testing.T) {
	t.Parallel()
	const policy = `
rules:
  - {name: review, tools: [fs.write], effect: ask, when: "true", reason: writes are reviewed}
  - {name: reads, tools: [fs.read], effect: allow, when: "true"}
`
	call := Call{Tool: "fs.write", Intent: "write", Destination: "/workspace/a", Args: map[string]any{"secret": "hunter2"}}

	t.Run("no approver", func(t *testing.T) {
		g, _ := mustGuard(t, policy)
		ctx, _ := begin(t, g, TaskSpec{})
		assert.Equal(t, Ask, g.Check(ctx, call).Effect)
		err := g.Authorize(ctx, call)
		var de *DeniedError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, RuleApproval, de.Decision.Rule)
		assert.Contains(t, de.Decision.Reason, "no approver")
	})
	for name, tc := range map[string]struct {
		fn   ApproverFunc
		want bool
	}{
		"approve": {func(context.Context, Call, Decision) (bool, error) { return true, nil }, true},
		"refuse":  {func(context.Context, Call, Decision) (bool, error) { return false, nil }, false},
		"error":   {func(context.Context, Call, Decision) (bool, error) { return true, errors.New("channel down") }, false},
		"panic":   {func(context.Context, Call, Decision) (bool, error) { panic("boom") }, false},
	} {
		t.Run(name, func(t *testing.T) {
			var got Decision
			g, _ := mustGuard(t, policy, WithApprover(ApproverFunc(func(ctx context.Context, c Call, d Decision) (bool, error) {
				got = d
				return tc.fn(ctx, c, d)
			})))
			ctx, task := begin(t, g, TaskSpec{})
			err := g.Authorize(ctx, call)
			assert.Equal(t, "review", got.Rule)
			assert.Equal(t, "writes are reviewed", got.Reason)
			if tc.want {
				assert.NoError(t, err)
				assert.Equal(t, 1, task.Calls()["fs.write"])
			} else {
				assert.ErrorIs(t, err, ErrDenied)
				assert.NotContains(t, err.Error(), "hunter2")
				assert.Zero(t, task.Calls()["fs.write"])
			}
		})
	}
}

func TestAuditRecords(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	g, _ := mustGuard(t, `
rules:
  - {name: reads, tools: [http.fetch], effect: allow, when: "true"}
`, WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	ctx, task := begin(t, g, TaskSpec{Agent: Agent{ID: "agent-1"}, Purpose: "audit"})
	require.NoError(t, g.Authorize(ctx, Call{Tool: "http.fetch", Intent: "read",
		Destination: "https://Example.org/x?token=s3cr3t", Args: map[string]any{"password": "hunter2"}}))
	_ = g.Check(ctx, Call{Tool: "http.post", Intent: "write", Destination: "https://example.org/"})

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	for k, want := range map[string]any{
		"task": task.ID(), "agent": "agent-1", "tool": "http.fetch", "intent": "read",
		"destination": "https://example.org/x", "sensitivity": "public", "effect": "allow",
		"rule": "reads", "level": "INFO", "policy": g.Policy().Version(),
	} {
		assert.Equal(t, want, rec[k], k)
	}
	assert.Contains(t, rec, "latency")
	assert.NotContains(t, buf.String(), "hunter2", "arguments are never logged")
	assert.NotContains(t, buf.String(), "s3cr3t", "query strings are not part of the canonical destination")
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rec))
	assert.Equal(t, "deny", rec["effect"])
	assert.Equal(t, RuleNoMatch, rec["rule"])
	assert.Equal(t, "WARN", rec["level"])
}

// A built-in check that denies before the destination stage still logs the
// canonical destination; destination_rejected marks only destinations that
// do not parse.
func TestAuditDestinationOfEarlyDenials(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	g, _ := mustGuard(t, allowAll, WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	ctx, _ := begin(t, g, TaskSpec{Intents: []string{"read"}, Labels: map[string]string{"workdir": "/workspace"}})
	for _, tc := range []struct {
		call     Call
		rule     string
		dest     string
		rejected bool
	}{
		{Call{Tool: "http.fetch", Intent: "export", Destination: "https://Example.org/x?q=1"}, RuleIntent, "https://example.org/x", false},
		{Call{Tool: "fs.read", Intent: "export", Destination: "notes/../plan.md"}, RuleIntent, "/workspace/plan.md", false},
		{Call{Tool: "http.fetch", Intent: "read", Destination: "https://user@example.org/"}, RuleDestination, "", true},
		{Call{Tool: "http.fetch", Intent: "export", Destination: "https://user@example.org/"}, RuleIntent, "", true},
		{Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}, "all", "https://example.org/", false},
		{Call{Tool: "http.fetch", Intent: "export"}, RuleIntent, "", false},
		{Call{Tool: "mail.send", Intent: "read", Destination: "a@example.org", Destinations: []string{"https://user@example.org/"}},
			RuleDestination, "a@example.org", true},
	} {
		buf.Reset()
		d := g.Check(ctx, tc.call)
		require.Equal(t, tc.rule, d.Rule, tc.call.Destination)
		var rec map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
		assert.Equal(t, tc.dest, rec["destination"], tc.call.Destination)
		if tc.rejected {
			assert.Equal(t, true, rec["destination_rejected"], tc.call.Destination)
		} else {
			assert.NotContains(t, rec, "destination_rejected", tc.call.Destination)
		}
	}
}

// A guard built without a policy denies everything, says why, and warns in
// the audit log when it is built.
func TestNewWithoutPolicyWarns(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	g, err := New(WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	require.NoError(t, err)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	assert.Equal(t, "WARN", rec["level"])
	assert.Equal(t, "taskguard guard has no policy", rec["msg"])
	assert.Contains(t, rec["reason"], "pass authz.WithPolicy")

	ctx, _ := begin(t, g, TaskSpec{})
	d := g.Check(ctx, Call{Tool: "http.fetch", Intent: "read"})
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, RuleNoMatch, d.Rule)
	assert.Contains(t, d.Reason, "the guard has no policy rules")

	require.NoError(t, g.Update(mustPolicy(t, "rules: [{name: a, tools: [x], effect: allow, when: 'true'}]")))
	d = g.Check(ctx, Call{Tool: "http.fetch", Intent: "read"})
	assert.Equal(t, "no rule allows this call", d.Reason, "a policy with rules: the ordinary reason")

	buf.Reset()
	_, err = New(WithPolicy(mustPolicy(t, allowAll)), WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	require.NoError(t, err)
	assert.Empty(t, buf.String(), "no warning with a policy")
}

func TestCheckRecoversPanics(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	ctx, _ := begin(t, g, TaskSpec{})
	// A nil task in the context is treated as no task.
	nilCtx := context.WithValue(context.Background(), taskKey{}, (*Task)(nil))
	assert.Equal(t, RuleNoTask, g.Check(nilCtx, Call{Tool: "x", Intent: "read"}).Rule)
	// Args that cannot be converted to CEL values fail the rule that reads them.
	g2, _ := mustGuard(t, `rules: [{name: a, tools: [x], effect: allow, when: 'args.f == 1'}]`)
	ctx2, _ := begin(t, g2, TaskSpec{})
	d := g2.Check(ctx2, Call{Tool: "x", Intent: "read", Args: map[string]any{"f": func() {}}})
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "x", Intent: "read"}).Effect)
}

func TestRuntimeCostTrackingOnlyWhereNeeded(t *testing.T) {
	t.Parallel()
	for expr, tracked := range map[string]bool{
		`intent == "read" && destination.host.glob("*.example.org")`: false,
		`task.labels.exists(k, k.startsWith("x"))`:                   false,
		`args.limit <= 100`:                      false,
		`args.items.all(x, x.startsWith("a"))`:   true,
		`task.calls.exists(k, k == "db.delete")`: true,
	} {
		p, issues := compileWhen(expr, nil)
		require.Empty(t, issues, expr)
		assert.Equal(t, tracked, p.tracked, expr)
	}
}

func TestInputBounds(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	ctx, task := begin(t, g, TaskSpec{})
	long := strings.Repeat("a", MaxInputSize+1)
	assert.Equal(t, RuleCall, g.Check(ctx, Call{Tool: long, Intent: "read"}).Rule)
	assert.Equal(t, RuleCall, g.Check(ctx, Call{Tool: "x", Intent: long}).Rule)
	d := g.Check(ctx, Call{Tool: "x", Intent: "read", Destination: "https://example.org/" + strings.Repeat("p", MaxDestinationSize)})
	assert.Equal(t, RuleDestination, d.Rule)
	assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "x", Intent: "read", Destination: "https://example.org/" + strings.Repeat("p", 4000)}).Effect)

	many := map[string]string{}
	for i := range MaxInputSize + 1 {
		many[fmt.Sprint(i)] = "v"
	}
	for name, spec := range map[string]TaskSpec{
		"agent id": {Agent: Agent{ID: long}},
		"purpose":  {Agent: Agent{ID: "a"}, Purpose: long},
		"label":    {Agent: Agent{ID: "a"}, Labels: map[string]string{"k": long}},
		"labels":   {Agent: Agent{ID: "a"}, Labels: many},
		"attrs":    {Agent: Agent{ID: "a", Attrs: many}},
		"intents":  {Agent: Agent{ID: "a"}, Intents: []string{long}},
	} {
		_, _, err := g.Begin(context.Background(), spec)
		assert.Error(t, err, name)
	}

	task.Observe(long+long, Public, true)
	assert.Len(t, task.Taint().Sources[0], MaxInputSize, "long sources are truncated")
}
