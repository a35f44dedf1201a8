package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync"

	"google.golang.org/adk/v2/agent"
	"google.golang.org/adk/v2/model"
	"google.golang.org/adk/v2/plugin"
	"google.golang.org/adk/v2/session"
	"google.golang.org/adk/v2/tool"

	"github.com/taskguard/taskguard/authz"
)

var (
	// ErrClosed is returned by ToolGuard.Close after the first call.
	ErrClosed = errors.New("adk: tool guard closed")
	// ErrUnguardedTool fails a model request, through the plugin, that
	// offers a tool whose calls no guard would see.
	ErrUnguardedTool = errors.New("adk: tool cannot be guarded")
)

// ToolGuardConfig configures NewToolGuard.
type ToolGuardConfig struct {
	// Guard decides the calls. Required.
	Guard *authz.Guard
	// Spec describes the task of an ADK session. It is called once per
	// session, on the session's first tool call, with the context of that
	// call (AppName, UserID, SessionID, AgentName), so in a tree of agents
	// the spec should cover every agent that shares the session. Required.
	// An error or a panic denies the call, and Spec is asked again on the
	// next one.
	Spec func(ctx agent.ReadonlyContext) (authz.TaskSpec, error)
	// Tools describe the ADK tools by name: intent, destination and
	// sensitivity from the call's arguments (authz.Tool.Describe receives
	// them as JSON-decoded args, integers as int64), and how a successful
	// call's result taints the task (authz.Tool.Output; the zero value
	// records the results of read and search calls as untrusted content).
	// A call of a tool not listed here is denied (authz.RuleDescribe).
	Tools []authz.Tool[map[string]any]
}

// ToolGuard decides every tool call of ADK agents with taskguard. Each ADK
// session (app, user, session ID) runs under its own taskguard task, begun
// on the session's first tool call, so what one session has seen, spent or
// been approved never reaches another. Once an allowed tool has returned
// without error, its result taints the session's task
// (authz.Guard.ObserveOutput with the tool's authz.Tool.Output): by default
// the results of read and search calls count as untrusted content. Install
// it on a runner with Plugin (every agent the runner runs), or on one agent
// as its BeforeToolCallback, AfterToolCallback and BeforeModelCallback.
//
// ADK v2.2.0 tells plugins when an invocation ends, not when a session
// does, so a session's task lives until EndSession, a Delete through
// SessionService, Close, or its TTL. After its TTL the session's calls are
// denied (authz.RuleTaskEnded) until the host ends the session.
//
// A ToolGuard is safe for concurrent use (ADK runs the calls of one model
// response in parallel). Create it with NewToolGuard; the zero value is not
// usable.
type ToolGuard struct {
	guard *authz.Guard
	spec  func(agent.ReadonlyContext) (authz.TaskSpec, error)
	tools map[string]authz.Tool[map[string]any] // immutable after NewToolGuard

	// mu guards tasks, running and closed.
	mu    sync.Mutex
	tasks map[sessionKey]sessionTask
	// running holds the allowed calls whose tool has not returned yet,
	// for AfterToolCallback to record their results.
	running map[callKey]runningCall
	closed  bool
}

type sessionKey struct{ app, user, session string }

// callKey names one tool call of a session: ADK gives every function call
// of a model response an ID (the model's, or one ADK generates).
type callKey struct {
	session  sessionKey
	tool, id string
}

// runningCall is an allowed call whose result is not recorded yet: the
// call as authorized, how its result taints, and the context Begin
// returned for the task that allowed it.
type runningCall struct {
	call   authz.Call
	output authz.Output
	task   context.Context
}

// sessionTask is a session's task and the context Begin returned for it,
// which carries nothing but the task (it derives from context.Background).
type sessionTask struct {
	task *authz.Task
	ctx  context.Context
}

// NewToolGuard returns a ToolGuard for cfg.
func NewToolGuard(cfg ToolGuardConfig) (*ToolGuard, error) {
	if cfg.Guard == nil {
		return nil, errors.New("adk: ToolGuardConfig.Guard is nil")
	}
	if cfg.Spec == nil {
		return nil, errors.New("adk: ToolGuardConfig.Spec is nil")
	}
	tg := &ToolGuard{
		guard:   cfg.Guard,
		spec:    cfg.Spec,
		tools:   make(map[string]authz.Tool[map[string]any], len(cfg.Tools)),
		tasks:   make(map[sessionKey]sessionTask),
		running: make(map[callKey]runningCall),
	}
	for _, t := range cfg.Tools {
		if t.Name == "" {
			return nil, errors.New("adk: a tool has no name")
		}
		if _, dup := tg.tools[t.Name]; dup {
			return nil, fmt.Errorf("adk: tool %q is described twice", t.Name)
		}
		tg.tools[t.Name] = t
	}
	return tg, nil
}

