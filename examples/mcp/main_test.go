package main

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
	"github.com/taskguard/taskguard/examples/mcp/mcpguard"
)

// protocols are the two ways the SDK's client opens a session: the
// 2026-07-28 protocol (server/discover, per-request _meta; the default) and
// the initialize handshake of 2025-11-25.
var protocols = []struct {
	name string
	opts *mcp.ClientSessionOptions
}{
	{"2026-07-28", nil},
	{"2025-11-25", &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"}},
}

// startHost returns a host whose guard is closed when the test ends.
func startHost(t *testing.T, spec mcpguard.SpecFunc) *host {
	t.Helper()
	h, err := newHost(spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.guard.Close() })
	return h
}

// connect connects a real SDK client to h over the in-memory transport.
func connect(t *testing.T, h *host, name string, opts *mcp.ClientSessionOptions) (*mcp.ClientSession, *mcp.ServerSession) {
	t.Helper()
	cs, ss, err := h.connect(t.Context(), name, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() })
	return cs, ss
}

func callTool(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: args})
	require.NoError(t, err)
	return res
}

func listTools(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	require.NoError(t, err)
	names := []string{}
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	return names
}

// taskOf returns the task of ss, which must have begun.
func taskOf(t *testing.T, h *host, ss *mcp.ServerSession) *authz.Task {
	t.Helper()
	task, ok := h.guard.Task(ss)
	require.True(t, ok, "the session has no task")
	return task
}

// waitEnded waits until task has ended.
func waitEnded(t *testing.T, task *authz.Task) {
	t.Helper()
	ended := make(chan struct{})
	task.OnEnd(func() { close(ended) })
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the task did not end")
	}
}

func TestAllowedCallRunsHandler(t *testing.T) {
	t.Parallel()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, sessionSpec)
			cs, ss := connect(t, h, "desktop-app", p.opts)

			res := callTool(t, cs, "fetch", map[string]any{"url": "https://example.com/"})

			assert.False(t, res.IsError, resultText(res))
			assert.Equal(t, "200 OK, 1.2 kB from https://example.com/", resultText(res))
			assert.EqualValues(t, 1, h.calls["fetch"].Load())
			task := taskOf(t, h, ss)
			assert.Equal(t, map[string]int{"fetch": 1}, task.Calls())
			assert.Equal(t, "desktop-app", task.Agent().Attrs["client"], "the spec sees the initialize params")
			assert.True(t, task.Taint().Untrusted, "the handler ran with the session's task in its context")
		})
	}
}

func TestDeniedCallNeverReachesHandler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tool   string
		args   map[string]any
		rule   string
		reason string
	}{
		{"SSRF to cloud metadata", "fetch", map[string]any{"url": "http://169.254.169.254/latest/meta-data/"},
			"no-private-network", "cloud metadata are off limits"},
		{"SSRF spelled in hex", "fetch", map[string]any{"url": "https://0xa9fea9fe/latest/meta-data/"},
			"no-private-network", "cloud metadata are off limits"},
		{"plain HTTP", "fetch", map[string]any{"url": "http://example.com/"}, authz.RuleNoMatch, "no rule allows"},
		{"argument of the wrong type", "fetch", map[string]any{"url": 42}, authz.RuleDescribe, `argument "url" must be a string`},
		{"path traversal", "read_file", map[string]any{"path": "notes/../../etc/passwd"}, authz.RuleNoMatch, "no rule allows"},
		{"denied by policy", "run_shell", map[string]any{"command": "id"}, "no-shell", "agents get no shell"},
		{"tool without a describer", "debug_dump", map[string]any{}, authz.RuleDescribe, "no taskguard describer"},
		{"unknown table", "query_db", map[string]any{"table": "users"}, authz.RuleNoMatch, "no rule allows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, sessionSpec)
			cs, ss := connect(t, h, "desktop-app", nil)

			res := callTool(t, cs, tt.tool, tt.args)

			assert.True(t, res.IsError)
			assert.Contains(t, resultText(res), tt.tool+" denied by "+tt.rule+": ")
			assert.Contains(t, resultText(res), tt.reason)
			assert.Equal(t, tt.rule, res.Meta["taskguard/rule"])
			assert.Zero(t, h.calls[tt.tool].Load(), "the handler must not run")
			assert.Empty(t, taskOf(t, h, ss).Calls())
		})
	}
}

