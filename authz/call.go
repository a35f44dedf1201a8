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
	// Destinations are the call's further destinations, when it has more
	// than one (an email with many recipients, an event with many
	// participants, a share with many users); Destination is the primary
	// one and must be set when Destinations is not empty. Each is
	// canonicalised like Destination and goes through the same built-in
	// checks and the task's inspectors (the secrets broker's among them);
	// the first one rejected denies the whole call and is named in the
	// reason as destinations[i] (destinations[0] is the primary). Policies
	// read them all as the list destinations, primary first, each shaped
	// like destination. Rules that read only destination see only the
	// primary: write rules over destinations for tools whose calls carry
	// several, e.g. destinations.all(d, d.host.glob("*.corp.example")).
	// At most MaxDestinations entries.
	Destinations []string
	// Sensitivity classifies the data the call touches or sends.
	Sensitivity Sensitivity
	// Args are the tool's arguments, JSON-shaped. Policies read them as args;
	// they are never logged.
	Args map[string]any
}

// Input bounds, enforced where inputs enter the guard: tool and intent of a
// call (Check), task and agent strings of a spec (Begin) at most
// MaxInputSize bytes, task lists and maps at most MaxInputSize entries, the
// canonical destination (each of them) at most MaxDestinationSize bytes,
// the further destinations of a call at most MaxDestinations entries. Calls and tasks
// beyond these bounds are refused. Policies' cost estimates rely on them
// (see [MaxEstimatedCost]).
const (
	MaxInputSize       = 1024
	MaxDestinationSize = 8192
	MaxDestinations    = 256
)
