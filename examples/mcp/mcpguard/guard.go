package mcpguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/taskguard/taskguard/authz"
)

// ErrClosed is returned by [Guard.Close] after the first call and, as a
// JSON-RPC error, for guarded requests made after Close.
var ErrClosed = errors.New("mcpguard: closed")

// errUndescribed denies calls of tools that have no describer.
var errUndescribed = errors.New("the tool has no taskguard describer")

// errToolFailed tells authz.WrapJSON that the tool answered with IsError
// set, so that the failed call's result is not recorded on the task.
var errToolFailed = errors.New("mcpguard: the tool failed")

// Tools maps MCP tool names to the describers that turn a call's JSON
// arguments into an [authz.Call] and say how a successful call's result
// taints the session's task ([authz.Tool.Output]; the zero value records
// the results of read and search calls as untrusted content). A
// describer's Name may be empty (the key is used) or must equal its key.
type Tools map[string]authz.Tool[map[string]any]

// SessionInfo is what a [SpecFunc] learns about a session whose task is
// about to begin.
type SessionInfo struct {
	// Session is the server session.
	Session *mcp.ServerSession
	// Init holds the client's initialize parameters: those of the
	// initialize request (protocol 2025-11-25 and earlier) or of the first
	// request's _meta (2026-07-28). It may be nil. Its ClientInfo is
	// declared by the client: it must not decide the agent's identity or
	// authority.
	Init *mcp.InitializeParams
	// Extra is the transport information of the session's first guarded
	// request (verified bearer token, HTTP header), nil over stdio and
	// in-memory transports. Hosts serving HTTP take the agent's identity
	// from Extra.TokenInfo.
	Extra *mcp.RequestExtra
}

// SpecFunc returns the spec of the task for a new session. It runs once per
// session, on the goroutine of the session's first tools/list or
// tools/call, with that request's context. An error or a panic leaves the
// session without a task: every guarded request of the session then fails.
type SpecFunc func(ctx context.Context, s SessionInfo) (authz.TaskSpec, error)

// Guard guards the tools of MCP server sessions with a taskguard
// [authz.Guard], one task per session. Create it with [New], install
// [Guard.Middleware] on an [mcp.Server] and call [Guard.Close] when done. A
// Guard is safe for concurrent use; one Guard may serve several servers.
type Guard struct {
	authz *authz.Guard
	spec  SpecFunc
	tools Tools // immutable after New

	// mu guards the fields below it.
	mu       sync.Mutex
	closed   bool
	sessions map[*mcp.ServerSession]*session

	// watchers counts the goroutines, one per entry of sessions, that
	// wait for their session to close.
	watchers sync.WaitGroup
}

// session is the task of one MCP session. Its fields other than ready are
// written once, before ready is closed, and read only after.
type session struct {
	ready chan struct{}
	task  *authz.Task
	err   error
}

// New returns a Guard that decides calls with g, begins each session's task
// with the spec from spec, and describes tool calls with tools (copied).
// Tools missing from tools are hidden from tools/list and every call of
// them is denied.
//
// New registers the described tools with g ([authz.Guard.RegisterTool]),
// declaring a describer's [authz.Tool.Args] when set, so that
// [authz.Guard.Lint] knows them; a refused declaration is an error. Declare
// the arguments of the server's tools from their input schemas with
// [AddTool] or [Guard.Declare].
func New(g *authz.Guard, spec SpecFunc, tools Tools) (*Guard, error) {
	if g == nil {
		return nil, errors.New("mcpguard: nil authz.Guard")
	}
	if spec == nil {
		return nil, errors.New("mcpguard: nil SpecFunc")
	}
	ts := make(Tools, len(tools))
	for name, t := range tools {
		switch t.Name {
		case "":
			t.Name = name
		case name:
		default:
			return nil, fmt.Errorf("mcpguard: tool %q is described as %q", name, t.Name)
		}
		if err := g.RegisterTool(name, t.Args); err != nil {
			return nil, fmt.Errorf("mcpguard: %w", err)
		}
		t.Args = nil // registered: WrapJSON need not parse it on every call
		ts[name] = t
	}
	return &Guard{authz: g, spec: spec, tools: ts, sessions: map[*mcp.ServerSession]*session{}}, nil
}

