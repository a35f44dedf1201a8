package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/taskguard/taskguard/internal/glob"
)

// Rule is one policy rule as written: for calls of the tools matching one of
// Tools, when When holds, the decision is Effect.
type Rule struct {
	// Name identifies the rule in decisions and errors. It is unique within a
	// policy and matches [A-Za-z0-9][A-Za-z0-9._:/-]* (at most 128 bytes).
	Name string
	// Tools are glob patterns of tool names ("http.*", "*"). At least one.
	Tools []string
	// Effect is the decision when the rule matches.
	Effect Effect
	// When is a CEL expression of type bool over the call and its task.
	// "true" makes the rule unconditional; it must not be empty.
	When string
	// Reason explains the decision to the agent and in the audit log. When
	// empty, the decision says which rule decided.
	Reason string
	// Mode is Enforce (the zero value) or Shadow: a shadow rule is
	// evaluated and reported in Decision.Shadow and the audit log, but never
	// changes the decision.
	Mode Mode
	// Limit, when set on an allow or ask rule, rate-limits the calls the
	// rule decides, per task.
	Limit *Limit
}

// Mode says whether a rule is enforced or only observed.
type Mode int8

// The modes. Enforce is the zero value.
const (
	Enforce Mode = iota
	Shadow
)

func (m Mode) String() string {
	if m == Shadow {
		return "shadow"
	}
	return "enforce"
}

// Limit is a token-bucket rate limit (golang.org/x/time/rate): Rate events
// per Per on average, with bursts of up to Burst.
type Limit struct {
	Rate  int
	Per   time.Duration
	Burst int
}

// String returns the limit as written in policies: "10/1m0s burst 5".
func (l *Limit) String() string { return fmt.Sprintf("%d/%v burst %d", l.Rate, l.Per, l.Burst) }

func (l *Limit) validate() error {
	if l.Rate <= 0 || l.Per <= 0 {
		return errors.New("limit: rate must be positive (like 10/m)")
	}
	if l.Burst <= 0 {
		return errors.New("limit: burst must be positive")
	}
	return nil
}

// rule is a compiled rule.
type rule struct {
	Rule
	pos   string // file:line:col of the rule, for messages
	order int    // position in the policy
	when  program
	exact bool // every pattern in Tools is a plain name
	// decided is the decision's reason: Reason, or one naming the rule.
	decided string
	// src is where the rule was written, to compile it again against
	// other tool declarations (tooltypes.go).
	src pendingRule
	// shape types args; nil when the rule's tools are not all declared.
	shape *argsShape
}

func (r *rule) matchesTool(tool string) bool {
	for _, p := range r.Tools {
		if glob.Match(p, tool) {
			return true
		}
	}
	return false
}

// Policy is a compiled set of rules. Build it with [ParsePolicy],
// [LoadPolicyFiles] or [NewPolicy]; a Policy is immutable and safe for
// concurrent use. A nil *Policy has no rules.
type Policy struct {
	rules   []*rule
	version string
	tools   toolDecls // declared tools (tools blocks)
}

// Version returns a content hash of the policy's rules ("sha256:…"); two
// policies with the same rules in the same order have the same version.
func (p *Policy) Version() string {
	if p == nil {
		return ""
	}
	return p.version
}

// Rules returns a copy of the policy's rules, in order.
func (p *Policy) Rules() []Rule {
	if p == nil {
		return nil
	}
	out := make([]Rule, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.Rule
		out[i].Tools = slices.Clone(r.Tools)
	}
	return out
}

// PolicyError is one problem found while loading a policy. Errors of a
// policy are reported together, joined with [errors.Join].
type PolicyError struct {
	File      string // file or policy name
	Line, Col int    // 1-based; zero when unknown
	Rule      string // rule name, when known
	Msg       string
}

func (e *PolicyError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// maxRuleName bounds the length of a rule name.
const maxRuleName = 128

func validRuleName(s string) error {
	if s == "" {
		return errors.New("name is empty")
	}
	if len(s) > maxRuleName {
		return fmt.Errorf("name is longer than %d bytes", maxRuleName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == ':' || c == '/' || c == '-'):
		default:
			return fmt.Errorf("name %q: want letters, digits and . _ : / - (starting with a letter or digit)", s)
		}
	}
	return nil
}

// NewPolicy compiles rules written in Go. name labels the policy in errors
// (name#N: rule "x": ...). All problems are reported together.
func NewPolicy(name string, rules ...Rule) (*Policy, error) {
	pending := make([]pendingRule, len(rules))
	for i, r := range rules {
		pending[i] = pendingRule{rule: r, at: &PolicyError{File: fmt.Sprintf("%s#%d", name, i+1), Rule: r.Name}}
	}
	out, errs := compileRules(pending, nil)
	return finish(out, nil, errs)
}

// pendingRule is a rule as written, with where it was written, waiting to
// be compiled.
type pendingRule struct {
	rule   Rule
	at     *PolicyError // file, position and rule name for its errors
	mapPos whenPos      // nil for rules written in Go
	errs   []error      // the rule did not parse: these are its errors
	vars   *docVars     // the variables of its document, if any
}

