package authz

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// benchHosts is the 20-host allow-list of the benchmark policy.
var benchHosts = func() []string {
	h := []string{"api.github.com"}
	for i := 1; i < 20; i++ {
		h = append(h, fmt.Sprintf("host%d.example.org", i))
	}
	return h
}()

func benchWhen() string {
	return fmt.Sprintf(`intent in ["read", "search"] && destination.host in ["%s"] && sensitivity <= INTERNAL`,
		strings.Join(benchHosts, `", "`))
}

// benchPolicy has one matching rule for http.fetch and n-1 rules for other
// tools. With globs, every tools pattern is a wildcard.
func benchPolicy(b testing.TB, n int, globs ...bool) *Policy {
	b.Helper()
	wild := len(globs) > 0 && globs[0]
	tool, other := "http.fetch", "tool.%d"
	if wild {
		tool, other = "http.*", "tool.%d.*"
	}
	rules := []Rule{{Name: "fetch", Tools: []string{tool}, Effect: Allow, When: benchWhen()}}
	when := `intent == "read" && sensitivity <= INTERNAL`
	for i := 1; i < n; i++ {
		rules = append(rules, Rule{Name: fmt.Sprintf("r%d", i), Tools: []string{fmt.Sprintf(other, i)}, Effect: Allow, When: when})
	}
	p, err := NewPolicy("bench", rules...)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

var benchCall = Call{Tool: "http.fetch", Intent: "read", Destination: "https://api.github.com/repos/taskguard/taskguard", Sensitivity: Internal}

func benchGuard(b *testing.B, n int, globs ...bool) (*Guard, context.Context) {
	b.Helper()
	g, err := New(WithPolicy(benchPolicy(b, n, globs...)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, task, err := g.Begin(context.Background(), TaskSpec{
		Agent: Agent{ID: "spiffe://bench/agent"}, Intents: []string{"read", "search"}, Clearance: Internal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(task.End)
	if d := g.Check(ctx, benchCall); d.Effect != Allow {
		b.Fatalf("benchmark call not allowed: %+v", d)
	}
	return g, ctx
}

// guardFor builds a guard with rules and begins a task of spec, ended when
// the benchmark ends.
func guardFor(b *testing.B, spec TaskSpec, rules ...Rule) (*Guard, context.Context) {
	b.Helper()
	p, err := NewPolicy("bench", rules...)
	if err != nil {
		b.Fatal(err)
	}
	g, err := New(WithPolicy(p))
	if err != nil {
		b.Fatal(err)
	}
	ctx, task, err := g.Begin(context.Background(), spec)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(task.End)
	return g, ctx
}

// benchProgram compiles the benchmark expression in a bare cel-go
// environment whose destination variable is a map to values of type dest.
func benchProgram(b *testing.B, dest *cel.Type) cel.Program {
	b.Helper()
	env, err := cel.NewEnv(
		cel.Variable("intent", cel.StringType),
		cel.Variable("destination", cel.MapType(cel.StringType, dest)),
		cel.Variable("sensitivity", cel.IntType),
		cel.Constant("INTERNAL", cel.IntType, celInt(1)),
	)
	if err != nil {
		b.Fatal(err)
	}
	ast, iss := env.Compile(benchWhen())
	if iss.Err() != nil {
		b.Fatal(iss.Err())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		b.Fatal(err)
	}
	return prg
}

func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{1, 50, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			g, ctx := benchGuard(b, n)
			b.ReportAllocs()
			for b.Loop() {
				if g.Check(ctx, benchCall).Effect != Allow {
					b.Fatal("denied")
				}
			}
		})
	}
	b.Run("rules=10000/globs", func(b *testing.B) {
		g, ctx := benchGuard(b, 10000, true)
		b.ReportAllocs()
		for b.Loop() {
			if g.Check(ctx, benchCall).Effect != Allow {
				b.Fatal("denied")
			}
		}
	})
	b.Run("rules=50/parallel", func(b *testing.B) {
		g, ctx := benchGuard(b, 50)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if g.Check(ctx, benchCall).Effect != Allow {
					b.Error("denied")
					return
				}
			}
		})
	})
}

