package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/taskguard/taskguard/internal/dest"
	"github.com/taskguard/taskguard/internal/glob"
)

// Cost limits of policy expressions, in cel-go cost units (roughly one unit
// per elementary operation).
//
// Every input a policy reads is bounded at the boundary (see [MaxInputSize])
// except args and task.calls. At load, the worst case of each expression is
// estimated under these bounds (args and task.calls assumed to hold at most
// MaxInputSize entries of MaxInputSize bytes) and refused above
// [MaxEstimatedCost]. An expression whose worst case is within the limit
// whatever args and task.calls hold needs no tracking and runs as is; any
// other runs under a runtime cost limit of [MaxRuntimeCost], and exceeding
// it denies the call.
const (
	MaxEstimatedCost = 1_000_000
	MaxRuntimeCost   = 1_000_000
)

// CEL type names of the objects policies see.
const (
	celAgent       = "taskguard.Agent"
	celTask        = "taskguard.Task"
	celTaint       = "taskguard.Taint"
	celDestination = "taskguard.Destination"
)

var (
	agentType = types.NewObjectType(celAgent)
	taskType  = types.NewObjectType(celTask)
	taintType = types.NewObjectType(celTaint)
	destType  = types.NewObjectType(celDestination)

	stringList = types.NewListType(types.StringType)
	stringMap  = types.NewMapType(types.StringType, types.StringType)
)

// object is the CEL value of one of the guard's objects (agent, task, taint,
// destination). Fields are read through the provider's getters; the object
// itself only supports identity equality.
type object struct {
	typ *types.Type
	v   any
}

func (o *object) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("%s cannot be converted to %v", o.typ.TypeName(), t)
}
func (o *object) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return o.typ
	}
	return types.NewErr("type conversion error from %s to %s", o.typ.TypeName(), t.TypeName())
}
func (o *object) Equal(other ref.Val) ref.Val { return types.Bool(other == ref.Val(o)) }
func (o *object) Type() ref.Type              { return o.typ }
func (o *object) Value() any                  { return o.v }

// field describes one field of an object type.
type field struct {
	typ *types.Type
	get func(v any) ref.Val
}

type objectDef struct {
	names  []string
	fields map[string]*types.FieldType
}

func isSet(any) bool { return true }

func defineObject(fields map[string]field) objectDef {
	d := objectDef{fields: make(map[string]*types.FieldType, len(fields))}
	for name, f := range fields {
		get := f.get
		d.names = append(d.names, name)
		d.fields[name] = &types.FieldType{
			Type:  f.typ,
			IsSet: isSet,
			GetFrom: func(v any) (any, error) {
				if o, ok := v.(*object); ok {
					v = o.v
				}
				return get(v), nil
			},
		}
	}
	return d
}

// provider adds the guard's object types to cel-go's registry.
type provider struct {
	*types.Registry
	objects map[string]objectDef
}

func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := p.objects[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Registry.FindStructType(name)
}

func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if d, ok := p.objects[name]; ok {
		return d.names, true
	}
	return p.Registry.FindStructFieldNames(name)
}

func (p *provider) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	if d, ok := p.objects[name]; ok {
		f, ok := d.fields[fieldName]
		return f, ok
	}
	return p.Registry.FindStructFieldType(name, fieldName)
}

func (p *provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := p.objects[name]; ok {
		return types.NewErr("%s values cannot be constructed in policies", name)
	}
	return p.Registry.NewValue(name, fields)
}

// taskView is the task as one evaluation sees it.
type taskView struct {
	t   *Task
	act *activation
}

func str(s string) ref.Val { return types.String(s) }

