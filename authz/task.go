package authz

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/taskguard/taskguard/internal/glob"
	"github.com/taskguard/taskguard/internal/provenance"
)

// Agent is the workload identity of the agent running a task, for example
// ID "spiffe://corp/agent/researcher". The host verifies it before calling
// [Guard.Begin]; taskguard treats it as given. Attrs are free attributes that
// policies read as agent.attrs.
type Agent struct {
	ID    string
	Attrs map[string]string
}

// TaskSpec describes a task to [Guard.Begin]. Slices and maps are copied, so
// the caller may reuse the spec.
type TaskSpec struct {
	// Agent is the agent running the task. Agent.ID must not be empty,
	// unless Credential is set: then the guard's [IdentityVerifier] fills
	// Agent from the credential, and an Agent.ID that disagrees with it is
	// an error.
	Agent Agent
	// Credential is the agent's credential (a SPIFFE JWT-SVID, an OIDC
	// access token) for the guard's [IdentityVerifier]; see
	// [WithIdentityVerifier]. It is a bearer token: Begin verifies it and
	// keeps nothing of it but the verified Agent.
	Credential string
	// Purpose is free text, logged with every decision.
	Purpose string
	// Intents lists the intents the task may use (read, search, write, ...).
	// Empty means any intent. A call whose intent is not listed is denied
	// before any policy rule runs. For a sub-task, empty means the parent's.
	Intents []string
	// Tools lists glob patterns of the tools the task may call ("http.*").
	// Empty means any tool the policy allows. For a sub-task, empty means the
	// parent's.
	Tools []string
	// Clearance is the highest sensitivity the task may touch. The zero value
	// is Public.
	Clearance Sensitivity
	// TTL bounds the task's life. Zero means the guard's default TTL; a
	// sub-task's deadline is clamped to its parent's.
	TTL time.Duration
	// MaxCalls bounds the authorized calls per tool pattern (glob) over the
	// task's life: {"db.delete": 3, "http.*": 100}. A sub-task's calls count
	// against its own budgets and its ancestors'.
	MaxCalls map[string]int
	// Labels are free key/value pairs for policies (task.labels). The label
	// "workdir", when present, must be an absolute path: relative file
	// destinations are resolved against it. A sub-task inherits its parent's
	// labels and may add new keys but not change existing ones.
	Labels map[string]string
	// Scope lists what the user's request named, per kind: recipients,
	// payees, hosts, channels ... Policies read it as task.scope, e.g.
	// destinations.all(d, d.canonical in task.scope.recipients); `in` on
	// a scope list is an exact string comparison in constant time. Values
	// are kept as given without surrounding white space, except that a
	// destination with a scheme, an e-mail address or an absolute path is
	// kept in its canonical form (what destination.canonical holds:
	// "Bob@Example.COM" becomes "Bob@example.com", "HTTPS://Example.org"
	// "https://example.org/"); anything else (an IBAN, a channel, a bare
	// host name) must be written as rules compare it. Empty values are an
	// error, duplicates are dropped. At most MaxInputSize keys and
	// MaxInputSize values in all, each at most MaxInputSize bytes. A
	// sub-task may only narrow it: every key it gives must be one of the
	// parent's, with a subset of its values; keys it leaves out keep the
	// parent's values. A key missing from the scope is a missing map key
	// in CEL, which denies the call unless the rule tests for it
	// (has(task.scope.payees)).
	Scope map[string][]string
}

// Taint is what a task has observed so far: the highest sensitivity of the
// data it has seen, whether untrusted content entered its context, and from
// which sources. Policies read it as task.taint.
type Taint struct {
	Sensitivity Sensitivity
	Untrusted   bool
	Sources     []string
}

// maxTaintSources bounds the sources remembered per task; later sources still
// raise the sensitivity and the untrusted flag.
const maxTaintSources = 256

