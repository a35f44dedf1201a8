package authz

import (
	"context"
	"errors"
	"time"
)

// Store holds the state of tasks that grows while they run and that every
// replica of a service must agree on: whether a task has ended, its taint,
// its call counts (task.calls), its rate-limit and budget counters and its
// standing approvals. Give one to a guard with [WithStore]; every replica's
// guard then uses the same backing store (authz/redisstore keeps it in
// Redis; [NewMemoryStore] in this process, shared by the guards that hold
// it).
//
// Without a store a guard keeps this state on its [Task] values, in its own
// process; that is the default and what a single process needs.
//
// Who calls what. The guard calls the store; hosts do not.
//   - [Guard.Begin] and [Guard.Resume] call Begin with the task's chain.
//   - [Guard.Authorize] calls Authorize once per decision (and once more
//     after an approver granted an Ask, or when the taint it decided on was
//     out of date).
//   - [Task.Observe] calls Observe; [Task.End] calls End (not for a task
//     resumed from a token: ending a copy does not end the task).
//   - When the subscription comes back, and when Resume checks a chain,
//     the guard calls State.
//   - [New] calls Subscribe once; [Guard.Close] cancels it.
//
// [Guard.Check] never calls the store: it decides on the replica's local
// view (ended, taint), which the store pushes through the [StoreSink]
// given to Subscribe. A view older than the staleness bound
// ([WithStoreStaleness]) while the subscription is down denies.
//
// Every method is safe for concurrent use and must honour ctx (its
// deadline is the guard's store timeout, [WithStoreTimeout]). An error
// means the store could not be reached or did not answer: the guard denies
// ([RuleStore]); a refusal (a task ended, a rate limit) is not an error but
// a [StoreOutcome]. Tasks are named by ID; a chain lists a task and its
// ancestors root first, so chain[0] is the root (implementations keep the
// keys of one tree together under it). The store may forget a task's state
// once its deadline has passed plus a margin of its choosing.
type Store interface {
	// Begin records each task of chain that the store does not know yet,
	// with its deadline and its budgets (StoreTask.Budgets); a known task
	// is left as it is. It returns the state of each task of chain, in
	// order, after the call (an ended task stays ended).
	Begin(ctx context.Context, chain []StoreTask) ([]TaskState, error)

	// Authorize applies op atomically, all or nothing (see [StoreOp]), and
	// says how it went. Nothing is taken, spent or counted unless the
	// outcome is StoreOK.
	Authorize(ctx context.Context, op *StoreOp) (StoreResult, error)

	// Observe merges taint into the taint of every known task of chain
	// (the highest sensitivity, untrusted once set stays set, sources
	// added in order up to 256 per task), increments the TaintVersion of
	// each task whose taint changed, pushes the new states to every
	// subscriber, and returns the states of chain after the merge. Unknown
	// and ended tasks are left alone.
	Observe(ctx context.Context, chain []string, taint Taint) ([]TaskState, error)

	// End marks task id ended, for good, and pushes that to every
	// subscriber. Ending an ended or unknown task is not an error. Tasks
	// below id are not marked: Authorize checks the whole chain.
	End(ctx context.Context, id string) error

	// State returns the state of each task of ids, in order.
	State(ctx context.Context, ids []string) ([]TaskState, error)

	// Subscribe makes the store push to sink, until cancel is called:
	// every change of a task's state (ended, taint) with
	// [StoreSink.TaskChanged], and the state of the subscription with
	// [StoreSink.Subscribed]. The store calls Subscribed(true) once the
	// subscription is live (possibly before Subscribe returns), and
	// Subscribed(false) then Subscribed(true) around any interruption in
	// which events may have been lost. cancel is idempotent; after it
	// returns the store starts no new call of the sink.
	Subscribe(sink StoreSink) (cancel func(), err error)
}

// StoreSink receives what a [Store] pushes. The guard implements it; a
// store calls it from any goroutine, never while holding a lock the sink's
// own calls into the store would need, and must tolerate a sink that
// takes a moment (it runs the end hooks of the tasks that ended).
type StoreSink interface {
	// TaskChanged reports the new state of a task: it ended, or its taint
	// grew. States of one task may arrive out of order; the sink keeps the
	// one with the highest TaintVersion and never un-ends a task.
	TaskChanged(TaskState)
	// Subscribed reports whether the subscription is live. After false,
	// changes may have been lost: on the next true the guard reloads the
	// state of the tasks it holds with [Store.State].
	Subscribed(live bool)
}

// StoreTask is one task of a chain as [Store.Begin] and [Store.Authorize]
// see it.
type StoreTask struct {
	// ID is the task's ID.
	ID string
	// Deadline is when the task ends at the latest. The store may forget
	// the task once Deadline plus a margin has passed.
	Deadline time.Time
	// Budgets are the task's MaxCalls (glob pattern → calls). Begin
	// records them when it first meets the task; later calls ignore them.
	Budgets map[string]int
	// TaintVersion is, in Authorize, the version of the task's taint the
	// decision was made on: a newer one in the store makes the outcome
	// StoreStale.
	TaintVersion uint64
}

