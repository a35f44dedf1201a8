// Command eino guards the tools of a CloudWeGo eino ToolsNode with
// taskguard. A scripted "model" sends tool calls through a compiled eino
// chain; the taskguard middleware (guard.go) authorizes each call for the
// task in the context before the tool runs. No network, no real LLM.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/cloudwego/eino/components/tool"
	"github.com/cloudwego/eino/components/tool/utils"
	"github.com/cloudwego/eino/compose"
	"github.com/cloudwego/eino/schema"
	"github.com/taskguard/taskguard/authz"
)

//go:embed policy.yaml
var policyYAML []byte

// indexes are the search tool's document indexes and their sensitivity.
var indexes = map[string]authz.Sensitivity{
	"handbook":    authz.Public,
	"engineering": authz.Internal,
	"payroll":     authz.Confidential,
}

type fetchArgs struct {
	URL string `json:"url" jsonschema:"description=the URL to fetch"`
}

type searchArgs struct {
	Query string `json:"query" jsonschema:"description=what to search for"`
	Index string `json:"index" jsonschema:"description=handbook, engineering or payroll"`
}

// demoTools are the eino tools of the demo: fetch is invokable, search is
// streamable. The counters tell how often each implementation really ran.
type demoTools struct {
	fetch, search     tool.BaseTool
	fetched, searched atomic.Int64
}

