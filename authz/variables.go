package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"go.yaml.in/yaml/v3"
)

// Named expressions: a policy document may declare
//
//	variables:
//	  - name: named_recipients
//	    expression: destinations.all(d, d.canonical in task.scope.recipients)
//
// and its rules use them as variables.named_recipients. Each variable is
// compiled once, type-checked and cost-estimated at load, and evaluated at
// most once per call and task view, only when a rule reads it. A variable
// may use the variables declared before it.

// celVariables is the CEL type name of the variables object.
const celVariables = "taskguard.Variables"

var varsType = types.NewObjectType(celVariables)

// maxVariables bounds the variables of one document.
const maxVariables = 256

// pendingVar is a variable as written.
type pendingVar struct {
	name, expr string
	at         *PolicyError // file and position of the entry, for errors
	mapPos     whenPos      // maps positions inside expr to the file
}

// docVars are the compiled variables of one policy document. Immutable
// after compileVars; shared by the document's rules.
type docVars struct {
	names []string
	progs []program
	// cost is the worst-case cost of evaluating each variable, the
	// variables it uses included.
	cost []uint64
	// size is the size estimate of each variable's value (nil: unknown).
	size []*cost.SizeEstimate
	// envs are the environments declaring the variables, by the kind of
	// expression compiled in them (see envFor), built on first use.
	envs   map[string]*cel.Env
	fields map[string]field
	// sig is a digest of the names and expressions, for the policy version.
	sig string
}

func (dv *docVars) index(name string) int { return slices.Index(dv.names, name) }

// parseVariables parses a document's variables list.
func parseVariables(file string, n *yaml.Node, perr func(*yaml.Node, string, string, ...any) error) ([]pendingVar, []error) {
	if n.Kind != yaml.SequenceNode {
		return nil, []error{perr(n, "", "variables must be a list of {name, expression} entries")}
	}
	var out []pendingVar
	var errs []error
	for _, e := range n.Content {
		if e.Kind != yaml.MappingNode {
			errs = append(errs, perr(e, "", "variables: each entry must be a mapping with name and expression"))
			continue
		}
		var v pendingVar
		var exprNode *yaml.Node
		ok := true
		for i := 0; i+1 < len(e.Content); i += 2 {
			k, val := e.Content[i], e.Content[i+1]
			if val.Kind != yaml.ScalarNode || val.Tag == "!!null" {
				errs = append(errs, perr(val, "", "variables: %s must be a string", k.Value))
				ok = false
				continue
			}
			switch k.Value {
			case "name":
				v.name = val.Value
			case "expression":
				v.expr, exprNode = val.Value, val
			default:
				errs = append(errs, perr(k, "", "variables: unknown key %q (want name, expression)", k.Value))
				ok = false
			}
		}
		if v.name == "" || exprNode == nil {
			errs = append(errs, perr(e, "", "variables: each entry needs a name and an expression"))
			continue
		}
		if ok {
			v.at = &PolicyError{File: file, Line: e.Line, Col: e.Column}
			v.mapPos = whenPosition(exprNode)
			out = append(out, v)
		}
	}
	return out, errs
}

// parseAndCompileVars parses and compiles a document's variables.
func parseAndCompileVars(file string, n *yaml.Node, perr func(*yaml.Node, string, string, ...any) error) (*docVars, []error) {
	vars, errs := parseVariables(file, n, perr)
	if len(errs) > 0 {
		return nil, errs
	}
	return compileVars(vars)
}

func validVarName(s string) error {
	if s == "" || len(s) > maxRuleName {
		return fmt.Errorf("name %q: want 1 to %d bytes", s, maxRuleName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("name %q: want a CEL identifier (letters, digits and _, not starting with a digit)", s)
		}
	}
	if celReserved[s] {
		return fmt.Errorf("name %q is a reserved word of CEL", s)
	}
	return nil
}

