package authz

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/taskguard/taskguard/internal/glob"
)

// Warning is a lint finding about a policy: something that loads and runs
// but is probably not what the author meant. A Warning is a plain value.
type Warning struct {
	// Pos is the "file:line:col" of the rule ("name#N" for rules built
	// with [NewPolicy]), or the policy's name for policy-wide findings.
	Pos string
	// Rule is the rule's name, "" for policy-wide findings.
	Rule string
	// Msg describes the finding.
	Msg string
}

// String returns the warning as `pos: rule "x": msg`, or `pos: msg` for a
// policy-wide finding.
func (w Warning) String() string {
	var b strings.Builder
	if w.Pos != "" {
		b.WriteString(w.Pos)
		b.WriteString(": ")
	}
	if w.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", w.Rule)
	}
	b.WriteString(w.Msg)
	return b.String()
}

// Lint returns the policy's warnings: policy-wide findings first, then the
// findings of each rule, in rule order. Warnings are advice: a policy that
// has them loads and runs as written. Lint is safe for concurrent use and
// does not evaluate any expression.
//
// The findings are:
//   - no enforced allow or ask rule that can match: every call is denied;
//   - a rule whose when is the constant false: it never matches;
//   - an enforced allow or ask rule each of whose tools patterns is covered
//     by an enforced deny rule whose when is the constant true: it can
//     never decide;
//   - an enforced rule with the same effect, the same set of tools
//     patterns and the same when (up to whitespace) as an earlier enforced
//     rule;
//   - a shadow rule with a limit, which is not enforced.
//
// tools, when given, are the names of the tools the host registers. Lint
// then also reports each tools pattern that matches none of them, and, in
// one policy-wide warning, the registered tools that no enforced allow or
// ask rule matches, so that they are always denied. Without tools, the
// tools the policy declares (its tools blocks) are used, when it declares
// any. [Guard.Lint] passes the tools registered with the guard.
//
// A nil policy or a policy without rules has exactly one warning.
func (p *Policy) Lint(tools ...string) []Warning {
	if p == nil || len(p.rules) == 0 {
		return []Warning{{Pos: policyLabel(p), Msg: "policy has no rules: every call is denied"}}
	}
	if len(tools) == 0 {
		tools = slices.Collect(maps.Keys(p.tools))
	}
	label := policyLabel(p)
	var global, per []Warning
	warn := func(r *rule, format string, args ...any) {
		per = append(per, Warning{Pos: r.pos, Rule: r.Name, Msg: fmt.Sprintf(format, args...)})
	}

	// Index the patterns of enforced deny rules that always match, and of
	// enforced allow and ask rules that can match.
	denyAll := newCoverIndex()
	allow := newCoverIndex()
	for _, r := range p.rules {
		if r.Mode != Enforce || whenNever(r) {
			continue
		}
		switch {
		case r.Effect == Deny && whenAlways(r):
			denyAll.add(r)
		case r.Effect == Allow || r.Effect == Ask:
			allow.add(r)
		}
	}
	if allow.empty() {
		global = append(global, Warning{Pos: label, Msg: "no enforced allow or ask rule can match: every call is denied"})
	}

	var registered map[string]bool
	if len(tools) > 0 {
		registered = make(map[string]bool, len(tools))
		for _, t := range tools {
			registered[t] = true
		}
		var never []string
		for t := range registered {
			if !allow.matches(t) {
				never = append(never, t)
			}
		}
		if len(never) > 0 {
			slices.Sort(never)
			global = append(global, Warning{Pos: label, Msg: fmt.Sprintf("no enforced allow or ask rule matches the registered tools %s: they are always denied", quoteNames(never))})
		}
	}

	type dupKey struct {
		effect Effect
		tools  string
		when   string
	}
	firstOf := make(map[dupKey]*rule, len(p.rules))
	for _, r := range p.rules {
		if whenNever(r) {
			warn(r, "never matches: when is the constant false")
		}
		if r.Mode == Enforce && (r.Effect == Allow || r.Effect == Ask) && !whenNever(r) {
			if by := denyAll.coveredBy(r.Tools); len(by) > 0 {
				if len(by) == 1 {
					warn(r, "unreachable: rule %q denies every call of these tools", by[0])
				} else {
					warn(r, "unreachable: rules %s deny every call of these tools", quoteNames(by))
				}
			}
		}
		if r.Mode == Enforce {
			set := slices.Clone(r.Tools)
			slices.Sort(set)
			set = slices.Compact(set)
			k := dupKey{r.Effect, strings.Join(set, "\x00"), normalizeWhen(r.When)}
			if first, dup := firstOf[k]; dup {
				warn(r, "duplicate of rule %q", first.Name)
			} else {
				firstOf[k] = r
			}
		}
		if r.Mode == Shadow && r.Limit != nil {
			warn(r, "limits of shadow rules are not enforced")
		}
		if registered != nil {
			for _, pat := range r.Tools {
				if !patternMatchesAny(pat, registered) {
					warn(r, "tools pattern %q matches no registered tool", pat)
				}
			}
		}
	}
	return append(global, per...)
}