// Plugin returns an ADK plugin named "taskguard" with tg's
// BeforeToolCallback, AfterToolCallback and BeforeModelCallback. Pass it in
// runner.Config.PluginConfig.Plugins; it then guards every tool call of
// every agent the runner runs, before the agents' own callbacks. Its Close
// is tg.Close (the v2.2.0 runner never closes plugins, so the host calls
// tg.Close itself).
func (tg *ToolGuard) Plugin() (*plugin.Plugin, error) {
	return plugin.New(plugin.Config{
		Name:                "taskguard",
		BeforeToolCallback:  tg.BeforeToolCallback,
		AfterToolCallback:   tg.AfterToolCallback,
		BeforeModelCallback: tg.BeforeModelCallback,
		CloseFunc:           tg.Close,
	})
}

// streamingTool is what ADK's flow checks for before it runs a tool without
// callbacks (internal/toolinternal.StreamingFunctionTool).
type streamingTool interface {
	RunStream(ctx agent.Context, args any) iter.Seq2[string, error]
}

// BeforeModelCallback is an llmagent.BeforeModelCallback that fails a
// model request offering the model a tool whose calls would bypass
// BeforeToolCallback, with ErrUnguardedTool: ADK v2.2.0 runs streaming
// function tools (functiontool.NewStreaming) without any tool callback, so
// an agent with one does not run at all. It lets every other request pass.
func (tg *ToolGuard) BeforeModelCallback(ctx agent.Context, req *model.LLMRequest) (*model.LLMResponse, error) {
	for name, t := range req.Tools {
		if _, ok := t.(streamingTool); ok {
			return nil, fmt.Errorf("%w: %q is a streaming tool, which ADK runs without tool callbacks", ErrUnguardedTool, name)
		}
	}
	return nil, nil
}

// BeforeToolCallback is an llmagent.BeforeToolCallback that authorizes the
// call of t with args under the task of ctx's session (beginning it on the
// session's first call). It returns (nil, nil) when the call may proceed,
// so ADK runs the tool, and otherwise {"error": reason}, which ADK sends to
// the model as the tool's response without running the tool. It never
// returns an error. It blocks while an approver decides an ask. args is
// not modified.
//
// An allowed call is remembered, by session and function call ID, until
// AfterToolCallback sees the tool return. When ADK gave the call no ID, or
// another call of the session with the same tool and ID is still running,
// the results cannot be told apart: the call's result is then recorded on
// the task at once, as if the tool had succeeded, so that the task is never
// less tainted than what the model reads.
func (tg *ToolGuard) BeforeToolCallback(ctx agent.Context, t tool.Tool, args map[string]any) (map[string]any, error) {
	name := t.Name()
	deny := func(reason string) (map[string]any, error) {
		return map[string]any{"error": "taskguard denied " + name + ": " + reason}, nil
	}
	st, err := tg.sessionTask(ctx)
	if err != nil {
		return deny(err.Error())
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return deny("arguments are not JSON: " + err.Error())
	}
	spec, ok := tg.tools[name]
	if !ok {
		spec = authz.Tool[map[string]any]{Name: name,
			Describe: func(map[string]any) (authz.Call, error) {
				return authz.Call{}, errors.New("the tool has no taskguard description")
			}}
	}
	c, err := tg.authorize(authz.ContextWithTask(ctx, st.task), spec, raw)
	var denied *authz.DeniedError
	switch {
	case err == nil:
		tg.started(callKey{sessionOf(ctx), name, ctx.FunctionCallID()},
			runningCall{call: c, output: spec.Output, task: st.ctx})
		return nil, nil
	case errors.As(err, &denied):
		return deny(denied.Decision.Reason + " [rule " + denied.Decision.Rule + "]")
	default:
		return deny(err.Error())
	}
}

// AfterToolCallback is an llmagent.AfterToolCallback that records on the
// session's task the result of a call BeforeToolCallback allowed, once its
// tool has returned without error (authz.Guard.ObserveOutput with the
// tool's authz.Tool.Output): by default the result of a read or search
// call taints the task as untrusted content of the call's sensitivity. A
// denied call (the tool did not run) and a failed one record nothing. It
// always returns (nil, nil): the tool's result and error go on unchanged.
// Install it with BeforeToolCallback; Plugin does. ADK skips it when an
// earlier plugin's AfterToolCallback answers, so the taskguard plugin goes
// before plugins that replace tool results.
func (tg *ToolGuard) AfterToolCallback(ctx agent.Context, t tool.Tool, _, _ map[string]any, err error) (map[string]any, error) {
	k := callKey{sessionOf(ctx), t.Name(), ctx.FunctionCallID()}
	tg.mu.Lock()
	rc, ok := tg.running[k]
	delete(tg.running, k)
	tg.mu.Unlock()
	if ok && err == nil {
		tg.guard.ObserveOutput(rc.task, rc.call, rc.output)
	}
	return nil, nil
}

