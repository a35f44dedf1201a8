package authz

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"go.yaml.in/yaml/v3"

	"github.com/taskguard/taskguard/internal/glob"
)

// ToolArgs declares the arguments of a tool: each argument's name and its
// CEL type, written as in a policy's tools block ("int", "list(string)",
// "map(string, double)"; see the package documentation, "Typed tool
// arguments"). A nil or empty ToolArgs declares a tool without arguments.
type ToolArgs map[string]string

// String returns the declaration as {name: type, ...}, names sorted.
func (a ToolArgs) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range slices.Sorted(maps.Keys(a)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n + ": " + a[n])
	}
	b.WriteByte('}')
	return b.String()
}

// RuleArgs is the rule of a decision that denied a call of a declared tool
// whose arguments do not match the declaration.
const RuleArgs = "@args"

// Bounds of declarations.
const (
	maxToolArgs     = 256
	maxDeclaredTool = 10000
)

// toolDecl is one tool's compiled declaration.
type toolDecl struct {
	name  string
	args  map[string]*argType
	names []string // sorted
	from  string   // where it was declared: file:line:col, or the Go source
	sig   string   // canonical form: name:type;...
}

// newToolDecl compiles a declaration; errors name the argument.
func newToolDecl(name, from string, args ToolArgs) (*toolDecl, error) {
	if err := validToolName(name); err != nil {
		return nil, err
	}
	if len(args) > maxToolArgs {
		return nil, fmt.Errorf("tool %q: more than %d arguments", name, maxToolArgs)
	}
	d := &toolDecl{name: name, from: from, args: make(map[string]*argType, len(args))}
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(args)) {
		if err := validArgName(n); err != nil {
			errs = append(errs, fmt.Errorf("tool %q: %w", name, err))
			continue
		}
		t, err := parseArgType(args[n])
		if err != nil {
			errs = append(errs, fmt.Errorf("tool %q: argument %s: %w", name, n, err))
			continue
		}
		d.args[n] = t
		d.names = append(d.names, n)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	d.sig = d.signature()
	return d, nil
}

func (d *toolDecl) signature() string {
	var b strings.Builder
	for _, n := range d.names {
		b.WriteString(n + ":" + d.args[n].name + ";")
	}
	return b.String()
}

// toolArgs returns the declaration as written, canonically.
func (d *toolDecl) toolArgs() ToolArgs {
	out := make(ToolArgs, len(d.args))
	for n, t := range d.args {
		out[n] = t.name
	}
	return out
}

// differences describes how d and o differ, argument by argument.
func (d *toolDecl) differences(o *toolDecl) string {
	var diffs []string
	for _, n := range slices.Sorted(maps.Keys(mergeKeys(d.args, o.args))) {
		a, b := d.args[n], o.args[n]
		switch {
		case a == nil:
			diffs = append(diffs, fmt.Sprintf("%s only in %s", n, o.from))
		case b == nil:
			diffs = append(diffs, fmt.Sprintf("%s only in %s", n, d.from))
		case a.name != b.name:
			diffs = append(diffs, fmt.Sprintf("%s is %s in %s but %s in %s", n, a.name, d.from, b.name, o.from))
		}
	}
	return strings.Join(diffs, "; ")
}

func mergeKeys[V any](a, b map[string]V) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// validToolName checks the name of a declared tool: not empty, bounded,
// printable and without a glob star (a declaration is for one tool).
func validToolName(s string) error {
	switch {
	case s == "":
		return errors.New("tool name is empty")
	case len(s) > MaxInputSize:
		return fmt.Errorf("tool name is longer than %d bytes", MaxInputSize)
	case containsStar(s):
		return fmt.Errorf("tool %q: a declaration names one tool, not a pattern", s)
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("tool %q: name contains a blank or control character", s)
		}
	}
	return nil
}