// Task is the unit of authority: one piece of work by one agent, with the
// intents, tools, clearance and deadline it declared. Create tasks with
// [Guard.Begin] and end them with [Task.End]. A Task is safe for concurrent
// use. Its declared fields never change; its state (taint, call counts) only
// grows until it ends.
type Task struct {
	guard   *Guard
	parent  *Task
	id      string
	agent   Agent
	purpose string
	intents []string
	// intentVals are the intents as CEL values, for the activation.
	intentVals []ref.Val
	tools      []string
	clearance  Sensitivity
	labels     map[string]string
	scopeLists map[string][]string // canonical, see TaskSpec.Scope
	scopeCEL   ref.Val             // task.scope
	workdir    string
	depth      int
	start      time.Time
	deadline   time.Time

	ended atomic.Bool
	// inspectors are written under mu and read without it.
	inspectors inspectors

	// mu guards the fields below it.
	mu       sync.Mutex
	done     bool // End has taken the hooks; later OnEnd calls run at once
	timer    *time.Timer
	hooks    []func()
	children []*Task
	taint    Taint
	sources  map[string]struct{}
	calls    map[string]int
	spent    map[string]int // per budget pattern
	limiters map[string]*taskLimiter
	grants   map[string]string // call digest → approver, for-task approvals
	budgets  []budget          // immutable after Begin
	prov     *provenance.Index // observed text, created by the first ObserveText

	// origin is the name of the guard that handed the task over, for a
	// task resumed from a token; reports go there. Set by Resume before
	// the task is shared.
	origin     string
	reportFrom int // sources before this index came with the token

	// Under a store (WithStore): taintVersion is the store's version of
	// the taint, guarded by mu; resumed marks a copy of a task handed
	// over by a token (and its ancestors' views), which ending does not
	// end in the store. Set before the task is shared.
	taintVersion uint64
	resumed      bool
}

type taskKey struct{}

// TaskFrom returns the task carried by ctx, if any.
func TaskFrom(ctx context.Context) (*Task, bool) {
	if ctx == nil {
		return nil, false
	}
	t, ok := ctx.Value(taskKey{}).(*Task)
	return t, ok && t != nil
}

// ContextWithTask returns a copy of ctx carrying t, for hosts whose
// framework hands tool handlers a context that did not come from Begin
// (one task per session, say). Whoever holds a task may act under it.
func ContextWithTask(ctx context.Context, t *Task) context.Context {
	return context.WithValue(ctx, taskKey{}, t)
}

// Begin starts a task described by spec and returns a context carrying it.
// If ctx already carries a task, the new task is a sub-task of it: it may
// only narrow its parent (a subset of the intents and tools, a clearance no
// higher, a deadline no later) and any attempt to widen is an error. A
// sub-task ends when its parent ends.
//
// The task ends by [Task.End] or, at the latest, at its deadline. Begin does
// not block.
func (g *Guard) Begin(ctx context.Context, spec TaskSpec) (context.Context, *Task, error) {
	if ctx == nil {
		return nil, nil, fmt.Errorf("authz: begin: nil context")
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("authz: begin: %w", err)
	}
	if g.state.Load() == nil {
		return nil, nil, errZeroGuard
	}
	parent, _ := TaskFrom(ctx)
	if parent != nil && parent.guard != g {
		return nil, nil, fmt.Errorf("authz: begin: the context's task belongs to another guard")
	}
	agent, err := g.verifyAgent(ctx, spec, parent == nil)
	if err != nil {
		return nil, nil, fmt.Errorf("authz: begin: %w", err)
	}
	spec.Agent, spec.Credential = agent, ""
	t, err := g.newTask(parent, spec)
	if err != nil {
		return nil, nil, err
	}
	if g.store != nil {
		if err := g.beginShared(ctx, t); err != nil {
			return nil, nil, fmt.Errorf("authz: begin: %w", err)
		}
	}
	if parent != nil {
		parent.mu.Lock()
		if parent.done {
			parent.mu.Unlock()
			return nil, nil, fmt.Errorf("authz: begin: parent task %s has ended", parent.id)
		}
		parent.children = append(parent.children, t)
		parent.mu.Unlock()
	}
	if g.view != nil {
		g.view.add(t)
	}
	if g.realClock {
		t.mu.Lock()
		if !t.done {
			t.timer = time.AfterFunc(t.deadline.Sub(t.start), t.End)
		}
		t.mu.Unlock()
	}
	return context.WithValue(ctx, taskKey{}, t), t, nil
}

