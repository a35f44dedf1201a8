package main

import (
	"context"
	"errors"

	"github.com/taskguard/taskguard/authz"
	"github.com/tmc/langchaingo/tools"
)

// Guarded returns t guarded by g. Its Call describes the input with
// describe, authorizes the call under the task in ctx ([authz.TaskFrom])
// and calls t only if the guard allows it. Name and Description are t's,
// and the call's Tool is always t.Name(). The returned tool is safe for
// concurrent use when t is, and does not modify the input.
//
// describe must read the input exactly as t does (same trimming, same
// parsing) and set the call's Intent: the guard decides what describe says,
// not what t then does. A nil describe leaves the intent empty, so every
// call is denied ([authz.RuleCall]); an error or a panic in describe
// denies ([authz.RuleDescribe]).
//
// On a deny t is not called and Call returns the denial as its text
// ("authz: http.fetch denied by no-private-network: ...": the tool, rule and
// reason, never the input) with a nil error. langchaingo's agent executor
// shows a tool's text to the model as the next Observation, so the model
// learns that the call was refused and why and can try something else; a
// non-nil error would abort Executor.Call instead. The guard's audit log
// ([authz.WithLogger]) records every decision for the host. Errors of t
// itself are returned unchanged.
//
// Tool results taint the task by default: when t returns without error,
// the result is recorded on the task as [authz.Wrap] records it (the zero
// [authz.Output]): the result of a call whose intent reads data (read,
// search, [authz.WithObservedIntents]) makes the task untrusted and raises
// its sensitivity to the call's. A denied or failed call records nothing.
func Guarded(g *authz.Guard, t tools.Tool, describe func(input string) (authz.Call, error)) tools.Tool {
	return &guardedTool{
		inner: t,
		call: authz.Wrap(g, authz.Tool[string]{Name: t.Name(), Describe: describe},
			func(ctx context.Context, input string) (string, error) { return t.Call(ctx, input) }),
	}
}

// guardedTool is the tools.Tool that Guarded returns.
type guardedTool struct {
	inner tools.Tool
	call  func(ctx context.Context, input string) (string, error)
}

func (g *guardedTool) Name() string        { return g.inner.Name() }
func (g *guardedTool) Description() string { return g.inner.Description() }

// Call authorizes the call and runs the inner tool, or returns the denial
// as text.
func (g *guardedTool) Call(ctx context.Context, input string) (string, error) {
	out, err := g.call(ctx, input)
	if denied, ok := errors.AsType[*authz.DeniedError](err); ok {
		return denied.Error(), nil
	}
	return out, err
}
