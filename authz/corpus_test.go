package authz

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// corpusFile is one file of testdata/decisions: a policy, a default task,
// and cases with the expected effect and rule.
type corpusFile struct {
	Policy string       `yaml:"policy"`
	Task   corpusTask   `yaml:"task"`
	Cases  []corpusCase `yaml:"cases"`
}

type corpusTask struct {
	Agent     string            `yaml:"agent"`
	Intents   []string          `yaml:"intents"`
	Tools     []string          `yaml:"tools"`
	Clearance Sensitivity       `yaml:"clearance"`
	Labels    map[string]string `yaml:"labels"`
	Parent    *corpusTask       `yaml:"parent"`
}

type corpusCase struct {
	Name    string      `yaml:"name"`
	Task    *corpusTask `yaml:"task"`
	Observe []struct {
		Source      string      `yaml:"source"`
		Sensitivity Sensitivity `yaml:"sensitivity"`
		Trusted     bool        `yaml:"trusted"`
	} `yaml:"observe"`
	Prior []Call `yaml:"prior"` // authorized before the call
	Age   string `yaml:"age"`   // clock advance before the call
	Call  struct {
		Tool        string         `yaml:"tool"`
		Intent      string         `yaml:"intent"`
		Destination string         `yaml:"destination"`
		Sensitivity Sensitivity    `yaml:"sensitivity"`
		Args        map[string]any `yaml:"args"`
	} `yaml:"call"`
	Want struct {
		Effect Effect `yaml:"effect"`
		Rule   string `yaml:"rule"`
	} `yaml:"want"`
}

func (ct corpusTask) spec() TaskSpec {
	agent := ct.Agent
	if agent == "" {
		agent = "spiffe://corpus/agent"
	}
	return TaskSpec{Agent: Agent{ID: agent}, Intents: ct.Intents, Tools: ct.Tools,
		Clearance: ct.Clearance, Labels: ct.Labels, TTL: time.Hour}
}

func loadCorpus(t testing.TB) map[string]corpusFile {
	t.Helper()
	files, err := filepath.Glob("testdata/decisions/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]corpusFile{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		var cf corpusFile
		dec := yaml.NewDecoder(bytesReader(src))
		dec.KnownFields(true)
		require.NoError(t, dec.Decode(&cf), f)
		out[filepath.Base(f)] = cf
	}
	return out
}

func TestDecisionCorpus(t *testing.T) {
	t.Parallel()
	total := 0
	for file, cf := range loadCorpus(t) {
		p, err := ParsePolicy(file, []byte(cf.Policy))
		require.NoError(t, err, file)
		total += len(cf.Cases)
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cf.Cases {
				t.Run(tc.Name, func(t *testing.T) {
					t.Parallel()
					clk := newFakeClock()
					g, err := New(WithPolicy(p), WithClock(clk.Now))
					require.NoError(t, err)
					ctx := runCase(t, g, cf.Task, tc)
					if tc.Age != "" {
						d, err := time.ParseDuration(tc.Age)
						require.NoError(t, err)
						clk.Add(d)
					}
					c := Call{Tool: tc.Call.Tool, Intent: tc.Call.Intent, Destination: tc.Call.Destination,
						Sensitivity: tc.Call.Sensitivity, Args: tc.Call.Args}
					d := g.Check(ctx, c)
					assert.Equal(t, tc.Want.Effect, d.Effect, "decision: %+v", d)
					assert.Equal(t, tc.Want.Rule, d.Rule, "decision: %+v", d)
				})
			}
		})
	}
	assert.GreaterOrEqual(t, total, 60, "the corpus keeps at least 60 cases")
}

// runCase begins the case's task (and parent) and replays its history.
func runCase(t *testing.T, g *Guard, def corpusTask, tc corpusCase) context.Context {
	t.Helper()
	ct := def
	if tc.Task != nil {
		ct = *tc.Task
	}
	ctx := context.Background()
	if ct.Parent != nil {
		var err error
		var parent *Task
		ctx, parent, err = g.Begin(ctx, ct.Parent.spec())
		require.NoError(t, err)
		t.Cleanup(parent.End)
	}
	ctx, task, err := g.Begin(ctx, ct.spec())
	require.NoError(t, err)
	t.Cleanup(task.End)
	for _, o := range tc.Observe {
		task.Observe(o.Source, o.Sensitivity, o.Trusted)
	}
	for _, c := range tc.Prior {
		require.NoError(t, g.Authorize(ctx, c), "prior call %+v", c)
	}
	return ctx
}
