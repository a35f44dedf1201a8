package fsguard

import (
	"errors"
	"fmt"

	"github.com/taskguard/taskguard/authz"
)

// Op is a kind of file operation. Each has its own tool name and intent,
// which [WithTool] changes.
type Op uint8

// The operations and the tool and intent each is authorized as by default.
const (
	OpRead   Op = iota // fs.read, read: ReadFile, Open, FS reads
	OpWrite            // fs.write, write: WriteFile, the target of Rename
	OpList             // fs.list, read: ReadDir
	OpStat             // fs.stat, read: Stat
	OpDelete           // fs.delete, delete: Remove, RemoveAll, the source of Rename
	OpMkdir            // fs.mkdir, write: Mkdir, MkdirAll
	numOps
)

var opNames = [numOps]string{"read", "write", "list", "stat", "delete", "mkdir"}

// String returns the operation's name: "read", "write", "list", "stat",
// "delete" or "mkdir", or "op(N)" for an undefined value.
func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// toolSpec is the tool name and intent an operation is authorized as.
type toolSpec struct{ tool, intent string }

var defaultTools = [numOps]toolSpec{
	OpRead:   {"fs.read", "read"},
	OpWrite:  {"fs.write", "write"},
	OpList:   {"fs.list", "read"},
	OpStat:   {"fs.stat", "read"},
	OpDelete: {"fs.delete", "delete"},
	OpMkdir:  {"fs.mkdir", "write"},
}

// config is what the options set. It is immutable once OpenRoot returns.
type config struct {
	tools       [numOps]toolSpec
	sensitivity authz.Sensitivity
	classify    func(path string) authz.Sensitivity
	trusted     func(path string) bool
}

func newConfig(opts []Option) (config, error) {
	c := config{tools: defaultTools}
	var errs []error
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

// Option configures a [Root]. Options are validated by [OpenRoot] and
// [OpenTaskRoot], which return an error for an invalid one; a nil Option
// is ignored. Unless an option says otherwise, a later option of the same
// kind replaces an earlier one.
type Option func(*config) error

// WithTool sets the tool name and intent operation op is authorized as,
// replacing the default (see [Op]). Both must be non-empty. For example
// WithTool(OpList, "fs.list", "list") gives directory listings their own
// intent, which tasks must then declare.
func WithTool(op Op, tool, intent string) Option {
	return func(c *config) error {
		switch {
		case op >= numOps:
			return fmt.Errorf("fsguard: WithTool: unknown operation %v", op)
		case tool == "" || intent == "":
			return fmt.Errorf("fsguard: WithTool(%v): empty tool name or intent", op)
		}
		c.tools[op] = toolSpec{tool, intent}
		return nil
	}
}

// WithSensitivity sets the sensitivity of every operation's call, and of
// what reads add to the task's taint. The default is [authz.Public]. It
// replaces a [WithClassifier] given before it, and is replaced by one
// given after it.
func WithSensitivity(s authz.Sensitivity) Option {
	return func(c *config) error {
		if !s.Valid() {
			return fmt.Errorf("fsguard: WithSensitivity: invalid sensitivity %d", s)
		}
		c.sensitivity, c.classify = s, nil
		return nil
	}
}

// WithClassifier sets a function that classifies each operation's file by
// its path: the call is authorized with that sensitivity, and a read adds
// it to the task's taint. The path is absolute, with the symbolic links of
// its existing part resolved at check time, as the policy sees it (it may
// be outside the root when a link leads out; such an operation never
// succeeds). f must be safe for concurrent use; a panic in f denies the
// operation. It replaces a [WithSensitivity] given before it.
func WithClassifier(f func(path string) authz.Sensitivity) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("fsguard: WithClassifier: nil classifier")
		}
		c.classify = f
		return nil
	}
}

// WithTrusted sets a predicate that says which files hold trusted content,
// by the same path [WithClassifier] sees. Reads of other files mark the
// task as having seen untrusted content. The default trusts nothing. f
// must be safe for concurrent use; a panic in f counts as untrusted.
func WithTrusted(f func(path string) bool) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("fsguard: WithTrusted: nil predicate")
		}
		c.trusted = f
		return nil
	}
}