// celReserved are the words CEL reserves; an argument so named could not be
// read as args.NAME.
var celReserved = map[string]bool{
	"in": true, "as": true, "break": true, "const": true, "continue": true, "else": true, "for": true,
	"function": true, "if": true, "import": true, "let": true, "loop": true, "package": true,
	"namespace": true, "return": true, "var": true, "void": true, "while": true,
	"true": true, "false": true, "null": true,
}

// validArgName checks that an argument can be read as args.NAME.
func validArgName(s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("argument name %q: want 1 to 128 bytes", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return fmt.Errorf("argument name %q: want a CEL identifier (letters, digits, _; not starting with a digit)", s)
	}
	if celReserved[s] {
		return fmt.Errorf("argument name %q is a CEL reserved word", s)
	}
	return nil
}

// toolDecls are the declared tools of a policy or a guard, by name. A
// toolDecls is immutable once built.
type toolDecls map[string]*toolDecl

// merge returns the union of ds and o. A tool declared in both must be
// declared alike; otherwise the error says where each declaration comes
// from and how they differ.
func (ds toolDecls) merge(o toolDecls) (toolDecls, []error) {
	if len(o) == 0 {
		return ds, nil
	}
	if len(ds) == 0 {
		return o, nil
	}
	out := maps.Clone(ds)
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(o)) {
		d := o[n]
		if prev, ok := out[n]; ok {
			if prev.sig != d.sig {
				errs = append(errs, fmt.Errorf("tool %q is declared differently in %s and %s: %s", n, prev.from, d.from, prev.differences(d)))
			}
			continue
		}
		out[n] = d
	}
	return out, errs
}

// argsShape is what a typed rule's args look like: the arguments the
// declared tools of the rule have in common.
type argsShape struct {
	tools  []string // the declared tools the rule's patterns stand for, sorted
	fields map[string]*argType
	names  []string // sorted
	sig    string   // canonical: identifies the shape
}

// shapeFor returns the args shape of a rule over patterns, or nil when the
// rule's args stay dynamic. A rule is typed when each of its patterns
// stands for declared tools: a plain name must be declared itself, a glob
// must match at least one declared name. Its args are the arguments all of
// those tools declare; an argument declared with different types is dyn.
func (ds toolDecls) shapeFor(patterns []string) *argsShape {
	if len(ds) == 0 || len(patterns) == 0 {
		return nil
	}
	var tools []string
	for _, p := range patterns {
		if !containsStar(p) {
			if ds[p] == nil {
				return nil
			}
			tools = append(tools, p)
			continue
		}
		n := len(tools)
		for name := range ds {
			if glob.Match(p, name) {
				tools = append(tools, name)
			}
		}
		if len(tools) == n {
			return nil
		}
	}
	slices.Sort(tools)
	tools = slices.Compact(tools)
	s := &argsShape{tools: tools, fields: map[string]*argType{}}
	first := ds[tools[0]]
	for _, n := range first.names {
		t := first.args[n]
		common := true
		for _, other := range tools[1:] {
			ot, ok := ds[other].args[n]
			if !ok {
				common = false
				break
			}
			if ot.name != t.name {
				t = scalarArgTypes["dyn"]
			}
		}
		if common {
			s.fields[n] = t
			s.names = append(s.names, n)
		}
	}
	var b strings.Builder
	for _, n := range s.names {
		b.WriteString(n + ":" + s.fields[n].name + ";")
	}
	s.sig = b.String()
	return s
}

// describe says which arguments the shape has, for error messages.
func (s *argsShape) describe() string {
	args := "no arguments"
	if len(s.names) > 0 {
		args = "arguments " + strings.Join(s.names, ", ")
	}
	if len(s.tools) == 1 {
		return fmt.Sprintf("tool %s declares %s", s.tools[0], args)
	}
	return fmt.Sprintf("tools %s declare in common %s", strings.Join(s.tools, ", "), args)
}

// celArgs is the CEL type name of a typed rule's args.
const celArgs = "taskguard.Args"

