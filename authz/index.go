package authz

import (
	"slices"
	"sync"
	"sync/atomic"
)

// compiled is a policy indexed by tool.
type compiled struct {
	policy *Policy
	// byTool holds, for every tool named exactly by some rule, the rules
	// that apply to it (exact and glob), in evaluation order.
	byTool map[string][]*rule
	// globs are the rules with a wildcard pattern, in evaluation order; they
	// apply to tools that are not in byTool after matching.
	globs []*rule
	// other caches the matching globs of tools not in byTool, for up to
	// maxCachedTools tools (tool names come from callers: the cache is
	// bounded).
	other  sync.Map // string → []*rule
	others atomic.Int32
}

// maxCachedTools bounds the per-policy cache of tools matched only by globs.
const maxCachedTools = 4096

// rulesFor returns the rules that apply to tool, in evaluation order.
func (c *compiled) rulesFor(tool string) []*rule {
	if rs, ok := c.byTool[tool]; ok {
		return rs
	}
	if rs, ok := c.other.Load(tool); ok {
		return rs.([]*rule)
	}
	var rs []*rule
	for _, r := range c.globs {
		if r.matchesTool(tool) {
			rs = append(rs, r)
		}
	}
	if c.others.Load() < maxCachedTools {
		if _, loaded := c.other.LoadOrStore(tool, rs); !loaded {
			c.others.Add(1)
		}
	}
	return rs
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

func index(p *Policy) *compiled {
	c := &compiled{policy: p, byTool: map[string][]*rule{}}
	var exact []*rule
	for _, r := range p.rules {
		if r.exact {
			exact = append(exact, r)
		} else {
			c.globs = append(c.globs, r)
		}
	}
	for _, r := range exact {
		for _, t := range r.Tools {
			if !slices.Contains(c.byTool[t], r) {
				c.byTool[t] = append(c.byTool[t], r)
			}
		}
	}
	for t, rs := range c.byTool {
		for _, r := range c.globs {
			if r.matchesTool(t) {
				rs = append(rs, r)
			}
		}
		slices.SortFunc(rs, evalOrder)
		c.byTool[t] = slices.Clip(rs)
	}
	slices.SortFunc(c.globs, evalOrder)
	return c
}
