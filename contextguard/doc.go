// Package contextguard isolates conversation memory and caches per task and
// feeds what a task has seen back into its policy decisions.
//
//	store := contextguard.NewStore(contextguard.WithRedactor(broker))
//	mem := store.For(task)
//	err := mem.Add(ctx, contextguard.Entry{Role: "tool", Source: "http.fetch",
//		Content: body, Sensitivity: authz.Internal}) // Trusted: false, the default
//	prompt, err := mem.Window(ctx, 50, 16_000)
//
// # Isolation by construction
//
// A [Memory] is reached only through its task ([Store.For]); no method
// lists tasks or reads another task's entries, so isolation does not depend
// on filters a caller must remember. When the task ends its memory is
// wiped (contents overwritten, entries dropped) and every later call
// returns [ErrTaskEnded]; a new task of the same agent starts empty.
//
// # Taint
//
// Every [Memory.Add] calls task.ObserveText(source, content, sensitivity,
// trusted), so policies can say "deny export after confidential data was
// read" (task.taint.sensitivity >= CONFIDENTIAL), "ask before writing once
// untrusted content entered the context" (task.taint.untrusted), or "deny
// a payment to an account that appeared only in untrusted content"
// (args.iban.fromUntrusted() && !args.iban.fromTrusted()). Entries above
// the task's clearance are refused.
//
// # Secrets
//
// [WithRedactor] passes every entry through a [Redactor] before it is
// stored; a *secrets.Broker removes every live lease value, so secrets never
// reach memory or the model.
//
// # Handoff, cache, backends
//
// [Memory.Handoff] gives a sub-task the entries at or below its clearance
// (optionally only trusted ones); it is the only way code running under a
// sub-task draws on an ancestor's memory: [Memory.Add], [Memory.Entries],
// [Memory.Window] and other targets of Handoff refuse such callers with
// [ErrAncestorMemory], and reads never return entries above the memory's
// task's clearance. Reads and writes take a context because a [Backend]
// may be remote; [WithWipeTimeout] bounds the wipe at task end. [Cache] is a
// task-scoped cache; a sub-task has its own. A [Backend] persists entries;
// wrap it with [Encrypted] so entries are stored under a per-task AES-GCM
// key that is destroyed when the task ends (crypto-shredding), each bound
// to its task and its position: a backend that drops, truncates, reorders,
// repeats or swaps entries makes reads fail with [ErrTampered].
package contextguard