func newDemoTools() (*demoTools, error) {
	d := &demoTools{}
	var err error
	d.fetch, err = utils.InferTool("fetch", "Fetch a web page.",
		func(ctx context.Context, a fetchArgs) (string, error) {
			d.fetched.Add(1)
			return "200 OK from " + a.URL, nil // a real tool would fetch a.URL here
		})
	if err != nil {
		return nil, err
	}
	d.search, err = utils.InferStreamTool("search", "Search a document index; hits are streamed.",
		func(ctx context.Context, a searchArgs) (*schema.StreamReader[string], error) {
			d.searched.Add(1)
			return schema.StreamReaderFromArray([]string{
				fmt.Sprintf("%s: %q hit 1", a.Index, a.Query), ", hit 2"}), nil
		})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// guardedTools tells taskguard how to see each eino tool: its name in
// policies, its intent, and where a call goes with what sensitivity.
func guardedTools() map[string]authz.Tool[map[string]any] {
	return map[string]authz.Tool[map[string]any]{
		"fetch": {Name: "http.fetch", Intent: "read",
			Describe: func(a map[string]any) (authz.Call, error) {
				u, _ := a["url"].(string)
				if u == "" {
					return authz.Call{}, errors.New("url is required")
				}
				return authz.Call{Destination: u, Sensitivity: authz.Public}, nil
			}},
		"search": {Name: "docs.search", Intent: "search",
			Describe: func(a map[string]any) (authz.Call, error) {
				index, _ := a["index"].(string)
				s, ok := indexes[index]
				if !ok {
					return authz.Call{}, fmt.Errorf("unknown index %q", index)
				}
				return authz.Call{Destination: "db://" + index, Sensitivity: s}, nil
			}},
	}
}

// newGuard compiles the demo policy.
func newGuard() (*authz.Guard, error) {
	policy, err := authz.ParsePolicy("eino-demo", policyYAML)
	if err != nil {
		return nil, err
	}
	return authz.New(authz.WithPolicy(policy))
}

// newToolsNode builds an eino ToolsNode whose every tool call passes the
// taskguard middleware.
func newToolsNode(ctx context.Context, g *authz.Guard, tools []tool.BaseTool, onDeny func(context.Context, *authz.DeniedError) (string, error)) (*compose.ToolsNode, error) {
	return compose.NewToolNode(ctx, &compose.ToolsNodeConfig{
		Tools: tools,
		ToolCallMiddlewares: []compose.ToolMiddleware{
			Middleware(g, Config{Tools: guardedTools(), OnDeny: onDeny}),
		},
	})
}

// toolCalls is what a model would send: an assistant message with calls.
func toolCalls(calls ...[2]string) *schema.Message {
	msg := schema.AssistantMessage("", nil)
	for i, c := range calls {
		msg.ToolCalls = append(msg.ToolCalls, schema.ToolCall{
			ID: fmt.Sprintf("call-%d", i+1), Type: "function",
			Function: schema.FunctionCall{Name: c[0], Arguments: c[1]},
		})
	}
	return msg
}

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "eino example:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	ctx := context.Background()
	g, err := newGuard()
	if err != nil {
		return err
	}
	tools, err := newDemoTools()
	if err != nil {
		return err
	}
	node, err := newToolsNode(ctx, g, []tool.BaseTool{tools.fetch, tools.search}, nil)
	if err != nil {
		return err
	}
	// The ToolsNode runs inside a compiled chain, as in an agent graph; the
	// task travels in the context through the eino runtime to the tools.
	agent, err := compose.NewChain[*schema.Message, []*schema.Message]().AppendToolsNode(node).Compile(ctx)
	if err != nil {
		return err
	}

	tctx, task, err := g.Begin(ctx, authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/researcher"},
		Intents:   []string{"read", "search"},
		Tools:     []string{"http.fetch", "docs.search"},
		Clearance: authz.Internal,
		TTL:       5 * time.Minute,
	})
	if err != nil {
		return err
	}
	defer task.End()
	fmt.Fprintf(out, "task for %s: intents read, search; clearance %s\n", task.Agent().ID, task.Clearance())

	steps := []struct {
		say    string
		ctx    context.Context
		stream bool
		msg    *schema.Message
	}{
		{"the model fetches a page and, prompt-injected, cloud metadata (Invoke)", tctx, false, toolCalls(
			[2]string{"fetch", `{"url":"https://api.github.com/zen"}`},
			[2]string{"fetch", `{"url":"http://169.254.169.254/latest/meta-data/"}`})},
		{"the model searches the handbook and the payroll index (Stream)", tctx, true, toolCalls(
			[2]string{"search", `{"query":"onboarding","index":"handbook"}`},
			[2]string{"search", `{"query":"salaries","index":"payroll"}`})},
		{"the model smuggles a second URL past the guard in a differently cased key", tctx, false, toolCalls(
			[2]string{"fetch", `{"url":"https://api.github.com/zen","URL":"http://169.254.169.254/"}`})},
		{"a call from a context without a task", ctx, false, toolCalls(
			[2]string{"fetch", `{"url":"https://api.github.com/zen"}`})},
	}
	for i, s := range steps {
		fmt.Fprintf(out, "\n%d. %s\n", i+1, s.say)
		var results []*schema.Message
		if s.stream {
			results, err = streamAll(s.ctx, agent, s.msg)
		} else {
			results, err = agent.Invoke(s.ctx, s.msg)
		}
		if err != nil {
			return err
		}
		for j, r := range results {
			fmt.Fprintf(out, "   %s %s\n     -> %s\n", s.msg.ToolCalls[j].Function.Name, s.msg.ToolCalls[j].Function.Arguments, r.Content)
		}
	}
	fmt.Fprintf(out, "\nthe tools really ran: fetch %d, search %d\n", tools.fetched.Load(), tools.searched.Load())
	taint := task.Taint()
	fmt.Fprintf(out, "the task has read untrusted tool output: %v, from %v\n", taint.Untrusted, taint.Sources)
	return nil
}

// streamAll runs the chain in streaming mode and joins the streamed tool
// messages.
func streamAll(ctx context.Context, r compose.Runnable[*schema.Message, []*schema.Message], msg *schema.Message) ([]*schema.Message, error) {
	sr, err := r.Stream(ctx, msg)
	if err != nil {
		return nil, err
	}
	defer sr.Close()
	var chunks [][]*schema.Message
	for {
		chunk, err := sr.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		chunks = append(chunks, chunk)
	}
	return schema.ConcatMessageArray(chunks)
}
