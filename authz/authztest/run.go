package authztest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
}

// RunOption configures [Run].
type RunOption func(*runConfig)

type runConfig struct{ clock *Clock }

// WithCaseClock lets cases advance the guard's clock with age. Pass the
// Clock the guard was built with (authz.WithClock(clock.Now)).
func WithCaseClock(c *Clock) RunOption { return func(r *runConfig) { r.clock = c } }

// LoadCases reads and validates a case file. Unknown keys are errors.
func LoadCases(path string) (*CaseFile, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	var cf CaseFile
	if err := dec.Decode(&cf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, c := range cf.Cases {
		if c.Name == "" {
			return nil, fmt.Errorf("%s: case %d has no name", path, i+1)
		}
		if c.Call.Tool == "" {
			return nil, fmt.Errorf("%s: case %q has no call.tool", path, c.Name)
		}
	}
	return &cf, nil
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
			t.Fatalf("prior call %s %q: %v\n%s", p.Tool, p.Destination, err, g.Explain(ctx, p.Call()))
		}
	}
	if c.Age > 0 {
		if cfg.clock == nil {
			t.Fatalf("case %q has age but Run has no clock (use RunWith and WithCaseClock)", c.Name)
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
		t.Errorf("want %s, got %s by %s (%s)\n%s", want, d.Effect, d.Rule, d.Reason, g.Explain(ctx, call))
	}
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
