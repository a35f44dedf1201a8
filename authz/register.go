package authz

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// toolRegistry holds the tools registered with a guard.
type toolRegistry struct {
	// mu serialises registrations and policy swaps; readers of the
	// compiled state never take it.
	mu       sync.Mutex
	names    map[string]bool  // every registered tool
	decls    toolDecls        // the registered declarations; replaced, never modified
	rejected map[string]error // declarations that were refused, for Lint
}

// RegisterTool tells the guard about a tool the host serves, and declares
// its arguments unless args is nil (a non-nil empty ToolArgs declares a
// tool without arguments). [Wrap] and [WrapJSON] register the tools they
// wrap; integrations that dispatch tools themselves call RegisterTool.
// [Guard.Lint] reports rules for tools nobody registered and registered
// tools no rule allows.
//
// A declaration works as one in the policy's tools block: calls of the tool
// whose arguments do not match are denied ([RuleArgs]), and the policy's
// rules are type-checked again against it, so a rule over the tool that
// reads an undeclared argument or compares one with the wrong type is an
// error here, naming the rule's file:line:col. A tool declared both in the
// policy and here must be declared alike: the error names both sources and
// each argument that differs. Registering the same declaration again is a
// no-op. On an error the declaration is not registered (the name is: Lint
// reports the error) and the guard is unchanged; later [Guard.Update]s must
// agree with the registered declarations.
//
// RegisterTool is safe for concurrent use; it compiles the rules the
// declaration affects, so hosts register tools at start-up. It returns an
// error on a Guard not built with [New].
func (g *Guard) RegisterTool(name string, args ToolArgs) error {
	return g.registerTool(name, "RegisterTool", args)
}

// registerTool registers name, declared by args (from says where the
// declaration comes from) unless args is nil.
func (g *Guard) registerTool(name, from string, args ToolArgs) error {
	if g == nil || g.state.Load() == nil {
		return errZeroGuard
	}
	if err := validToolName(name); err != nil {
		return fmt.Errorf("authz: RegisterTool: %w", err)
	}
	r := &g.tools
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names == nil {
		r.names, r.rejected = map[string]bool{}, map[string]error{}
	}
	r.names[name] = true
	if args == nil {
		return nil
	}
	err := g.declareLocked(name, from, args)
	if err != nil {
		r.rejected[name] = err
	} else {
		delete(r.rejected, name)
	}
	return err
}

// declareLocked adds the declaration of name. Requires g.tools.mu held.
func (g *Guard) declareLocked(name, from string, args ToolArgs) error {
	r := &g.tools
	d, err := newToolDecl(name, from, args)
	if err != nil {
		return fmt.Errorf("authz: RegisterTool: %w", err)
	}
	if prev := r.decls[name]; prev != nil {
		if prev.sig == d.sig {
			return nil
		}
		return fmt.Errorf("authz: RegisterTool: tool %q is declared differently in %s and %s: %s", name, prev.from, from, prev.differences(d))
	}
	decls := maps.Clone(r.decls)
	if decls == nil {
		decls = toolDecls{}
	}
	decls[name] = d
	c, err := compileFor(g.state.Load().policy, decls)
	if err != nil {
		return fmt.Errorf("authz: RegisterTool: tool %q: %w", name, err)
	}
	r.decls = decls
	g.state.Store(c)
	return nil
}

// swapPolicy makes p the policy in force, compiled against the registered
// declarations.
func (g *Guard) swapPolicy(p *Policy) error {
	g.tools.mu.Lock()
	defer g.tools.mu.Unlock()
	c, err := compileFor(p, g.tools.decls)
	if err != nil {
		return fmt.Errorf("authz: Update: %w", err)
	}
	g.state.Store(c)
	return nil
}

// compileFor indexes p with the registered declarations reg: the rules
// whose args shape the declarations change are compiled again.
func compileFor(p *Policy, reg toolDecls) (*compiled, error) {
	if len(reg) == 0 {
		return index(p), nil
	}
	decls, errs := p.tools.merge(reg)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var redo []int
	shapes := make([]*argsShape, len(p.rules))
	var keys []whenKey
	for i, r := range p.rules {
		s := decls.shapeFor(r.Tools)
		if (s == nil) == (r.shape == nil) && (s == nil || s.sig == r.shape.sig) {
			continue
		}
		shapes[i] = s
		redo = append(redo, i)
		keys = append(keys, whenKey{r.When, s})
	}
	rules := p.rules
	if len(redo) > 0 {
		whens := compileWhens(keys)
		rules = slices.Clone(p.rules)
		for _, i := range redo {
			old := p.rules[i]
			cr, rerrs := compileRule(old.src, shapes[i], whens)
			errs = append(errs, rerrs...)
			if cr != nil {
				cr.order = old.order
				rules[i] = cr
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return indexRules(p, rules, decls), nil
}

// Tools returns the names of the tools registered with the guard
// ([Guard.RegisterTool], [Wrap], [WrapJSON]), sorted. Safe for concurrent
// use.
func (g *Guard) Tools() []string {
	if g == nil {
		return nil
	}
	g.tools.mu.Lock()
	defer g.tools.mu.Unlock()
	return slices.Sorted(maps.Keys(g.tools.names))
}

// Lint returns the warnings of the policy in force ([Policy.Lint]) against
// the tools the guard knows: those registered with it and those the policy
// declares. So it reports rules whose tools patterns match no such tool
// and known tools that no enforced allow or ask rule matches, without a
// hand-written list; and, first, each registered declaration that was
// refused (a conflict with the policy, a rule that does not type-check),
// whose calls a wrapped handler denies. Safe for concurrent use.
func (g *Guard) Lint() []Warning {
	p := g.Policy()
	g.tools.mu.Lock()
	names := slices.Collect(maps.Keys(g.tools.names))
	var refused []Warning
	for _, n := range slices.Sorted(maps.Keys(g.tools.rejected)) {
		refused = append(refused, Warning{Pos: "guard", Msg: fmt.Sprintf("tool %q: declaration refused: %v", n, g.tools.rejected[n])})
	}
	g.tools.mu.Unlock()
	if p != nil {
		for n := range p.tools {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return append(refused, p.Lint(names...)...)
}
