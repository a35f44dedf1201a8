package authz

import (
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/taskguard/taskguard/internal/glob"
)

// rateLimit applies r's limit for the task at now. With consume a token is
// taken and its reservation returned (to cancel it if another limit of the
// same call denies); otherwise availability is only reported. It returns
// how long to wait when no token is available.
func (t *Task) rateLimit(r *rule, now time.Time, consume bool) (*rate.Reservation, time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil, 0, false
	}
	lim, ok := t.limiters[r.Name]
	if !ok || lim.limit != *r.Limit {
		if t.limiters == nil {
			t.limiters = map[string]*taskLimiter{}
		}
		l := *r.Limit
		lim = &taskLimiter{limit: l, l: rate.NewLimiter(rate.Every(l.Per/time.Duration(l.Rate)), l.Burst)}
		t.limiters[r.Name] = lim
	}
	if !consume {
		if tokens := lim.l.TokensAt(now); tokens < 1 {
			return nil, time.Duration((1 - tokens) / float64(lim.l.Limit()) * float64(time.Second)), false
		}
		return nil, 0, true
	}
	res := lim.l.ReserveN(now, 1)
	if !res.OK() {
		return nil, lim.limit.Per, false
	}
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now)
		return nil, wait, false
	}
	return res, 0, true
}

// taskLimiter is one rule's limiter for one task.
type taskLimiter struct {
	limit Limit
	l     *rate.Limiter
}

// budgetLeft reports whether the task and its ancestors have budget left
// for one more call of tool.
func (t *Task) budgetLeft(tool string) error {
	for x := t; x != nil; x = x.parent {
		if len(x.budgets) == 0 {
			continue
		}
		x.mu.Lock()
		err := x.overBudgetLocked(tool)
		x.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// overBudgetLocked requires x.mu held.
func (x *Task) overBudgetLocked(tool string) error {
	for _, b := range x.budgets {
		if glob.Match(b.pattern, tool) && x.spent[b.pattern] >= b.max {
			return fmt.Errorf("call budget of %d for %q of task %s is spent", b.max, b.pattern, x.id)
		}
	}
	return nil
}

// reserveCall counts one authorized call of tool on the task and each of
// its ancestors (task.calls: a sub-task's calls are its parent's too) and
// against their budgets; when a budget is
// spent nothing is counted and the error says which.
func (t *Task) reserveCall(tool string) error {
	var chain []*Task
	for x := t; x != nil; x = x.parent {
		chain = append(chain, x)
	}
	// Lock from the root down, as Begin does, so concurrent reservations
	// on a parent and a sub-task cannot deadlock.
	for i := len(chain) - 1; i >= 0; i-- {
		chain[i].mu.Lock()
	}
	defer func() {
		for _, x := range chain {
			x.mu.Unlock()
		}
	}()
	for _, x := range chain {
		if err := x.overBudgetLocked(tool); err != nil {
			return err
		}
	}
	for _, x := range chain {
		for _, b := range x.budgets {
			if glob.Match(b.pattern, tool) {
				if x.spent == nil {
					x.spent = map[string]int{}
				}
				x.spent[b.pattern]++
			}
		}
	}
	for _, x := range chain {
		if x.calls == nil {
			x.calls = make(map[string]int)
		}
		x.calls[tool]++
	}
	return nil
}

// budget is a MaxCalls entry.
type budget struct {
	pattern string
	max     int
}