func newProvider() (*provider, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &provider{Registry: reg, objects: map[string]objectDef{}}
	p.objects[celAgent] = defineObject(map[string]field{
		"id":    {types.StringType, func(v any) ref.Val { return str(v.(*Task).agent.ID) }},
		"attrs": {stringMap, func(v any) ref.Val { return stringMapVal(v.(*Task).agent.Attrs) }},
	})
	p.objects[celTask] = defineObject(map[string]field{
		"id":        {types.StringType, func(v any) ref.Val { return str(v.(*taskView).t.id) }},
		"purpose":   {types.StringType, func(v any) ref.Val { return str(v.(*taskView).t.purpose) }},
		"intents":   {stringList, func(v any) ref.Val { return stringListVal(v.(*taskView).t.intents) }},
		"tools":     {stringList, func(v any) ref.Val { return stringListVal(v.(*taskView).t.tools) }},
		"clearance": {types.IntType, func(v any) ref.Val { return types.Int(v.(*taskView).t.clearance) }},
		"labels":    {stringMap, func(v any) ref.Val { return stringMapVal(v.(*taskView).t.labels) }},
		"depth":     {types.IntType, func(v any) ref.Val { return types.Int(v.(*taskView).t.depth) }},
		"scope": {scopeType, func(v any) ref.Val {
			if s := v.(*taskView).t.scopeCEL; s != nil {
				return s
			}
			return emptyScope
		}},
		"truncated": {types.BoolType, func(v any) ref.Val { return types.Bool(v.(*taskView).t.truncated()) }},
		"age": {types.DurationType, func(v any) ref.Val {
			tv := v.(*taskView)
			return types.Duration{Duration: tv.act.time().Sub(tv.t.start)}
		}},
		"remaining": {types.DurationType, func(v any) ref.Val {
			tv := v.(*taskView)
			return types.Duration{Duration: tv.t.deadline.Sub(tv.act.time())}
		}},
		"calls": {types.NewMapType(types.StringType, types.IntType), func(v any) ref.Val {
			calls := v.(*taskView).t.Calls()
			m := make(map[string]int64, len(calls))
			for k, n := range calls {
				m[k] = int64(n)
			}
			return types.DefaultTypeAdapter.NativeToValue(m)
		}},
		"taint": {taintType, func(v any) ref.Val {
			tt := v.(*taskView).t.snapshotTaint()
			return &object{typ: taintType, v: &tt}
		}},
	})
	p.objects[celTaint] = defineObject(map[string]field{
		"sensitivity": {types.IntType, func(v any) ref.Val { return types.Int(v.(*Taint).Sensitivity) }},
		"untrusted":   {types.BoolType, func(v any) ref.Val { return types.Bool(v.(*Taint).Untrusted) }},
		"sources":     {stringList, func(v any) ref.Val { return stringListVal(v.(*Taint).Sources) }},
	})
	p.objects[celDestination] = defineObject(map[string]field{
		"kind":    {types.StringType, func(v any) ref.Val { return str(v.(*destView).d.Kind.String()) }},
		"scheme":  {types.StringType, func(v any) ref.Val { return str(v.(*destView).d.Scheme) }},
		"host":    {types.StringType, func(v any) ref.Val { return v.(*destView).host() }},
		"port":    {types.IntType, func(v any) ref.Val { return types.Int(v.(*destView).d.Port) }},
		"path":    {types.StringType, func(v any) ref.Val { return str(v.(*destView).d.Path) }},
		"user":    {types.StringType, func(v any) ref.Val { return str(v.(*destView).d.User) }},
		"private": {types.BoolType, func(v any) ref.Val { return types.Bool(v.(*destView).d.Private) }},
		"ip": {types.StringType, func(v any) ref.Val {
			if d := &v.(*destView).d; d.IP.IsValid() {
				return str(d.IP.String())
			}
			return str("")
		}},
		"canonical": {types.StringType, func(v any) ref.Val { return v.(*destView).canonical() }},
	})
	return p, nil
}

func stringListVal(s []string) ref.Val {
	if s == nil {
		s = []string{}
	}
	return types.NewStringList(types.DefaultTypeAdapter, s)
}

func stringMapVal(m map[string]string) ref.Val {
	if m == nil {
		m = map[string]string{}
	}
	return types.NewStringStringMap(types.DefaultTypeAdapter, m)
}

// celProvider is the provider of every environment.
var celProvider = sync.OnceValues(newProvider)

// celEnv is the CEL environment policies compile against: celBaseEnv with
// args a map of dynamic values. Rules over declared tools compile in an
// extension of celBaseEnv where args has a type of its own (typedEnv).
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	base, err := celBaseEnv()
	if err != nil {
		return nil, err
	}
	return base.Extend(cel.Variable("args", types.NewMapType(types.StringType, types.DynType)))
})

