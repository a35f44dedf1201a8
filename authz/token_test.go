package authz

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const tokenPolicy = `rules:
  - {name: reads, tools: ["http.*"], effect: allow, when: 'intent == "read" && agent.id.startsWith("spiffe://example.org/")'}
  - {name: planner-writes, tools: ["docs.*"], effect: allow, when: 'agent.id == "spiffe://example.org/planner" && task.labels.tenant == "acme"'}
`

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub, priv
}

// tokenGuards returns the agent side's guard (signing with k1) and the tool
// service's guard (named "tools", trusting k1), sharing one fake clock.
func tokenGuards(t *testing.T) (agent, tools *Guard, clk *fakeClock, priv ed25519.PrivateKey) {
	t.Helper()
	pub, priv := newKey(t)
	agent, clk = mustGuard(t, tokenPolicy, WithName("agent"), WithSigningKey("k1", priv))
	tools, _ = mustGuard(t, tokenPolicy, WithName("tools"), WithTrustedKey("k1", pub), WithClock(clk.Now))
	return agent, tools, clk, priv
}

func TestTaskTokenRoundTrip(t *testing.T) {
	t.Parallel()
	agent, tools, _, _ := tokenGuards(t)
	ctx, task, err := agent.Begin(context.Background(), TaskSpec{
		Agent: Agent{ID: "spiffe://example.org/planner", Attrs: map[string]string{"team": "research"}}, Purpose: "review",
		Intents: []string{"read", "write"}, Tools: []string{"http.*", "docs.*"}, Clearance: Internal, TTL: time.Hour,
		Labels: map[string]string{"tenant": "acme"}, MaxCalls: map[string]int{"http.*": 2},
	})
	require.NoError(t, err)
	defer task.End()
	require.NoError(t, agent.Authorize(ctx, Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}))

	tok, err := task.Token("tools")
	require.NoError(t, err)
	rctx, remote, err := tools.Resume(context.Background(), tok)
	require.NoError(t, err)
	defer remote.End()
	assert.Equal(t, task.ID(), remote.ID())
	assert.Equal(t, task.Agent(), remote.Agent())
	assert.Equal(t, task.Intents(), remote.Intents())
	assert.Equal(t, task.Tools(), remote.Tools())
	assert.Equal(t, task.Clearance(), remote.Clearance())
	assert.Equal(t, task.Labels(), remote.Labels())
	assert.Equal(t, task.Purpose(), remote.Purpose())
	assert.WithinDuration(t, task.Deadline(), remote.Deadline(), time.Millisecond)

	for _, c := range []Call{
		{Tool: "docs.write", Intent: "write", Destination: "db://docs"},
		{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"},
		{Tool: "db.drop", Intent: "delete", Destination: "db://x"},
		{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/", Sensitivity: Confidential},
	} {
		assert.Equal(t, agent.Check(ctx, c).Effect, tools.Check(rctx, c).Effect, "the remote guard decides as the local one: %+v", c)
	}
	// The remaining budget came along: one of two calls is left.
	require.NoError(t, tools.Authorize(rctx, Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}))
	require.ErrorIs(t, tools.Authorize(rctx, Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}), ErrDenied)

	// A resumed task can only be narrowed.
	_, _, err = tools.Begin(rctx, TaskSpec{Agent: Agent{ID: "x"}, Intents: []string{"delete"}})
	require.Error(t, err)
	_, sub, err := tools.Begin(rctx, TaskSpec{Agent: Agent{ID: "spiffe://example.org/worker"}, Intents: []string{"read"}})
	require.NoError(t, err)
	assert.Equal(t, remote.ID(), sub.ParentID())
}

