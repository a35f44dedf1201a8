// Package authz decides, at request time, whether an AI agent may make a
// tool call for the task it is working on.
//
// A [Guard] holds a compiled [Policy]. Every call runs under a [Task],
// started with [Guard.Begin], which says who the agent is, which intents and
// tools it declared, the highest data sensitivity it may touch, and when it
// ends. [Guard.Check] decides a [Call] against the task and the policy;
// [Guard.Authorize] also runs approvals and returns an error for anything
// that is not allowed. Deny is the default and every failure denies.
//
// # Tasks
//
//	ctx, task, err := g.Begin(ctx, authz.TaskSpec{
//		Agent:     authz.Agent{ID: "spiffe://corp/agent/researcher"},
//		Intents:   []string{"read", "search"},
//		Tools:     []string{"http.*"},
//		Clearance: authz.Internal,
//		TTL:       10 * time.Minute,
//	})
//	defer task.End()
//
// A Begin from a context that already carries a task starts a sub-task,
// which may only narrow its parent: fewer intents and tools, lower
// clearance, an earlier deadline. Delegation never widens anything: a call
// of a sub-task is decided for the sub-task and again for each ancestor,
// under that ancestor's agent, labels and taint (the strictest effect wins,
// and any ask asks), and rate limits, budgets and task.calls count on
// every ancestor. So a sub-agent with its own identity, or a label its
// parent lacked, gains nothing; write rules that should pass on through
// delegation over the task's scope (intents, tools, labels), and rules by
// agent where only that agent may act. No method hands out a parent *Task
// ([Task.ParentID] gives its ID). [Task.End] runs the hooks other packages
// registered with [Task.OnEnd] (the secrets broker revokes leases,
// contextguard wipes memory). [Task.Observe] records what the task has seen;
// policies read it as task.taint.
//
// # Decisions
//
// Check runs built-in checks first (a live task, a declared intent, an
// allowed tool, sensitivity within clearance, a destination that parses),
// then the rules for the call's tool: deny overrides ask overrides allow, and
// no matching rule denies ([RuleNoMatch]). A rule whose expression fails at
// run time (a missing key, the cost limit) denies and the [Decision] names
// it with the kind of error ([RuleError]), never the values CEL quotes;
// [Guard.Explain] keeps the full error for debugging. Check never panics and writes one audit record per decision to the
// logger set with [WithLogger]; arguments are never logged.
//
// # Policies
//
// Policies are YAML documents ([ParsePolicy], [LoadPolicyFiles]) or Go
// values ([NewPolicy]):
//
//	rules:
//	  - name: github-read
//	    tools: ["http.fetch"]
//	    effect: allow
//	    when: intent in ["read", "search"] && destination.host.glob("*.github.com")
//	    reason: reading GitHub is allowed
//
// Errors name the file, line, column and rule; all errors of a document are
// reported together.
//
// # CEL
//
// A rule's when is a CEL expression of type bool. Its variables are:
//
//	agent        id, attrs (map)
//	task         id, purpose, intents, tools, clearance, labels, depth,
//	             age, remaining (durations), calls (map tool → count),
//	             taint {sensitivity, untrusted, sources}, truncated,
//	             scope (map of lists: task.scope.recipients; `in` on
//	             them is exact and costs one unit, see TaskSpec.Scope)
//	tool         string
//	intent       string
//	destination  kind ("url", "file", "email", "other", "none"), scheme,
//	             host, port, path, user, ip, private, canonical
//	destinations list of every destination of the call, primary first,
//	             each shaped like destination (see Call.Destinations)
//	sensitivity  int, compared with PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED
//	args         map(string, dyn): the tool's arguments (typed for
//	             declared tools: see Typed tool arguments)
//	now          timestamp
//
// Beyond standard CEL: host.glob(pattern), where a "*" label matches one or
// more DNS labels ("*.github.com" matches "api.github.com" but neither
// "github.com" nor "evilgithub.com"); path.within(root), true for root and
// the paths below it on the canonical path; and cel-go's ext.Strings,
// ext.Sets, ext.Lists and ext.Network (ip, cidr, containsIP ...).
//
// cel.bind(name, value, expr) (cel-go's ext.Bindings) names a value inside
// one expression. A policy document may also declare named expressions
// that its rules read as variables.NAME:
//
//	variables:
//	  - name: named_recipients
//	    expression: destinations.all(d, d.canonical in task.scope.recipients)
//	rules:
//	  - {name: mail, tools: [mail.send], effect: allow, when: variables.named_recipients}
//
// Each is compiled and type-checked once at load, may use the variables
// declared before it (a later one, or itself, is a load error), counts
// towards the cost estimate of every rule that reads it, and is evaluated
// at most once per call and task view, only when a rule reads it; an
// evaluation error is an error of every rule that reads it. Variables
// belong to their document: rules of other files do not see them.
//
// Unknown variables or fields are load errors. Each expression's worst-case
// cost is estimated at load and refused above [MaxEstimatedCost]; at run
// time evaluation stops at [MaxRuntimeCost] and the call is denied.
//
// # Typed tool arguments
//
// A policy may declare the arguments of its tools, with CEL types (int,
// uint, double, bool, string, bytes, timestamp, duration, dyn, list(T),
// map(K, V)):
//
//	tools:
//	  payments.send:
//	    args: {amount: int, to: string, cc: list(string)}
//
// A rule whose tools are all declared is type-checked against the arguments
// those tools have in common, so args.amout or args.amount > "10" is a load
// error with file:line:col and the rule. A plain tool name must be declared
// itself; a glob stands for the declared tools it matches and must match at
// least one (a rule over a glob matching none, or over an undeclared name,
// keeps a dynamic args). An argument the tools declare with different types
// is dyn; dyn(args).NAME reads any argument dynamically. At run time a call
// of a declared tool is checked against its declaration before any rule
// runs: an undeclared argument or a value of another type denies
// ([RuleArgs]), a built-in check that dry run does not lift. Arguments are
// optional: an absent or null argument is not set (has(args.cc) is false)
// and reading it is an error, which denies. JSON integers are accepted for
// double and non-negative ones for uint; RFC 3339 strings for timestamp;
// time.ParseDuration strings for duration; strings for bytes. A call of an
// undeclared tool that a typed glob rule matches is evaluated by the typed
// program: an argument it reads that is absent or of another type is an
// evaluation error and denies.
//
// Declarations also come from Go. [Wrap] declares the arguments of its
// tool from [Tool.Args] or, for a tool without Describe, from its struct
// argument type A ([ArgsOf]: its JSON fields with their CEL types);
// [WrapJSON] declares [Tool.Args];
// integrations declare from a tool's input JSON Schema
// ([ArgsFromJSONSchema]) with [Guard.RegisterTool]. A Go declaration is
// checked like one in the policy: the rules are type-checked against it
// when it is registered (and at every [Guard.Update]). A tool declared in
// both places must be declared alike; otherwise the registration fails with
// an error naming both sources and the arguments that differ, and a wrapped
// handler denies every call ([RuleArgs]). The guard remembers the tools
// that were wrapped or registered ([Guard.Tools]); [Guard.Lint] uses them to
// report rules for tools nobody registered and registered tools no rule
// allows.
//
// # Destinations
//
// Call.Destination is canonicalised before any rule sees it, so a policy
// cannot be bypassed by spelling: hosts are lower-cased, converted from
// Unicode to ASCII (IDNA) and lose a trailing dot; userinfo is rejected; IP
// literals are recognised in every spelling (2130706433, 0x7f.1, 0177.0.0.1,
// [::ffff:127.0.0.1]) and destination.private covers loopback, RFC 1918,
// CGNAT, link-local and metadata addresses, unique-local and unspecified
// addresses; file paths are cleaned with ".." resolved, and relative paths
// are resolved against the task's "workdir" label or denied. Anything that
// does not parse denies ([RuleDestination]). A call with several
// destinations (Call.Destinations) has each of them canonicalised and
// inspected the same way; the first one rejected denies the whole call.
//
// # Operating a policy
//
// An ask is approved through the [Approver] (the host's channel to a
// person, never the model); the approval is bound to [Decision.Digest], the
// exact call under the policy version, and is single-use unless a [Granter]
// grants it for the task. Rules may carry a rate limit (limit: {rate: 10/m,
// burst: 5}) and run in shadow mode (mode: shadow); [WithDryRun] reports a
// whole policy without enforcing it; [TaskSpec].MaxCalls caps calls per
// tool. [Guard.Explain] traces a decision, [Guard.Visible] lists the tools a
// task could use, [Guard.Update] swaps the policy atomically,
// [WatchPolicyFiles] reloads it from files, and [Policy.Lint] warns about
// policies that cannot work as intended.
//
// # Middleware
//
// [Wrap] guards a typed tool handler and [WrapJSON] one that takes raw JSON
// arguments; on a deny the handler is not called and the *[DeniedError] is
// returned. After a successful call whose intent reads data, the result is
// recorded on the task as untrusted content ([Tool.Output],
// [Guard.ObserveOutput], [WithObservedIntents]), so taint rules hold without
// the host calling [Task.Observe]. The subpackages httpguard and fsguard
// enforce again at use time: every HTTP redirect hop and dialed address,
// every file opened through os.Root; [Guard.Deny] audits what they refuse.
//
// # Observability
//
// [WithObserver] sends an event for every decision of [Guard.Check] and
// [Guard.Authorize] (tool, intent, effect, rule, policy version, task,
// agent, latency and the approval's outcome and wait) and for every lease
// the secrets broker grants or ends, to an [Observer]. Events never carry
// arguments, destinations or secret values; a panicking observer is
// recovered. The authz/authzotel module turns them into OpenTelemetry spans
// and metrics. Without an observer nothing is made and Check still does
// not allocate.
//
// # Across processes
//
// [WithIdentityVerifier] makes [Guard.Begin] verify [TaskSpec].Credential
// (implementations in the authz/identity module) and fill the [Agent] from
// it. [Task.Token] hands a task to another service as a short-lived
// EdDSA-signed token for one audience; [Guard.Resume] on a guard that trusts
// the key ([WithName], [WithSigningKey], [WithTrustedKey]) re-creates it
// there, and [Task.Report] with [Guard.ApplyReport] brings what the remote
// task observed back to the caller's task.
//
// # Replicas
//
// A task's growing state (ended, taint, task.calls, rate limits, budgets,
// standing approvals) lives on the [Task], in one process, unless the
// guard has a [Store] ([WithStore]): then every guard on the same store
// shares it, so replicas behind a load balancer enforce one rate limit and
// one budget per task, a task ended where it began ends everywhere (end
// hooks run on every replica), and taint observed on one replica counts on
// all. authz/redisstore keeps it in Redis; [NewMemoryStore] shares it
// between the guards of one process. Check stays local, on a view the
// store keeps up to date; Authorize makes one store call per decision,
// atomic, and decides again when the taint changed meanwhile. A store that
// fails or does not answer denies ([RuleStore]); so does Check once the
// view is older than [WithStoreStaleness] without a subscription.
// authztest.StoreConformance checks a Store implementation.
//
// # Building integrations
//
// Hosts need only the sections above. Code that builds on the guard (a
// framework adapter, an enforcement package such as httpguard or fsguard,
// a Store) uses these hooks, grouped here so they are not mistaken for
// everyday API:
//   - arguments: [DecodeArgs] (JSON as the guard reads it), [ArgsOf] and
//     [ArgsFromJSONSchema] (declarations), [Guard.RegisterTool];
//   - decisions made elsewhere: [Guard.DescribeError] (a call that could
//     not be described), [Guard.Deny] (a refusal at use time, with
//     [RuleDial] and [RuleEscape]), [Guard.ObserveOutput];
//   - per-task checks: [Task.Inspect] with an [InspectFunc] over [CallInfo]
//     (the secrets broker uses it to see where leased values go);
//   - reporting: [Guard.Observer] (the secrets broker reports leases
//     through it);
//   - shared state: [Store], [StoreSink] and the Store* and [TaskState]
//     types, implemented by [NewMemoryStore] and authz/redisstore.
package authz