// celBaseEnv is every variable, constant and function of policies but args.
var celBaseEnv = sync.OnceValues(func() (*cel.Env, error) {
	p, err := celProvider()
	if err != nil {
		return nil, err
	}
	return cel.NewEnv(
		cel.CustomTypeProvider(p),
		cel.Variable("agent", agentType),
		cel.Variable("task", taskType),
		cel.Variable("tool", types.StringType),
		cel.Variable("intent", types.StringType),
		cel.Variable("destination", destType),
		cel.Variable("destinations", types.NewListType(destType)),
		cel.Variable("sensitivity", types.IntType),
		cel.Variable("now", types.TimestampType),
		cel.Constant("PUBLIC", types.IntType, types.Int(Public)),
		cel.Constant("INTERNAL", types.IntType, types.Int(Internal)),
		cel.Constant("CONFIDENTIAL", types.IntType, types.Int(Confidential)),
		cel.Constant("RESTRICTED", types.IntType, types.Int(Restricted)),
		cel.Function("glob",
			cel.MemberOverload("string_glob_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(celGlob))),
		cel.Function("within",
			cel.MemberOverload("string_within_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(celWithin))),
		cel.Function("sha256",
			cel.Overload("sha256_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(celSHA256))),
		cel.Function("urls",
			cel.MemberOverload("string_urls", []*cel.Type{cel.StringType}, cel.ListType(cel.StringType),
				cel.UnaryBinding(celURLs))),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(maxExpressionSize),
		ext.Strings(),
		ext.Sets(),
		ext.Lists(),
		ext.Network(),
		ext.Bindings(),
	)
})

// celProvenanceEnv extends celEnv with the late-bound provenance methods
// (value.fromUntrusted(), value.fromTrusted()). Only expressions that call
// them compile against it: late-bound functions in an environment slow
// every program planned from it a little.
var celProvenanceEnv = sync.OnceValues(func() (*cel.Env, error) {
	env, err := celEnv()
	if err != nil {
		return nil, err
	}
	return env.Extend(provenanceFunctions()...)
})

// provenanceFunctions declares the late-bound provenance methods.
func provenanceFunctions() []cel.EnvOption {
	return []cel.EnvOption{
		cel.Function("fromUntrusted",
			cel.MemberOverload("string_fromUntrusted", []*cel.Type{cel.StringType}, cel.BoolType, cel.LateFunctionBinding())),
		cel.Function("fromTrusted",
			cel.MemberOverload("string_fromTrusted", []*cel.Type{cel.StringType}, cel.BoolType, cel.LateFunctionBinding())),
	}
}

// envFor returns the environment expr compiles against; shape, when not
// nil, types its args.
func envFor(expr string, shape *argsShape) (*cel.Env, error) {
	late := strings.Contains(expr, "fromUntrusted") || strings.Contains(expr, "fromTrusted")
	if shape != nil {
		return typedEnv(shape, late)
	}
	if late {
		return celProvenanceEnv()
	}
	return celEnv()
}

// maxExpressionSize bounds the length of a `when` expression, in code points.
const maxExpressionSize = 16 << 10

// celGlob implements host.glob(pattern): see [glob.Host].
func celGlob(host, pattern ref.Val) ref.Val {
	h, ok1 := host.(types.String)
	p, ok2 := pattern.(types.String)
	if !ok1 || !ok2 {
		return types.NewErr("glob: want (string).glob(string)")
	}
	ok, err := glob.Host(string(p), string(h))
	if err != nil {
		return types.WrapErr(err)
	}
	return types.Bool(ok)
}

// celWithin implements path.within(root): see [glob.Within].
func celWithin(p, root ref.Val) ref.Val {
	ps, ok1 := p.(types.String)
	rs, ok2 := root.(types.String)
	if !ok1 || !ok2 {
		return types.NewErr("within: want (string).within(string)")
	}
	return types.Bool(glob.Within(string(ps), string(rs)))
}

// costEstimator gives the size bounds of the inputs for cost estimation.
// With unbounded set, args and task.calls have no bound. vars are the
// variables of the expression's document, if any.
type costEstimator struct {
	unbounded bool
	vars      *docVars
}

var (
	inputSize = cost.SizeEstimate{Min: 0, Max: MaxInputSize}
	destSize  = cost.SizeEstimate{Min: 0, Max: MaxDestinationSize}
)

// EstimateSize returns a new estimate on every call: cel-go modifies the
// estimates it is given.
func (e costEstimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	path := n.Path()
	size := inputSize
	switch {
	case len(path) == 0:
		return nil
	case path[0] == "args", path[0] == "task" && len(path) > 1 && path[1] == "calls":
		if e.unbounded {
			return nil
		}
	case path[0] == "destination":
		size = destSize
	case path[0] == "variables":
		if e.unbounded {
			return nil
		}
		return e.vars.sizeOf(path[1:])
	case path[0] == "destinations" && len(path) == 1:
		size = cost.SizeEstimate{Min: 0, Max: MaxDestinations + 1}
	}
	return &size
}

func (costEstimator) EstimateCallCost(fn, overload string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	switch overload {
	case overloads.InList:
		if isScopeList(args[1].Path()) {
			// A map lookup (scopeList.Contains).
			return cost.NewCallEstimate(cost.FixedCostEstimate(1), nil)
		}
	case "string_glob_string", "string_within_string":
		// Linear in the lengths of both strings.
		return cost.NewCallEstimate(cost.RangedCostEstimate(1, 1+2*MaxDestinationSize/10), nil)
	case "string_fromUntrusted", "string_fromTrusted":
		// Linear in the value's length.
		return cost.NewCallEstimate(cost.RangedCostEstimate(1, 1+inputSizeOf(*target)/10), nil)
	case "sha256_string":
		return cost.NewCallEstimate(cost.RangedCostEstimate(1, 1+inputSizeOf(args[0])/10), nil)
	case "string_urls":
		// One pass over the text; at most one URL per 8 bytes and maxURLs
		// in all, each at most MaxDestinationSize long (extractURLs
		// enforces both), so rules may call string functions on them.
		n := inputSizeOf(*target)
		count := min(n/8+1, maxURLs)
		elem := &cost.SizeEstimate{Min: 0, Max: MaxDestinationSize}
		return cost.NewCallEstimate(cost.RangedCostEstimate(1, 1+n/10), &cost.SizeEstimate{Min: 0, Max: count, Elem: elem})
	}
	return nil
}

// inputSizeOf is the largest size n may have: its computed size, or the
// input bound when it has none.
func inputSizeOf(n cost.AstNode) uint64 {
	if sz := n.ComputedSize(); sz != nil {
		return sz.Max
	}
	return MaxInputSize
}

// celSHA256 implements sha256(s): the lower-case hex SHA-256 of s, for
// pinning an argument to a value without storing the value.
func celSHA256(v ref.Val) ref.Val {
	s, ok := v.(types.String)
	if !ok {
		return types.NewErr("sha256: want a string")
	}
	sum := sha256.Sum256([]byte(s))
	return types.String(hex.EncodeToString(sum[:]))
}

// maxURLs bounds the URLs urls() returns; more is an error (deny). Each is
// at most MaxDestinationSize bytes long; a longer one is an error too.
const maxURLs = 1024

// celURLs implements s.urls(): the canonical text of every http(s) URL in
// s, in order. A URL is "http://" or "https://" (any case) up to white
// space or one of <>"'`; trailing punctuation .,;:!?)] is not part of it. A
// URL that does not canonicalise, or more than maxURLs of them, is an
// error, which denies: a link a rule cannot read must not slip through.
// Links without a scheme ("www.example.org") are not found.
func celURLs(v ref.Val) ref.Val {
	s, ok := v.(types.String)
	if !ok {
		return types.NewErr("urls: want a string")
	}
	found, err := extractURLs(string(s))
	if err != nil {
		return types.NewErr("urls: %v", err)
	}
	return types.NewStringList(types.DefaultTypeAdapter, found)
}

func extractURLs(text string) ([]string, error) {
	out := []string{}
	for i := 0; i < len(text); {
		j := indexScheme(text, i)
		if j < 0 {
			break
		}
		end := j
		for end < len(text) && !strings.ContainsRune(" \t\r\n<>\"'`", rune(text[end])) {
			end++
		}
		raw := strings.TrimRight(text[j:end], ".,;:!?)]")
		i = end
		if len(out) == maxURLs {
			return nil, fmt.Errorf("more than %d URLs", maxURLs)
		}
		_, canon, err := dest.ParseText(raw, "")
		if err != nil {
			return nil, errors.New("a URL in the text is not a valid destination")
		}
		if len(canon) > MaxDestinationSize {
			return nil, fmt.Errorf("a URL in the text is longer than %d bytes", MaxDestinationSize)
		}
		out = append(out, canon)
	}
	return out, nil
}

// indexScheme returns the index of the next "http://" or "https://" (any
// case) at or after i, or -1.
func indexScheme(text string, i int) int {
	for ; i+7 <= len(text); i++ {
		if text[i] != 'h' && text[i] != 'H' {
			continue
		}
		rest := text[i:]
		if len(rest) >= 7 && strings.EqualFold(rest[:7], "http://") || len(rest) >= 8 && strings.EqualFold(rest[:8], "https://") {
			return i
		}
	}
	return -1
}

// program is one compiled `when` expression.
type program struct {
	prg cel.Program
	// constant is set when the expression folds to a constant: the program
	// never runs.
	constant *bool
	// tracked programs run under the runtime cost limit.
	tracked bool
	// lateBound programs call the late-bound provenance methods.
	lateBound bool
	// typed programs read args as an object of declared fields.
	typed bool
	// partial plans the expression for partial evaluation, on first use.
	partial *partialProgram
}

// partialProgram is a `when` planned for partial evaluation (Visible).
type partialProgram struct {
	once    sync.Once
	env     *cel.Env
	ast     *cel.Ast
	tracked bool
	prg     cel.Program
	err     error
}

func (pp *partialProgram) get() (cel.Program, error) {
	pp.once.Do(func() {
		opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize, cel.OptPartialEval)}
		if pp.tracked {
			opts = append(opts, cel.CostLimit(MaxRuntimeCost))
		}
		pp.prg, pp.err = pp.env.Program(pp.ast, opts...)
	})
	return pp.prg, pp.err
}

// callUnknowns are the variables a call supplies; Visible evaluates rules
// with them unknown.
var callUnknowns = []*cel.AttributePatternType{
	cel.AttributePattern("destination"), cel.AttributePattern("destinations"), cel.AttributePattern("sensitivity"), cel.AttributePattern("args"),
}

// possible evaluates the program with the call's variables unknown (and
// the intent too when act has none). It returns (result, definite): a
// definite false means the rule cannot match under the task; a definite
// true means it matches every call. Anything undecidable is (true, false).
func (p *program) possible(act *activation) (bool, bool) {
	if p.constant != nil {
		return *p.constant, true
	}
	if p.partial == nil {
		return true, false
	}
	prg, err := p.partial.get()
	if err != nil {
		return true, false
	}
	unknowns := callUnknowns
	if act.call.Intent == "" {
		unknowns = append(slices.Clip(unknowns), cel.AttributePattern("intent"))
	}
	vars, err := cel.PartialVars(act, unknowns...)
	if err != nil {
		return true, false
	}
	out, _, err := prg.Eval(vars)
	if err != nil || types.IsUnknown(out) {
		return true, false
	}
	b, ok := out.(types.Bool)
	if !ok {
		return true, false
	}
	return bool(b), true
}

// compileWhen type-checks expr, estimates its cost and plans it; shape,
// when not nil, types args. The error positions are relative to expr (line
// 1-based, column 0-based).
func compileWhen(expr string, shape *argsShape) (program, []celIssue) {
	env, err := envFor(expr, shape)
	if err != nil {
		return program{}, []celIssue{{msg: "CEL environment: " + err.Error()}}
	}
	c, issues := compileExpr(env, expr, nil, shape, true)
	return c.prg, issues
}

// compiledExpr is an expression compiled by compileExpr.
type compiledExpr struct {
	prg  program
	typ  *types.Type
	cost uint64             // worst case under the input bounds, variables read included
	size *cost.SizeEstimate // of the value, when known (variables)
}

// compileExpr type-checks expr in env (a bool when wantBool), estimates
// its cost (with the variables it reads, dv may be nil) and plans it;
// shape, when not nil, is the type of args in env.
func compileExpr(env *cel.Env, expr string, dv *docVars, shape *argsShape, wantBool bool) (compiledExpr, []celIssue) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		var out []celIssue
		for _, e := range iss.Errors() {
			is := celIssue{line: e.Location.Line(), col: e.Location.Column(), msg: e.Message}
			is.msg = argsHint(shape, expr, is)
			out = append(out, is)
		}
		return compiledExpr{}, out
	}
	if wantBool && !ast.OutputType().IsExactType(types.BoolType) {
		return compiledExpr{}, []celIssue{{line: 1, msg: fmt.Sprintf("expression must be a bool, not %s", ast.OutputType())}}
	}
	// The variables it reads are evaluated once each, under their own
	// limits; their cost counts towards the estimate.
	var varCost uint64
	used := dv.usedVariables(ast)
	for _, i := range used {
		varCost = addCost(varCost, dv.cost[i])
	}
	// The worst case whatever args and task.calls hold: within the runtime
	// limit, the expression needs no cost tracking (and is within the
	// estimated limit too). Otherwise estimate under the input bounds.
	tracked := true
	worst, err := env.EstimateCost(ast, costEstimator{unbounded: true, vars: dv})
	est := worst
	if err == nil && worst.Max <= MaxRuntimeCost && addCost(worst.Max, varCost) <= MaxEstimatedCost {
		tracked = false
	} else {
		est, err = env.EstimateCost(ast, costEstimator{vars: dv})
		if err != nil {
			return compiledExpr{}, []celIssue{{line: 1, msg: "cost estimate: " + err.Error()}}
		}
		if total := addCost(est.Max, varCost); total > MaxEstimatedCost {
			return compiledExpr{}, []celIssue{{line: 1, msg: fmt.Sprintf("worst-case cost %d exceeds the limit of %d", total, MaxEstimatedCost)}}
		}
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if tracked {
		opts = append(opts, cel.CostLimit(MaxRuntimeCost))
	}
	prg, err := env.Program(ast, opts...)
	if err != nil {
		return compiledExpr{}, []celIssue{{line: 1, msg: err.Error()}}
	}
	p := program{prg: prg, tracked: tracked, lateBound: callsLateBound(ast), typed: shape != nil}
	if len(used) == 0 {
		// Partial evaluation (Visible) cannot see through variables: a rule
		// reading them is undecided there.
		p.partial = &partialProgram{env: env, ast: ast, tracked: tracked}
	}
	if b, ok := constantBool(ast); ok {
		p.constant = &b
	}
	c := compiledExpr{prg: p, typ: ast.OutputType(), cost: addCost(est.Max, varCost)}
	if !wantBool {
		c.size = valueSize(env, expr, ast.OutputType(), dv)
	}
	return c, nil
}

// addCost adds cost estimates, saturating.
func addCost(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

// valueSize estimates the size of expr's value (a string, bytes, list or
// map) under the input bounds: the size of the argument of size(expr),
// as the cost estimator sees it. nil when unknown or not sized.
func valueSize(env *cel.Env, expr string, typ *types.Type, dv *docVars) *cost.SizeEstimate {
	switch typ.Kind() {
	case types.StringKind, types.BytesKind, types.ListKind, types.MapKind:
	default:
		return nil
	}
	ast, iss := env.Compile("size(\n" + expr + "\n)")
	if iss != nil && iss.Err() != nil {
		return nil
	}
	probe := &sizeProbe{costEstimator: costEstimator{vars: dv}}
	if _, err := env.EstimateCost(ast, probe); err != nil {
		return nil
	}
	return probe.size
}

// sizeProbe records the size of the argument of the last size() call the
// cost estimator costs: the outermost, since arguments are costed first.
type sizeProbe struct {
	costEstimator
	size *cost.SizeEstimate
}

func (p *sizeProbe) EstimateCallCost(fn, overload string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	if fn == "size" && len(args) == 1 {
		sz := args[0].ComputedSize()
		if sz == nil {
			sz = p.EstimateSize(args[0])
		}
		if sz != nil {
			c := *sz
			p.size = &c
		} else {
			p.size = nil
		}
	}
	return p.costEstimator.EstimateCallCost(fn, overload, target, args)
}

// compiledWhen is the outcome of compileWhen.
type compiledWhen struct {
	prg    program
	issues []celIssue
}

// whenKey is an expression and the shape of its args (nil: dynamic).
type whenKey struct {
	expr  string
	shape *argsShape
}

// whenID identifies a whenKey: equal shapes compile alike.
type whenID struct{ expr, shape string }

func (k whenKey) id() whenID {
	if k.shape == nil {
		return whenID{expr: k.expr}
	}
	return whenID{k.expr, "typed\x00" + k.shape.sig}
}

// compileWhens compiles the distinct non-blank expressions of exprs, each
// once, on up to GOMAXPROCS goroutines. Programs are immutable and safe to
// share between rules.
func compileWhens(exprs []whenKey) map[whenID]compiledWhen {
	var todo []whenKey
	out := make(map[whenID]compiledWhen, len(exprs))
	for _, e := range exprs {
		if _, dup := out[e.id()]; dup || strings.TrimSpace(e.expr) == "" {
			continue
		}
		out[e.id()] = compiledWhen{}
		todo = append(todo, e)
	}
	results := make([]compiledWhen, len(todo))
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(todo); i = int(next.Add(1)) - 1 {
				results[i].prg, results[i].issues = compileWhen(todo[i].expr, todo[i].shape)
			}
		})
	}
	wg.Wait()
	for i, e := range todo {
		out[e.id()] = results[i]
	}
	return out
}

// callsLateBound reports whether the checked expression calls a late-bound
// function (fromUntrusted, fromTrusted).
func callsLateBound(ast *cel.Ast) bool {
	for _, ref := range ast.NativeRep().ReferenceMap() {
		for _, id := range ref.OverloadIDs {
			if id == "string_fromUntrusted" || id == "string_fromTrusted" {
				return true
			}
		}
	}
	return false
}

type celIssue struct {
	line, col int
	msg       string
}

// constantBool reports whether the checked expression is the literal true or false.
func constantBool(ast *cel.Ast) (bool, bool) {
	e := ast.NativeRep().Expr()
	if c := e.AsLiteral(); c != nil {
		if b, ok := c.(types.Bool); ok {
			return bool(b), true
		}
	}
	return false, false
}

// evalErrorKind names the kind of a CEL evaluation error without quoting
// anything from its message, which may contain the values involved.
func evalErrorKind(err error) string {
	if err == errNotBool {
		return "result is not a bool"
	}
	msg := err.Error()
	for _, k := range [...]struct{ substr, kind string }{
		{"cost limit exceeded", "cost limit exceeded"},
		{"no such key", "missing key"},
		{"no such attribute", "missing attribute"},
		{"no such overload", "type mismatch"},
		{"type mismatch", "type mismatch"},
		{"no matching overload", "type mismatch"},
		{"divide by zero", "division by zero"},
		{"division by zero", "division by zero"},
		{"modulus by zero", "division by zero"},
		{"index out of range", "index out of range"},
		{"index out of bounds", "index out of range"},
		{"regexp", "invalid regular expression"},
		{"google.protobuf.Duration", "invalid duration"},
		{"google.protobuf.Timestamp", "invalid timestamp"},
		{"overflow", "overflow"},
		{"range error", "overflow"},
		{"type conversion", "invalid conversion"},
		{"timestamp", "invalid timestamp"},
		{"duration", "invalid duration"},
		{"invalid", "invalid value"},
	} {
		if strings.Contains(msg, k.substr) {
			return k.kind
		}
	}
	return "evaluation error"
}

// errNotBool reports a program that evaluated to a non-bool.
var errNotBool = errors.New("expression did not evaluate to a bool")

// eval runs the program against act.
func (p *program) eval(act *activation) (bool, error) {
	if p.constant != nil {
		return *p.constant, nil
	}
	var vars any = act
	act.typedArgs = p.typed
	if p.lateBound {
		vars = funcActivation{act}
	}
	out, _, err := p.prg.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, errNotBool
	}
	return bool(b), nil
}

