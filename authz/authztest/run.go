package authztest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/taskguard/taskguard/authz"
)

// CaseFile is the content of a case file.
type CaseFile struct {
	// Task is the default task of the cases.
	Task TaskSpec `yaml:"task"`
	// Cases are run in order, each as a subtest.
	Cases []Case `yaml:"cases"`
}

// TaskSpec is authz.TaskSpec as written in case files.
type TaskSpec struct {
	Agent     string            `yaml:"agent"`
	Attrs     map[string]string `yaml:"attrs"`
	Purpose   string            `yaml:"purpose"`
	Intents   []string          `yaml:"intents"`
	Tools     []string          `yaml:"tools"`
	Clearance authz.Sensitivity `yaml:"clearance"`
	TTL       time.Duration     `yaml:"ttl"`
	MaxCalls  map[string]int    `yaml:"max_calls"`
	Labels    map[string]string `yaml:"labels"`
	// Parent, when set, makes the task a sub-task of a task with this spec.
	Parent *TaskSpec `yaml:"parent"`
}

// Spec returns the authz.TaskSpec.
func (s TaskSpec) Spec() authz.TaskSpec {
	agent := s.Agent
	if agent == "" {
		agent = "spiffe://authztest/agent"
	}
	return authz.TaskSpec{Agent: authz.Agent{ID: agent, Attrs: s.Attrs}, Purpose: s.Purpose, Intents: s.Intents,
		Tools: s.Tools, Clearance: s.Clearance, TTL: s.TTL, MaxCalls: s.MaxCalls, Labels: s.Labels}
}

// Call is authz.Call as written in case files.
type Call struct {
	Tool        string            `yaml:"tool"`
	Intent      string            `yaml:"intent"`
	Destination string            `yaml:"destination"`
	Sensitivity authz.Sensitivity `yaml:"sensitivity"`
	Args        map[string]any    `yaml:"args"`
}

// Call returns the authz.Call. Integer arguments become int64, as
// authz.DecodeArgs makes them.
func (c Call) Call() authz.Call {
	return authz.Call{Tool: c.Tool, Intent: c.Intent, Destination: c.Destination, Sensitivity: c.Sensitivity,
		Args: normalize(c.Args)}
}

// Observation is one task.Observe of a case.
type Observation struct {
	Source      string            `yaml:"source"`
	Sensitivity authz.Sensitivity `yaml:"sensitivity"`
	Trusted     bool              `yaml:"trusted"`
}

// Case is one policy test case.
type Case struct {
	Name    string        `yaml:"name"`
	Task    *TaskSpec     `yaml:"task"`
	Observe []Observation `yaml:"observe"`
	// Prior calls are authorized (and counted) before the call; each must
	// be allowed.
	Prior []Call `yaml:"prior"`
	// Age advances the guard's clock before the call (needs a Clock passed
	// with WithCaseClock).
	Age  time.Duration `yaml:"age"`
	Call Call          `yaml:"call"`
	Want struct {
		Effect authz.Effect `yaml:"effect"`
		Rule   string       `yaml:"rule"`
	} `yaml:"want"`

	// at is where the case starts, file:line; set by LoadCases.
	at string
}

// At returns where the case starts in its file, as file:line, or "" for a
// case that was not read by [LoadCases].
func (c Case) At() string { return c.at }

// RunOption configures [Run].
type RunOption func(*runConfig)

type runConfig struct{ clock *Clock }

// WithCaseClock lets cases advance the guard's clock with age. Pass the
// Clock the guard was built with (authz.WithClock(clock.Now)).
func WithCaseClock(c *Clock) RunOption { return func(r *runConfig) { r.clock = c } }

// LoadCases reads and validates a case file. Unknown keys, unknown effects
// and sensitivities and missing names or tools are errors of the form
// file:line: message.
func LoadCases(path string) (*CaseFile, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, lineError(path, err)
	}
	if rules := topKey(&root, "rules"); rules != nil {
		return nil, fmt.Errorf("%s:%d: this is a policy, not a case file: load it with authz.LoadPolicyFiles and name case files *.cases.yaml", path, rules.Line)
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	var cf CaseFile
	if err := dec.Decode(&cf); err != nil && !errors.Is(err, io.EOF) {
		return nil, locate(path, &root, err)
	}
	lines := caseLines(&root)
	for i := range cf.Cases {
		c := &cf.Cases[i]
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		c.at = fmt.Sprintf("%s:%d", path, line)
		if c.Name == "" {
			return nil, fmt.Errorf("%s: case %d has no name", c.at, i+1)
		}
		if c.Call.Tool == "" {
			return nil, fmt.Errorf("%s: case %q has no call.tool", c.at, c.Name)
		}
	}
	return &cf, nil
}

// caseLines returns the line of each entry of the document's cases list.
func caseLines(root *yaml.Node) []int {
	var lines []int
	if _, v := topEntry(root, "cases"); v != nil && v.Kind == yaml.SequenceNode {
		for _, c := range v.Content {
			lines = append(lines, c.Line)
		}
	}
	return lines
}

