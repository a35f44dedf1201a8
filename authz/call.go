package authz

// Call is one tool invocation to authorize.
type Call struct {
	// Tool is the tool's name ("http.fetch"). Required.
	Tool string
	// Intent says what the call does: read, search, write, delete, export,
	// execute, secret.read, ... Required.
	Intent string
	// Destination is where the call reads from or sends to: a URL, a file
	// path, an email address, an opaque "scheme://name" ("db://orders"), or
	// empty. The guard canonicalises it before any rule sees it; an
	// unparseable destination denies.
	Destination string
	// Sensitivity classifies the data the call touches or sends.
	Sensitivity Sensitivity
	// Args are the tool's arguments, JSON-shaped. Policies read them as args;
	// they are never logged.
	Args map[string]any
}

// Input bounds, enforced where inputs enter the guard: tool and intent of a
// call (Check), task and agent strings of a spec (Begin) at most
// MaxInputSize bytes, task lists and maps at most MaxInputSize entries, the
// canonical destination at most MaxDestinationSize bytes. Calls and tasks
// beyond these bounds are refused. Policies' cost estimates rely on them
// (see [MaxEstimatedCost]).
const (
	MaxInputSize       = 1024
	MaxDestinationSize = 8192
)