// compileRules compiles rules in order and reports the errors of each rule
// in order. Their distinct when expressions
// are compiled first, once each and concurrently: compiling CEL dominates
// loading a policy.
func compileRules(rules []pendingRule, decls toolDecls) ([]*rule, []error) {
	exprs := make([]whenKey, 0, len(rules))
	shapes := make([]*argsShape, len(rules))
	for i, r := range rules {
		if r.errs == nil {
			shapes[i] = decls.shapeFor(r.rule.Tools)
		}
		if r.errs == nil && r.vars == nil {
			exprs = append(exprs, whenKey{r.rule.When, shapes[i]})
		}
	}
	whens := compileWhens(exprs)
	var errs []error
	out := make([]*rule, 0, len(rules))
	for i, r := range rules {
		if r.errs != nil {
			errs = append(errs, r.errs...)
			continue
		}
		cr, rerrs := compileRule(r, shapes[i], whens)
		errs = append(errs, rerrs...)
		if cr != nil {
			out = append(out, cr)
		}
	}
	return out, errs
}

// whenPos maps a position inside a when expression to the file.
type whenPos func(line, col int) (int, int)

// compileRule validates and compiles the rule of pr, its args typed by
// shape (nil: dynamic), in the document's variables (pr.vars, if any).
// pr.at carries the file, position and rule name used for its errors.
func compileRule(pr pendingRule, shape *argsShape, whens map[whenID]compiledWhen) (*rule, []error) {
	r, at, mapPos := pr.rule, pr.at, pr.mapPos
	var errs []error
	fail := func(msg string, args ...any) {
		e := *at
		e.Msg = fmt.Sprintf(msg, args...)
		errs = append(errs, &e)
	}
	if err := validRuleName(r.Name); err != nil {
		fail("%v", err)
	}
	if len(r.Tools) == 0 {
		fail("tools: at least one tool pattern is required")
	}
	exact := true
	for _, p := range r.Tools {
		if err := glob.ValidPattern(p); err != nil {
			fail("tools: %v", err)
		}
		exact = exact && !containsStar(p)
	}
	switch r.Effect {
	case Allow, Deny, Ask:
	default:
		fail("invalid effect %v", r.Effect)
	}
	if r.Mode != Enforce && r.Mode != Shadow {
		fail("invalid mode %d", r.Mode)
	}
	if r.Limit != nil {
		if err := r.Limit.validate(); err != nil {
			fail("%v", err)
		} else if r.Effect == Deny {
			fail("limit: only allow and ask rules can be rate-limited")
		}
		l := *r.Limit
		r.Limit = &l
	}
	cr := &rule{Rule: r, pos: at.File, exact: exact, decided: r.Reason, src: pr, shape: shape}
	if cr.decided == "" {
		cr.decided = fmt.Sprintf("%s by rule %s", map[Effect]string{Allow: "allowed", Deny: "denied", Ask: "needs approval"}[r.Effect], r.Name)
	}
	cr.Tools = slices.Clone(r.Tools)
	if at.Line > 0 {
		cr.pos = fmt.Sprintf("%s:%d:%d", at.File, at.Line, at.Col)
	}
	if strings.TrimSpace(r.When) == "" {
		fail("when: expression is empty (write `true` for an unconditional rule)")
	} else {
		key := whenKey{r.When, shape}
		w, ok := whens[key.id()]
		switch {
		case pr.vars != nil:
			w.prg, w.issues = pr.vars.compileWhen(r.When, shape)
		case !ok:
			w.prg, w.issues = compileWhen(r.When, shape)
		}
		prg := w.prg
		for _, is := range w.issues {
			e := *at
			if mapPos != nil {
				e.Line, e.Col = mapPos(is.line, is.col)
			}
			e.Msg = "when: " + is.msg
			errs = append(errs, &e)
		}
		cr.when = prg
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cr, nil
}

// finish checks names across rules and computes the version of the rules
// and the declared tools.
func finish(rules []*rule, decls toolDecls, errs []error) (*Policy, error) {
	seen := make(map[string]*rule, len(rules))
	for _, r := range rules {
		if prev, dup := seen[r.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: rule %q: duplicate rule name (first defined at %s)", r.pos, r.Name, prev.pos))
			continue
		}
		seen[r.Name] = r
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	h := sha256.New()
	for i, r := range rules {
		r.order = i
		fmt.Fprintf(h, "%q %q %v %q %q %v", r.Name, r.Tools, r.Effect, r.When, r.Reason, r.Mode)
		if r.Limit != nil {
			fmt.Fprintf(h, " %v", r.Limit)
		}
		if r.src.vars != nil {
			fmt.Fprintf(h, " variables %s", r.src.vars.sig)
		}
		h.Write([]byte{'\n'})
	}
	hashTools(h, decls)
	return &Policy{rules: rules, tools: decls, version: "sha256:" + hex.EncodeToString(h.Sum(nil)[:12])}, nil
}

// mergePolicies combines the rules of ps in order; rule names must stay unique.
func mergePolicies(ps ...*Policy) (*Policy, error) {
	var rules []*rule
	var decls toolDecls
	var errs []error
	for _, p := range ps {
		if p == nil {
			continue
		}
		var derrs []error
		decls, derrs = decls.merge(p.tools)
		errs = append(errs, derrs...)
		for _, r := range p.rules {
			c := *r
			rules = append(rules, &c)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("authz: %w", errors.Join(errs...))
	}
	return finish(rules, decls, nil)
}
