// Command mcp runs an MCP server whose tools are guarded by taskguard and
// drives it with the MCP Go SDK's own client over the SDK's in-memory
// transport (no network). Each client session runs under its own taskguard
// task: tools/list shows only the tools the task could use, and every
// tools/call is authorized before its handler runs: an allowed fetch, an SSRF
// attempt against the cloud metadata address, a path traversal, and an
// email that is refused once the session has read confidential data while
// a second session, with a task of its own, may still send it.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/examples/mcp/mcpguard"
)

//go:embed policy.yaml
var policyYAML []byte

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mcp:", err)
		os.Exit(1)
	}
}

// host is the server side: the taskguard guard, the MCP middleware and the
// MCP server with its tools.
type host struct {
	authz  *authz.Guard
	guard  *mcpguard.Guard
	server *mcp.Server
	// calls counts the runs of each tool handler, to show that a denied
	// call never reaches its handler. The map is not modified after newHost.
	calls map[string]*atomic.Int64
}

// Tool arguments; the SDK derives the tools' input schemas from them.
type fetchArgs struct {
	URL string `json:"url" jsonschema:"the URL to fetch"`
}
type fileArgs struct {
	Path string `json:"path" jsonschema:"a path in the workspace"`
}
type queryArgs struct {
	Table string `json:"table" jsonschema:"the table to read"`
}
type emailArgs struct {
	To   string `json:"to" jsonschema:"the recipient's address"`
	Body string `json:"body"`
}
type shellArgs struct {
	Command string `json:"command"`
}

// describers say, per tool, what a call does: its intent, where it goes and
// how sensitive the data is, and how its result taints the session's task
// (by default a read's result is untrusted content of the call's
// sensitivity). run_shell has one (and the policy denies it); debug_dump
// has none, so it is hidden and every call of it is denied.
var describers = mcpguard.Tools{
	"fetch": {Intent: "read", Describe: func(a map[string]any) (authz.Call, error) {
		url, err := stringArg(a, "url")
		return authz.Call{Destination: url, Sensitivity: authz.Public}, err
	}},
	"read_file": {Intent: "read", Describe: func(a map[string]any) (authz.Call, error) {
		path, err := stringArg(a, "path")
		return authz.Call{Destination: path, Sensitivity: authz.Internal}, err
	}},
	// The analytics database is the host's own: its rows are confidential
	// but trusted, unlike web pages and workspace files.
	"query_db": {Intent: "read", Output: authz.Output{Trusted: true}, Describe: func(a map[string]any) (authz.Call, error) {
		table, err := stringArg(a, "table")
		return authz.Call{Destination: "db://" + table, Sensitivity: authz.Confidential}, err
	}},
	"send_email": {Intent: "export", Describe: func(a map[string]any) (authz.Call, error) {
		to, err := stringArg(a, "to")
		return authz.Call{Destination: "mailto:" + to, Sensitivity: authz.Internal}, err
	}},
	"run_shell": {Intent: "execute"},
}

func stringArg(args map[string]any, key string) (string, error) {
	s, ok := args[key].(string)
	if !ok {
		return "", fmt.Errorf("argument %q must be a string", key)
	}
	return s, nil
}

// sessionSpec is the task of a new session. The host decides who the agent
// is (here: the one agent this host serves; over HTTP it would come from
// the verified token in s.Extra); the client's self-declared name is only
// an attribute.
func sessionSpec(_ context.Context, s mcpguard.SessionInfo) (authz.TaskSpec, error) {
	client := "unknown"
	if s.Init != nil && s.Init.ClientInfo != nil {
		client = s.Init.ClientInfo.Name
	}
	return authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/assistant", Attrs: map[string]string{"client": client}},
		Purpose:   "answer the user's questions",
		Intents:   []string{"read", "export", "execute"},
		Tools:     []string{"fetch", "read_file", "query_db", "send_email", "run_shell", "debug_dump"},
		Clearance: authz.Confidential,
		TTL:       30 * time.Minute,
		MaxCalls:  map[string]int{"fetch": 3},
		Labels:    map[string]string{"workdir": "/workspace"},
	}, nil
}

// newHost builds the server; spec gives each session's task.
func newHost(spec mcpguard.SpecFunc) (*host, error) {
	policy, err := authz.ParsePolicy("policy.yaml", policyYAML)
	if err != nil {
		return nil, err
	}
	g, err := authz.New(authz.WithPolicy(policy))
	if err != nil {
		return nil, err
	}
	guard, err := mcpguard.New(g, spec, describers)
	if err != nil {
		return nil, err
	}
	h := &host{authz: g, guard: guard, calls: map[string]*atomic.Int64{},
		server: mcp.NewServer(&mcp.Implementation{Name: "taskguard-demo", Version: "v1.0.0"}, nil)}

	// The guard records what the read tools return on the session's task
	// (describers' Output), so the handlers only do their work.
	err = errors.Join(err, addTool(h, "fetch", "Fetch a web page", func(ctx context.Context, a fetchArgs) (string, error) {
		return "200 OK, 1.2 kB from " + a.URL, nil
	}))
	err = errors.Join(err, addTool(h, "read_file", "Read a workspace file", func(ctx context.Context, a fileArgs) (string, error) {
		if a.Path != "notes/plan.md" {
			return "", errors.New("no such file: " + a.Path)
		}
		return "# Plan\n1. read the data", nil
	}))
	err = errors.Join(err, addTool(h, "query_db", "Read a table", func(ctx context.Context, a queryArgs) (string, error) {
		return "alice 120k, bob 115k", nil
	}))
	err = errors.Join(err, addTool(h, "send_email", "Send an email", func(ctx context.Context, a emailArgs) (string, error) {
		return "sent to " + a.To, nil
	}))
	err = errors.Join(err, addTool(h, "run_shell", "Run a shell command", func(ctx context.Context, a shellArgs) (string, error) {
		return "ran " + a.Command, nil
	}))
	err = errors.Join(err, addTool(h, "debug_dump", "Dump the server state", func(ctx context.Context, _ struct{}) (string, error) {
		return "everything", nil
	}))
	if err != nil {
		return nil, err
	}
	h.server.AddReceivingMiddleware(guard.Middleware)
	return h, nil
}