// BenchmarkBareCEL is the baseline: the same expression evaluated directly
// by cel-go with a map activation built from a Go struct each time.
func BenchmarkBareCEL(b *testing.B) {
	prg := benchProgram(b, cel.DynType)
	type input struct {
		Intent, Host string
		Sensitivity  int
	}
	in := input{Intent: "read", Host: "api.github.com", Sensitivity: 1}
	b.ReportAllocs()
	for b.Loop() {
		out, _, err := prg.Eval(map[string]any{
			"intent":      in.Intent,
			"destination": map[string]any{"host": in.Host},
			"sensitivity": in.Sensitivity,
		})
		if err != nil || out.Value() != true {
			b.Fatal(out, err)
		}
	}
}

// floorActivation resolves the bare-CEL floor's variables from prebuilt
// values, as an engine that owns its inputs would.
type floorActivation struct {
	intent, sensitivity, destination ref.Val
}

func (a *floorActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "intent":
		return a.intent, true
	case "sensitivity":
		return a.sensitivity, true
	case "destination":
		return a.destination, true
	}
	return nil, false
}

func (a *floorActivation) Parent() interpreter.Activation { return nil }

// BenchmarkCELFloor is the floor Check is measured against: the benchmark
// expression evaluated by bare cel-go with a custom activation over
// prebuilt values (no parsing, no task, no boxing). Compare it with
// BenchmarkCheck/rules=50 in the same run.
func BenchmarkCELFloor(b *testing.B) {
	prg := benchProgram(b, cel.StringType)
	act := &floorActivation{
		intent:      types.String("read"),
		sensitivity: types.Int(1),
		destination: types.NewStringStringMap(types.DefaultTypeAdapter, map[string]string{"host": "api.github.com"}),
	}
	b.ReportAllocs()
	for b.Loop() {
		out, _, err := prg.Eval(act)
		if err != nil || out != types.True {
			b.Fatal(out, err)
		}
	}
}

// BenchmarkCheckToolNames rotates calls over 20,000 distinct tool names
// against 10,000 glob rules: the cost of finding a tool's rules must not
// grow with the number of rules or of distinct names (callers choose tool
// names).
func BenchmarkCheckToolNames(b *testing.B) {
	for _, n := range []int{50, 10000} {
		b.Run(fmt.Sprintf("globs=%d/names=20000", n), func(b *testing.B) {
			rules := []Rule{{Name: "fetch", Tools: []string{"http.*"}, Effect: Allow, When: benchWhen()}}
			for i := 1; i < n; i++ {
				rules = append(rules, Rule{Name: fmt.Sprintf("r%d", i), Tools: []string{fmt.Sprintf("tool.%d.*", i)}, Effect: Allow,
					When: `intent == "read"`})
			}
			g, ctx := guardFor(b, TaskSpec{Agent: Agent{ID: "bench"}, Intents: []string{"read"}, Clearance: Internal}, rules...)
			calls := make([]Call, 20000)
			for i := range calls {
				calls[i] = benchCall
				calls[i].Tool = fmt.Sprintf("http.fetch%d", i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if g.Check(ctx, calls[i]).Effect != Allow {
					b.Fatal("denied")
				}
				i++
				if i == len(calls) {
					i = 0
				}
			}
		})
	}
}

// BenchmarkCheckRulesPerTool measures the per-rule cost when many rules
// apply to one tool: all of them are evaluated.
func BenchmarkCheckRulesPerTool(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			rules := []Rule{{Name: "fetch", Tools: []string{"http.fetch"}, Effect: Allow, When: benchWhen()}}
			for i := 1; i < n; i++ {
				rules = append(rules, Rule{Name: fmt.Sprintf("r%d", i), Tools: []string{"http.fetch"}, Effect: Deny,
					When: fmt.Sprintf(`destination.host == "blocked%d.example.org"`, i)})
			}
			g, ctx := guardFor(b, TaskSpec{Agent: Agent{ID: "bench"}, Intents: []string{"read"}, Clearance: Internal}, rules...)
			b.ReportAllocs()
			for b.Loop() {
				if g.Check(ctx, benchCall).Effect != Allow {
					b.Fatal("denied")
				}
			}
		})
	}
}

