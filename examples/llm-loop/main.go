// Command llm-loop runs the tool-call loop of an agent on OpenAI's Chat
// Completions and Anthropic's Messages API, with every tool call authorized
// by taskguard before it is dispatched. The model's responses are recorded
// in testdata/ (no network, no API key): each asks for four tool calls, two
// of which are attacks (SSRF against the cloud metadata address, a path
// traversal). Allowed calls run; denied ones never reach a tool and go back
// to the model as error results built with the SDKs' param constructors.
//
// Against the real APIs, pass client.Chat.Completions.New or
// client.Messages.New instead of the replay.
package main

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	openaioption "github.com/openai/openai-go/v3/option"
	"github.com/taskguard/taskguard/authz"
)

//go:embed testdata/*.json
var recorded embed.FS

//go:embed policy.yaml
var policyYAML []byte

const workdir = "/workspace"

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "llm-loop:", err)
		os.Exit(1)
	}
}

// toolbox holds the local tools; it records every call that reaches one.
// It is safe for concurrent use.
type toolbox struct {
	mu  sync.Mutex
	ran []string // "tool arg", requires mu held
}

func (tb *toolbox) record(tool, arg string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.ran = append(tb.ran, tool+" "+arg)
}

// Ran returns the calls that reached a tool, in order.
func (tb *toolbox) Ran() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.ran...)
}

// stringArg returns args[key] if it is a string.
func stringArg(args map[string]any, key string) (string, error) {
	s, ok := args[key].(string)
	if !ok {
		return "", fmt.Errorf("argument %q must be a string", key)
	}
	return s, nil
}

// resolve turns read_file's path argument into the absolute path the tool
// opens. Describe gives the guard that same path, so the guard decides on
// the file the tool reads ("file:///etc/passwd" is a file name here, not a
// URL, and "README.md" is not a bare host name).
func resolve(p string) string {
	if !path.IsAbs(p) {
		p = path.Join(workdir, p)
	}
	return path.Clean(p)
}

// tools are the local tools. Describe and Run read the same decoded
// arguments the same way.
func (tb *toolbox) tools() []Tool {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	return []Tool{{
		Name:        "fetch_url",
		Description: "Fetch a web page with HTTP GET and return its body.",
		Parameters:  map[string]any{"url": str("The absolute URL to fetch.")},
		Required:    []string{"url"},
		Guard: authz.Tool[map[string]any]{Name: "http.fetch", Intent: "read",
			Describe: func(args map[string]any) (authz.Call, error) {
				u, err := stringArg(args, "url")
				return authz.Call{Destination: u, Sensitivity: authz.Public}, err
			}},
		Run: func(_ context.Context, args map[string]any) (string, error) {
			u, _ := stringArg(args, "url")
			tb.record("fetch_url", u)
			if strings.HasPrefix(u, "https://api.github.com/repos/taskguard/taskguard") {
				return `200 OK {"full_name":"taskguard/taskguard","description":"Authorization for AI agents"}`, nil
			}
			return "404 Not Found", nil
		},
	}, {
		Name:        "read_file",
		Description: "Read a text file of the workspace.",
		Parameters:  map[string]any{"path": str("The file's path, absolute or relative to the workspace.")},
		Required:    []string{"path"},
		Guard: authz.Tool[map[string]any]{Name: "fs.read", Intent: "read",
			Describe: func(args map[string]any) (authz.Call, error) {
				p, err := stringArg(args, "path")
				return authz.Call{Destination: resolve(p), Sensitivity: authz.Internal}, err
			}},
		Run: func(_ context.Context, args map[string]any) (string, error) {
			p, _ := stringArg(args, "path")
			p = resolve(p)
			tb.record("read_file", p)
			if p == "/workspace/notes/plan.md" {
				return "# Plan\n- add the langchaingo and llm-loop examples\n", nil
			}
			return "", fmt.Errorf("%s: no such file", p)
		},
	}, {
		Name:        "send_email",
		Description: "Send an email.",
		Parameters:  map[string]any{"to": str("The recipient's address."), "body": str("The message.")},
		Required:    []string{"to", "body"},
		Guard: authz.Tool[map[string]any]{Name: "mail.send", Intent: "export",
			Describe: func(args map[string]any) (authz.Call, error) {
				to, err := stringArg(args, "to")
				return authz.Call{Destination: "mailto:" + to, Sensitivity: authz.Internal}, err
			}},
		Run: func(_ context.Context, args map[string]any) (string, error) {
			to, _ := stringArg(args, "to")
			tb.record("send_email", to)
			return "sent", nil
		},
	}}
}

// newGuard returns the guard with the example policy.
func newGuard() (*authz.Guard, error) {
	policy, err := authz.ParsePolicy("policy.yaml", policyYAML)
	if err != nil {
		return nil, err
	}
	return authz.New(authz.WithPolicy(policy))
}