// compileVars compiles a document's variables in order, each against the
// ones declared before it. It returns nil when vars is empty.
func compileVars(vars []pendingVar) (*docVars, []error) {
	if len(vars) == 0 {
		return nil, nil
	}
	var errs []error
	fail := func(v pendingVar, line, col int, msg string, args ...any) {
		e := *v.at
		if v.mapPos != nil && line > 0 {
			e.Line, e.Col = v.mapPos(line, col)
		}
		e.Msg = fmt.Sprintf("variable %q: ", v.name) + fmt.Sprintf(msg, args...)
		errs = append(errs, &e)
	}
	if len(vars) > maxVariables {
		fail(vars[maxVariables], 0, 0, "more than %d variables", maxVariables)
		return nil, errs
	}
	dv := &docVars{fields: map[string]field{}, envs: map[string]*cel.Env{}}
	h := sha256.New()
	declared := make([]string, 0, len(vars))
	for i, v := range vars {
		fmt.Fprintf(h, "%q %q\n", v.name, v.expr)
		if err := validVarName(v.name); err != nil {
			fail(v, 0, 0, "%v", err)
			continue
		}
		if slices.Contains(declared, v.name) {
			fail(v, 0, 0, "declared twice")
			continue
		}
		declared = append(declared, v.name)
		if len(errs) > 0 {
			continue // later variables may use a broken one: report its errors only
		}
		env, err := dv.envFor(v.expr, nil)
		if err != nil {
			fail(v, 0, 0, "CEL environment: %v", err)
			continue
		}
		c, issues := compileExpr(env, v.expr, dv, nil, false)
		for _, is := range issues {
			fail(v, is.line, is.col, "%s", laterVariableHint(is.msg, v.name, vars[i+1:]))
		}
		if len(issues) > 0 {
			continue
		}
		idx := len(dv.names)
		dv.names = append(dv.names, v.name)
		dv.progs = append(dv.progs, c.prg)
		dv.cost = append(dv.cost, c.cost)
		dv.size = append(dv.size, c.size)
		dv.fields[v.name] = field{typ: c.typ, get: func(x any) ref.Val { return x.(*activation).variable(dv, idx) }}
		clear(dv.envs)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	dv.sig = hex.EncodeToString(h.Sum(nil)[:12])
	return dv, nil
}

// compileWhen compiles a rule's when in the document; shape, when not
// nil, types args.
func (dv *docVars) compileWhen(expr string, shape *argsShape) (program, []celIssue) {
	env, err := dv.envFor(expr, shape)
	if err != nil {
		return program{}, []celIssue{{msg: "CEL environment: " + err.Error()}}
	}
	c, issues := compileExpr(env, expr, dv, shape, true)
	for i := range issues {
		issues[i].msg = unknownVariableHint(issues[i].msg, expr, dv)
	}
	return c.prg, issues
}

// unknownVariableHint says so when a rule reads a variable the document
// does not declare.
func unknownVariableHint(msg, expr string, dv *docVars) string {
	if _, rest, ok := strings.Cut(msg, "undefined field '"); ok {
		if name, _, ok := strings.Cut(rest, "'"); ok && dv.index(name) < 0 && strings.Contains(expr, "variables."+name) {
			return fmt.Sprintf("no variable %q is declared in this document: %s", name, msg)
		}
	}
	return msg
}

// laterVariableHint rewrites the checker's message about an undefined
// field of variables when the field is a variable declared later (or the
// variable itself).
func laterVariableHint(msg, self string, later []pendingVar) string {
	if strings.Contains(msg, "undefined field '"+self+"'") {
		return "a variable cannot use itself: " + msg
	}
	for _, l := range later {
		if strings.Contains(msg, "undefined field '"+l.name+"'") {
			return fmt.Sprintf("variables.%s is declared after this variable; a variable may use only those declared before it: %s", l.name, msg)
		}
	}
	return msg
}

// envFor returns the environment in which expr compiles in the document,
// its args typed by shape (nil: dynamic): the policy environment (see the
// package-level envFor) with the variables compiled so far. Variables
// themselves always see args as dynamic: they belong to no tool.
func (dv *docVars) envFor(expr string, shape *argsShape) (*cel.Env, error) {
	key := "dyn"
	if shape != nil {
		key = "typed\x00" + shape.sig
	}
	if strings.Contains(expr, "fromUntrusted") || strings.Contains(expr, "fromTrusted") {
		key = "late\x00" + key
	}
	if env, ok := dv.envs[key]; ok {
		return env, nil
	}
	base, err := envFor(expr, shape)
	if err != nil {
		return nil, err
	}
	p := &objectProvider{Provider: base.CELTypeProvider(), name: celVariables, def: defineObject(dv.fields)}
	env, err := base.Extend(cel.CustomTypeProvider(p), cel.Variable("variables", varsType))
	if err != nil {
		return nil, err
	}
	dv.envs[key] = env
	return env, nil
}

// objectProvider is a type provider plus one object type of the guard,
// whose fields are def: the args of declared tools (celArgs) or the
// variables of a document (celVariables).
type objectProvider struct {
	types.Provider
	name string
	def  objectDef
}

func (p *objectProvider) FindStructType(name string) (*types.Type, bool) {
	if name == p.name {
		return types.NewTypeTypeWithParam(types.NewObjectType(p.name)), true
	}
	return p.Provider.FindStructType(name)
}

func (p *objectProvider) FindStructFieldNames(name string) ([]string, bool) {
	if name == p.name {
		return p.def.names, true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p *objectProvider) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	if name == p.name {
		f, ok := p.def.fields[fieldName]
		return f, ok
	}
	return p.Provider.FindStructFieldType(name, fieldName)
}

func (p *objectProvider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if name == p.name {
		return types.NewErr("%s values cannot be constructed in policies", name)
	}
	return p.Provider.NewValue(name, fields)
}

// usedVariables returns the indexes of the variables the checked
// expression reads (variables.NAME), each once.
func (dv *docVars) usedVariables(ast *cel.Ast) []int {
	if dv == nil {
		return nil
	}
	var used []int
	celast.PreOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.SelectKind {
			return
		}
		sel := e.AsSelect()
		if op := sel.Operand(); op.Kind() == celast.IdentKind && op.AsIdent() == "variables" {
			if i := dv.index(sel.FieldName()); i >= 0 && !slices.Contains(used, i) {
				used = append(used, i)
			}
		}
	}))
	return used
}

