package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/examples/mcp/mcpguard"
)

// TaskHeader carries the caller's task token on every MCP request over
// HTTP. Its value is a bearer credential: it is never logged or printed.
const TaskHeader = "Taskguard-Task"

// ReportMetaKey names the _meta field of a tools/call result that holds
// the server's signed report of what the caller's task observed here
// ([authz.Task.Report]); the agent applies it with [authz.Guard.ApplyReport].
const ReportMetaKey = "taskguard/report"

// RuleMetaKey names the _meta field of a denied tools/call result that
// holds the rule that denied it.
const RuleMetaKey = mcpguard.RuleMetaKey

var (
	errNoToken      = errors.New("remote-mcp: the request carries no task token (" + TaskHeader + " header)")
	errManyTokens   = errors.New("remote-mcp: the request carries more than one task token")
	errServerClosed = errors.New("remote-mcp: server closed")
)

// serverConfig is what the tool server's guard needs besides the policy:
// the key the agent runtime signs task tokens with, and the server's own
// key, which signs the reports it returns.
type serverConfig struct {
	AgentKeyID  string
	AgentKey    ed25519.PublicKey
	ReportKeyID string
	ReportKey   ed25519.PrivateKey
	// Options are more guard options, e.g. authz.WithStore for replicas
	// of the server that share task state.
	Options []authz.Option
}

// toolServer is the MCP server process: it serves read_doc and web_fetch
// over the SDK's streamable HTTP transport, and runs every tools/list and
// tools/call under the task the request's token hands over
// ([authz.Guard.Resume]), so the same policy decides here as on the agent.
// It is safe for concurrent use.
type toolServer struct {
	guard  *authz.Guard
	server *mcp.Server
	tools  mcpguard.Tools // immutable after newToolServer
	// runs counts each tool handler's runs, to show that refused calls
	// never reach a handler. Not modified after newToolServer.
	runs map[string]*atomic.Int64

	// mu guards the fields below it.
	mu     sync.Mutex
	closed bool
	// tasks holds the live tasks resumed here, by task ID: the calls of one
	// task share its taint, counts and budgets on this server. A task
	// leaves the map when it ends (its deadline, or Close).
	tasks map[string]*authz.Task
}

type docArgs struct {
	Name string `json:"name" jsonschema:"the document's name, e.g. handbook"`
}

type fetchArgs struct {
	URL string `json:"url" jsonschema:"the URL to fetch"`
}

// docs are the internal documents read_doc serves.
var docs = map[string]string{
	"handbook": "Q3 roadmap: acquire Example Corp in November (confidential).",
	"oncall":   "Pager rotation: see the ops calendar.",
}

// serverTools describe the server's tools to taskguard. Internal docs are
// the organisation's own data: confidential, and trusted. Web pages are
// public and untrusted (the default Output of a read).
var serverTools = mcpguard.Tools{
	"read_doc": {Name: "read_doc", Intent: "read", Output: authz.Output{Trusted: true},
		Describe: func(a map[string]any) (authz.Call, error) {
			name, err := stringArg(a, "name")
			return authz.Call{Destination: "https://wiki.example.org/docs/" + name, Sensitivity: authz.Confidential}, err
		}},
	"web_fetch": {Name: "web_fetch", Intent: "read",
		Describe: func(a map[string]any) (authz.Call, error) {
			url, err := stringArg(a, "url")
			return authz.Call{Destination: url, Sensitivity: authz.Public}, err
		}},
}

func stringArg(args map[string]any, key string) (string, error) {
	s, ok := args[key].(string)
	if !ok || s == "" {
		return "", fmt.Errorf("argument %q must be a non-empty string", key)
	}
	return s, nil
}

// newToolServer returns the tool server, whose guard is named "tools",
// trusts the agent's key and signs reports with its own.
func newToolServer(policy *authz.Policy, cfg serverConfig) (*toolServer, error) {
	g, err := authz.New(append([]authz.Option{authz.WithPolicy(policy),
		authz.WithName(serverName),
		authz.WithTrustedKey(cfg.AgentKeyID, cfg.AgentKey),
		authz.WithSigningKey(cfg.ReportKeyID, cfg.ReportKey)}, cfg.Options...)...)
	if err != nil {
		return nil, err
	}
	s := &toolServer{guard: g, tools: serverTools, runs: map[string]*atomic.Int64{}, tasks: map[string]*authz.Task{},
		server: mcp.NewServer(&mcp.Implementation{Name: "taskguard-tools", Version: "v1.0.0"}, nil)}
	addTool(s, "read_doc", "Read an internal document", func(_ context.Context, a docArgs) (string, error) {
		text, ok := docs[a.Name]
		if !ok {
			return "", fmt.Errorf("no document %q", a.Name)
		}
		return text, nil
	})
	addTool(s, "web_fetch", "Fetch a web page", func(_ context.Context, a fetchArgs) (string, error) {
		return "200 OK from " + a.URL + " (stub: nothing was fetched)", nil
	})
	s.server.AddReceivingMiddleware(s.middleware)
	return s, nil
}