func (g *Guard) newTask(parent *Task, spec TaskSpec) (*Task, error) {
	if spec.Agent.ID == "" {
		return nil, fmt.Errorf("authz: begin: agent ID is empty")
	}
	if !spec.Clearance.Valid() {
		return nil, fmt.Errorf("authz: begin: invalid clearance %d", spec.Clearance)
	}
	if spec.TTL < 0 {
		return nil, fmt.Errorf("authz: begin: negative TTL %v", spec.TTL)
	}
	for _, in := range spec.Intents {
		if in == "" {
			return nil, fmt.Errorf("authz: begin: empty intent")
		}
	}
	if err := checkSpecSizes(spec); err != nil {
		return nil, fmt.Errorf("authz: begin: %w", err)
	}
	scope, err := canonScope(spec.Scope)
	if err != nil {
		return nil, fmt.Errorf("authz: begin: %w", err)
	}
	for _, p := range spec.Tools {
		if err := glob.ValidPattern(p); err != nil {
			return nil, fmt.Errorf("authz: begin: tools: %w", err)
		}
	}
	now := g.now()
	ttl := spec.TTL
	if ttl == 0 {
		ttl = g.defaultTTL
	}
	t := &Task{
		guard:      g,
		parent:     parent,
		id:         "task_" + rand.Text(),
		agent:      Agent{ID: spec.Agent.ID, Attrs: maps.Clone(spec.Agent.Attrs)},
		purpose:    spec.Purpose,
		intents:    slices.Clone(spec.Intents),
		tools:      slices.Clone(spec.Tools),
		clearance:  spec.Clearance,
		labels:     maps.Clone(spec.Labels),
		scopeLists: scope,
		start:      now,
		deadline:   now.Add(ttl),
	}
	if parent != nil {
		if parent.Ended() || !now.Before(parent.deadline) {
			return nil, fmt.Errorf("authz: begin: parent task %s has ended", parent.id)
		}
		if err := t.narrow(parent, spec.TTL); err != nil {
			return nil, err
		}
		if t.scopeLists, err = narrowScope(parent.scopeLists, t.scopeLists); err != nil {
			return nil, err
		}
	}
	t.scopeCEL = scopeVal(t.scopeLists)
	for p, n := range spec.MaxCalls {
		if err := glob.ValidPattern(p); err != nil {
			return nil, fmt.Errorf("authz: begin: MaxCalls: %w", err)
		}
		if n < 0 {
			return nil, fmt.Errorf("authz: begin: MaxCalls[%q] is negative", p)
		}
		t.budgets = append(t.budgets, budget{pattern: p, max: n})
	}
	slices.SortFunc(t.budgets, func(a, b budget) int { return strings.Compare(a.pattern, b.pattern) })
	t.intentVals = make([]ref.Val, len(t.intents))
	for i, in := range t.intents {
		t.intentVals[i] = types.String(in)
	}
	if wd, ok := t.labels["workdir"]; ok {
		if !path.IsAbs(wd) {
			return nil, fmt.Errorf("authz: begin: label workdir %q is not an absolute path", wd)
		}
		t.workdir = path.Clean(wd)
	}
	return t, nil
}

// checkSpecSizes enforces the input bounds policies' cost estimates rely
// on (see MaxInputSize).
func checkSpecSizes(spec TaskSpec) error {
	tooLong := func(what, s string) error {
		if len(s) > MaxInputSize {
			return fmt.Errorf("%s is longer than %d bytes", what, MaxInputSize)
		}
		return nil
	}
	list := func(what string, l []string) error {
		if len(l) > MaxInputSize {
			return fmt.Errorf("%s has more than %d entries", what, MaxInputSize)
		}
		for _, s := range l {
			if err := tooLong(what+" entry", s); err != nil {
				return err
			}
		}
		return nil
	}
	dict := func(what string, m map[string]string) error {
		if len(m) > MaxInputSize {
			return fmt.Errorf("%s has more than %d entries", what, MaxInputSize)
		}
		for k, v := range m {
			if err := errors.Join(tooLong(what+" key", k), tooLong(what+" value", v)); err != nil {
				return err
			}
		}
		return nil
	}
	return errors.Join(
		tooLong("agent ID", spec.Agent.ID), dict("agent attrs", spec.Agent.Attrs),
		tooLong("purpose", spec.Purpose), list("intents", spec.Intents), list("tools", spec.Tools),
		dict("labels", spec.Labels))
}