// sizeOf returns the size estimate of the value at path under variables
// (path[0] is a variable's name): a copy, since cel-go modifies the
// estimates it is given; nil when unknown.
func (dv *docVars) sizeOf(path []string) *cost.SizeEstimate {
	if dv == nil || len(path) == 0 {
		return nil
	}
	i := dv.index(path[0])
	if i < 0 {
		return nil
	}
	sz := dv.size[i]
	for _, p := range path[1:] {
		if sz == nil {
			return nil
		}
		switch p {
		case "@items", "@values":
			sz = sz.Elem
		case "@keys":
			sz = sz.Key
		default:
			return nil
		}
	}
	if sz == nil {
		return nil
	}
	c := *sz
	return &c
}

// variable returns the value of variable i of dv in this evaluation,
// evaluating it on first use; an evaluation error is its value, so every
// rule reading it fails to evaluate.
func (a *activation) variable(dv *docVars, i int) ref.Val {
	base := -1
	for j, d := range a.varDocs {
		if d == dv {
			base = a.varBase[j]
			break
		}
	}
	if base < 0 {
		base = len(a.varVals)
		a.varDocs = append(a.varDocs, dv)
		a.varBase = append(a.varBase, base)
		for range dv.progs {
			a.varVals = append(a.varVals, nil)
		}
	}
	if v := a.varVals[base+i]; v != nil {
		return v
	}
	v := dv.progs[i].value(a)
	a.varVals[base+i] = v
	return v
}

// resetVariables forgets the variables' values: the task view changed or
// the evaluation ended.
func (a *activation) resetVariables() {
	if len(a.varDocs) == 0 {
		return
	}
	clear(a.varDocs)
	clear(a.varVals)
	a.varDocs, a.varBase, a.varVals = a.varDocs[:0], a.varBase[:0], a.varVals[:0]
}

// value evaluates the program to any value; an error becomes an error
// value. It runs inside the evaluation of a rule, whose view of args it
// restores.
func (p *program) value(act *activation) ref.Val {
	if p.constant != nil {
		return types.Bool(*p.constant)
	}
	var vars any = act
	if p.lateBound {
		vars = funcActivation{act}
	}
	typed := act.typedArgs
	act.typedArgs = p.typed
	out, _, err := p.prg.Eval(vars)
	act.typedArgs = typed
	if err != nil {
		return types.WrapErr(err)
	}
	return out
}
