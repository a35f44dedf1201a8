package main

import (
	"bytes"
	"context"
	"io"
	"iter"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/adk/v2/agent"
	"google.golang.org/adk/v2/session"
	"google.golang.org/adk/v2/tool/functiontool"
	"google.golang.org/genai"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

const (
	zenURL      = "https://api.github.com/zen"
	metadataURL = "http://169.254.169.254/latest/meta-data/"
)

func fetchCall(url string) *genai.FunctionCall {
	return call("fetch_url", map[string]any{"url": url})
}

// ask sends prompt to the demo's agent in a session of user.
func ask(t *testing.T, d *demo, user, sessionID, prompt string) {
	t.Helper()
	require.NoError(t, d.ask(context.Background(), io.Discard, user, sessionID, prompt))
}

// errorsSeen returns the errors of the tool responses the model was sent.
func errorsSeen(m *scriptedModel) []string {
	var errs []string
	for _, r := range m.responses() {
		if e, ok := r.Response["error"].(string); ok {
			errs = append(errs, e)
		}
	}
	return errs
}

// TestRun runs the example and checks what it shows.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out))
	got := out.String()
	for _, want := range []string{
		"tool=fetch_url destination=https://api.github.com/zen effect=allow rule=fetch-web",
		"fetch_url returns map[result:200 OK",
		"tool=fetch_url destination=http://169.254.169.254/latest/meta-data/iam/security-credentials effect=deny rule=no-private-network",
		"fetch_url returns map[error:taskguard denied fetch_url: private addresses and cloud metadata are off limits (SSRF) [rule no-private-network]]",
		"model says: fetch_url: 200 OK: Design for failure. (demo: nothing was fetched). fetch_url failed: taskguard denied fetch_url",
		"tool=read_file destination=/workspace/notes/plan.md effect=allow rule=workspace-files",
		"tool=read_file destination=/etc/passwd effect=deny rule=files-stay-in-workspace",
		"tools that ran: fetch_url 1 time(s), read_file 1 time(s)",
		"session s1 deleted: its task ended: true; the task of s2 ended: false",
	} {
		assert.Contains(t, got, want)
	}
}

// TestHooks checks both ways of installing the guard: as a runner plugin
// and as an agent's BeforeToolCallback.
func TestHooks(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]hook{"plugin": viaPlugin, "agent callback": viaAgentCallback} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("allowed tool runs", func(t *testing.T) {
				t.Parallel()
				d, err := newDemo(io.Discard, map[string][][]*genai.FunctionCall{"zen": {{fetchCall(zenURL)}}}, h)
				require.NoError(t, err)
				defer d.tools.Close()

				ask(t, d, "alice", "s1", "zen")
				assert.EqualValues(t, 1, d.fetches.Load())
				rs := d.model.responses()
				require.Len(t, rs, 1)
				assert.Contains(t, rs[0].Response["result"], "200 OK")
				assert.NotContains(t, rs[0].Response, "error")
			})
			t.Run("denied tool never runs and the model learns why", func(t *testing.T) {
				t.Parallel()
				d, err := newDemo(io.Discard, map[string][][]*genai.FunctionCall{"ssrf": {{fetchCall(metadataURL)}}}, h)
				require.NoError(t, err)
				defer d.tools.Close()

				ask(t, d, "alice", "s1", "ssrf")
				assert.Zero(t, d.fetches.Load(), "the tool's function must not run")
				errs := errorsSeen(d.model)
				require.Len(t, errs, 1)
				assert.Equal(t, "taskguard denied fetch_url: private addresses and cloud metadata are off limits (SSRF) [rule no-private-network]", errs[0])
			})
		})
	}
}

// TestToolResultsTaint checks that the result of a read the guard allowed
// and the tool completed taints the session's task, once, and that denied
// and failed calls leave it clean, whichever way the guard is installed.
func TestToolResultsTaint(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]hook{"plugin": viaPlugin, "agent callback": viaAgentCallback} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tests := []struct {
				name  string
				path  string
				reads int64
				want  authz.Taint
			}{
				{"successful read", "notes/plan.md", 1,
					authz.Taint{Sensitivity: authz.Internal, Untrusted: true, Sources: []string{"read_file /workspace/notes/plan.md"}}},
				{"denied read", "../etc/passwd", 0, authz.Taint{}},
				{"failed read", "notes/missing.md", 1, authz.Taint{}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					d, err := newDemo(io.Discard, map[string][][]*genai.FunctionCall{
						"read": {{call("read_file", map[string]any{"path": tt.path})}},
					}, h)
					require.NoError(t, err)
					defer d.tools.Close()

					ask(t, d, "alice", "s1", "read")
					require.EqualValues(t, tt.reads, d.reads.Load())
					task, ok := d.tools.Task(appName, "alice", "s1")
					require.True(t, ok)
					got := task.Taint()
					if len(got.Sources) == 0 {
						got.Sources = nil
					}
					assert.Equal(t, tt.want, got)
					d.tools.mu.Lock()
					assert.Empty(t, d.tools.running, "no call is left running")
					d.tools.mu.Unlock()
				})
			}
		})
	}
}

