package mcpguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/taskguard/taskguard/authz"
)

// Declare declares the arguments of each tool from its input schema
// ([authz.ArgsFromJSONSchema]) with the guard's [authz.Guard]
// ([authz.Guard.RegisterTool]): calls whose arguments do not match the
// schema's properties and types are then denied (rule @args) before any
// rule runs, and the policy's rules over the tools are type-checked against
// them, so a rule reading an argument the schema does not have is an error
// here. A tool whose schema cannot be declared (no input schema, a property
// name that is not a CEL identifier) or whose declaration the guard refuses
// (it differs from the policy's tools block, a rule does not type-check) is
// an error; the tools before it stay declared. Declare is safe for
// concurrent use; hosts call it at start-up.
func (g *Guard) Declare(tools ...*mcp.Tool) error {
	for _, t := range tools {
		if t == nil {
			return errors.New("mcpguard: Declare: nil tool")
		}
		if t.InputSchema == nil {
			return fmt.Errorf("mcpguard: Declare: tool %q has no input schema", t.Name)
		}
		raw, err := json.Marshal(t.InputSchema)
		if err != nil {
			return fmt.Errorf("mcpguard: Declare: tool %q: %w", t.Name, err)
		}
		args, err := authz.ArgsFromJSONSchema(raw)
		if err != nil {
			return fmt.Errorf("mcpguard: Declare: tool %q: %w", t.Name, err)
		}
		if err := g.authz.RegisterTool(t.Name, args); err != nil {
			return fmt.Errorf("mcpguard: Declare: %w", err)
		}
	}
	return nil
}

// AddTool is [mcp.AddTool] that also declares the tool's arguments with
// [Guard.Declare], from t.InputSchema or, when it is nil, from the schema
// the SDK infers for In. On an error the tool is not added. t is not
// modified.
func AddTool[In, Out any](s *mcp.Server, g *Guard, t *mcp.Tool, h mcp.ToolHandlerFor[In, Out]) error {
	if s == nil || g == nil || t == nil {
		return errors.New("mcpguard: AddTool: nil server, guard or tool")
	}
	tt := *t
	if tt.InputSchema == nil {
		if reflect.TypeFor[In]() == reflect.TypeFor[any]() {
			tt.InputSchema = &jsonschema.Schema{Type: "object"}
		} else {
			schema, err := jsonschema.For[In](nil)
			if err != nil {
				return fmt.Errorf("mcpguard: AddTool: tool %q: input schema: %w", t.Name, err)
			}
			tt.InputSchema = schema
		}
	}
	if err := g.Declare(&tt); err != nil {
		return err
	}
	mcp.AddTool(s, &tt, h)
	return nil
}