func BenchmarkAuthorize(b *testing.B) {
	g, ctx := benchGuard(b, 50)
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Authorize(ctx, benchCall); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBegin(b *testing.B) {
	g, err := New(WithPolicy(benchPolicy(b, 1)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Intents: []string{"read"}})
		if err != nil {
			b.Fatal(err)
		}
		task.End()
	}
}

// BenchmarkParsePolicy compiles YAML policies of 50 and 1,000 rules.
func BenchmarkParsePolicy(b *testing.B) {
	for _, n := range []int{50, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) { benchParsePolicy(b, n) })
	}
}

func benchParsePolicy(b *testing.B, n int) {
	var sb strings.Builder
	sb.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - {name: r%d, tools: [tool.%d], effect: allow, when: 'intent == \"read\" && destination.host.glob(\"*.example%d.org\")'}\n", i, i, i)
	}
	src := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePolicy("bench.yaml", src); err != nil {
			b.Fatal(err)
		}
	}
}

func celInt(i int64) ref.Val { return types.Int(i) }

// limitedGuard returns a guard whose http.fetch rule has limit l, and a
// task context.
func limitedGuard(b *testing.B, l Limit) (*Guard, context.Context) {
	b.Helper()
	return guardFor(b, TaskSpec{Agent: Agent{ID: "bench"}, Clearance: Internal},
		Rule{Name: "fetch", Tools: []string{"http.fetch"}, Effect: Allow, When: benchWhen(), Limit: &l})
}

// BenchmarkCheckRateLimited decides a call whose allow rule has a rate
// limit (Check reports availability without taking a token).
func BenchmarkCheckRateLimited(b *testing.B) {
	g, ctx := limitedGuard(b, Limit{Rate: 1000, Per: time.Second, Burst: 100})
	b.ReportAllocs()
	for b.Loop() {
		if g.Check(ctx, benchCall).Effect != Allow {
			b.Fatal("denied")
		}
	}
}

// BenchmarkAuthorizeRateLimited takes a token per call from a limit that
// never runs dry.
func BenchmarkAuthorizeRateLimited(b *testing.B) {
	g, ctx := limitedGuard(b, Limit{Rate: 1_000_000_000, Per: time.Second, Burst: 1_000_000_000})
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Authorize(ctx, benchCall); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdate1000 swaps in a compiled policy of 1,000 rules (indexing
// only: compilation happens when the policy is parsed).
func BenchmarkUpdate1000(b *testing.B) {
	p := benchPolicy(b, 1000)
	g, err := New()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Update(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExplain is the debugging path, for comparison with Check.
func BenchmarkExplain(b *testing.B) {
	g, ctx := benchGuard(b, 50)
	b.ReportAllocs()
	for b.Loop() {
		if g.Explain(ctx, benchCall).Decision.Effect != Allow {
			b.Fatal("denied")
		}
	}
}

// BenchmarkCheckDepth decides the benchmark call for a sub-task at depth
// 0 (no parent), 1, 2 and 4: the policy is evaluated for the task and each
// ancestor.
func BenchmarkCheckDepth(b *testing.B) {
	for _, depth := range []int{0, 1, 2, 4} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			g, ctx := benchGuard(b, 50)
			for range depth {
				var err error
				ctx, _, err = g.Begin(ctx, TaskSpec{Agent: Agent{ID: "spiffe://bench/worker"}, Clearance: Internal})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if g.Check(ctx, benchCall).Effect != Allow {
					b.Fatal("denied")
				}
			}
		})
	}
}

// BenchmarkCheckFile decides a file destination, which resolves the
// symbolic links of its existing part (file-system calls).
func BenchmarkCheckFile(b *testing.B) {
	dir := b.TempDir()
	g, ctx := guardFor(b, TaskSpec{Agent: Agent{ID: "bench"}, Labels: map[string]string{"workdir": dir}},
		Rule{Name: "ws", Tools: []string{"fs.read"}, Effect: Allow, When: `destination.path.within(task.labels.workdir)`})
	c := Call{Tool: "fs.read", Intent: "read", Destination: "notes/today.md"}
	b.ReportAllocs()
	for b.Loop() {
		if g.Check(ctx, c).Effect != Allow {
			b.Fatal("denied")
		}
	}
}