// beginTask starts the agent's task: read the web and the workspace. Email
// is not among its tools, so the model is never offered send_email.
func beginTask(g *authz.Guard) (context.Context, *authz.Task, error) {
	return g.Begin(context.Background(), authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/assistant"},
		Purpose:   "summarise the repository and the plan",
		Intents:   []string{"read"},
		Tools:     []string{"http.fetch", "fs.read"},
		Clearance: authz.Internal,
		TTL:       5 * time.Minute,
		Labels:    map[string]string{"workdir": workdir},
	})
}

// replay stands in for an API client: it answers with the recorded
// responses in order and keeps the requests it was sent. It is safe for
// concurrent use.
type replay[P, R, O any] struct {
	mu       sync.Mutex
	files    []string // requires mu held
	requests []P      // requires mu held
}

func (r *replay[P, R, O]) next(_ context.Context, p P, _ ...O) (*R, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, p)
	if len(r.files) == 0 {
		return nil, fmt.Errorf("replay: no recorded response for request %d", len(r.requests))
	}
	data, err := recorded.ReadFile("testdata/" + r.files[0])
	if err != nil {
		return nil, err
	}
	r.files = r.files[1:]
	res := new(R)
	if err := json.Unmarshal(data, res); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return res, nil
}

// Requests returns the requests sent so far.
func (r *replay[P, R, O]) Requests() []P {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]P(nil), r.requests...)
}

type openAIReplay = replay[openai.ChatCompletionNewParams, openai.ChatCompletion, openaioption.RequestOption]
type anthropicReplay = replay[anthropic.MessageNewParams, anthropic.Message, anthropicoption.RequestOption]

const question = "Summarise the taskguard repository and my plan in notes/plan.md."

func run(out io.Writer) error {
	g, err := newGuard()
	if err != nil {
		return err
	}
	tb := &toolbox{}
	reg, err := NewRegistry(g, tb.tools()...)
	if err != nil {
		return err
	}
	ctx, task, err := beginTask(g)
	if err != nil {
		return err
	}
	defer task.End()

	oaTools := reg.OpenAITools(ctx)
	fmt.Fprintf(out, "tools offered to the model: %s (send_email is not a tool of this task)\n", toolNames(oaTools))

	fmt.Fprintln(out, "\n== OpenAI Chat Completions")
	oa := &openAIReplay{files: []string{"openai_tool_calls.json", "openai_final.json"}}
	final, results, err := RunOpenAI(ctx, reg, oa.next, openai.ChatCompletionNewParams{
		Model:    openai.ChatModelGPT5_4Mini,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(question)},
		Tools:    oaTools,
	}, 4)
	if err != nil {
		return err
	}
	printResults(out, results)
	reqs := oa.Requests()
	if err := printJSON(out, "tool messages sent back", reqs[len(reqs)-1].Messages[2:]); err != nil {
		return err
	}
	fmt.Fprintf(out, "final answer: %s\n", final.Choices[0].Message.Content)

	fmt.Fprintln(out, "\n== Anthropic Messages")
	an := &anthropicReplay{files: []string{"anthropic_tool_use.json", "anthropic_final.json"}}
	msg, results2, err := RunAnthropic(ctx, reg, an.next, anthropic.MessageNewParams{
		Model:     anthropic.ModelClaudeSonnet4_6,
		MaxTokens: 1024,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(question))},
		Tools:     reg.AnthropicTools(ctx),
	}, 4)
	if err != nil {
		return err
	}
	printResults(out, results2)
	areqs := an.Requests()
	last := areqs[len(areqs)-1].Messages
	if err := printJSON(out, "tool results sent back", last[len(last)-1].OfUser.Content); err != nil {
		return err
	}
	fmt.Fprintf(out, "final answer: %s\n", msg.Content[0].Text)

	fmt.Fprintf(out, "\ncalls that reached a tool: %s\n", strings.Join(tb.Ran(), ", "))
	return nil
}

func toolNames(ts []openai.ChatCompletionToolUnionParam) string {
	var names []string
	for _, t := range ts {
		names = append(names, t.OfFunction.Function.Name)
	}
	return strings.Join(names, ", ")
}

func printResults(out io.Writer, results []Result) {
	for _, r := range results {
		verdict := "ran"
		if !r.Dispatched {
			verdict = "DENIED"
		}
		fmt.Fprintf(out, "%-6s %s %s\n       -> %q\n", verdict, r.Tool, r.Args, r.Text())
	}
}

// printJSON prints each param as the JSON the SDK would send, one a line.
func printJSON[T any](out io.Writer, title string, params []T) error {
	fmt.Fprintf(out, "%s:\n", title)
	for _, p := range params {
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %s\n", b)
	}
	return nil
}