// TestToolResultsTaint checks that the result of a call the guard allowed
// and the handler completed taints the session's task, once, as the
// tool's describer says, and that denied and failed calls leave it clean.
func TestToolResultsTaint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tool    string
		args    map[string]any
		isError bool
		runs    int64
		want    authz.Taint
	}{
		{"successful read", "read_file", map[string]any{"path": "notes/plan.md"}, false, 1,
			authz.Taint{Sensitivity: authz.Internal, Untrusted: true, Sources: []string{"read_file /workspace/notes/plan.md"}}},
		{"successful read of a trusted tool", "query_db", map[string]any{"table": "salaries"}, false, 1,
			authz.Taint{Sensitivity: authz.Confidential, Sources: []string{"query_db db://salaries"}}},
		{"export", "send_email", map[string]any{"to": "partner@example.net", "body": "hi"}, false, 1, authz.Taint{}},
		{"denied read", "read_file", map[string]any{"path": "notes/../../etc/passwd"}, true, 0, authz.Taint{}},
		{"failed read", "read_file", map[string]any{"path": "notes/missing.md"}, true, 1, authz.Taint{}},
	}
	for _, p := range protocols {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				h := startHost(t, sessionSpec)
				cs, ss := connect(t, h, "desktop-app", p.opts)

				res := callTool(t, cs, tt.tool, tt.args)

				assert.Equal(t, tt.isError, res.IsError, resultText(res))
				assert.Equal(t, tt.runs, h.calls[tt.tool].Load())
				got := taskOf(t, h, ss).Taint()
				if len(got.Sources) == 0 {
					got.Sources = nil
				}
				assert.Equal(t, tt.want, got)
			})
		}
	}
}

func TestFailedToolResultReachesClient(t *testing.T) {
	t.Parallel()
	h := startHost(t, sessionSpec)
	cs, _ := connect(t, h, "desktop-app", nil)

	res := callTool(t, cs, "read_file", map[string]any{"path": "notes/missing.md"})

	assert.True(t, res.IsError)
	assert.Equal(t, "no such file: notes/missing.md", resultText(res))
	assert.Nil(t, res.Meta["taskguard/rule"], "the tool failed; the guard did not deny")
}

func TestHiddenToolsAreNotListed(t *testing.T) {
	t.Parallel()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, sessionSpec)
			cs, _ := connect(t, h, "desktop-app", p.opts)

			// run_shell: the policy denies every call; debug_dump: no describer.
			assert.Equal(t, []string{"fetch", "query_db", "read_file", "send_email"}, listTools(t, cs))
			res, err := cs.ListTools(t.Context(), nil)
			require.NoError(t, err)
			assert.Equal(t, mcp.Cacheable{TTLMs: 0, CacheScope: "private"}, res.Cacheable, "the list is the session's own")
		})
	}
}

func TestHiddenToolsFollowTheTask(t *testing.T) {
	t.Parallel()
	h := startHost(t, sessionSpec)
	cs, _ := connect(t, h, "desktop-app", nil)

	require.False(t, callTool(t, cs, "query_db", map[string]any{"table": "salaries"}).IsError)

	assert.Equal(t, []string{"fetch", "query_db", "read_file"}, listTools(t, cs),
		"after confidential data no email can be allowed, so send_email is hidden")
}

func TestSessionsHaveSeparateTasks(t *testing.T) {
	t.Parallel()
	h := startHost(t, sessionSpec)
	a, aSrv := connect(t, h, "a", nil)
	b, bSrv := connect(t, h, "b", nil)
	url := map[string]any{"url": "https://example.com/"}
	email := map[string]any{"to": "partner@example.net", "body": "summary"}

	// Session a spends its fetch budget (3) and reads confidential data.
	for range 3 {
		require.False(t, callTool(t, a, "fetch", url).IsError)
	}
	res := callTool(t, a, "fetch", url)
	assert.True(t, res.IsError)
	assert.Equal(t, authz.RuleBudget, res.Meta["taskguard/rule"])
	require.False(t, callTool(t, a, "query_db", map[string]any{"table": "salaries"}).IsError)
	res = callTool(t, a, "send_email", email)
	assert.True(t, res.IsError)
	assert.Equal(t, "no-exfil-after-confidential", res.Meta["taskguard/rule"])
	assert.Equal(t, []string{"query_db", "read_file"}, listTools(t, a))

	// Session b is untouched by either.
	assert.False(t, callTool(t, b, "fetch", url).IsError)
	assert.False(t, callTool(t, b, "send_email", email).IsError)
	assert.Equal(t, []string{"fetch", "query_db", "read_file", "send_email"}, listTools(t, b))

	ta, tb := taskOf(t, h, aSrv), taskOf(t, h, bSrv)
	assert.NotEqual(t, ta.ID(), tb.ID())
	assert.Equal(t, authz.Confidential, ta.Taint().Sensitivity)
	assert.Equal(t, authz.Public, tb.Taint().Sensitivity)
	assert.Equal(t, map[string]int{"fetch": 3, "query_db": 1}, ta.Calls())
	assert.Equal(t, map[string]int{"fetch": 1, "send_email": 1}, tb.Calls())
	assert.EqualValues(t, 4, h.calls["fetch"].Load())
	assert.EqualValues(t, 1, h.calls["send_email"].Load())
}