// activation resolves the CEL variables of one check. It is pooled.
type activation struct {
	g     *Guard
	task  taskView
	agent object
	tv    object
	dv    object
	call  Call
	dest  destView
	args  ref.Val
	// more are the call's further destinations (Call.Destinations) and
	// moreObjs their CEL objects; the arrays are kept across the pooled
	// activation's uses. dests is the CEL value of destinations, built on
	// first use.
	more     []destView
	moreObjs []object
	destVals []ref.Val
	dests    ref.Val
	// typedArgs is set while a typed program runs: args is then argsVal.
	typedArgs bool
	argsVal   argsVal
	// vars is the variables object; varVals the values of the variables
	// of the documents varDocs, from varBase[i] on for varDocs[i],
	// evaluated on first use (nil until then).
	vars    object
	varDocs []*docVars
	varBase []int
	varVals []ref.Val
	// deciders are the rules that allowed or asked, for the task and each
	// ancestor (a buffer of the rules stage).
	deciders []levelDecider
	// rules is the buffer of uncached rule lookups.
	rules ruleScratch

	// now is read from the guard's clock on first use: most decisions
	// need no time.
	now    time.Time
	nowSet bool
}

// destView is the destination as policies see it. The host's CEL value is
// kept across the pooled activation's uses: a call to the same host as the
// previous one on this activation boxes nothing.
type destView struct {
	d        dest.Destination
	hostVal  ref.Val
	hostText string
	// canon is the canonical text, set by the destination stage; canonVal
	// its CEL value, kept like hostVal.
	canon     string
	canonVal  ref.Val
	canonText string
}

