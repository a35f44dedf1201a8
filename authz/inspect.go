package authz

import (
	"slices"
	"sync/atomic"
)

// CallInfo is what an [InspectFunc] sees of a call: the call as made and its
// canonical destination. A call with further destinations
// (Call.Destinations) is inspected once per destination, primary first, as
// if it went there alone: Call.Destination, Destination, Kind and Host are
// those of the destination inspected, Call.Args and the rest are the
// call's.
type CallInfo struct {
	Call Call
	// Destination is the canonical destination ("" for none).
	Destination string
	// Kind is the destination kind: "url", "file", "email", "other" or "none".
	Kind string
	// Host is the canonical host (the domain of an email, the name of an
	// opaque destination); "" for files and no destination.
	Host string
}

// InspectFunc examines a call before the policy rules run; a non-nil error
// denies the call with the error's text as the reason. It runs on the
// checking goroutine for every check of the task and its sub-tasks, so it
// must be fast, must not block, and must not call the guard. Other packages
// use it to add per-task invariants without authz importing them: the
// secrets broker denies calls that would send a leased value outside the
// lease's audience.
type InspectFunc func(ci *CallInfo) error

type inspector struct {
	name string
	f    InspectFunc
}

// inspectors is the copy-on-write list of a task's inspectors.
type inspectors = atomic.Pointer[[]*inspector]

// Inspect registers f under name for the calls of the task and of its
// sub-tasks, until remove is called or the task ends. A denial's rule is
// RuleInspect + ":" + name. Inspect is safe for concurrent use.
func (t *Task) Inspect(name string, f InspectFunc) (remove func()) {
	in := &inspector{name: name, f: f}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done || f == nil {
		return func() {}
	}
	var list []*inspector
	if p := t.inspectors.Load(); p != nil {
		list = slices.Clone(*p)
	}
	list = append(list, in)
	t.inspectors.Store(&list)
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		p := t.inspectors.Load()
		if p == nil {
			return
		}
		list := slices.DeleteFunc(slices.Clone(*p), func(x *inspector) bool { return x == in })
		if len(list) == 0 {
			t.inspectors.Store(nil)
			return
		}
		t.inspectors.Store(&list)
	}
}

// hasInspectors reports whether t or an ancestor has inspectors.
func (t *Task) hasInspectors() bool {
	for x := t; x != nil; x = x.parent {
		if x.inspectors.Load() != nil {
			return true
		}
	}
	return false
}

// inspect runs the inspectors of t and its ancestors on ci and returns the
// first denial.
func (t *Task) inspect(ci *CallInfo) (name string, err error) {
	for x := t; x != nil; x = x.parent {
		p := x.inspectors.Load()
		if p == nil {
			continue
		}
		for _, in := range *p {
			if err := in.f(ci); err != nil {
				return in.name, err
			}
		}
	}
	return "", nil
}