// A sub-task's token carries its ancestors' views, so the remote guard
// decides for the whole chain.
func TestTaskTokenCarriesAncestors(t *testing.T) {
	t.Parallel()
	agent, tools, _, _ := tokenGuards(t)
	ctx, root, err := agent.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "spiffe://other.org/guest"}})
	require.NoError(t, err)
	defer root.End()
	cctx, child, err := agent.Begin(ctx, TaskSpec{Agent: Agent{ID: "spiffe://example.org/worker"}})
	require.NoError(t, err)
	call := Call{Tool: "http.fetch", Intent: "read", Destination: "https://example.org/"}
	require.Equal(t, Deny, agent.Check(cctx, call).Effect, "the guest root may not read")

	tok, err := child.Token("tools")
	require.NoError(t, err)
	rctx, remote, err := tools.Resume(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, root.ID(), remote.ParentID())
	d := tools.Check(rctx, call)
	assert.Equal(t, Deny, d.Effect)
	assert.Contains(t, d.Reason, root.ID())
	view := remote.parent
	remote.End()
	assert.True(t, view.Ended(), "the ancestors' views end with the resumed task")
	assert.False(t, root.Ended(), "ending a resumed copy does not end the original")
}

func TestResumeRefuses(t *testing.T) {
	t.Parallel()
	agent, tools, clk, priv := tokenGuards(t)
	ctx, task, err := agent.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "spiffe://example.org/a"}, TTL: time.Hour})
	require.NoError(t, err)
	_ = ctx
	good, err := task.Token("tools")
	require.NoError(t, err)

	otherPub, otherPriv := newKey(t)
	_ = otherPub
	sign := func(method jwt.SigningMethod, key any, kid string, mutate func(*taskClaims)) string {
		var c taskClaims
		_, _, err := jwt.NewParser().ParseUnverified(good, &c)
		require.NoError(t, err)
		if mutate != nil {
			mutate(&c)
		}
		tok := jwt.NewWithClaims(method, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		require.NoError(t, err)
		return s
	}
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forgedPayload := strings.Replace(string(payload), `"clearance":"public"`, `"clearance":"restricted"`, 1)
	require.NotEqual(t, string(payload), forgedPayload)
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forgedPayload)) + "." + parts[2]
	pubBytes := []byte(priv.Public().(ed25519.PublicKey))
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"aud": "tools"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)

	cases := map[string]string{
		"forged claims":          forged,
		"wrong audience":         sign(jwt.SigningMethodEdDSA, priv, "k1", func(c *taskClaims) { c.Audience = jwt.ClaimStrings{"other"} }),
		"untrusted key":          sign(jwt.SigningMethodEdDSA, otherPriv, "k1", nil),
		"unknown key ID":         sign(jwt.SigningMethodEdDSA, otherPriv, "k9", nil),
		"alg confusion (HS256)":  sign(jwt.SigningMethodHS256, pubBytes, "k1", nil),
		"alg none":               none,
		"expired":                sign(jwt.SigningMethodEdDSA, priv, "k1", func(c *taskClaims) { c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(-time.Second)) }),
		"no expiry":              sign(jwt.SigningMethodEdDSA, priv, "k1", func(c *taskClaims) { c.ExpiresAt = nil }),
		"not yet valid":          sign(jwt.SigningMethodEdDSA, priv, "k1", func(c *taskClaims) { c.NotBefore = jwt.NewNumericDate(clk.Now().Add(time.Hour)) }),
		"subject mismatch":       sign(jwt.SigningMethodEdDSA, priv, "k1", func(c *taskClaims) { c.Subject = "spiffe://example.org/admin" }),
		"past the task deadline": sign(jwt.SigningMethodEdDSA, priv, "k1", func(c *taskClaims) { c.Task.Deadline = clk.Now().Add(-time.Minute).UnixNano() }),
		"widening ancestor chain": sign(jwt.SigningMethodEdDSA, priv, "k1", func(c *taskClaims) {
			c.Task.Ancestors = []taskScope{{ID: "task_parent", Agent: "p", Clearance: Public, Intents: []string{"search"}, Deadline: c.Task.Deadline}}
			c.Task.Clearance, c.Task.Intents = Restricted, []string{"delete"}
		}),
		"garbage": "not.a.token",
	}
	for name, tok := range cases {
		_, _, err := tools.Resume(context.Background(), tok)
		require.Error(t, err, name)
		assert.ErrorIs(t, err, ErrToken, name)
		assert.NotContains(t, err.Error(), tok, name)
	}

	// Ending a resumed copy does not end the task: its tokens still work.
	_, remote, err := tools.Resume(context.Background(), good)
	require.NoError(t, err)
	remote.End()
	_, remote, err = tools.Resume(context.Background(), good)
	require.NoError(t, err, "the task is still live")
	remote.End()
	// Replay after the task itself ended.
	task.End()
	_, _, err = tools.Resume(context.Background(), good)
	require.ErrorIs(t, err, ErrToken)
	assert.Contains(t, err.Error(), "ended")
	_, err = task.Token("tools")
	require.ErrorIs(t, err, ErrToken, "an ended task issues no token")
}