// narrow makes t a sub-task of p, or says how the spec widens p.
func (t *Task) narrow(p *Task, ttl time.Duration) error {
	t.depth = p.depth + 1
	if t.clearance > p.clearance {
		return fmt.Errorf("authz: begin: sub-task clearance %v exceeds parent clearance %v", t.clearance, p.clearance)
	}
	if len(t.intents) == 0 {
		t.intents = p.intents
	} else if len(p.intents) > 0 {
		for _, in := range t.intents {
			if !slices.Contains(p.intents, in) {
				return fmt.Errorf("authz: begin: sub-task intent %q is not an intent of the parent task", in)
			}
		}
	}
	if len(t.tools) == 0 {
		t.tools = p.tools
	} else if len(p.tools) > 0 {
		for _, pat := range t.tools {
			if !slices.ContainsFunc(p.tools, func(pp string) bool { return globCovers(pp, pat) }) {
				return fmt.Errorf("authz: begin: sub-task tools pattern %q is not within the parent's tools %q", pat, p.tools)
			}
		}
	}
	if ttl == 0 || t.deadline.After(p.deadline) {
		t.deadline = p.deadline
	}
	for k, v := range p.labels {
		if cv, ok := t.labels[k]; ok && cv != v {
			return fmt.Errorf("authz: begin: sub-task cannot change label %q", k)
		}
	}
	if len(p.labels) > 0 {
		merged := maps.Clone(p.labels)
		maps.Copy(merged, t.labels)
		if len(merged) > MaxInputSize {
			return fmt.Errorf("authz: begin: sub-task labels merged with the parent's have more than %d entries", MaxInputSize)
		}
		t.labels = merged
	}
	return nil
}

// globCovers reports whether every name matched by child is matched by
// parent. It is conservative: when it cannot prove coverage it says no.
func globCovers(parent, child string) bool {
	switch {
	case parent == child, parent == "*":
		return true
	case !containsStar(child):
		return glob.Match(parent, child)
	}
	// parent "prefix*" covers any child that starts with prefix.
	if i := len(parent) - 1; i >= 0 && parent[i] == '*' && !containsStar(parent[:i]) {
		return len(child) >= i && child[:i] == parent[:i]
	}
	return false
}

func containsStar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '*' {
			return true
		}
	}
	return false
}

// ID returns the task's unique ID.
func (t *Task) ID() string { return t.id }

// Agent returns the agent running the task. The Attrs map is shared: do not
// modify it.
func (t *Task) Agent() Agent { return t.agent }

// Purpose returns the task's declared purpose.
func (t *Task) Purpose() string { return t.purpose }

// Intents returns a copy of the task's intents (empty: any intent).
func (t *Task) Intents() []string { return slices.Clone(t.intents) }

// Tools returns a copy of the task's tool patterns (empty: any tool).
func (t *Task) Tools() []string { return slices.Clone(t.tools) }

// Clearance returns the highest sensitivity the task may touch.
func (t *Task) Clearance() Sensitivity { return t.clearance }

// Labels returns a copy of the task's labels.
func (t *Task) Labels() map[string]string { return maps.Clone(t.labels) }

// Deadline returns the time at which the task ends at the latest.
func (t *Task) Deadline() time.Time { return t.deadline }

// ParentID returns the ID of the parent task of a sub-task, or "" for a
// top-level task. No method hands out the parent *Task itself: code holding
// a sub-task holds only the sub-task's authority.
func (t *Task) ParentID() string {
	if t.parent == nil {
		return ""
	}
	return t.parent.id
}

// root returns the top of t's chain.
func (t *Task) root() *Task {
	for t.parent != nil {
		t = t.parent
	}
	return t
}

// DescendsFrom reports whether a is a strict ancestor of t: t's parent, its
// parent's parent, and so on. A task does not descend from itself; a nil a
// is an ancestor of nothing.
func (t *Task) DescendsFrom(a *Task) bool {
	if a == nil {
		return false
	}
	for p := t.parent; p != nil; p = p.parent {
		if p == a {
			return true
		}
	}
	return false
}

// Depth returns 0 for a top-level task and parent depth + 1 for a sub-task.
func (t *Task) Depth() int { return t.depth }

// Ended reports whether the task has ended.
func (t *Task) Ended() bool { return t.ended.Load() }

// End ends the task: every later check denies, its sub-tasks end, and the
// functions registered with [Task.OnEnd] run, once, in reverse order of
// registration, after the sub-tasks' own hooks. End is idempotent and safe
// for concurrent use; only the first call does the work and it returns when
// the hooks have run. A panicking hook is recovered and logged.
//
// Under a store ([WithStore]) End also ends the task in the store, so every
// guard sharing it ends its copy and runs its end hooks; when the store
// cannot be reached, the guard hands the end over before its next
// Authorize. Ending a task resumed from a token ends this copy only.
func (t *Task) End() { t.end(true) }