// Middleware is an [mcp.Middleware] for [mcp.Server.AddReceivingMiddleware].
// It authorizes every tools/call before the tool handler runs and filters
// tools/list to the session task's visible tools; other methods pass
// through. Tool handlers run with the session's task in their context.
//
// A denied call is answered with a CallToolResult whose IsError is set,
// whose text content is the *[authz.DeniedError] (tool, rule, reason) and
// whose _meta "taskguard/rule" names the rule; the handler is not called.
// When the handler answers without error and without IsError, the result
// is recorded on the session's task ([authz.Guard.ObserveOutput] with the
// tool's [authz.Tool.Output]): by default the results of read and search
// calls taint the task as untrusted content of the call's sensitivity. A
// denied or failed call records nothing.
// A session whose task could not begin, or a request after [Guard.Close],
// gets a JSON-RPC error.
func (g *Guard) Middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case "tools/call":
			r, ok := req.(*mcp.CallToolRequest)
			if !ok || r.Params == nil {
				return nil, fmt.Errorf("mcpguard: tools/call request of type %T", req)
			}
			return g.callTool(ctx, next, method, r)
		case "tools/list":
			return g.listTools(ctx, next, method, req)
		}
		return next(ctx, method, req)
	}
}

func (g *Guard) callTool(ctx context.Context, next mcp.MethodHandler, method string, req *mcp.CallToolRequest) (mcp.Result, error) {
	s, err := g.session(ctx, req)
	if err != nil {
		return nil, err
	}
	return CallTool(authz.ContextWithTask(ctx, s.task), g.authz, g.tools, next, method, req)
}

// RuleMetaKey names the _meta field of a denied tools/call result that
// holds the rule that denied it.
const RuleMetaKey = "taskguard/rule"

// CallTool is the tools/call step of a guard, for servers that find the
// task another way than [Guard] does (a task token, say): it authorizes
// req's call with g under the task in ctx, describing it with tools (a tool
// without a describer is denied), and passes req to next only when
// allowed. A denial is answered as a tool error (IsError, the reason as
// text, the rule in _meta[RuleMetaKey]); a result the model will read is
// recorded on the task unless the tool failed.
func CallTool(ctx context.Context, g *authz.Guard, tools Tools, next mcp.MethodHandler, method string, req *mcp.CallToolRequest) (mcp.Result, error) {
	name := req.Params.Name
	tool, ok := tools[name]
	if !ok {
		// Denied here rather than through WrapJSON, which would register
		// the client's tool name with the guard.
		return deniedResult(g.DescribeError(ctx, name, errUndescribed)), nil
	}
	called := false
	var failed *mcp.CallToolResult
	// WrapJSON decodes the arguments with authz.DecodeArgs, describes the
	// call (recovering a panicking describer), authorizes it, and only then
	// runs the rest of the chain, which ends in the tool handler. It records
	// the result on the task unless the handler returns an error: a tool
	// that failed (IsError, the MCP form of a tool's error) is turned into
	// errToolFailed for WrapJSON and back into its result here.
	run := authz.WrapJSON(g, tool, func(ctx context.Context, _ json.RawMessage) (mcp.Result, error) {
		called = true
		res, err := next(ctx, method, req)
		if r, ok := res.(*mcp.CallToolResult); ok && err == nil && r.IsError {
			failed = r
			return nil, errToolFailed
		}
		return res, err
	})
	res, err := run(ctx, req.Params.Arguments)
	if failed != nil && errors.Is(err, errToolFailed) {
		return failed, nil
	}
	var denied *authz.DeniedError
	if !called && errors.As(err, &denied) {
		return deniedResult(denied), nil
	}
	return res, err
}

// deniedResult is the answer to a denied call: the rule and reason as
// text the model can read, the rule in _meta.
func deniedResult(err error) *mcp.CallToolResult {
	var denied *authz.DeniedError
	if !errors.As(err, &denied) {
		denied = &authz.DeniedError{Decision: authz.Decision{Rule: authz.RuleInternal, Reason: "denied"}}
	}
	return &mcp.CallToolResult{
		Meta:    mcp.Meta{RuleMetaKey: denied.Decision.Rule},
		Content: []mcp.Content{&mcp.TextContent{Text: denied.Error()}},
		IsError: true,
	}
}

func (g *Guard) listTools(ctx context.Context, next mcp.MethodHandler, method string, req mcp.Request) (mcp.Result, error) {
	s, err := g.session(ctx, req)
	if err != nil {
		return nil, err
	}
	res, err := next(ctx, method, req)
	if err != nil {
		return nil, err
	}
	return VisibleTools(authz.ContextWithTask(ctx, s.task), g.authz, g.tools, res)
}