func TestTaskTokenKeyRotation(t *testing.T) {
	t.Parallel()
	oldPub, oldPriv := newKey(t)
	newPub, newPriv := newKey(t)
	a1, clk := mustGuard(t, tokenPolicy, WithName("agent"), WithSigningKey("2026-01", oldPriv))
	a2, _ := mustGuard(t, tokenPolicy, WithName("agent"), WithSigningKey("2026-02", newPriv), WithClock(clk.Now))
	both, _ := mustGuard(t, tokenPolicy, WithName("tools"), WithTrustedKey("2026-01", oldPub), WithTrustedKey("2026-02", newPub), WithClock(clk.Now))
	onlyNew, _ := mustGuard(t, tokenPolicy, WithName("tools"), WithTrustedKey("2026-02", newPub), WithClock(clk.Now))
	token := func(g *Guard) string {
		_, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "spiffe://example.org/a"}})
		require.NoError(t, err)
		t.Cleanup(task.End)
		tok, err := task.Token("tools")
		require.NoError(t, err)
		return tok
	}
	oldTok, newTok := token(a1), token(a2)
	for _, tok := range []string{oldTok, newTok} {
		_, rt, err := both.Resume(context.Background(), tok)
		require.NoError(t, err)
		rt.End()
	}
	_, _, err := onlyNew.Resume(context.Background(), oldTok)
	require.ErrorIs(t, err, ErrToken, "a retired key's tokens are refused")
	_, rt, err := onlyNew.Resume(context.Background(), newTok)
	require.NoError(t, err)
	rt.End()

	_, err = New(WithTrustedKey("k", oldPub), WithTrustedKey("k", newPub))
	require.Error(t, err, "a key ID given twice")
}

func TestTaskTokenNeedsConfiguration(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, tokenPolicy)
	_, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	_, err = task.Token("tools")
	require.ErrorIs(t, err, ErrToken)
	_, _, err = g.Resume(context.Background(), "x.y.z")
	require.ErrorIs(t, err, ErrToken)
}

func BenchmarkTaskToken(b *testing.B) {
	pub, priv := newKey(b)
	agent, err := New(WithPolicy(mustPolicy(b, tokenPolicy)), WithName("agent"), WithSigningKey("k1", priv))
	require.NoError(b, err)
	tools, err := New(WithPolicy(mustPolicy(b, tokenPolicy)), WithName("tools"), WithTrustedKey("k1", pub))
	require.NoError(b, err)
	_, task, err := agent.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "spiffe://example.org/a"},
		Intents: []string{"read"}, Tools: []string{"http.*"}, Labels: map[string]string{"tenant": "acme"}})
	require.NoError(b, err)
	b.Cleanup(task.End)
	b.Run("mint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := task.Token("tools"); err != nil {
				b.Fatal(err)
			}
		}
	})
	tok, err := task.Token("tools")
	require.NoError(b, err)
	b.Run("resume", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, rt, err := tools.Resume(context.Background(), tok)
			if err != nil {
				b.Fatal(err)
			}
			rt.End()
		}
	})
}