// policyLabel returns the name the policy was built under: the distinct files or
// names of its rules' positions, joined with ", ", or "policy" when it has
// no rules.
func policyLabel(p *Policy) string {
	if p == nil || len(p.rules) == 0 {
		return "policy"
	}
	var names []string
	seen := make(map[string]bool)
	for _, r := range p.rules {
		if n := sourceName(r.pos); !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

// sourceName strips ":line:col" or "#N" from a rule position.
func sourceName(pos string) string {
	if s, ok := trimNumber(pos, ':'); ok {
		if s, ok := trimNumber(s, ':'); ok {
			return s
		}
	}
	if s, ok := trimNumber(pos, '#'); ok {
		return s
	}
	return pos
}

// trimNumber removes a trailing sep followed by decimal digits from s.
func trimNumber(s string, sep byte) (string, bool) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	if i == len(s) || i == 0 || s[i-1] != sep {
		return s, false
	}
	return s[:i-1], true
}

// whenAlways reports whether r's when is the constant true.
func whenAlways(r *rule) bool { return r.when.constant != nil && *r.when.constant }

// whenNever reports whether r's when is the constant false.
func whenNever(r *rule) bool { return r.when.constant != nil && !*r.when.constant }

// patternMatchesAny reports whether pattern matches one of the names.
func patternMatchesAny(pattern string, names map[string]bool) bool {
	if !containsStar(pattern) {
		return names[pattern]
	}
	for n := range names {
		if glob.Match(pattern, n) {
			return true
		}
	}
	return false
}

// coverIndex answers globCovers and glob.Match questions against the tools
// patterns of a set of rules without comparing every pair of patterns:
// exact strings and "prefix*" patterns are looked up in maps, and only
// patterns with a star elsewhere are scanned, for star-free names only.
type coverIndex struct {
	exact  map[string]*rule // every pattern, as written
	prefix map[string]*rule // "p*" patterns without another star, by p
	other  []patternRule    // the remaining star patterns
}

type patternRule struct {
	pattern string
	r       *rule
}

func newCoverIndex() *coverIndex {
	return &coverIndex{exact: map[string]*rule{}, prefix: map[string]*rule{}}
}

func (c *coverIndex) add(r *rule) {
	for _, p := range r.Tools {
		if _, ok := c.exact[p]; !ok {
			c.exact[p] = r
		}
		if !containsStar(p) {
			continue
		}
		if i := len(p) - 1; p[i] == '*' && !containsStar(p[:i]) {
			if _, ok := c.prefix[p[:i]]; !ok {
				c.prefix[p[:i]] = r
			}
			continue
		}
		c.other = append(c.other, patternRule{p, r})
	}
}

func (c *coverIndex) empty() bool { return len(c.exact) == 0 }

// cover returns a rule with a pattern parent such that
// globCovers(parent, child), or nil.
func (c *coverIndex) cover(child string) *rule {
	if r := c.exact[child]; r != nil {
		return r
	}
	for i := 0; i <= len(child); i++ {
		if r := c.prefix[child[:i]]; r != nil {
			return r
		}
		if i < len(child) && child[i] == '*' {
			break // a longer prefix of child contains a star
		}
	}
	if containsStar(child) {
		return nil
	}
	for _, o := range c.other {
		if glob.Match(o.pattern, child) {
			return o.r
		}
	}
	return nil
}

// matches reports whether some pattern of the index matches the tool name.
func (c *coverIndex) matches(tool string) bool { return c.cover(tool) != nil }

// coveredBy returns the names of the rules that together cover every one of
// patterns, in order of first use, or nil when one pattern is not covered.
func (c *coverIndex) coveredBy(patterns []string) []string {
	var names []string
	for _, p := range patterns {
		r := c.cover(p)
		if r == nil {
			return nil
		}
		if !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
	}
	return names
}

// quoteNames formats names as "a", "b", "c".
func quoteNames(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// wordByte reports whether c can be part of an identifier or a number.
func wordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// rawPrefix reports whether s ends with a string prefix containing r
// (r, R, br, rb, ...), so that the literal that follows is raw.
func rawPrefix(s string) bool {
	i := len(s)
	for i > 0 && wordByte(s[i-1]) {
		i--
	}
	switch strings.ToLower(s[i:]) {
	case "r", "br", "rb":
		return true
	}
	return false
}

// normalizeWhen rewrites a CEL expression so that expressions differing
// only in whitespace are equal: outside string literals, a run of
// whitespace becomes one space between two identifier or number
// characters and disappears elsewhere. String literals are kept as
// written; raw strings (r"...") have no escapes.
func normalizeWhen(expr string) string {
	var b strings.Builder
	b.Grow(len(expr))
	var last byte // last byte written outside whitespace
	space := false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch c {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			space = true
			continue
		}
		if space && last != 0 && wordByte(last) && wordByte(c) {
			b.WriteByte(' ')
		}
		space = false
		if c != '"' && c != '\'' {
			b.WriteByte(c)
			last = c
			continue
		}
		raw := rawPrefix(b.String())
		quote := string(c)
		if strings.HasPrefix(expr[i:], quote+quote+quote) {
			quote += quote + quote
		}
		end := i + len(quote)
		for end < len(expr) && !strings.HasPrefix(expr[end:], quote) {
			if expr[end] == '\\' && !raw {
				end++
			}
			end++
		}
		end = min(end+len(quote), len(expr))
		b.WriteString(expr[i:end])
		last = c
		i = end - 1
	}
	return b.String()
}
