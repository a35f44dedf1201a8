package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

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

// parseRate parses "N/unit" where unit is s, m, h or a Go duration ("10/m",
// "100/1h", "5/30s").
func parseRate(s string) (int, time.Duration, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, 0, fmt.Errorf("rate %q: want N/unit like 10/m", s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n <= 0 {
		return 0, 0, fmt.Errorf("rate %q: %q is not a positive integer", s, num)
	}
	var per time.Duration
	switch unit = strings.TrimSpace(unit); unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		per, err = time.ParseDuration(unit)
		if err != nil || per <= 0 {
			return 0, 0, fmt.Errorf("rate %q: unit %q: want s, m, h or a duration", s, unit)
		}
	}
	return n, per, nil
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
	var errs []error
	var out []*rule
	for i, r := range rules {
		pos := &PolicyError{File: fmt.Sprintf("%s#%d", name, i+1), Rule: r.Name}
		cr, rerrs := compileRule(r, pos, nil)
		errs = append(errs, rerrs...)
		if cr != nil {
			out = append(out, cr)
		}
	}
	return finish(out, errs)
}

// whenPos maps a position inside a when expression to the file.
type whenPos func(line, col int) (int, int)

// compileRule validates and compiles r. at carries the file, position and
// rule name used for its errors.
func compileRule(r Rule, at *PolicyError, mapPos whenPos) (*rule, []error) {
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
	cr := &rule{Rule: r, pos: at.File, exact: exact, decided: r.Reason}
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
		prg, issues := compileWhen(r.When)
		for _, is := range issues {
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

// finish checks names across rules and computes the version.
func finish(rules []*rule, errs []error) (*Policy, error) {
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
		h.Write([]byte{'\n'})
	}
	return &Policy{rules: rules, version: "sha256:" + hex.EncodeToString(h.Sum(nil)[:12])}, nil
}

// mergePolicies combines the rules of ps in order; rule names must stay unique.
func mergePolicies(ps ...*Policy) (*Policy, error) {
	var rules []*rule
	for _, p := range ps {
		if p == nil {
			continue
		}
		for _, r := range p.rules {
			c := *r
			rules = append(rules, &c)
		}
	}
	return finish(rules, nil)
}

// ParsePolicy parses and compiles a YAML policy document. name is used in
// errors, which have the form name:line:col: rule "x": message; every
// problem of the document is reported, joined with [errors.Join].
//
// The document is a mapping with one key, rules, holding a list of rules
// with the keys name, tools, effect, when and reason (see [Rule]). Unknown
// keys are errors.
func ParsePolicy(name string, src []byte) (*Policy, error) {
	rules, errs := parseRules(name, src)
	return finish(rules, errs)
}

// LoadPolicyFiles loads the YAML policy files matching the glob patterns
// (filepath.Glob syntax), in lexical order per pattern, into one policy.
// A pattern that matches no file is an error: a typo must not leave a
// guard without its rules. Rule names must be unique across the files.
func LoadPolicyFiles(patterns ...string) (*Policy, error) {
	if len(patterns) == 0 {
		return nil, errors.New("authz: LoadPolicyFiles: no file patterns")
	}
	var files []string
	for _, pat := range patterns {
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("authz: policy pattern %q: %w", pat, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("authz: policy pattern %q matches no file", pat)
		}
		slices.Sort(m)
		for _, f := range m {
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
	}
	var rules []*rule
	var errs []error
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("authz: %w", err))
			continue
		}
		rs, es := parseRules(f, src)
		rules = append(rules, rs...)
		errs = append(errs, es...)
	}
	return finish(rules, errs)
}

// maxPolicySize bounds a policy document.
const maxPolicySize = 8 << 20

func parseRules(file string, src []byte) ([]*rule, []error) {
	perr := func(n *yaml.Node, rule, msg string, args ...any) error {
		e := &PolicyError{File: file, Rule: rule, Msg: fmt.Sprintf(msg, args...)}
		if n != nil {
			e.Line, e.Col = n.Line, n.Column
		}
		return e
	}
	if len(src) > maxPolicySize {
		return nil, []error{perr(nil, "", "policy is larger than %d bytes", maxPolicySize)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, []error{yamlError(file, err)}
	}
	if doc.Kind == 0 {
		return nil, []error{perr(nil, "", "empty policy document")}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, []error{perr(root, "", "policy must be a mapping with a rules list")}
	}
	var rulesNode *yaml.Node
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "rules":
			if rulesNode != nil {
				errs = append(errs, perr(k, "", "duplicate key rules"))
			}
			rulesNode = v
		default:
			errs = append(errs, perr(k, "", "unknown key %q (want rules)", k.Value))
		}
	}
	if rulesNode == nil {
		return nil, append(errs, perr(root, "", "missing rules list"))
	}
	if rulesNode.Kind != yaml.SequenceNode {
		return nil, append(errs, perr(rulesNode, "", "rules must be a list"))
	}
	var out []*rule
	for _, rn := range rulesNode.Content {
		r, rerrs := parseRule(file, rn, perr)
		errs = append(errs, rerrs...)
		if r != nil {
			out = append(out, r)
		}
	}
	return out, errs
}