// VisibleTools is the tools/list step of a guard (see [CallTool]): it
// returns a copy of res, the server's tools/list result, keeping the tools
// that tools describes and that the task in ctx may use
// ([authz.Guard.Visible]), marked private and not cacheable.
func VisibleTools(ctx context.Context, g *authz.Guard, tools Tools, res mcp.Result) (*mcp.ListToolsResult, error) {
	list, ok := res.(*mcp.ListToolsResult)
	if !ok || list == nil {
		return nil, fmt.Errorf("mcpguard: tools/list returned %T", res)
	}
	names := make([]string, 0, len(list.Tools))
	for _, t := range list.Tools {
		if _, ok := tools[t.Name]; ok {
			names = append(names, t.Name)
		}
	}
	visible := g.Visible(ctx, names) // a subsequence of names
	out := *list                     // the server's result is not modified
	out.Tools = make([]*mcp.Tool, 0, len(visible))
	for _, t := range list.Tools {
		if len(out.Tools) < len(visible) && visible[len(out.Tools)] == t.Name {
			out.Tools = append(out.Tools, t)
		}
	}
	// The list is this task's: no intermediary may share it, and it
	// changes as the task spends its budgets.
	out.Cacheable = mcp.Cacheable{TTLMs: 0, CacheScope: "private"}
	return &out, nil
}

// session returns the task of req's session, beginning it on the
// session's first guarded request.
func (g *Guard) session(ctx context.Context, req mcp.Request) (*session, error) {
	ss, ok := req.GetSession().(*mcp.ServerSession)
	if !ok || ss == nil {
		return nil, errors.New("mcpguard: not a server session (install the middleware with Server.AddReceivingMiddleware)")
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, ErrClosed
	}
	s, found := g.sessions[ss]
	if !found {
		s = &session{ready: make(chan struct{})}
		g.sessions[ss] = s
		g.watchers.Add(1)
		go g.watch(ss, s)
	}
	g.mu.Unlock()

	if !found {
		g.begin(ctx, req, ss, s)
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.err != nil {
		return nil, s.err
	}
	return s, nil
}

// begin begins s's task and closes s.ready.
func (g *Guard) begin(ctx context.Context, req mcp.Request, ss *mcp.ServerSession, s *session) {
	defer close(s.ready)
	spec, err := g.callSpec(ctx, SessionInfo{Session: ss, Init: ss.InitializeParams(), Extra: req.GetExtra()})
	if err != nil {
		s.err = fmt.Errorf("mcpguard: no task for the session: %w", err)
		return
	}
	// The task outlives this request, so it does not begin from its context.
	_, s.task, s.err = g.authz.Begin(context.Background(), spec)
	if s.err != nil {
		s.err = fmt.Errorf("mcpguard: no task for the session: %w", s.err)
	}
}

// callSpec calls g.spec, recovering a panic.
func (g *Guard) callSpec(ctx context.Context, info SessionInfo) (spec authz.TaskSpec, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("spec function panicked: %v", r)
		}
	}()
	return g.spec(ctx, info)
}

// watch ends s's task when ss closes.
func (g *Guard) watch(ss *mcp.ServerSession, s *session) {
	defer g.watchers.Done()
	_ = ss.Wait() // how the session ended does not matter here
	<-s.ready
	g.mu.Lock()
	if g.sessions[ss] == s {
		delete(g.sessions, ss)
	}
	g.mu.Unlock()
	if s.task != nil {
		s.task.End()
	}
}

// Task returns the task of session ss, once it has begun and until the
// session closes. Hosts use it to reach per-task state (a contextguard
// memory, a secrets lease) from outside a tool handler.
func (g *Guard) Task(ss *mcp.ServerSession) (*authz.Task, bool) {
	g.mu.Lock()
	s, ok := g.sessions[ss]
	g.mu.Unlock()
	if !ok {
		return nil, false
	}
	select {
	case <-s.ready:
		return s.task, s.task != nil
	default:
		return nil, false
	}
}

// Close ends the task of every session, closes those sessions (their
// clients see the connection end), and waits until the goroutines watching
// them have returned. It blocks while a session's task is still beginning
// or a session has requests in flight. Guarded requests after Close fail.
// Close is idempotent: later calls return [ErrClosed].
func (g *Guard) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.closed = true
	sessions := maps.Clone(g.sessions)
	g.mu.Unlock()

	for _, s := range sessions {
		<-s.ready
		if s.task != nil {
			s.task.End() // in-flight calls are denied from here on
		}
	}
	for ss := range sessions {
		_ = ss.Close() // the client may have gone already; the session is closed either way
	}
	g.watchers.Wait()
	return nil
}