// What a resumed task observes on the tool service flows back to the
// caller's task through a signed report.
func TestTaskReportFlowsBack(t *testing.T) {
	t.Parallel()
	agentPub, agentPriv := newKey(t)
	toolsPub, toolsPriv := newKey(t)
	agent, clk := mustGuard(t, tokenPolicy, WithName("agent"), WithSigningKey("a1", agentPriv), WithTrustedKey("t1", toolsPub))
	tools, _ := mustGuard(t, tokenPolicy, WithName("tools"), WithSigningKey("t1", toolsPriv), WithTrustedKey("a1", agentPub), WithClock(clk.Now))
	ctx, task, err := agent.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "spiffe://example.org/a"}, Clearance: Confidential})
	require.NoError(t, err)
	defer task.End()
	tok, err := task.Token("tools")
	require.NoError(t, err)
	_, remote, err := tools.Resume(context.Background(), tok)
	require.NoError(t, err)
	defer remote.End()
	remote.Observe("docs.read db://handbook", Confidential, false)
	rep, err := remote.Report()
	require.NoError(t, err)

	require.NoError(t, agent.ApplyReport(ctx, rep))
	require.NoError(t, agent.ApplyReport(ctx, rep), "applying twice changes nothing")
	assert.Equal(t, Taint{Sensitivity: Confidential, Untrusted: true, Sources: []string{"tools: docs.read db://handbook"}}, task.Taint())

	// Refused: to another guard, about another task, forged, expired, from
	// an untrusted key, for a task that was not resumed.
	other, _ := mustGuard(t, tokenPolicy, WithName("other"), WithTrustedKey("t1", toolsPub), WithClock(clk.Now))
	octx, otask, err := other.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "x"}})
	require.NoError(t, err)
	defer otask.End()
	require.ErrorIs(t, other.ApplyReport(octx, rep), ErrToken, "another audience")
	ctx2, task2, err := agent.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "spiffe://example.org/b"}})
	require.NoError(t, err)
	defer task2.End()
	require.ErrorIs(t, agent.ApplyReport(ctx2, rep), ErrToken, "another task")
	parts := strings.Split(rep, ".")
	require.ErrorIs(t, agent.ApplyReport(ctx, parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString([]byte("sig"))), ErrToken, "forged")
	_, err = task.Report()
	require.ErrorIs(t, err, ErrToken, "a task that was not resumed reports to nobody")
	clk.Add(DefaultTokenTTL + time.Second)
	require.ErrorIs(t, agent.ApplyReport(ctx, rep), ErrToken, "expired")
}

// The caller's taint travels with the token, so taint rules hold remotely.
func TestTaskTokenCarriesTaint(t *testing.T) {
	t.Parallel()
	agent, tools, _, _ := tokenGuards(t)
	_, task, err := agent.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "spiffe://example.org/a"}, Clearance: Confidential})
	require.NoError(t, err)
	defer task.End()
	task.Observe("db://salaries", Confidential, false)
	tok, err := task.Token("tools")
	require.NoError(t, err)
	_, remote, err := tools.Resume(context.Background(), tok)
	require.NoError(t, err)
	defer remote.End()
	assert.Equal(t, task.Taint(), remote.Taint())
	remote.Observe("web.fetch https://example.org/", Public, false)
	_, toolsKey := newKey(t)
	tools.signKeyID, tools.signKey = "t1", toolsKey // the tool service signs its reports
	rep, err := remote.Report()
	require.NoError(t, err)
	var c reportClaims
	_, _, err = jwt.NewParser().ParseUnverified(rep, &c)
	require.NoError(t, err)
	assert.Equal(t, []string{"web.fetch https://example.org/"}, c.Taint.Sources, "a report sends back only what is new")
}