// argsObject returns the object definition of s: each field reads the
// call's argument of that name as its declared type. An absent or null
// argument is not set (has() is false) and reading it is an error; a value
// of another type is an error: either denies the call.
func (s *argsShape) argsObject() objectDef {
	d := objectDef{names: s.names, fields: make(map[string]*types.FieldType, len(s.fields))}
	for _, n := range s.names {
		t := s.fields[n]
		d.fields[n] = &types.FieldType{
			Type: t.cel,
			IsSet: func(v any) bool {
				m, _ := v.(map[string]any)
				return m[n] != nil
			},
			GetFrom: func(v any) (any, error) {
				m, _ := v.(map[string]any)
				a, ok := m[n]
				if !ok || a == nil {
					return nil, fmt.Errorf("no such key: %s", n)
				}
				return t.value(a)
			},
		}
	}
	return d
}

// typedEnvs caches the environments of args shapes, by shape signature and
// provenance. Shapes are few (one per distinct set of common arguments),
// but the cache is bounded all the same.
var typedEnvs struct {
	sync.Mutex
	m map[string]*cel.Env
}

const maxTypedEnvs = 4096

// typedEnv returns the environment in which the rules of shape s compile:
// the guard's environment with args of the object type of s.
func typedEnv(s *argsShape, lateBound bool) (*cel.Env, error) {
	key := s.sig
	if lateBound {
		key = "late\x00" + key
	}
	typedEnvs.Lock()
	env, ok := typedEnvs.m[key]
	typedEnvs.Unlock()
	if ok {
		return env, nil
	}
	base, err := celBaseEnv()
	if err != nil {
		return nil, err
	}
	p, err := celProvider()
	if err != nil {
		return nil, err
	}
	opts := []cel.EnvOption{
		cel.CustomTypeProvider(&objectProvider{Provider: p, name: celArgs, def: s.argsObject()}),
		cel.Variable("args", argsObjectType),
	}
	if lateBound {
		opts = append(opts, provenanceFunctions()...)
	}
	env, err = base.Extend(opts...)
	if err != nil {
		return nil, err
	}
	typedEnvs.Lock()
	if typedEnvs.m == nil || len(typedEnvs.m) >= maxTypedEnvs {
		typedEnvs.m = map[string]*cel.Env{}
	}
	typedEnvs.m[key] = env
	typedEnvs.Unlock()
	return env, nil
}

// argsHint adds to a CEL "undefined field" error about args which
// arguments the rule's tools declare.
func argsHint(s *argsShape, expr string, is celIssue) string {
	if s == nil || !strings.HasPrefix(is.msg, "undefined field") {
		return is.msg
	}
	// The issue's column points at the selection: look for "args" before it.
	lines := strings.Split(expr, "\n")
	if is.line < 1 || is.line > len(lines) {
		return is.msg
	}
	line := []rune(lines[is.line-1])
	if is.col < 0 || is.col > len(line) {
		return is.msg
	}
	before := strings.TrimRight(string(line[:is.col]), " \t.")
	if !strings.HasSuffix(before, "args") {
		return is.msg
	}
	return is.msg + " (" + s.describe() + "; read other arguments with dyn(args).NAME)"
}

// checkArgs checks the arguments of a call of a declared tool against the
// declaration: every argument must be declared and hold a value of its
// declared type (a null is an absent argument). The error names the
// argument and the type, never a value.
func (d *toolDecl) checkArgs(args map[string]any) error {
	for k, v := range args {
		t, ok := d.args[k]
		if !ok {
			return fmt.Errorf("argument %s is not declared for tool %s", quoteKey([]byte(k)), d.name)
		}
		if v != nil && !t.check(v) {
			return fmt.Errorf("argument %s of tool %s is not of type %s", quoteKey([]byte(k)), d.name, t.name)
		}
	}
	return nil
}