// end ends t; own says the end starts here (not pushed by the store), so
// the store must hear of it.
func (t *Task) end(own bool) {
	if !t.ended.CompareAndSwap(false, true) {
		return
	}
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.done = true
	t.inspectors.Store(nil)
	t.limiters, t.grants = nil, nil
	if t.prov != nil {
		t.prov.Wipe()
		t.prov = nil
	}
	hooks, children := t.hooks, t.children
	t.hooks, t.children = nil, nil
	t.mu.Unlock()

	if g := t.guard; g != nil && g.view != nil {
		g.view.remove(t)
		if own && !t.resumed {
			g.view.storeEnd(t)
		}
	}
	for _, c := range children {
		c.end(own)
	}
	for i := len(hooks) - 1; i >= 0; i-- {
		t.runHook(hooks[i])
	}
	if p := t.parent; p != nil {
		p.mu.Lock()
		if i := slices.Index(p.children, t); i >= 0 {
			p.children = slices.Delete(p.children, i, i+1)
		}
		p.mu.Unlock()
	}
}

func (t *Task) runHook(f func()) {
	defer func() {
		if r := recover(); r != nil && t.guard != nil && t.guard.logger != nil {
			t.guard.logger.Error("taskguard: task end hook panicked", "task", t.id, "panic", fmt.Sprint(r))
		}
	}()
	f()
}

// OnEnd registers f to run when the task ends. If the task has already
// ended, f runs before OnEnd returns. f must not block for long: it runs on
// the goroutine that ends the task. A nil f is ignored.
func (t *Task) OnEnd(f func()) {
	if f == nil {
		return
	}
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		t.runHook(f)
		return
	}
	t.hooks = append(t.hooks, f)
	t.mu.Unlock()
}

// Observe records that the task has seen data of sensitivity s from source,
// and whether that content was trusted. The taint only grows: the highest
// sensitivity is kept and untrusted, once set, stays set. Observations also
// taint the parent task, which receives the sub-task's results. Observe on
// an ended task is ignored.
//
// Under a store ([WithStore]) Observe also records the observation in the
// store, before it returns, so the next decision on any guard sharing the
// store sees it; when the store cannot be reached, the guard hands it over
// before its next Authorize.
func (t *Task) Observe(source string, s Sensitivity, trusted bool) {
	changed := false
	for x := t; x != nil; x = x.parent {
		changed = x.observe(source, s, trusted) || changed
	}
	t.share(changed, source, s, trusted)
}

// share hands an observation that changed the local view of t's chain to
// the store, if there is one.
func (t *Task) share(changed bool, source string, s Sensitivity, trusted bool) {
	if !changed || t.guard == nil || t.guard.view == nil {
		return
	}
	tt := Taint{Sensitivity: s, Untrusted: !trusted}
	if source = clipSource(source); source != "" {
		tt.Sources = []string{source}
	}
	t.guard.view.storeObserve(t, tt)
}

// observe records an observation on t alone and reports whether its taint
// changed.
func (t *Task) observe(source string, s Sensitivity, trusted bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return false
	}
	return t.mergeLocked(source, s, trusted)
}

// clipSource bounds a source's length.
func clipSource(source string) string {
	if len(source) > MaxInputSize {
		return strings.ToValidUTF8(source[:MaxInputSize], "")
	}
	return source
}

// mergeLocked adds an observation to t's taint and reports whether it
// changed. Requires t.mu held.
func (t *Task) mergeLocked(source string, s Sensitivity, trusted bool) bool {
	changed := false
	if s > t.taint.Sensitivity {
		t.taint.Sensitivity, changed = s, true
	}
	if !trusted && !t.taint.Untrusted {
		t.taint.Untrusted, changed = true, true
	}
	if source == "" {
		return changed
	}
	source = clipSource(source)
	if _, seen := t.sources[source]; seen || len(t.taint.Sources) >= maxTaintSources {
		return changed
	}
	if t.sources == nil {
		t.sources = make(map[string]struct{})
	}
	t.sources[source] = struct{}{}
	t.taint.Sources = append(t.taint.Sources, source)
	return true
}

// Taint returns a copy of what the task has observed so far.
func (t *Task) Taint() Taint {
	t.mu.Lock()
	defer t.mu.Unlock()
	tt := t.taint
	tt.Sources = slices.Clone(tt.Sources)
	return tt
}

// Calls returns a copy of the number of authorized calls per tool.
func (t *Task) Calls() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.calls)
}

// snapshot returns the taint and call counts under one lock, for CEL.
func (t *Task) snapshotTaint() Taint {
	t.mu.Lock()
	tt := t.taint
	t.mu.Unlock()
	return tt // Sources is append-only and never mutated in place
}