func TestSessionCloseEndsTask(t *testing.T) {
	t.Parallel()
	for _, side := range []string{"client", "server"} {
		t.Run("closed by the "+side, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, sessionSpec)
			cs, ss := connect(t, h, "desktop-app", nil)
			other, otherSrv := connect(t, h, "other", nil)
			listTools(t, cs)
			listTools(t, other)
			task := taskOf(t, h, ss)

			if side == "client" {
				require.NoError(t, cs.Close())
			} else {
				require.NoError(t, ss.Close())
			}
			waitEnded(t, task)

			_, ok := h.guard.Task(ss)
			assert.False(t, ok)
			assert.False(t, taskOf(t, h, otherSrv).Ended(), "other sessions keep their tasks")
			assert.False(t, callTool(t, other, "fetch", map[string]any{"url": "https://example.com/"}).IsError)
		})
	}
}

func TestTaskBeginsOncePerSession(t *testing.T) {
	t.Parallel()
	var begun atomic.Int64
	h := startHost(t, func(ctx context.Context, s mcpguard.SessionInfo) (authz.TaskSpec, error) {
		begun.Add(1)
		return sessionSpec(ctx, s)
	})
	cs, _ := connect(t, h, "desktop-app", nil)

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "read_file",
				Arguments: map[string]any{"path": "notes/plan.md"}})
			if assert.NoError(t, err) {
				assert.False(t, res.IsError, resultText(res))
			}
		})
	}
	wg.Wait()

	assert.EqualValues(t, 1, begun.Load())
	assert.EqualValues(t, 8, h.calls["read_file"].Load())
}

func TestNoTaskNoTools(t *testing.T) {
	t.Parallel()
	for name, spec := range map[string]mcpguard.SpecFunc{
		"spec error": func(context.Context, mcpguard.SessionInfo) (authz.TaskSpec, error) {
			return authz.TaskSpec{}, assert.AnError
		},
		"spec panics": func(context.Context, mcpguard.SessionInfo) (authz.TaskSpec, error) {
			panic("boom")
		},
		"invalid spec": func(context.Context, mcpguard.SessionInfo) (authz.TaskSpec, error) {
			return authz.TaskSpec{}, nil // no agent
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, spec)
			cs, ss := connect(t, h, "desktop-app", nil)

			_, err := cs.ListTools(t.Context(), nil)
			assert.ErrorContains(t, err, "mcpguard: no task for the session")
			_, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "fetch",
				Arguments: map[string]any{"url": "https://example.com/"}})
			assert.ErrorContains(t, err, "mcpguard: no task for the session")
			assert.Zero(t, h.calls["fetch"].Load())
			_, ok := h.guard.Task(ss)
			assert.False(t, ok)
		})
	}
}

func TestGuardClose(t *testing.T) {
	t.Parallel()
	h := startHost(t, sessionSpec)
	cs, ss := connect(t, h, "desktop-app", nil)
	listTools(t, cs)
	task := taskOf(t, h, ss)

	require.NoError(t, h.guard.Close())

	assert.True(t, task.Ended())
	_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "fetch",
		Arguments: map[string]any{"url": "https://example.com/"}})
	assert.Error(t, err, "the session is closed")
	assert.Zero(t, h.calls["fetch"].Load())
	assert.ErrorIs(t, h.guard.Close(), mcpguard.ErrClosed)
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	g, err := authz.New()
	require.NoError(t, err)

	_, err = mcpguard.New(nil, sessionSpec, nil)
	assert.Error(t, err)
	_, err = mcpguard.New(g, nil, nil)
	assert.Error(t, err)
	_, err = mcpguard.New(g, sessionSpec, mcpguard.Tools{"fetch": {Name: "http.fetch"}})
	assert.ErrorContains(t, err, `tool "fetch" is described as "http.fetch"`)
}

func TestDemo(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	require.NoError(t, run(t.Context(), &out))
	for _, want := range []string{
		"tools/list: fetch, query_db, read_file, send_email\n",
		"DENIED: authz: fetch denied by no-private-network",
		"DENIED: authz: send_email denied by no-exfil-after-confidential",
		"ran: sent to partner@example.net",
		"ended: true",
		"tool handler runs: fetch 1, read_file 0, run_shell 0, query_db 1, send_email 1, debug_dump 0\n",
	} {
		assert.Contains(t, out.String(), want)
	}
}

// TestPolicyCases runs the policy's test cases (policy.cases.yaml).
func TestPolicyCases(t *testing.T) {
	authztest.RunPolicy(t, "policy.yaml", "policy.cases.yaml")
}