// addTool registers a tool whose handler counts its runs and answers text;
// an error of f reaches the client as a result with IsError set. The tool's
// arguments are declared to the guard from its input schema (inferred from
// In), so the policy's rules over it are type-checked and calls whose
// arguments do not match are denied.
func addTool[In any](h *host, name, description string, f func(context.Context, In) (string, error)) error {
	n := new(atomic.Int64)
	h.calls[name] = n
	return mcpguard.AddTool(h.server, h.guard, &mcp.Tool{Name: name, Description: description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
			n.Add(1)
			text, err := f(ctx, in)
			if err != nil {
				return nil, nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
		})
}

// connect connects a new client named name to h's server over an in-memory
// transport and returns both ends of the session. opts may be nil.
func (h *host) connect(ctx context.Context, name string, opts *mcp.ClientSessionOptions) (*mcp.ClientSession, *mcp.ServerSession, error) {
	serverEnd, clientEnd := mcp.NewInMemoryTransports()
	ss, err := h.server.Connect(ctx, serverEnd, nil)
	if err != nil {
		return nil, nil, err
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: name, Version: "v1.0.0"}, nil).Connect(ctx, clientEnd, opts)
	if err != nil {
		return nil, nil, errors.Join(err, ss.Close())
	}
	return cs, ss, nil
}

func run(ctx context.Context, out io.Writer) error {
	h, err := newHost(sessionSpec)
	if err != nil {
		return err
	}
	defer h.guard.Close()

	desktop, desktopSrv, err := h.connect(ctx, "desktop-app", nil)
	if err != nil {
		return err
	}
	defer desktop.Close()
	cli, _, err := h.connect(ctx, "cli", nil)
	if err != nil {
		return err
	}
	defer cli.Close()

	list := func(cs *mcp.ClientSession) error {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			return err
		}
		var names []string
		for _, t := range res.Tools {
			names = append(names, t.Name)
		}
		fmt.Fprintf(out, "   tools/list: %s\n", strings.Join(names, ", "))
		return nil
	}
	call := func(cs *mcp.ClientSession, tool string, args map[string]any) error {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			return err
		}
		verb := "ran"
		if res.IsError {
			verb = "DENIED"
		}
		fmt.Fprintf(out, "   %s %v\n      %s: %s\n", tool, args, verb, resultText(res))
		return nil
	}

	fmt.Fprintln(out, "session 1 (client \"desktop-app\")")
	steps := []func() error{
		func() error { return list(desktop) },
		func() error {
			task, ok := h.guard.Task(desktopSrv)
			if !ok {
				return errors.New("session 1 has no task")
			}
			fmt.Fprintf(out, "   runs under task %s of %s\n", task.ID(), task.Agent().ID)
			return nil
		},
		func() error { return call(desktop, "fetch", map[string]any{"url": "https://example.com/"}) },
		func() error {
			return call(desktop, "fetch", map[string]any{"url": "http://169.254.169.254/latest/meta-data/"})
		},
		func() error { return call(desktop, "read_file", map[string]any{"path": "notes/../../etc/passwd"}) },
		func() error { return call(desktop, "run_shell", map[string]any{"command": "cat ~/.aws/credentials"}) },
		func() error { return call(desktop, "query_db", map[string]any{"table": "salaries"}) },
		func() error {
			return call(desktop, "send_email", map[string]any{"to": "partner@example.net", "body": "summary"})
		},
		func() error { return list(desktop) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}

	fmt.Fprintln(out, "session 2 (client \"cli\"): a task of its own")
	if err := call(cli, "send_email", map[string]any{"to": "partner@example.net", "body": "summary"}); err != nil {
		return err
	}

	task, ok := h.guard.Task(desktopSrv)
	if !ok {
		return errors.New("session 1 has no task")
	}
	ended := make(chan struct{})
	task.OnEnd(func() { close(ended) })
	if err := desktop.Close(); err != nil {
		return err
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		return errors.New("the session closed but its task did not end")
	}
	fmt.Fprintf(out, "session 1 closed: task %s ended: %v\n", task.ID(), task.Ended())

	var runs []string
	for _, name := range []string{"fetch", "read_file", "run_shell", "query_db", "send_email", "debug_dump"} {
		runs = append(runs, fmt.Sprintf("%s %d", name, h.calls[name].Load()))
	}
	fmt.Fprintf(out, "tool handler runs: %s\n", strings.Join(runs, ", "))
	return nil
}

// resultText joins the text content of a tool result.
func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}