// parseTools parses a policy's tools block:
//
//	tools:
//	  payments.send:
//	    args: {amount: int, to: string, cc: list(string)}
func parseTools(n *yaml.Node, perr func(*yaml.Node, string, string, ...any) error, file string) (toolDecls, []error) {
	if n.Kind != yaml.MappingNode {
		return nil, []error{perr(n, "", "tools must be a mapping from tool name to {args: {name: type}}")}
	}
	var errs []error
	out := toolDecls{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, perr(k, "", "tools: a tool name must be a string"))
			continue
		}
		if err := validToolName(name); err != nil {
			errs = append(errs, perr(k, "", "tools: %v", err))
			continue
		}
		if _, dup := out[name]; dup {
			errs = append(errs, perr(k, "", "tools: tool %q is declared twice", name))
			continue
		}
		if len(out) >= maxDeclaredTool {
			errs = append(errs, perr(k, "", "tools: more than %d tools", maxDeclaredTool))
			break
		}
		d, derrs := parseToolDecl(name, v, perr)
		errs = append(errs, derrs...)
		if d != nil {
			d.from = fmt.Sprintf("%s:%d:%d", file, k.Line, k.Column)
			out[name] = d
		}
	}
	return out, errs
}

// parseToolDecl parses {args: {name: type, ...}} of tool name.
func parseToolDecl(name string, n *yaml.Node, perr func(*yaml.Node, string, string, ...any) error) (*toolDecl, []error) {
	if n.Kind != yaml.MappingNode {
		return nil, []error{perr(n, "", "tools: %s: want a mapping like {args: {amount: int}}", name)}
	}
	var errs []error
	var argsNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "args":
			if argsNode != nil {
				errs = append(errs, perr(k, "", "tools: %s: duplicate key args", name))
			}
			argsNode = v
		default:
			errs = append(errs, perr(k, "", "tools: %s: unknown key %q (want args)", name, k.Value))
		}
	}
	if argsNode == nil {
		return nil, append(errs, perr(n, "", "tools: %s: missing args", name))
	}
	if argsNode.Kind != yaml.MappingNode {
		if argsNode.Kind == yaml.ScalarNode && argsNode.Tag == "!!null" {
			argsNode = &yaml.Node{Kind: yaml.MappingNode} // args: (none)
		} else {
			return nil, append(errs, perr(argsNode, "", "tools: %s: args must be a mapping from argument name to type, like {amount: int}", name))
		}
	}
	if len(argsNode.Content)/2 > maxToolArgs {
		return nil, append(errs, perr(argsNode, "", "tools: %s: more than %d arguments", name, maxToolArgs))
	}
	d := &toolDecl{name: name, args: map[string]*argType{}}
	flow := argsNode.Style&yaml.FlowStyle != 0
	for i := 0; i+1 < len(argsNode.Content); i += 2 {
		k, v := argsNode.Content[i], argsNode.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, perr(k, "", "tools: %s: an argument name must be a string", name))
			continue
		}
		if err := validArgName(k.Value); err != nil {
			if flow && strings.ContainsAny(k.Value, ")") {
				errs = append(errs, perr(k, "", "tools: %s: %v (a type with a comma inside {...} must be quoted: \"map(string, int)\")", name, err))
			} else {
				errs = append(errs, perr(k, "", "tools: %s: %v", name, err))
			}
			continue
		}
		if _, dup := d.args[k.Value]; dup {
			errs = append(errs, perr(k, "", "tools: %s: argument %s is declared twice", name, k.Value))
			continue
		}
		switch {
		case v.Kind != yaml.ScalarNode:
			errs = append(errs, perr(v, "", "tools: %s: argument %s: want a type name (%s), not a YAML list or mapping", name, k.Value, argTypeNames))
			continue
		case v.Tag == "!!null":
			errs = append(errs, perr(v, "", "tools: %s: argument %s: missing type (want %s)", name, k.Value, argTypeNames))
			continue
		case strings.HasPrefix(v.Tag, "!") && !strings.HasPrefix(v.Tag, "!!"):
			errs = append(errs, perr(v, "", "tools: %s: argument %s: YAML read %s as a tag: quote the type", name, k.Value, v.Tag))
			continue
		case v.Tag != "!!str":
			errs = append(errs, perr(v, "", "tools: %s: argument %s: %q is not a type (want %s)", name, k.Value, v.Value, argTypeNames))
			continue
		}
		t, err := parseArgType(v.Value)
		if err != nil {
			msg := err.Error()
			if flow && strings.Count(v.Value, "(") > strings.Count(v.Value, ")") {
				msg += " (a type with a comma inside {...} must be quoted: \"map(string, int)\")"
			}
			errs = append(errs, perr(v, "", "tools: %s: argument %s: %s", name, k.Value, msg))
			continue
		}
		d.args[k.Value] = t
		d.names = append(d.names, k.Value)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	slices.Sort(d.names)
	d.sig = d.signature()
	return d, nil
}