// topKey returns the key node of a top-level key of the document, or nil.
func topKey(root *yaml.Node, key string) *yaml.Node {
	k, _ := topEntry(root, key)
	return k
}

// topEntry returns the key and value nodes of a top-level key of the
// document, or nils.
func topEntry(root *yaml.Node, key string) (k, v *yaml.Node) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

// lineError rewrites yaml's "line N: message" errors as "file:N: message",
// one per line.
func lineError(path string, err error) error {
	var te *yaml.TypeError
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []string
	for _, m := range msgs {
		if rest, ok := strings.CutPrefix(m, "line "); ok {
			if num, msg, ok := strings.Cut(rest, ": "); ok {
				if _, aerr := strconv.Atoi(num); aerr == nil {
					out = append(out, path+":"+num+": "+msg)
					continue
				}
			}
		}
		out = append(out, path+": "+m)
	}
	return errors.New(strings.Join(out, "\n"))
}

// locate gives a decoding error its position. yaml reports unknown keys
// and type errors with a line; an UnmarshalText error (an unknown effect
// or sensitivity) comes without one, so the scalar whose quoted value the
// error names is looked up in the document.
func locate(path string, root *yaml.Node, err error) error {
	if strings.Contains(err.Error(), "line ") {
		return lineError(path, err)
	}
	var at *yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if at != nil {
			return
		}
		if n.Kind == yaml.ScalarNode && strings.Contains(err.Error(), strconv.Quote(n.Value)) {
			at = n
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
	if at == nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return fmt.Errorf("%s:%d: %w", path, at.Line, err)
}

// Run runs the cases of the files matching patterns (filepath.Glob) against
// g, each as a subtest named file/case. A pattern matching no file fails
// the test. On a wrong decision it prints the guard's explanation.
func Run(t *testing.T, g *authz.Guard, patterns ...string) {
	RunWith(t, g, nil, patterns...)
}

// RunWith is Run with options.
func RunWith(t *testing.T, g *authz.Guard, opts []RunOption, patterns ...string) {
	t.Helper()
	var cfg runConfig
	for _, o := range opts {
		o(&cfg)
	}
	var files []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil || len(m) == 0 {
			t.Fatalf("authztest: case pattern %q matches no file", p)
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	for _, f := range slices.Compact(files) {
		cf, err := LoadCases(f)
		if err != nil {
			t.Fatalf("authztest: %v", err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, c := range cf.Cases {
				t.Run(c.Name, func(t *testing.T) { runCase(t, g, cfg, cf.Task, c) })
			}
		})
	}
}

func runCase(t *testing.T, g *authz.Guard, cfg runConfig, def TaskSpec, c Case) {
	t.Helper()
	spec := def
	if c.Task != nil {
		spec = *c.Task
	}
	ctx := context.Background()
	if spec.Parent != nil {
		ctx, _ = Begin(t, g, ctx, spec.Parent.Spec())
	}
	ctx, task := Begin(t, g, ctx, spec.Spec())
	for _, o := range c.Observe {
		task.Observe(o.Source, o.Sensitivity, o.Trusted)
	}
	for _, p := range c.Prior {
		if err := g.Authorize(ctx, p.Call()); err != nil {
			failCase(t, c, fmt.Sprintf("prior call %s %q: %v\n%s", p.Tool, p.Destination, err, g.Explain(ctx, p.Call())))
			t.FailNow()
		}
	}
	if c.Age > 0 {
		if cfg.clock == nil {
			failCase(t, c, "the case has age but Run has no clock (use RunWith and WithCaseClock)")
			t.FailNow()
		}
		cfg.clock.Advance(c.Age)
	}
	call := c.Call.Call()
	d := g.Check(ctx, call)
	if d.Effect != c.Want.Effect || c.Want.Rule != "" && d.Rule != c.Want.Rule {
		want := c.Want.Effect.String()
		if c.Want.Rule != "" {
			want += " by " + c.Want.Rule
		}
		failCase(t, c, fmt.Sprintf("want %s, got %s by %s (%s)\n%s", want, d.Effect, d.Rule, d.Reason, g.Explain(ctx, call)))
	}
}

// failCase marks the test failed with msg under the case's file:line, in
// place of the runner's source location, so the failure points at the case.
func failCase(t *testing.T, c Case, msg string) {
	t.Helper()
	at := c.at
	if at == "" {
		at = "case"
	}
	fmt.Fprintf(t.Output(), "%s: case %q: %s\n", at, c.Name, strings.TrimRight(msg, "\n"))
	t.Fail()
}

// normalize converts YAML-decoded numbers to the shapes authz.DecodeArgs
// produces (int64, float64) and nested maps to map[string]any.
func normalize(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = normValue(v)
	}
	return out
}

func normValue(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case map[string]any:
		return normalize(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normValue(e)
		}
		return out
	}
	return v
}