// addTool registers a tool whose handler counts its runs and answers text;
// an error of f reaches the client as a result with IsError set.
func addTool[In any](s *toolServer, name, description string, f func(context.Context, In) (string, error)) {
	n := new(atomic.Int64)
	s.runs[name] = n
	mcp.AddTool(s.server, &mcp.Tool{Name: name, Description: description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
			n.Add(1)
			text, err := f(ctx, in)
			if err != nil {
				return nil, nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
		})
}

// Handler returns the MCP endpoint. It is stateless: the task token, not
// an MCP session, says whose request it is.
func (s *toolServer) Handler() http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.server },
		&mcp.StreamableHTTPOptions{Stateless: true})
}

// Close ends the tasks resumed here; later tools requests fail. It is
// idempotent.
func (s *toolServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errServerClosed
	}
	s.closed = true
	tasks := maps.Clone(s.tasks)
	s.mu.Unlock()
	for _, t := range tasks {
		t.End()
	}
	return nil
}

// middleware guards tools/list and tools/call: each needs a task token the
// guard accepts; other methods (initialize, ping) pass through.
func (s *toolServer) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case "tools/call", "tools/list":
		default:
			return next(ctx, method, req)
		}
		task, err := s.resume(ctx, req)
		if err != nil {
			return nil, err
		}
		ctx = authz.ContextWithTask(ctx, task)
		if method == "tools/list" {
			return s.listTools(ctx, next, method, req)
		}
		r, ok := req.(*mcp.CallToolRequest)
		if !ok || r.Params == nil {
			return nil, fmt.Errorf("remote-mcp: tools/call request of type %T", req)
		}
		return s.callTool(ctx, next, method, r, task)
	}
}

// resume verifies the request's task token and returns the task it hands
// over: the one already resumed here for the same task ID, if it is live.
func (s *toolServer) resume(ctx context.Context, req mcp.Request) (*authz.Task, error) {
	extra := req.GetExtra()
	if extra == nil {
		return nil, errNoToken
	}
	tokens := extra.Header.Values(TaskHeader)
	switch len(tokens) {
	case 0:
		return nil, errNoToken
	case 1:
	default:
		return nil, errManyTokens
	}
	// Resume's errors wrap authz.ErrToken and never contain the token.
	_, t, err := s.guard.Resume(ctx, tokens[0])
	if err != nil {
		return nil, err
	}
	id := t.ID()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		t.End()
		return nil, errServerClosed
	}
	if kept, ok := s.tasks[id]; ok && !kept.Ended() {
		s.mu.Unlock()
		t.End() // the token checked out; the task is already here
		return kept, nil
	}
	s.tasks[id] = t
	s.mu.Unlock()
	t.OnEnd(func() {
		s.mu.Lock()
		if s.tasks[id] == t {
			delete(s.tasks, id)
		}
		s.mu.Unlock()
	})
	return t, nil
}

// callTool authorizes the call under task (mcpguard.CallTool: a denied
// call never reaches its handler and is answered with IsError and the
// rule), runs it, and returns its result with task's report in _meta.
func (s *toolServer) callTool(ctx context.Context, next mcp.MethodHandler, method string, req *mcp.CallToolRequest, task *authz.Task) (mcp.Result, error) {
	res, err := mcpguard.CallTool(ctx, s.guard, s.tools, next, method, req)
	if err != nil {
		return nil, err
	}
	out, ok := res.(*mcp.CallToolResult)
	if !ok || out == nil {
		return nil, fmt.Errorf("remote-mcp: tools/call returned %T", res)
	}
	// Every answer carries the task's taint here, signed for the agent's
	// guard; without one the agent refuses the result.
	report, err := task.Report()
	if err != nil {
		return nil, err
	}
	r := *out // the handler's result is not modified
	r.Meta = maps.Clone(out.Meta)
	if r.Meta == nil {
		r.Meta = mcp.Meta{}
	}
	r.Meta[ReportMetaKey] = report
	return &r, nil
}

// listTools returns the tools the task may use ([authz.Guard.Visible]).
func (s *toolServer) listTools(ctx context.Context, next mcp.MethodHandler, method string, req mcp.Request) (mcp.Result, error) {
	res, err := next(ctx, method, req)
	if err != nil {
		return nil, err
	}
	return mcpguard.VisibleTools(ctx, s.guard, s.tools, res)
}
