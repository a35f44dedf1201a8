package authz

import (
	"context"
	"slices"

	"github.com/taskguard/taskguard/internal/glob"
)

// Visible returns the tools, of those given, that the task in ctx could
// possibly use: the tool is among the task's tools and its call budget is
// not spent, some enforced allow or ask rule applies to it and is not
// constant false, and no enforced deny rule with a constant true condition
// applies to it. Hosts show the model only these (MCP tools/list
// filtering). Visible is an upper bound: a visible tool's calls can still
// be denied. No task, or an ended one, makes every tool invisible. The
// result keeps the order of tools.
func (g *Guard) Visible(ctx context.Context, tools []string) []string {
	t, ok := TaskFrom(ctx)
	if !ok || t.Ended() || t.guard != g || !g.now().Before(t.deadline) {
		return nil
	}
	st := g.state.Load()
	var out []string
	for _, tool := range tools {
		if len(t.tools) > 0 && !slices.ContainsFunc(t.tools, func(p string) bool { return glob.Match(p, tool) }) {
			continue
		}
		if t.budgetLeft(tool) != nil {
			continue
		}
		if st.couldAllow(tool) {
			out = append(out, tool)
		}
	}
	return out
}

// couldAllow reports whether some rule could allow or ask for tool.
func (c *compiled) couldAllow(tool string) bool {
	can := false
	for _, r := range c.rulesFor(tool) {
		if r.Mode == Shadow {
			continue
		}
		k := r.when.constant
		if r.Effect == Deny {
			if k != nil && *k {
				return false
			}
			continue
		}
		if k == nil || *k {
			can = true
		}
	}
	return can
}
