package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/identity"
)

// The tests start the tool server in this process on a loopback port, except
// TestTokenSentBeforeEndAcrossProcesses, which runs it as a child process:
// this test binary run with remoteMCPMainEnv set, which TestMain hands to
// realMain.
const remoteMCPMainEnv = "REMOTE_MCP_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(remoteMCPMainEnv) == "1" {
		os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// env is one agent runtime and its keys, with a tool server in this process.
type env struct {
	policy    *authz.Policy
	td        *trustDomain
	agentPub  ed25519.PublicKey
	agentKey  ed25519.PrivateKey
	serverPub ed25519.PublicKey
	serverKey ed25519.PrivateKey
	srv       *toolServer
	endpoint  string
	agent     *authz.Guard
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{}
	var err error
	e.policy, err = loadPolicy()
	require.NoError(t, err)
	e.td, err = newTrustDomain("example.org")
	require.NoError(t, err)
	e.agentPub, e.agentKey, err = ed25519.GenerateKey(nil)
	require.NoError(t, err)
	e.serverPub, e.serverKey, err = ed25519.GenerateKey(nil)
	require.NoError(t, err)

	e.srv, e.endpoint = startServer(t, e.policy, serverConfig{AgentKeyID: "agent-1", AgentKey: e.agentPub,
		ReportKeyID: "tools-1", ReportKey: e.serverKey})
	e.agent = e.agentGuard(t, e.serverPub)
	return e
}

// startServer serves a tool server with cfg on a loopback port until the
// test ends.
func startServer(t *testing.T, policy *authz.Policy, cfg serverConfig) (*toolServer, string) {
	t.Helper()
	srv, err := newToolServer(policy, cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	endpoint, stop := serve(ln, srv)
	t.Cleanup(func() { assert.NoError(t, stop()) })
	return srv, endpoint
}

// agentGuard returns an agent runtime guard with e's keys, trusting
// reports signed by serverPub under "tools-1".
func (e *env) agentGuard(t *testing.T, serverPub ed25519.PublicKey, opts ...authz.Option) *authz.Guard {
	t.Helper()
	v, err := identity.NewSPIFFE(e.td.bundle, svidAudience)
	require.NoError(t, err)
	g, err := newAgentGuard(e.policy, agentConfig{KeyID: "agent-1", Key: e.agentKey, ServerKeyID: "tools-1",
		ServerKey: serverPub, IdentityAuth: v, Options: opts})
	require.NoError(t, err)
	return g
}

// begin begins the researcher's task on g from a fresh SVID.
func (e *env) begin(t *testing.T, g *authz.Guard) (context.Context, *authz.Task) {
	t.Helper()
	svid, err := e.td.mintSVID(researcherID, svidAudience, 5*time.Minute)
	require.NoError(t, err)
	ctx, task, err := g.Begin(t.Context(), researchTask(svid))
	require.NoError(t, err)
	t.Cleanup(task.End)
	return ctx, task
}

// connect connects the agent runtime's MCP client (task tokens, reports)
// to endpoint.
func connect(t *testing.T, ctx context.Context, g *authz.Guard, endpoint string) *mcp.ClientSession {
	t.Helper()
	cs, err := connectTools(ctx, g, endpoint)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() }) // the stateless server may refuse the closing DELETE
	return cs
}

// fixedHeader sends the given Taskguard-Task header values, whatever the
// request's context carries: a client that forges or replays tokens.
type fixedHeader []string

func (h fixedHeader) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	for _, v := range h {
		r.Header.Add(TaskHeader, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// rawSession connects a plain MCP client that sends tokens as given and
// applies no reports.
func rawSession(t *testing.T, endpoint string, tokens ...string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "raw", Version: "v1.0.0"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: fixedHeader(tokens)}, DisableStandaloneSSE: true, MaxRetries: -1}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func callTool(ctx context.Context, cs *mcp.ClientSession, tool string, args map[string]any) (*mcp.CallToolResult, error) {
	return cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
}

func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out))
	got := out.String()
	for _, want := range []string{
		"agent spiffe://example.org/agent/researcher (SVID verified, trust domain example.org) began task task_",
		"ran on the server: 200 OK from https://example.com/",
		"DENIED by the server: authz: web_fetch denied by no-private-network",
		"ran on the agent: sent to partner@example.net",
		"ran on the server: Q3 roadmap",
		"task taint on the agent: confidential, untrusted true",
		"DENIED by the agent: this task has read confidential data",
		"REFUSED: ",
		"has ended",
	} {
		assert.Contains(t, got, want)
	}
	// Neither the SVID nor task tokens nor reports (JWTs) are printed.
	assert.NotContains(t, got, "eyJ")
}

func TestAllowedReadThroughServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, task := e.begin(t, e.agent)
	cs := connect(t, ctx, e.agent, e.endpoint)

	list, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	assert.ElementsMatch(t, []string{"read_doc", "web_fetch"}, names)

	res, err := callTool(ctx, cs, "read_doc", map[string]any{"name": "handbook"})
	require.NoError(t, err)
	require.False(t, res.IsError, resultText(res))
	assert.Contains(t, resultText(res), "Q3 roadmap")
	assert.EqualValues(t, 1, e.srv.runs["read_doc"].Load())

	// A second call of the same task runs under the task already resumed
	// on the server.
	res, err = callTool(ctx, cs, "web_fetch", map[string]any{"url": "https://example.com/"})
	require.NoError(t, err)
	require.False(t, res.IsError, resultText(res))
	e.srv.mu.Lock()
	remote, ok := e.srv.tasks[task.ID()]
	e.srv.mu.Unlock()
	require.True(t, ok)
	assert.Equal(t, task.ID(), remote.ID())
	assert.Equal(t, researcherID, remote.Agent().ID)
	assert.Equal(t, authz.Confidential, remote.Taint().Sensitivity)
	assert.Equal(t, map[string]int{"read_doc": 1, "web_fetch": 1}, remote.Calls())
}

func TestPolicyDenialOnServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, task := e.begin(t, e.agent)
	cs := connect(t, ctx, e.agent, e.endpoint)

	res, err := callTool(ctx, cs, "web_fetch", map[string]any{"url": "http://169.254.169.254/latest/meta-data/"})
	require.NoError(t, err)
	assert.True(t, res.IsError)
	assert.Equal(t, "no-private-network", res.Meta[RuleMetaKey])
	assert.Contains(t, resultText(res), "denied by no-private-network")
	assert.Zero(t, e.srv.runs["web_fetch"].Load(), "a denied call never reaches its handler")
	assert.Equal(t, authz.Public, task.Taint().Sensitivity)
	assert.False(t, task.Taint().Untrusted, "a denied call taints nothing")

	// A tool the server does not describe is denied too.
	res, err = callTool(ctx, cs, "delete_doc", map[string]any{"name": "handbook"})
	require.NoError(t, err)
	assert.True(t, res.IsError)
}

func TestServerRefusesBadTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// mint returns a token of a task begun on a guard named "agent" with
	// the given signing key and options; the task is declared, not
	// verified: these guards are not the agent runtime.
	mint := func(keyID string, key ed25519.PrivateKey, audience string, opts ...authz.Option) string {
		t.Helper()
		g, err := authz.New(append([]authz.Option{authz.WithPolicy(e.policy), authz.WithName(agentName),
			authz.WithSigningKey(keyID, key), authz.WithTokenTTL(tokenTTL)}, opts...)...)
		require.NoError(t, err)
		spec := researchTask("")
		spec.Agent.Attrs = map[string]string{"trust_domain": "example.org"}
		_, task, err := g.Begin(t.Context(), spec)
		require.NoError(t, err)
		t.Cleanup(task.End)
		tok, err := task.Token(audience)
		require.NoError(t, err)
		return tok
	}
	_, otherKey, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	hourAgo := func() time.Time { return time.Now().Add(-time.Hour) }

	valid := mint("agent-1", e.agentKey, serverName)
	for _, tc := range []struct {
		name   string
		tokens []string
		want   string // in the error; "" for the control case
	}{
		{"valid", []string{valid}, ""},
		{"missing", nil, "carries no task token"},
		{"malformed", []string{"not-a-token"}, "malformed token"},
		{"forged", []string{mint("agent-1", otherKey, serverName)}, "bad signature"},
		{"untrusted key", []string{mint("agent-2", otherKey, serverName)}, "untrusted key"},
		{"expired", []string{mint("agent-1", e.agentKey, serverName, authz.WithClock(hourAgo))}, "token expired"},
		{"wrong audience", []string{mint("agent-1", e.agentKey, "billing")}, "another audience"},
		{"two tokens", []string{valid, valid}, "more than one task token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := rawSession(t, e.endpoint, tc.tokens...)
			before := e.srv.runs["read_doc"].Load()
			res, err := callTool(t.Context(), cs, "read_doc", map[string]any{"name": "handbook"})
			_, lerr := cs.ListTools(t.Context(), nil)
			if tc.want == "" {
				require.NoError(t, err)
				assert.False(t, res.IsError, resultText(res))
				assert.NoError(t, lerr)
				return
			}
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.want)
			assert.Error(t, lerr)
			assert.Equal(t, before, e.srv.runs["read_doc"].Load(), "a refused token reaches no handler")
			for _, tok := range tc.tokens {
				assert.NotContains(t, err.Error(), tok, "errors never quote the token")
			}
		})
	}
}

func TestEndedTaskCannotCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, task := e.begin(t, e.agent)
	cs := connect(t, ctx, e.agent, e.endpoint)

	res, err := callTool(ctx, cs, "web_fetch", map[string]any{"url": "https://example.com/"})
	require.NoError(t, err)
	require.False(t, res.IsError)

	task.End()
	_, err = task.Token(serverName)
	require.ErrorIs(t, err, authz.ErrToken, "an ended task mints no token")
	_, err = callTool(ctx, cs, "web_fetch", map[string]any{"url": "https://example.com/"})
	require.Error(t, err)
	assert.ErrorContains(t, err, "has ended")
	assert.EqualValues(t, 1, e.srv.runs["web_fetch"].Load(), "the call never left the agent")
}

func TestServerTaintBlocksExportOnAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, task := e.begin(t, e.agent)
	cs := connect(t, ctx, e.agent, e.endpoint)
	email := sendEmail(e.agent)

	_, err := email(ctx, emailArgs{To: "partner@example.net", Body: "summary"})
	require.NoError(t, err, "nothing confidential read yet")

	res, err := callTool(ctx, cs, "read_doc", map[string]any{"name": "handbook"})
	require.NoError(t, err)
	require.False(t, res.IsError, resultText(res))
	taint := task.Taint()
	assert.Equal(t, authz.Confidential, taint.Sensitivity)
	assert.False(t, taint.Untrusted, "internal docs are trusted")
	assert.Contains(t, strings.Join(taint.Sources, "\n"), "tools: read_doc")

	_, err = email(ctx, emailArgs{To: "partner@example.net", Body: "summary"})
	var denied *authz.DeniedError
	require.ErrorAs(t, err, &denied)
	assert.Equal(t, "no-export-after-confidential", denied.Decision.Rule)
}

func TestAgentRefusesResultsWithoutValidReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("untrusted report key", func(t *testing.T) {
		// The server signs reports with a key the agent does not trust.
		_, otherKey, err := ed25519.GenerateKey(nil)
		require.NoError(t, err)
		_, endpoint := startServer(t, e.policy, serverConfig{AgentKeyID: "agent-1", AgentKey: e.agentPub,
			ReportKeyID: "tools-1", ReportKey: otherKey})
		ctx, task := e.begin(t, e.agent)
		cs := connect(t, ctx, e.agent, endpoint)
		_, err = callTool(ctx, cs, "read_doc", map[string]any{"name": "handbook"})
		require.ErrorIs(t, err, authz.ErrToken)
		assert.Equal(t, authz.Public, task.Taint().Sensitivity)
	})
	t.Run("no report", func(t *testing.T) {
		// A plain MCP server, without taskguard.
		plain := mcp.NewServer(&mcp.Implementation{Name: "plain", Version: "v1.0.0"}, nil)
		mcp.AddTool(plain, &mcp.Tool{Name: "read_doc"},
			func(context.Context, *mcp.CallToolRequest, docArgs) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: docs["handbook"]}}}, nil, nil
			})
		hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return plain },
			&mcp.StreamableHTTPOptions{Stateless: true}))
		t.Cleanup(hs.Close)
		ctx, _ := e.begin(t, e.agent)
		cs := connect(t, ctx, e.agent, hs.URL)
		_, err := callTool(ctx, cs, "read_doc", map[string]any{"name": "handbook"})
		require.Error(t, err)
		assert.ErrorContains(t, err, errNoReport.Error())
	})
}