// Tools returns the tools the policy declares (its tools blocks), each with
// its arguments, type names written canonically. The map is the caller's.
func (p *Policy) Tools() map[string]ToolArgs {
	if p == nil || len(p.tools) == 0 {
		return nil
	}
	out := make(map[string]ToolArgs, len(p.tools))
	for n, d := range p.tools {
		out[n] = d.toolArgs()
	}
	return out
}

// argsObjectType is the CEL type of a typed rule's args.
var argsObjectType = types.NewObjectType(celArgs, traits.ContainerType, traits.FieldTesterType, traits.IndexerType, traits.SizerType)

// argsVal is a call's args as typed rules see them: field selections go
// through the shape's fields (argsObject); dyn(args) reads it as a map.
type argsVal struct{ m map[string]any }

func (v *argsVal) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("%s cannot be converted to %v", celArgs, t)
}

func (v *argsVal) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return argsObjectType
	}
	return types.NewErr("type conversion error from %s to %s", celArgs, t.TypeName())
}

func (v *argsVal) Equal(other ref.Val) ref.Val { return types.Bool(other == ref.Val(v)) }
func (v *argsVal) Type() ref.Type              { return argsObjectType }

// Value returns the arguments map (never nil).
func (v *argsVal) Value() any {
	if v.m == nil {
		return map[string]any{}
	}
	return v.m
}

// Get implements traits.Indexer for dyn(args)[key] and dyn(args).key.
func (v *argsVal) Get(key ref.Val) ref.Val {
	k, ok := key.(types.String)
	if !ok {
		return types.ValOrErr(key, "no such overload")
	}
	a, ok := v.m[string(k)]
	if !ok {
		return types.NewErr("no such key: %v", k)
	}
	return types.DefaultTypeAdapter.NativeToValue(a)
}

// Contains implements traits.Container for key in dyn(args).
func (v *argsVal) Contains(key ref.Val) ref.Val {
	k, ok := key.(types.String)
	if !ok {
		return types.ValOrErr(key, "no such overload")
	}
	_, ok = v.m[string(k)]
	return types.Bool(ok)
}

// Size implements traits.Sizer for size(dyn(args)).
func (v *argsVal) Size() ref.Val { return types.Int(len(v.m)) }

// IsSet implements traits.FieldTester for has(dyn(args).key).
func (v *argsVal) IsSet(field ref.Val) ref.Val { return v.Contains(field) }

// hashTools adds the declarations to a policy's version hash.
func hashTools(h io.Writer, decls toolDecls) {
	for _, n := range slices.Sorted(maps.Keys(decls)) {
		fmt.Fprintf(h, "tool %q %q\n", n, decls[n].sig)
	}
}

// declaredArgs checks the arguments of a call of a declared tool against
// its declaration (RuleArgs): a call whose arguments the policy was not
// type-checked for must not reach the rules.
func (s *decision) declaredArgs() bool {
	d := s.st.tools[s.c.Tool]
	if d == nil {
		return true
	}
	if err := d.checkArgs(s.c.Args); err != nil {
		return s.deny(RuleArgs, "arguments do not match the tool's declaration: "+err.Error(), err)
	}
	s.pass(RuleArgs, "arguments match the tool's declaration")
	return true
}