func (v *destView) host() ref.Val {
	if v.hostVal == nil || v.hostText != v.d.Host {
		v.hostText, v.hostVal = v.d.Host, types.String(v.d.Host)
	}
	return v.hostVal
}

func (v *destView) canonical() ref.Val {
	if v.canon == "" && v.d.Kind != dest.KindNone {
		v.canon = v.d.String()
	}
	if v.canonVal == nil || v.canonText != v.canon {
		v.canonText, v.canonVal = v.canon, types.String(v.canon)
	}
	return v.canonVal
}

var activations = sync.Pool{New: func() any {
	a := &activation{}
	a.agent.typ = agentType
	a.tv.typ = taskType
	a.tv.v = &a.task
	a.task.act = a
	a.dv.typ = destType
	a.dv.v = &a.dest
	a.vars.typ = varsType
	a.vars.v = a
	return a
}}

func newActivation(g *Guard, t *Task, c *Call) *activation {
	a := activations.Get().(*activation)
	a.g = g
	a.task.t = t
	a.agent.v = t
	a.call = *c
	return a
}

// setTask makes t the task whose view (agent, task) policies read.
func (a *activation) setTask(t *Task) {
	a.task.t = t
	a.agent.v = t
	a.resetVariables()
}

// time returns the decision's now, reading the clock once.
func (a *activation) time() time.Time {
	if !a.nowSet {
		a.now, a.nowSet = a.g.clock(), true
	}
	return a.now
}