// TestSessionsHaveSeparateTasks checks that every ADK session (app, user,
// session ID) runs under its own task: its own budget, its own end.
func TestSessionsHaveSeparateTasks(t *testing.T) {
	t.Parallel()
	d, err := newDemo(io.Discard, map[string][][]*genai.FunctionCall{
		"one":  {{fetchCall(zenURL)}},
		"four": {{fetchCall(zenURL)}, {fetchCall(zenURL)}, {fetchCall(zenURL)}, {fetchCall(zenURL)}},
	}, viaPlugin)
	require.NoError(t, err)
	defer d.tools.Close()

	// The demo's tasks may fetch 3 times; the fourth fetch of s1 is denied.
	ask(t, d, "alice", "s1", "four")
	assert.EqualValues(t, 3, d.fetches.Load())
	errs := errorsSeen(d.model)
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0], "[rule @budget]")

	// Another session of alice, and bob's session of the same ID, have
	// budgets of their own.
	ask(t, d, "alice", "s2", "one")
	ask(t, d, "bob", "s1", "one")
	assert.EqualValues(t, 5, d.fetches.Load())
	assert.Len(t, errorsSeen(d.model), 1)

	a1, ok := d.tools.Task(appName, "alice", "s1")
	require.True(t, ok)
	a2, ok := d.tools.Task(appName, "alice", "s2")
	require.True(t, ok)
	b1, ok := d.tools.Task(appName, "bob", "s1")
	require.True(t, ok)
	assert.Len(t, map[string]bool{a1.ID(): true, a2.ID(): true, b1.ID(): true}, 3, "three sessions, three tasks")
	assert.Equal(t, map[string]int{"fetch_url": 3}, a1.Calls())
	assert.Equal(t, map[string]int{"fetch_url": 1}, a2.Calls())
	assert.Equal(t, "spiffe://example.org/adk/assistant", a1.Agent().ID)

	// Deleting a session ends its task and no other.
	require.NoError(t, d.sessions.Delete(context.Background(),
		&session.DeleteRequest{AppName: appName, UserID: "alice", SessionID: "s1"}))
	assert.True(t, a1.Ended())
	assert.False(t, a2.Ended())
	assert.False(t, b1.Ended())
	_, ok = d.tools.Task(appName, "alice", "s1")
	assert.False(t, ok)

	// A new session with the old ID starts afresh.
	ask(t, d, "alice", "s1", "one")
	again, ok := d.tools.Task(appName, "alice", "s1")
	require.True(t, ok)
	assert.NotEqual(t, a1.ID(), again.ID())
	assert.EqualValues(t, 6, d.fetches.Load())
}

// TestParallelCalls checks that the calls of one model turn, which ADK runs
// in parallel, are decided under one task of the session.
func TestParallelCalls(t *testing.T) {
	t.Parallel()
	d, err := newDemo(io.Discard, map[string][][]*genai.FunctionCall{"all at once": {{
		fetchCall(zenURL),
		fetchCall(metadataURL),
		call("read_file", map[string]any{"path": "notes/plan.md"}),
		call("read_file", map[string]any{"path": "/etc/shadow"}),
		fetchCall(zenURL + "?again"),
	}}}, viaPlugin)
	require.NoError(t, err)
	defer d.tools.Close()

	ask(t, d, "alice", "s1", "all at once")
	assert.EqualValues(t, 2, d.fetches.Load())
	assert.EqualValues(t, 1, d.reads.Load())
	assert.Len(t, d.model.responses(), 5)
	assert.Len(t, errorsSeen(d.model), 2)
	task, ok := d.tools.Task(appName, "alice", "s1")
	require.True(t, ok)
	assert.Equal(t, map[string]int{"fetch_url": 2, "read_file": 1}, task.Calls(), "every allowed call counted on one task")
}

// TestClose checks that a closed guard ends its tasks and denies.
func TestClose(t *testing.T) {
	t.Parallel()
	d, err := newDemo(io.Discard, map[string][][]*genai.FunctionCall{"zen": {{fetchCall(zenURL)}}}, viaPlugin)
	require.NoError(t, err)

	ask(t, d, "alice", "s1", "zen")
	task, ok := d.tools.Task(appName, "alice", "s1")
	require.True(t, ok)
	require.NoError(t, d.tools.Close())
	assert.ErrorIs(t, d.tools.Close(), ErrClosed)
	assert.True(t, task.Ended())

	ask(t, d, "alice", "s1", "zen")
	ask(t, d, "bob", "s9", "zen")
	assert.EqualValues(t, 1, d.fetches.Load(), "no tool runs after Close")
	errs := errorsSeen(d.model)
	require.Len(t, errs, 2)
	for _, e := range errs {
		assert.True(t, strings.HasSuffix(e, ErrClosed.Error()), e)
	}
}

// TestStreamingToolsRefused checks that the guard refuses to run an agent
// with a streaming tool, whose calls ADK v2.2.0 makes without callbacks.
func TestStreamingToolsRefused(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]hook{"plugin": viaPlugin, "agent callback": viaAgentCallback} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testStreamingToolRefused(t, h)
		})
	}
}

func testStreamingToolRefused(t *testing.T, h hook) {
	var ran atomic.Int64
	stream, err := functiontool.NewStreaming(functiontool.Config{Name: "stream_url", Description: "Streams a URL."},
		func(ctx agent.Context, a fetchArgs) iter.Seq2[string, error] {
			return func(yield func(string, error) bool) {
				ran.Add(1)
				yield("chunk", nil)
			}
		})
	require.NoError(t, err)
	d, err := newDemo(io.Discard, map[string][][]*genai.FunctionCall{
		"stream": {{call("stream_url", map[string]any{"url": metadataURL})}},
	}, h, stream)
	require.NoError(t, err)
	defer d.tools.Close()

	err = d.ask(context.Background(), io.Discard, "alice", "s1", "stream")
	require.Error(t, err)
	assert.Contains(t, err.Error(), ErrUnguardedTool.Error())
	assert.Zero(t, ran.Load())
	assert.Empty(t, d.model.responses())
}

// TestPolicyCases runs the policy's test cases (policy.cases.yaml).
func TestPolicyCases(t *testing.T) {
	authztest.RunPolicy(t, "policy.yaml", "policy.cases.yaml", "fetch_url", "read_file")
}
