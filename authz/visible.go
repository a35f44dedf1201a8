package authz

import (
	"context"
	"slices"

	"github.com/taskguard/taskguard/internal/glob"
)

// Visible returns the tools, of those given, that the task in ctx could
// possibly use: the tool is among the task's tools and its call budget is
// not spent, and for some intent the task may use, some enforced allow or
// ask rule for the tool could match while no enforced deny rule for it
// matches every call. Rules are evaluated under the task's scope with the
// call's destination, sensitivity and arguments unknown (CEL partial
// evaluation), so a rule like `agent.id.startsWith("admin")` or
// `intent == "delete"` for a task without that intent hides the tool. Hosts show the model only these (MCP tools/list
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
		intents := t.intents
		if len(intents) == 0 {
			intents = []string{""} // unknown
		}
		if slices.ContainsFunc(intents, func(in string) bool { return st.couldAllow(t, tool, in) }) {
			out = append(out, tool)
		}
	}
	return out
}

// couldAllow reports whether some rule could allow or ask for a call of
// tool with intent ("" = unknown) by task t.
func (c *compiled) couldAllow(t *Task, tool, intent string) (can bool) {
	defer func() {
		if recover() != nil {
			can = true
		}
	}()
	act := newActivation(t.guard, t, &Call{Tool: tool, Intent: intent})
	defer act.release()
	for _, r := range c.rulesFor(tool, nil) {
		if r.Mode == Shadow {
			continue
		}
		v, definite := r.when.possible(act)
		switch {
		case r.Effect == Deny:
			if v && definite {
				return false
			}
		case v:
			can = true
		}
	}
	return can
}