func (a *activation) release() {
	a.g = nil
	a.task.t = nil
	a.agent.v = nil
	a.call = Call{}
	a.dest.reset()
	a.args = nil
	a.resetVariables()
	if a.dests != nil || len(a.more) > 0 {
		a.releaseDestinations()
	}
	a.typedArgs, a.argsVal.m = false, nil
	clear(a.rules.rules)
	clear(a.deciders)
	a.deciders = a.deciders[:0]
	a.now, a.nowSet = time.Time{}, false
	activations.Put(a)
}

// reset forgets the destination, keeping the CEL values of short texts
// for the next use of the pooled activation.
func (v *destView) reset() {
	v.d, v.canon = dest.Destination{}, ""
	if len(v.hostText) > MaxInputSize {
		v.hostText, v.hostVal = "", nil
	}
	if len(v.canonText) > MaxInputSize {
		v.canonText, v.canonVal = "", nil
	}
}

// moreDestinations returns n destination views for the call's further
// destinations.
func (a *activation) moreDestinations(n int) []destView {
	if cap(a.more) < n {
		a.more = make([]destView, n)
	}
	a.more = a.more[:n]
	return a.more
}

// destinations returns the CEL list of the call's destinations, primary
// first; empty when the call has none.
func (a *activation) destinations() ref.Val {
	if a.dests != nil {
		return a.dests
	}
	vals := a.destVals[:0]
	if a.call.Destination != "" {
		vals = append(vals, &a.dv)
	}
	if cap(a.moreObjs) < len(a.more) {
		a.moreObjs = make([]object, len(a.more))
	}
	a.moreObjs = a.moreObjs[:len(a.more)]
	for i := range a.more {
		a.moreObjs[i] = object{typ: destType, v: &a.more[i]}
		vals = append(vals, &a.moreObjs[i])
	}
	a.destVals = vals
	a.dests = types.NewRefValList(types.DefaultTypeAdapter, vals)
	return a.dests
}

