package authz

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/taskguard/taskguard/internal/dest"
)

// scopeType is the CEL type of task.scope.
var (
	scopeType  = types.NewMapType(types.StringType, stringList)
	emptyScope = scopeVal(nil)
)

// canonScopeValue returns the form in which a task keeps one of its scope
// values: without surrounding white space, and, for a value that is a
// destination with a scheme ("https://…", "mailto:…", "db://…"), an
// e-mail address or an absolute path, its canonical text, the one
// policies compare it with (destination.canonical). Any other value is
// kept exactly.
func canonScopeValue(v string) string {
	v = strings.TrimSpace(v)
	if v == "" || !strings.ContainsAny(v, ":@/") {
		return v
	}
	d, canon, err := dest.ParseText(v, "")
	if err != nil || d.Kind == dest.KindNone {
		return v
	}
	return canon
}

// canonScope validates spec's scope and returns it canonicalised: values
// per canonScopeValue, duplicates dropped, order kept.
func canonScope(scope map[string][]string) (map[string][]string, error) {
	if len(scope) == 0 {
		return nil, nil
	}
	if len(scope) > MaxInputSize {
		return nil, fmt.Errorf("scope has more than %d keys", MaxInputSize)
	}
	out := make(map[string][]string, len(scope))
	n := 0
	for _, k := range slices.Sorted(maps.Keys(scope)) {
		if k == "" || len(k) > MaxInputSize {
			return nil, fmt.Errorf("scope key %q is empty or longer than %d bytes", k, MaxInputSize)
		}
		vals := make([]string, 0, len(scope[k]))
		for _, v := range scope[k] {
			if n++; n > MaxInputSize {
				return nil, fmt.Errorf("scope has more than %d values in all", MaxInputSize)
			}
			c := canonScopeValue(v)
			switch {
			case c == "":
				return nil, fmt.Errorf("scope %s: empty value", k)
			case len(c) > MaxInputSize:
				return nil, fmt.Errorf("scope %s: a value is longer than %d bytes", k, MaxInputSize)
			}
			if !slices.Contains(vals, c) {
				vals = append(vals, c)
			}
		}
		out[k] = vals
	}
	return out, nil
}

// narrowScope returns the scope of a sub-task whose spec asked for child
// under a parent with scope parent: every key of child must be a key of
// parent and its values a subset of the parent's; keys the child leaves
// out keep the parent's values.
func narrowScope(parent, child map[string][]string) (map[string][]string, error) {
	for _, k := range slices.Sorted(maps.Keys(child)) {
		pv, ok := parent[k]
		if !ok {
			return nil, fmt.Errorf("authz: begin: sub-task scope key %q is not in the parent's scope", k)
		}
		for _, v := range child[k] {
			if !slices.Contains(pv, v) {
				return nil, fmt.Errorf("authz: begin: sub-task scope %s: %q is not in the parent's scope", k, v)
			}
		}
	}
	if len(parent) == 0 {
		return child, nil
	}
	out := maps.Clone(parent)
	maps.Copy(out, child)
	return out, nil
}

// scopeVal returns the CEL value of task.scope: a map whose lists test
// membership in constant time.
func scopeVal(scope map[string][]string) ref.Val {
	m := make(map[ref.Val]ref.Val, len(scope))
	for k, vals := range scope {
		set := make(map[string]struct{}, len(vals))
		for _, v := range vals {
			set[v] = struct{}{}
		}
		m[types.String(k)] = &scopeList{Lister: types.NewStringList(types.DefaultTypeAdapter, vals), set: set}
	}
	return types.NewRefValMap(types.DefaultTypeAdapter, m)
}

// scopeList is a list of scope values whose `in` is a map lookup: exact
// string equality in constant time, so a rule such as
// destinations.all(d, d.canonical in task.scope.recipients) costs one unit
// per destination (the cost estimator knows it, see estimateScopeIn).
type scopeList struct {
	traits.Lister
	set map[string]struct{}
}

// Contains implements [traits.Container]: exact membership of a string.
func (l *scopeList) Contains(v ref.Val) ref.Val {
	s, ok := v.(types.String)
	if !ok {
		return l.Lister.Contains(v)
	}
	_, in := l.set[string(s)]
	return types.Bool(in)
}

// isScopeList reports whether the field path of a cost estimate's node is
// a list of task.scope: task.scope.NAME or task.scope[NAME].
func isScopeList(path []string) bool {
	return len(path) == 3 && path[0] == "task" && path[1] == "scope"
}

// Scope returns a copy of the task's scope lists, canonical (see
// [TaskSpec].Scope).
func (t *Task) Scope() map[string][]string {
	out := make(map[string][]string, len(t.scopeLists))
	for k, v := range t.scopeLists {
		out[k] = slices.Clone(v)
	}
	return out
}
