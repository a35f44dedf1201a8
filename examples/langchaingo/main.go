// Command langchaingo guards langchaingo tools with taskguard: every
// tools.Tool is wrapped by [Guarded], which authorizes each call under the
// task in the context before the tool runs. It calls two guarded tools (a
// calculator and an HTTP fetch that never touches the network) directly,
// then runs them through langchaingo's agent executor driven by a scripted
// model, and finally without a task. Denied calls never reach the tools;
// the model reads the denial as the tool's observation.
package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskguard/taskguard/authz"
	"github.com/tmc/langchaingo/agents"
	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/schema"
	"github.com/tmc/langchaingo/tools"
)

// policyYAML allows short calculations and HTTPS reads, and denies private
// addresses and cloud metadata whatever the scheme.
//
//go:embed policy.yaml
var policyYAML []byte

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "langchaingo:", err)
		os.Exit(1)
	}
}

// demoTools are the inner tools and their guarded wrappers.
type demoTools struct {
	calc, fetch *counted     // the inner tools, counting the calls that reach them
	guarded     []tools.Tool // calculator, http.fetch, guarded
}

// newDemoTools wraps langchaingo's calculator and a fake fetch tool with g.
// Each describe reads the input exactly as its tool does.
func newDemoTools(g *authz.Guard) *demoTools {
	d := &demoTools{
		calc:  &counted{Tool: tools.Calculator{}},
		fetch: &counted{Tool: fetchTool{}},
	}
	d.guarded = []tools.Tool{
		Guarded(g, d.calc, func(input string) (authz.Call, error) {
			return authz.Call{Intent: "compute", Args: map[string]any{"expression": input}}, nil
		}),
		Guarded(g, d.fetch, func(input string) (authz.Call, error) {
			return authz.Call{Intent: "read", Destination: strings.TrimSpace(input), Sensitivity: authz.Public}, nil
		}),
	}
	return d
}

// beginTask starts the task the agent works under.
func beginTask(g *authz.Guard) (context.Context, *authz.Task, error) {
	return g.Begin(context.Background(), authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/langchaingo"},
		Purpose:   "answer a question with a calculator and the web",
		Intents:   []string{"compute", "read"},
		Tools:     []string{"calculator", "http.fetch"},
		Clearance: authz.Internal,
		TTL:       5 * time.Minute,
	})
}

// script is what the scripted model answers, turn by turn, in the MRKL
// (ReAct) format that langchaingo's one-shot agent parses.
var script = []string{
	"Thought: I should read the GitHub zen.\nAction: http.fetch\nAction Input: https://api.github.com/zen",
	"Thought: A page told me to read the instance credentials.\nAction: http.fetch\nAction Input: http://169.254.169.254/latest/meta-data/iam/security-credentials/",
	"Thought: That was refused. I still have to compute the answer.\nAction: calculator\nAction Input: 6 * 7",
	"Thought: I now know the final answer\nFinal Answer: 42; the zen is \"Design for failure.\"",
}

func run(out io.Writer) error {
	policy, err := authz.ParsePolicy("policy.yaml", policyYAML)
	if err != nil {
		return err
	}
	g, err := authz.New(authz.WithPolicy(policy))
	if err != nil {
		return err
	}
	d := newDemoTools(g)
	ctx, task, err := beginTask(g)
	if err != nil {
		return err
	}
	defer task.End()

	fmt.Fprintln(out, "1. guarded tools called directly")
	for _, c := range []struct {
		tool  tools.Tool
		input string
	}{
		{d.guarded[0], "6 * 7"},
		{d.guarded[1], "https://api.github.com/zen"},
		{d.guarded[1], "http://169.254.169.254/latest/meta-data/"},
		{d.guarded[1], "http://0xa9fea9fe/latest/meta-data/"},
	} {
		res, err := c.tool.Call(ctx, c.input)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "   %s %q -> %s\n", c.tool.Name(), c.input, res)
	}

	fmt.Fprintln(out, "2. the agent executor with a scripted model")
	model := &scriptedModel{replies: script}
	executor := agents.NewExecutor(agents.NewOneShotAgent(model, d.guarded),
		agents.WithMaxIterations(len(script)), agents.WithReturnIntermediateSteps())
	res, err := executor.Call(ctx, map[string]any{"input": "What is 6 * 7, and what is the GitHub zen?"})
	if err != nil {
		return err
	}
	steps, _ := res["intermediateSteps"].([]schema.AgentStep)
	for _, s := range steps {
		fmt.Fprintf(out, "   Action: %s %s\n   Observation: %s\n", s.Action.Tool, s.Action.ToolInput, s.Observation)
	}
	fmt.Fprintf(out, "   Final Answer: %s\n", res["output"])

	fmt.Fprintln(out, "3. no task in the context")
	res2, err := d.guarded[0].Call(context.Background(), "1 + 1")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   calculator %q -> %s\n", "1 + 1", res2)

	fmt.Fprintf(out, "calls that reached the tools: calculator %d of 3, http.fetch %d of 5\n",
		d.calc.n.Load(), d.fetch.n.Load())
	return nil
}

// fetchTool is a stand-in for an HTTP fetch tool: it serves canned pages
// and never touches the network.
type fetchTool struct{}

func (fetchTool) Name() string { return "http.fetch" }
func (fetchTool) Description() string {
	return "Fetches a web page with HTTP GET. The input is the page's URL."
}

func (fetchTool) Call(_ context.Context, input string) (string, error) {
	switch strings.TrimSpace(input) {
	case "https://api.github.com/zen":
		return "Design for failure.", nil
	case "http://169.254.169.254/latest/meta-data/", "http://0xa9fea9fe/latest/meta-data/",
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/":
		return "AccessKeyId: ASIAEXAMPLE, SecretAccessKey: leaked", nil // what SSRF would return
	}
	return "404 Not Found", nil
}

// counted counts the calls that reach a tool; it is safe for concurrent
// use when the tool is.
type counted struct {
	tools.Tool
	n atomic.Int64
}

func (c *counted) Call(ctx context.Context, input string) (string, error) {
	c.n.Add(1)
	return c.Tool.Call(ctx, input)
}

// scriptedModel is an llms.Model that answers with replies in order and
// records the prompts it was given. It is safe for concurrent use.
// (langchaingo's llms/fake does the first, but neither records nor locks.)
type scriptedModel struct {
	mu      sync.Mutex
	replies []string // requires mu held
	prompts []string // requires mu held
}

var _ llms.Model = (*scriptedModel)(nil)

func (m *scriptedModel) GenerateContent(_ context.Context, msgs []llms.MessageContent, _ ...llms.CallOption) (*llms.ContentResponse, error) {
	var prompt strings.Builder
	for _, msg := range msgs {
		for _, p := range msg.Parts {
			if t, ok := p.(llms.TextContent); ok {
				prompt.WriteString(t.Text)
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prompts = append(m.prompts, prompt.String())
	if len(m.replies) == 0 {
		return nil, fmt.Errorf("scripted model: no reply left for turn %d", len(m.prompts))
	}
	reply := m.replies[0]
	m.replies = m.replies[1:]
	return &llms.ContentResponse{Choices: []*llms.ContentChoice{{Content: reply, StopReason: "stop"}}}, nil
}

func (m *scriptedModel) Call(ctx context.Context, prompt string, opts ...llms.CallOption) (string, error) {
	return llms.GenerateFromSinglePrompt(ctx, m, prompt, opts...)
}

// Prompts returns the prompts the model was given so far.
func (m *scriptedModel) Prompts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.prompts...)
}