func parseRule(file string, n *yaml.Node, perr func(*yaml.Node, string, string, ...any) error) (*rule, []error) {
	if n.Kind != yaml.MappingNode {
		return nil, []error{perr(n, "", "a rule must be a mapping")}
	}
	var r Rule
	var errs []error
	var whenNode *yaml.Node
	seen := map[string]bool{}
	// The name first, so every other error can name the rule.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Value == "name" && v.Kind == yaml.ScalarNode {
			r.Name = v.Value
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			errs = append(errs, perr(k, r.Name, "duplicate key %q", k.Value))
			continue
		}
		seen[k.Value] = true
		scalar := func() (string, bool) {
			if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
				errs = append(errs, perr(v, r.Name, "%s must be a string", k.Value))
				return "", false
			}
			return v.Value, true
		}
		switch k.Value {
		case "name":
			scalar()
		case "tools":
			switch v.Kind {
			case yaml.ScalarNode:
				r.Tools = []string{v.Value}
			case yaml.SequenceNode:
				for _, t := range v.Content {
					if t.Kind != yaml.ScalarNode {
						errs = append(errs, perr(t, r.Name, "tools: each entry must be a string"))
						continue
					}
					r.Tools = append(r.Tools, t.Value)
				}
			default:
				errs = append(errs, perr(v, r.Name, "tools must be a list of tool patterns"))
			}
		case "effect":
			if s, ok := scalar(); ok {
				e, err := parseEffect(s)
				if err != nil {
					errs = append(errs, perr(v, r.Name, "effect %q: want allow, deny or ask", s))
				}
				r.Effect = e
			}
		case "when":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" {
				r.When = v.Value // when: true
			} else if s, ok := scalar(); ok {
				r.When = s
			}
			whenNode = v
		case "reason":
			if s, ok := scalar(); ok {
				r.Reason = s
			}
		case "mode":
			if s, ok := scalar(); ok {
				switch s {
				case "enforce":
				case "shadow":
					r.Mode = Shadow
				default:
					errs = append(errs, perr(v, r.Name, "mode %q: want enforce or shadow", s))
				}
			}
		case "limit":
			l, lerrs := parseLimit(v, r.Name, perr)
			errs = append(errs, lerrs...)
			r.Limit = l
		default:
			errs = append(errs, perr(k, r.Name, "unknown key %q (want name, tools, effect, when, reason, mode, limit)", k.Value))
		}
	}
	for _, req := range []string{"name", "tools", "effect", "when"} {
		if !seen[req] {
			errs = append(errs, perr(n, r.Name, "missing %s", req))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	at := &PolicyError{File: file, Line: n.Line, Col: n.Column, Rule: r.Name}
	cr, cerrs := compileRule(r, at, whenPosition(whenNode))
	return cr, cerrs
}

// parseLimit parses `limit: {rate: 10/m, burst: 5}`.
func parseLimit(n *yaml.Node, rule string, perr func(*yaml.Node, string, string, ...any) error) (*Limit, []error) {
	if n.Kind != yaml.MappingNode {
		return nil, []error{perr(n, rule, "limit must be a mapping like {rate: 10/m, burst: 5}")}
	}
	l := &Limit{}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "rate":
			rate, per, err := parseRate(v.Value)
			if err != nil {
				errs = append(errs, perr(v, rule, "limit: %v", err))
			}
			l.Rate, l.Per = rate, per
		case "burst":
			b, err := strconv.Atoi(v.Value)
			if err != nil || b <= 0 {
				errs = append(errs, perr(v, rule, "limit: burst %q is not a positive integer", v.Value))
			}
			l.Burst = b
		default:
			errs = append(errs, perr(k, rule, "limit: unknown key %q (want rate, burst)", k.Value))
		}
	}
	if l.Rate == 0 && len(errs) == 0 {
		errs = append(errs, perr(n, rule, "limit: rate is required"))
	}
	if l.Burst == 0 {
		l.Burst = 1
	}
	return l, errs
}

// whenPosition maps a position inside a when expression to the file: the
// expression's first line starts at the scalar's column (plus the opening
// quote); in a block scalar it starts on the next line.
func whenPosition(n *yaml.Node) whenPos {
	if n == nil {
		return nil
	}
	return func(line, col int) (int, int) {
		if line < 1 {
			return n.Line, n.Column
		}
		switch n.Style {
		case yaml.LiteralStyle, yaml.FoldedStyle:
			// Content starts on the line after the indicator; the
			// indentation is not known exactly, report the expression column.
			return n.Line + line, col + 1
		case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
			if line == 1 {
				return n.Line, n.Column + 1 + col
			}
		default:
			if line == 1 {
				return n.Line, n.Column + col
			}
		}
		return n.Line + line - 1, col + 1
	}
}

// yamlError turns a yaml syntax error into file:line: message.
func yamlError(file string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	// yaml.v3 reports "line N: message".
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if line, aerr := strconv.Atoi(rest[:i]); aerr == nil {
				return &PolicyError{File: file, Line: line, Col: 1, Msg: "YAML: " + strings.TrimSpace(rest[i+1:])}
			}
		}
	}
	return &PolicyError{File: file, Msg: "YAML: " + msg}
}
