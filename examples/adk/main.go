// Command adk runs a Google Agent Development Kit agent (ADK Go v2.2.0)
// whose every tool call is decided by taskguard, through an ADK plugin.
// A scripted model stands in for the LLM, so it needs no network and no
// API key. In one session the agent fetches a public page (allowed) and
// the cloud metadata address (denied: the tool never runs and the model is
// told why); in another session it reads a workspace file and tries a path
// traversal. Each session runs under its own task, which ends when the
// session is deleted.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/adk/v2/agent"
	"google.golang.org/adk/v2/agent/llmagent"
	"google.golang.org/adk/v2/plugin"
	"google.golang.org/adk/v2/runner"
	"google.golang.org/adk/v2/session"
	"google.golang.org/adk/v2/tool"
	"google.golang.org/adk/v2/tool/functiontool"
	"google.golang.org/genai"

	"github.com/taskguard/taskguard/authz"
)

//go:embed policy.yaml
var policyYAML []byte

const appName = "taskguard-adk"

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "adk:", err)
		os.Exit(1)
	}
}

// demoScript is what the scripted model does for each user message: one
// tool call per turn.
var demoScript = map[string][][]*genai.FunctionCall{
	"What does api.github.com/zen say? Then check the instance metadata.": {
		{call("fetch_url", map[string]any{"url": "https://api.github.com/zen"})},
		{call("fetch_url", map[string]any{"url": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"})},
	},
	"Read my plan, then the password file.": {
		{call("read_file", map[string]any{"path": "notes/plan.md"})},
		{call("read_file", map[string]any{"path": "notes/../../etc/passwd"})},
	},
}

func run(ctx context.Context, out io.Writer) error {
	d, err := newDemo(out, demoScript, viaPlugin)
	if err != nil {
		return err
	}
	defer d.tools.Close()

	for _, turn := range []struct{ user, session, prompt string }{
		{"alice", "s1", "What does api.github.com/zen say? Then check the instance metadata."},
		{"bob", "s2", "Read my plan, then the password file."},
	} {
		fmt.Fprintf(out, "%s (session %s): %s\n", turn.user, turn.session, turn.prompt)
		if err := d.ask(ctx, out, turn.user, turn.session, turn.prompt); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "tools that ran: fetch_url %d time(s), read_file %d time(s)\n", d.fetches.Load(), d.reads.Load())

	a, _ := d.tools.Task(appName, "alice", "s1")
	b, _ := d.tools.Task(appName, "bob", "s2")
	fmt.Fprintf(out, "session s1 ran under task %s (calls %v), session s2 under task %s (calls %v)\n",
		a.ID(), a.Calls(), b.ID(), b.Calls())
	if err := d.sessions.Delete(ctx, &session.DeleteRequest{AppName: appName, UserID: "alice", SessionID: "s1"}); err != nil {
		return err
	}
	fmt.Fprintf(out, "session s1 deleted: its task ended: %v; the task of s2 ended: %v\n", a.Ended(), b.Ended())
	return nil
}

// hook says where the demo installs the guard.
type hook int

const (
	viaPlugin        hook = iota // runner.Config.PluginConfig: every agent of the runner
	viaAgentCallback             // llmagent.Config's tool and model callbacks: one agent
)

// demo is the example's host: a taskguard guard, the ADK tool guard, an
// agent with two tools, the session service and a runner.
type demo struct {
	tools    *ToolGuard
	sessions session.Service
	runner   *runner.Runner
	model    *scriptedModel
	// fetches and reads count how often each tool actually ran.
	fetches, reads atomic.Int64
}

// newDemo returns the demo's host with a scripted model playing script,
// the guard installed as h says, and the agent's tools plus extra.
func newDemo(out io.Writer, script map[string][][]*genai.FunctionCall, h hook, extra ...tool.Tool) (*demo, error) {
	policy, err := authz.ParsePolicy("policy.yaml", policyYAML)
	if err != nil {
		return nil, err
	}
	g, err := authz.New(authz.WithPolicy(policy), authz.WithLogger(auditLogger(out)))
	if err != nil {
		return nil, err
	}
	tg, err := NewToolGuard(ToolGuardConfig{
		Guard: g,
		// One task per ADK session: the agent's identity, what it may do,
		// for how long.
		Spec: func(ctx agent.ReadonlyContext) (authz.TaskSpec, error) {
			return authz.TaskSpec{
				Agent:     authz.Agent{ID: "spiffe://example.org/adk/" + ctx.AgentName()},
				Purpose:   "ADK session " + ctx.SessionID() + " of " + ctx.UserID(),
				Intents:   []string{"read"},
				Tools:     []string{"fetch_url", "read_file"},
				Clearance: authz.Internal,
				MaxCalls:  map[string]int{"fetch_url": 3},
				TTL:       10 * time.Minute,
				Labels:    map[string]string{"workdir": "/workspace", "user": ctx.UserID()},
			}, nil
		},
		// How each tool's arguments become a call: intent, destination,
		// sensitivity. The arguments themselves reach policies as args.
		Tools: []authz.Tool[map[string]any]{
			{Name: "fetch_url", Intent: "read", Describe: func(a map[string]any) (authz.Call, error) {
				url, err := stringArg(a, "url")
				return authz.Call{Destination: url, Sensitivity: authz.Public}, err
			}},
			{Name: "read_file", Intent: "read", Describe: func(a map[string]any) (authz.Call, error) {
				path, err := stringArg(a, "path")
				return authz.Call{Destination: path, Sensitivity: authz.Internal}, err
			}},
		},
	})
	if err != nil {
		return nil, err
	}

	d := &demo{tools: tg, model: &scriptedModel{script: script}}
	fetch, err := functiontool.New(functiontool.Config{Name: "fetch_url", Description: "Fetches a URL."},
		func(ctx agent.Context, a fetchArgs) (toolResult, error) {
			d.fetches.Add(1)
			return toolResult{Result: "200 OK: Design for failure. (demo: nothing was fetched)"}, nil
		})
	if err != nil {
		return nil, err
	}
	read, err := functiontool.New(functiontool.Config{Name: "read_file", Description: "Reads a file of the workspace."},
		func(ctx agent.Context, a fileArgs) (toolResult, error) {
			d.reads.Add(1)
			if a.Path != "notes/plan.md" {
				return toolResult{}, errors.New("no such file: " + a.Path)
			}
			return toolResult{Result: "# Plan (demo contents of " + a.Path + ")"}, nil
		})
	if err != nil {
		return nil, err
	}

	cfg := llmagent.Config{
		Name:        "assistant",
		Description: "Answers questions with web pages and workspace files.",
		Model:       d.model,
		Instruction: "Use the tools to answer.",
		Tools:       append([]tool.Tool{fetch, read}, extra...),
	}
	var plugins []*plugin.Plugin
	switch h {
	case viaPlugin:
		p, err := tg.Plugin()
		if err != nil {
			return nil, err
		}
		plugins = append(plugins, p)
	case viaAgentCallback:
		cfg.BeforeToolCallbacks = []llmagent.BeforeToolCallback{tg.BeforeToolCallback}
		cfg.AfterToolCallbacks = []llmagent.AfterToolCallback{tg.AfterToolCallback}
		cfg.BeforeModelCallbacks = []llmagent.BeforeModelCallback{tg.BeforeModelCallback}
	}
	a, err := llmagent.New(cfg)
	if err != nil {
		return nil, err
	}
	// Deleting a session through this service ends the session's task.
	d.sessions = tg.SessionService(session.InMemoryService())
	d.runner, err = runner.New(runner.Config{
		AppName:           appName,
		Agent:             a,
		SessionService:    d.sessions,
		AutoCreateSession: true,
		PluginConfig:      runner.PluginConfig{Plugins: plugins},
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ask runs one user message through the agent and prints its events.
func (d *demo) ask(ctx context.Context, out io.Writer, user, sessionID, prompt string) error {
	msg := genai.NewContentFromText(prompt, genai.RoleUser)
	for ev, err := range d.runner.Run(ctx, user, sessionID, msg, agent.RunConfig{}) {
		if err != nil {
			return err
		}
		if ev.Content == nil {
			continue
		}
		for _, p := range ev.Content.Parts {
			switch {
			case p.FunctionCall != nil:
				fmt.Fprintf(out, "   model calls %s %v\n", p.FunctionCall.Name, p.FunctionCall.Args)
			case p.FunctionResponse != nil:
				fmt.Fprintf(out, "   %s returns %v\n", p.FunctionResponse.Name, p.FunctionResponse.Response)
			case p.Text != "":
				fmt.Fprintf(out, "   model says: %s\n", p.Text)
			}
		}
	}
	return nil
}

// Tool arguments and results, as the model sees them.
type fetchArgs struct {
	URL string `json:"url"`
}
type fileArgs struct {
	Path string `json:"path"`
}
type toolResult struct {
	Result string `json:"result"`
}

func stringArg(args map[string]any, key string) (string, error) {
	s, ok := args[key].(string)
	if !ok {
		return "", errors.New(key + " must be a string")
	}
	return s, nil
}

// auditLogger writes the guard's audit records as slog text lines with
// the fields a reader of the demo needs, so its output reads the same on
// every run. A real host would log every field with slog.NewJSONHandler.
func auditLogger(out io.Writer) *slog.Logger {
	keep := map[string]bool{slog.MessageKey: true, "tool": true, "destination": true, "effect": true, "rule": true, "reason": true}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 || !keep[a.Key] {
				return slog.Attr{}
			}
			return a
		},
	}))
}