// releaseDestinations forgets the call's further destinations, keeping
// the arrays (at most MaxDestinations+1 entries each).
func (a *activation) releaseDestinations() {
	a.dests = nil
	clear(a.destVals)
	a.destVals = a.destVals[:0]
	clear(a.moreObjs)
	a.moreObjs = a.moreObjs[:0]
	for i := range a.more {
		a.more[i].reset()
	}
	a.more = a.more[:0]
}

// ResolveName implements [interpreter.Activation].
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "destination":
		return &a.dv, true
	case "intent":
		// A declared intent has a CEL value ready; boxing a string allocates.
		if i := slices.Index(a.task.t.intents, a.call.Intent); i >= 0 {
			return a.task.t.intentVals[i], true
		}
		return types.String(a.call.Intent), true
	case "sensitivity":
		return types.Int(a.call.Sensitivity), true
	case "tool":
		return types.String(a.call.Tool), true
	case "task":
		return &a.tv, true
	case "agent":
		return &a.agent, true
	case "args":
		if a.typedArgs {
			a.argsVal.m = a.call.Args
			return &a.argsVal, true
		}
		if a.args == nil {
			args := a.call.Args
			if args == nil {
				args = map[string]any{}
			}
			a.args = types.NewStringInterfaceMap(types.DefaultTypeAdapter, args)
		}
		return a.args, true
	case "now":
		return types.Timestamp{Time: a.time()}, true
	case "destinations":
		return a.destinations(), true
	case "variables":
		return &a.vars, true
	}
	return nil, false
}

// Parent implements [interpreter.Activation].
func (a *activation) Parent() interpreter.Activation { return nil }