func TestIdentityMismatchRefusedAtBegin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other, err := newTrustDomain("example.org") // same name, another key
	require.NoError(t, err)
	mint := func(d *trustDomain, id, aud string) string {
		t.Helper()
		svid, err := d.mintSVID(id, aud, 5*time.Minute)
		require.NoError(t, err)
		return svid
	}
	for _, tc := range []struct {
		name string
		svid string
	}{
		{"another agent", mint(e.td, "spiffe://example.org/agent/intruder", svidAudience)},
		{"another audience", mint(e.td, researcherID, "billing")},
		{"another signing key", mint(other, researcherID, svidAudience)},
		{"no credential", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, task, err := e.agent.Begin(t.Context(), researchTask(tc.svid))
			require.ErrorIs(t, err, authz.ErrIdentity)
			assert.Nil(t, task)
			if tc.svid != "" {
				assert.NotContains(t, err.Error(), tc.svid)
			}
		})
	}
}

// TestTokenSentBeforeEndAcrossProcesses runs the tool server as another
// process, which shares nothing with the agent: after End the agent makes
// no more calls, but a token it sent before End stays valid there until it
// expires (at most tokenTTL), while a server in the agent's own process
// refuses it at once.
func TestTokenSentBeforeEndAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	e := newEnv(t)
	endpoint, reportPub := startServerProcess(t, e.agentPub)
	g := e.agentGuard(t, reportPub)
	ctx, task := e.begin(t, g)
	cs := connect(t, ctx, g, endpoint)

	res, err := callTool(ctx, cs, "read_doc", map[string]any{"name": "handbook"})
	require.NoError(t, err)
	require.False(t, res.IsError, resultText(res))
	assert.Equal(t, authz.Confidential, task.Taint().Sensitivity, "the other process's report applied")
	res, err = callTool(ctx, cs, "web_fetch", map[string]any{"url": "https://example.com/"})
	require.NoError(t, err)
	require.False(t, res.IsError, resultText(res))

	sent, err := task.Token(serverName) // as the transport sends it
	require.NoError(t, err)
	task.End()

	// The agent's half: no call after End.
	_, err = callTool(ctx, cs, "web_fetch", map[string]any{"url": "https://example.com/"})
	require.ErrorIs(t, err, authz.ErrToken)

	// The other process has no way to learn of the End: the token sent
	// before it is accepted until it expires.
	var claims jwt.RegisteredClaims
	_, _, err = jwt.NewParser().ParseUnverified(sent, &claims)
	require.NoError(t, err)
	assert.LessOrEqual(t, time.Until(claims.ExpiresAt.Time), tokenTTL)
	res, err = callTool(t.Context(), rawSession(t, endpoint, sent), "web_fetch", map[string]any{"url": "https://example.com/"})
	require.NoError(t, err)
	assert.False(t, res.IsError, "a token sent before End is valid in another process until it expires")

	// In the agent's process, the ended task's tokens are refused.
	_, err = callTool(t.Context(), rawSession(t, e.endpoint, sent), "web_fetch", map[string]any{"url": "https://example.com/"})
	require.Error(t, err)
	assert.ErrorContains(t, err, "has ended")
}

// startServerProcess runs "-role server" in a child process trusting
// agentPub, and returns its endpoint and report key. The process is
// interrupted when the test ends.
func startServerProcess(t *testing.T, agentPub ed25519.PublicKey) (string, ed25519.PublicKey) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-role", "server", "-listen", "127.0.0.1:0",
		"-agent-key", "agent-1="+base64.StdEncoding.EncodeToString(agentPub))
	cmd.Env = append(os.Environ(), remoteMCPMainEnv+"=1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			assert.NoError(t, err, "server process: %s", stderr.String())
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("the server process did not stop on interrupt")
		}
	})
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	require.NoError(t, err, "server process: %s", stderr.String())
	var a announcement
	require.NoError(t, json.Unmarshal(line, &a))
	key, err := base64.StdEncoding.DecodeString(a.ReportKey)
	require.NoError(t, err)
	require.Len(t, key, ed25519.PublicKeySize)
	require.Equal(t, "tools-1", a.ReportKeyID)
	require.True(t, strings.HasPrefix(a.Endpoint, "http://127.0.0.1:"), a.Endpoint)
	return a.Endpoint, ed25519.PublicKey(key)
}

// syncBuffer is a bytes.Buffer safe for concurrent use: a child's stderr
// is written by os/exec's goroutine and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