// authorize describes the call of tool t with JSON arguments raw and
// decides it under the task in ctx, as authz.WrapJSON does: the arguments
// are decoded with authz.DecodeArgs, a failing or panicking Describe
// denies (authz.RuleDescribe, audited), and the call's Args default to the
// decoded arguments. It returns the call it decided; the error is nil
// (allowed) or an *authz.DeniedError.
func (tg *ToolGuard) authorize(ctx context.Context, t authz.Tool[map[string]any], raw []byte) (authz.Call, error) {
	args, err := authz.DecodeArgs(raw)
	if err != nil {
		return authz.Call{}, tg.guard.DescribeError(ctx, t.Name, err)
	}
	c, err := t.Call(args)
	if err != nil {
		return authz.Call{}, tg.guard.DescribeError(ctx, t.Name, err)
	}
	if c.Args == nil {
		c.Args = args
	}
	return c, tg.guard.Authorize(ctx, c)
}

// started remembers an allowed call until its tool returns. A call that
// cannot be told apart from another (no ID, or the ID of a call still
// running) has its result recorded at once, and so has the other one.
func (tg *ToolGuard) started(k callKey, rc runningCall) {
	tg.mu.Lock()
	other, clash := tg.running[k]
	if k.id != "" && !clash && !tg.closed {
		tg.running[k] = rc
		tg.mu.Unlock()
		return
	}
	delete(tg.running, k)
	tg.mu.Unlock()
	if clash {
		tg.guard.ObserveOutput(other.task, other.call, other.output)
	}
	tg.guard.ObserveOutput(rc.task, rc.call, rc.output)
}

// sessionOf returns the key of ctx's session.
func sessionOf(ctx agent.ReadonlyContext) sessionKey {
	return sessionKey{ctx.AppName(), ctx.UserID(), ctx.SessionID()}
}

// sessionTask returns the task of ctx's session, beginning it if the
// session has none.
func (tg *ToolGuard) sessionTask(ctx agent.Context) (sessionTask, error) {
	key := sessionOf(ctx)
	tg.mu.Lock()
	st, ok := tg.tasks[key]
	closed := tg.closed
	tg.mu.Unlock()
	switch {
	case closed:
		return sessionTask{}, ErrClosed
	case ok:
		return st, nil
	}

	// Spec is the host's code: call it without the lock held.
	spec, err := tg.callSpec(ctx)
	if err != nil {
		return sessionTask{}, fmt.Errorf("no task for this session: %w", err)
	}
	taskCtx, task, err := tg.guard.Begin(context.Background(), spec)
	if err != nil {
		return sessionTask{}, fmt.Errorf("no task for this session: %w", err)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.closed {
		task.End()
		return sessionTask{}, ErrClosed
	}
	if other, ok := tg.tasks[key]; ok { // a parallel call of the session won
		task.End()
		return other, nil
	}
	st = sessionTask{task: task, ctx: taskCtx}
	tg.tasks[key] = st
	return st, nil
}

// callSpec calls the host's Spec, recovering a panic.
func (tg *ToolGuard) callSpec(ctx agent.ReadonlyContext) (spec authz.TaskSpec, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("spec panicked: %v", r)
		}
	}()
	return tg.spec(ctx)
}

// Task returns the task of a session, if it has one.
func (tg *ToolGuard) Task(app, user, sessionID string) (*authz.Task, bool) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	st, ok := tg.tasks[sessionKey{app, user, sessionID}]
	return st.task, ok
}

// EndSession ends the task of a session and forgets it: its later calls,
// if any, run under a new task, and the results of its calls still running
// are not recorded. Ending a session without a task does nothing.
func (tg *ToolGuard) EndSession(app, user, sessionID string) {
	key := sessionKey{app, user, sessionID}
	tg.mu.Lock()
	st, ok := tg.tasks[key]
	delete(tg.tasks, key)
	for k := range tg.running {
		if k.session == key {
			delete(tg.running, k)
		}
	}
	tg.mu.Unlock()
	if ok {
		st.task.End() // runs the task's OnEnd hooks: not under the lock
	}
}

// Close ends every session's task; later tool calls are denied. It returns
// nil the first time and ErrClosed afterwards.
func (tg *ToolGuard) Close() error {
	tg.mu.Lock()
	if tg.closed {
		tg.mu.Unlock()
		return ErrClosed
	}
	tg.closed = true
	tasks := tg.tasks
	tg.tasks = nil
	clear(tg.running)
	tg.mu.Unlock()
	for _, st := range tasks {
		st.task.End()
	}
	return nil
}

// SessionService returns svc with a Delete that also ends the session's
// task (EndSession), even when svc's Delete fails. Give it to the runner
// (runner.Config.SessionService) so that deleting a session ends its task.
func (tg *ToolGuard) SessionService(svc session.Service) session.Service {
	return endingSessions{Service: svc, tg: tg}
}

type endingSessions struct {
	session.Service
	tg *ToolGuard
}

func (s endingSessions) Delete(ctx context.Context, req *session.DeleteRequest) error {
	err := s.Service.Delete(ctx, req)
	s.tg.EndSession(req.AppName, req.UserID, req.SessionID)
	return err
}
