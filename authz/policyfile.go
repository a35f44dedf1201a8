package authz

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ParsePolicy parses and compiles a YAML policy document. name is used in
// errors, which have the form name:line:col: rule "x": message; every
// problem of the document is reported, joined with [errors.Join].
//
// The document is a mapping with the key rules, holding a list of rules
// with the keys name, tools, effect, when and reason (see [Rule]), and
// optionally tools, declaring the arguments of tools (see the package
// documentation, "Typed tool arguments"), and variables, a list of named
// expressions ({name, expression}) the rules read as variables.NAME (see
// the package documentation, "CEL"). Unknown keys are errors.
func ParsePolicy(name string, src []byte) (*Policy, error) {
	rules, tools, errs := parseRules(name, src)
	compiled, cerrs := compileRules(rules, tools)
	return finish(compiled, tools, append(errs, cerrs...))
}

// LoadPolicyFiles loads the YAML policy files matching the glob patterns
// (filepath.Glob syntax), in lexical order per pattern, into one policy.
// A pattern that matches no file is an error: a typo must not leave a
// guard without its rules. Rule names must be unique across the files.
//
// Policy test files (authz/authztest case files, named *.cases.yaml or
// *.cases.yml) may live next to the policies: a pattern with glob
// characters ("policies/*.yaml") skips them. A pattern naming one file
// loads it as given, and a case file loaded as a policy is an error that
// says so.
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
		if hasGlobMeta(pat) {
			m = slices.DeleteFunc(m, isCaseFile)
			if len(m) == 0 {
				return nil, fmt.Errorf("authz: policy pattern %q matches only policy test files (*.cases.yaml), no policy", pat)
			}
		}
		slices.Sort(m)
		for _, f := range m {
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
	}
	var rules []pendingRule
	var tools toolDecls
	var errs []error
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("authz: %w", err))
			continue
		}
		rs, ts, es := parseRules(f, src)
		rules = append(rules, rs...)
		errs = append(errs, es...)
		var terrs []error
		tools, terrs = tools.merge(ts)
		errs = append(errs, terrs...)
	}
	compiled, cerrs := compileRules(rules, tools)
	return finish(compiled, tools, append(errs, cerrs...))
}

// yamlLocalTag reports whether n carries a local YAML tag (!name), which
// in a policy is always an unquoted string starting with "!".
func yamlLocalTag(n *yaml.Node) bool {
	return strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!")
}

// isCaseFile reports whether name is an authztest case file by its name.
func isCaseFile(name string) bool {
	base := filepath.Base(name)
	return strings.HasSuffix(base, ".cases.yaml") || strings.HasSuffix(base, ".cases.yml")
}

// hasGlobMeta reports whether a filepath.Glob pattern has glob characters.
func hasGlobMeta(pattern string) bool {
	return strings.ContainsAny(pattern, "*?[")
}

// maxPolicySize bounds a policy document.
const maxPolicySize = 8 << 20