// StoreOp is what one [Guard.Authorize] asks of the store, to be applied
// atomically: check that every task of Chain is known and not ended and
// that none has a taint newer than the decision saw; check the approval;
// take one token of every rate limit in Limits; spend one call of every
// budget in Budgets; count one call of Tool in task.calls of every task of
// Chain; record a standing approval. Either all of it happens, or none.
type StoreOp struct {
	// Chain is the call's task and its ancestors, root first: the call's
	// own task is Chain[len(Chain)-1].
	Chain []StoreTask
	// Tool is the tool called, counted on every task of Chain.
	Tool string
	// Limits are the rate limits of the rules that decided the call.
	Limits []StoreLimit
	// Budgets are the budgets the call spends.
	Budgets []StoreSpend
	// Approval is set when the decision was Ask; nil otherwise.
	Approval *StoreApproval
}

// StoreLimit is a rate limit of one rule for one task: Rate calls per Per
// with bursts of Burst, applied like golang.org/x/time/rate (a bucket of
// Burst tokens, full at first, refilled at Rate/Per) or an exact
// equivalent such as GCRA, on the store's clock.
type StoreLimit struct {
	// Task is the index in StoreOp.Chain of the task the limit counts on.
	Task int
	// Key names the limiter within the task: the rule's name and limit.
	// A changed limit has a new key, and starts afresh.
	Key string
	// Rate calls per Per, in bursts of up to Burst; all positive.
	Rate  int
	Per   time.Duration
	Burst int
}

// StoreSpend is one call spent of a task's budget.
type StoreSpend struct {
	// Task is the index in StoreOp.Chain of the task whose budget it is.
	Task int
	// Pattern is the budget's pattern (a key of StoreTask.Budgets as
	// Begin recorded them); the call fits if calls spent on it so far are
	// below its maximum.
	Pattern string
}

// StoreApproval is the approval part of an Ask decision.
type StoreApproval struct {
	// Digest is the decision's Digest: the exact call.
	Digest string
	// Granted says the approver has just granted the call: the operation
	// uses that grant (once) and, with ForTask, records it for the call's
	// task. Without Granted the operation needs a standing approval of
	// Digest recorded earlier on the call's task, and its outcome is
	// StoreApprovalNeeded when there is none.
	Granted bool
	// ForTask, with Granted, records the approval for the rest of the
	// task (Grant.ForTask).
	ForTask bool
	// By names who approved (Granted), for the record.
	By string
}

// StoreOutcome is how a [Store.Authorize] went.
type StoreOutcome uint8

const (
	// StoreOK: the operation was applied.
	StoreOK StoreOutcome = iota
	// StoreEnded: Chain[Failed] has ended.
	StoreEnded
	// StoreUnknown: the store does not know Chain[Failed] (it was never
	// begun, or it expired, or the store lost it).
	StoreUnknown
	// StoreStale: the taint of a task of Chain is newer than its
	// TaintVersion; State holds the chain's current states.
	StoreStale
	// StoreApprovalNeeded: no standing approval of the digest.
	StoreApprovalNeeded
	// StoreRateLimited: Limits[Failed] has no token; RetryAfter says
	// when it will.
	StoreRateLimited
	// StoreBudgetSpent: Budgets[Failed] is spent.
	StoreBudgetSpent
)

// StoreResult is the answer of [Store.Authorize].
type StoreResult struct {
	// Outcome says whether the operation was applied, and if not why.
	Outcome StoreOutcome
	// Failed indexes Chain, Limits or Budgets, by Outcome.
	Failed int
	// RetryAfter is set for StoreRateLimited.
	RetryAfter time.Duration
	// State is the chain's state, root first, for StoreStale.
	State []TaskState
	// Calls are the calls of Tool counted so far on each task of Chain,
	// after this one, for StoreOK.
	Calls []int
	// ApprovedBy names who gave the standing approval used, for StoreOK
	// with an Approval that was not Granted.
	ApprovedBy string
}

// TaskState is a task's shared state as the store knows it.
type TaskState struct {
	ID string
	// Known is false for a task the store does not hold; the other fields
	// are then zero.
	Known bool
	// Ended is true once the task ended; it never reverts.
	Ended bool
	// Taint is what the task has observed, as every guard reported it.
	Taint Taint
	// TaintVersion grows by at least one with every change of Taint; it
	// is 0 before the first.
	TaintVersion uint64
}

// ErrStoreClosed is returned by the methods of a closed store.
var ErrStoreClosed = errors.New("authz: store closed")
