// Package mcpguard puts a taskguard [authz.Guard] in front of the tools of
// an MCP server built with the official Go SDK
// (github.com/modelcontextprotocol/go-sdk/mcp).
//
// # Sessions and tasks
//
// Every MCP server session runs under one taskguard task. The task begins
// on the session's first tools/list or tools/call, with the [authz.TaskSpec]
// the host's [SpecFunc] returns for the session, and ends when the session
// closes (or at its own deadline; an ended task is not restarted and every
// later call of the session is denied). Sessions are told apart by their
// *mcp.ServerSession, not by their ID: sessions over stdio and in-memory
// transports have no ID. Two sessions never share a task, so budgets,
// rate limits and taint stay per session.
//
// # What is guarded
//
// [Guard.Middleware] is an mcp.Middleware for [mcp.Server.AddReceivingMiddleware]:
//
//   - tools/call is decided by [authz.Guard.Authorize] before the tool
//     handler runs. The call is described by the tool's
//     [authz.Tool] describer in [Tools] (intent, destination, sensitivity),
//     with the arguments decoded by [authz.DecodeArgs] through
//     [authz.WrapJSON]. A tool without a describer is denied. On a deny the
//     handler is not called and the client receives a CallToolResult with
//     IsError set and the rule and reason as text, which the model can read.
//     When the handler succeeds (no error, IsError unset), its result
//     taints the session's task by default ([authz.Guard.ObserveOutput]
//     with the describer's [authz.Tool.Output]): the results of read and
//     search calls count as untrusted content. Denied and failed calls
//     record nothing.
//   - tools/list returns only the tools [authz.Guard.Visible] reports for
//     the session's task, marked private and uncacheable.
//
// Other methods (resources, prompts, completion) pass through unguarded.
//
// # Typed arguments
//
// [AddTool] adds a tool to the server and declares its arguments to the
// taskguard guard from its input schema ([Guard.Declare],
// [authz.ArgsFromJSONSchema]): the policy's rules over the tool are
// type-checked against the schema (a rule reading args.bdy of a tool whose
// schema has body fails here, with the rule's file:line:col), a policy
// tools block that declares the tool differently is an error naming both,
// and a call whose arguments do not match the schema's properties and
// types is denied (rule @args) before any rule runs. [New] registers the
// described tools, so [authz.Guard.Lint] reports rules for tools the server
// does not have and tools no rule allows.
//
// # Usage
//
//	guard, err := mcpguard.New(g, spec, mcpguard.Tools{
//		"fetch": {Intent: "read", Describe: func(a map[string]any) (authz.Call, error) {
//			url, _ := a["url"].(string)
//			return authz.Call{Destination: url}, nil
//		}},
//	})
//	server := mcp.NewServer(impl, nil)
//	err = mcpguard.AddTool(server, guard, &mcp.Tool{Name: "fetch"}, fetch)
//	server.AddReceivingMiddleware(guard.Middleware)
//	defer guard.Close()
//
// Tool handlers run with the session's task in their context
// ([authz.TaskFrom]). A describer's Output marks a tool's results trusted
// (the host's own data), classifies them, or turns the recording off for a
// handler that records what it read itself with [authz.Task.Observe].
package mcpguard
