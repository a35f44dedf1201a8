package authz

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/taskguard/taskguard/internal/glob"
)

// compiled is a policy indexed by tool.
type compiled struct {
	policy *Policy
	// tools are the declared tools: the policy's and the guard's.
	tools toolDecls
	// byTool holds, for every tool named exactly by some rule, the rules
	// that apply to it (exact and glob), in evaluation order.
	byTool map[string][]*rule
	// globs are the rules with a wildcard pattern, in evaluation order; they
	// apply to tools that are not in byTool after matching.
	globs []*rule
	// patterns indexes the tool patterns of globs; patternRule maps a
	// pattern's position to its rule's position in globs. The patterns of
	// a rule are contiguous and rules are in evaluation order, so matches
	// in ascending pattern order are rules in evaluation order.
	patterns    *glob.Index
	patternRule []int
	// other caches the matching globs of tools not in byTool, for up to
	// maxCachedTools tools. Beyond it, lookups use the pattern index: tool
	// names come from callers, and no name may make a lookup cost more
	// than the index's, whatever the number of rules.
	other  sync.Map // string → []*rule
	others atomic.Int32
}

// maxCachedTools bounds the per-policy cache of tools matched only by globs.
const maxCachedTools = 4096

// ruleScratch holds the buffers of an uncached glob lookup, and the last
// lookup whose result is immutable (a pooled activation decides calls of
// the same tool over and over).
type ruleScratch struct {
	patterns []int
	rules    []*rule

	lastPolicy *compiled
	lastTool   string
	lastRules  []*rule
}

// rulesFor returns the rules that apply to tool, in evaluation order. The
// result is valid until scratch's next use; a nil scratch allocates.
func (c *compiled) rulesFor(tool string, scratch *ruleScratch) []*rule {
	if scratch != nil && scratch.lastPolicy == c && scratch.lastTool == tool {
		return scratch.lastRules
	}
	if rs, ok := c.byTool[tool]; ok {
		if scratch != nil {
			scratch.lastPolicy, scratch.lastTool, scratch.lastRules = c, tool, rs
		}
		return rs
	}
	if rs, ok := c.other.Load(tool); ok {
		return rs.([]*rule)
	}
	if c.others.Load() < maxCachedTools {
		rs := c.matchGlobs(tool, nil, nil)
		if _, loaded := c.other.LoadOrStore(tool, rs); !loaded {
			c.others.Add(1)
		}
		return rs
	}
	if scratch == nil {
		return c.matchGlobs(tool, nil, nil)
	}
	scratch.patterns = scratch.patterns[:0]
	scratch.rules = c.matchGlobs(tool, scratch.patterns, scratch.rules[:0])
	return scratch.rules
}

// matchGlobs appends the glob rules matching tool to dst, in evaluation
// order, using patterns as the index's buffer.
func (c *compiled) matchGlobs(tool string, patterns []int, dst []*rule) []*rule {
	last := -1
	for _, p := range c.patterns.AppendMatches(patterns, tool) {
		if i := c.patternRule[p]; i != last {
			dst = append(dst, c.globs[i])
			last = i
		}
	}
	return dst
}

// evalOrder sorts rules: shadow rules first (so they are always
// evaluated), then deny, ask and allow; then policy order.
func evalOrder(a, b *rule) int {
	rank := func(r *rule) int {
		if r.Mode == Shadow {
			return 0
		}
		switch r.Effect {
		case Deny:
			return 1
		case Ask:
			return 2
		}
		return 3
	}
	if d := rank(a) - rank(b); d != 0 {
		return d
	}
	return a.order - b.order
}

func index(p *Policy) *compiled { return indexRules(p, p.rules, p.tools) }

// indexRules indexes rules, the rules of p as compiled against the tools
// decls.
func indexRules(p *Policy, rules []*rule, decls toolDecls) *compiled {
	c := &compiled{policy: p, tools: decls, byTool: map[string][]*rule{}}
	var exact []*rule
	for _, r := range rules {
		if r.exact {
			exact = append(exact, r)
		} else {
			c.globs = append(c.globs, r)
		}
	}
	slices.SortFunc(c.globs, evalOrder)
	var patterns []string
	for i, r := range c.globs {
		for _, t := range r.Tools {
			patterns = append(patterns, t)
			c.patternRule = append(c.patternRule, i)
		}
	}
	c.patterns = glob.NewIndex(patterns)
	for _, r := range exact {
		for _, t := range r.Tools {
			if !slices.Contains(c.byTool[t], r) {
				c.byTool[t] = append(c.byTool[t], r)
			}
		}
	}
	for t, rs := range c.byTool {
		rs = c.matchGlobs(t, nil, rs)
		slices.SortFunc(rs, evalOrder)
		c.byTool[t] = slices.Clip(rs)
	}
	return c
}