// parseRules parses a policy document into rules to compile and the tools
// it declares.
func parseRules(file string, src []byte) ([]pendingRule, toolDecls, []error) {
	perr := func(n *yaml.Node, rule, msg string, args ...any) error {
		e := &PolicyError{File: file, Rule: rule, Msg: fmt.Sprintf(msg, args...)}
		if n != nil {
			e.Line, e.Col = n.Line, n.Column
		}
		return e
	}
	if len(src) > maxPolicySize {
		return nil, nil, []error{perr(nil, "", "policy is larger than %d bytes", maxPolicySize)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, nil, []error{yamlError(file, src, err)}
	}
	if doc.Kind == 0 {
		return nil, nil, []error{perr(nil, "", "empty policy document")}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, []error{perr(root, "", "policy must be a mapping with a rules list")}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Value == "cases" {
			return nil, nil, []error{perr(k, "", "this is a policy test file (authztest cases), not a policy: "+
				"name it *.cases.yaml so policy globs skip it, and run it with authztest.Run")}
		}
	}
	var rulesNode, varsNode *yaml.Node
	var tools toolDecls
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "rules":
			if rulesNode != nil {
				errs = append(errs, perr(k, "", "duplicate key rules"))
			}
			rulesNode = v
		case "tools":
			if tools != nil {
				errs = append(errs, perr(k, "", "duplicate key tools"))
				continue
			}
			ts, terrs := parseTools(v, perr, file)
			tools, errs = ts, append(errs, terrs...)
		case "variables":
			if varsNode != nil {
				errs = append(errs, perr(k, "", "duplicate key variables"))
			}
			varsNode = v
		default:
			errs = append(errs, perr(k, "", "unknown key %q (want rules, tools, variables)", k.Value))
		}
	}
	if rulesNode == nil {
		return nil, nil, append(errs, perr(root, "", "missing rules list"))
	}
	if rulesNode.Kind != yaml.SequenceNode {
		return nil, nil, append(errs, perr(rulesNode, "", "rules must be a list"))
	}
	var out []pendingRule
	for _, rn := range rulesNode.Content {
		r, rerrs := parseRule(file, rn, perr)
		r.errs = rerrs
		out = append(out, r)
	}
	if varsNode != nil {
		dv, verrs := parseAndCompileVars(file, varsNode, perr)
		errs = append(errs, verrs...)
		for i := range out {
			out[i].vars = dv
			if len(verrs) > 0 && out[i].errs == nil {
				out[i].errs = []error{} // reported with the variables
			}
		}
	}
	return out, tools, errs
}

func parseRule(file string, n *yaml.Node, perr func(*yaml.Node, string, string, ...any) error) (pendingRule, []error) {
	if n.Kind != yaml.MappingNode {
		return pendingRule{}, []error{perr(n, "", "a rule must be a mapping")}
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
			if yamlLocalTag(v) {
				// when: !destination.private is a YAML tag, not an expression.
				errs = append(errs, perr(v, r.Name, "%s: YAML reads the unquoted %s as a tag: quote the expression, e.g. %s: %q",
					k.Value, strings.TrimSpace(v.Tag+" "+v.Value), k.Value, strings.TrimSpace(v.Tag+" "+v.Value)))
				return "", false
			}
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
		return pendingRule{}, errs
	}
	at := &PolicyError{File: file, Line: n.Line, Col: n.Column, Rule: r.Name}
	return pendingRule{rule: r, at: at, mapPos: whenPosition(whenNode)}, nil
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

// yamlError turns a yaml syntax error into file:line: message. When the
// line holds an unquoted value starting with "!" (a YAML tag), the message
// says to quote the expression.
func yamlError(file string, src []byte, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	// yaml.v3 reports "line N: message".
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if line, aerr := strconv.Atoi(rest[:i]); aerr == nil {
				e := &PolicyError{File: file, Line: line, Col: 1, Msg: "YAML: " + strings.TrimSpace(rest[i+1:])}
				if col := unquotedBang(src, line); col > 0 {
					e.Col = col
					e.Msg += `: an unquoted value starting with "!" is a YAML tag: quote the expression, e.g. when: "!destination.private"`
				}
				return e
			}
		}
	}
	return &PolicyError{File: file, Msg: "YAML: " + msg}
}

// unquotedBang returns the 1-based column of a value starting with "!"
// after a "key:" on the given 1-based line of src, or 0.
func unquotedBang(src []byte, line int) int {
	lines := strings.Split(string(src), "\n")
	if line < 1 || line > len(lines) {
		return 0
	}
	l := lines[line-1]
	for i := 0; i+2 < len(l); i++ {
		if l[i] == ':' && l[i+1] == ' ' {
			j := i + 1
			for j < len(l) && l[j] == ' ' {
				j++
			}
			if j+1 < len(l) && l[j] == '!' && l[j+1] != '!' {
				return j + 1
			}
		}
	}
	return 0
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
