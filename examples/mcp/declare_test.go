package main

import (
	"context"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/examples/mcp/mcpguard"
)

// TestArgumentsDeclaredFromSchemas: the host declares every tool from its
// input schema, so calls whose arguments do not match are denied before
// any rule runs, and the guard knows the server's tools.
func TestArgumentsDeclaredFromSchemas(t *testing.T) {
	h := startHost(t, sessionSpec)
	cs, _ := connect(t, h, "client", nil)
	for _, tc := range []struct {
		name string
		args map[string]any
		rule string
	}{
		{"matching arguments", map[string]any{"to": "partner@example.net", "body": "hi"}, ""},
		{"wrong type", map[string]any{"to": "partner@example.net", "body": 5}, authz.RuleArgs},
		{"argument the schema does not name", map[string]any{"to": "partner@example.net", "body": "hi", "bcc": "eve@example.org"}, authz.RuleArgs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := callTool(t, cs, "send_email", tc.args)
			if tc.rule == "" {
				assert.False(t, res.IsError)
				return
			}
			require.True(t, res.IsError)
			assert.Equal(t, tc.rule, res.Meta["taskguard/rule"])
		})
	}
	assert.Equal(t, []string{"debug_dump", "fetch", "query_db", "read_file", "run_shell", "send_email"}, h.authz.Tools())
	var lint []string
	for _, w := range h.authz.Lint() {
		lint = append(lint, w.String())
	}
	assert.Equal(t, []string{`policy.yaml: no enforced allow or ask rule matches the registered tools "debug_dump", "run_shell": they are always denied`}, lint)
}

// TestDeclareChecksThePolicy: a rule reading an argument the tool's schema
// does not have, or a tools block that disagrees with the schema, fails
// when the tool is added, naming the rule or both declarations.
func TestDeclareChecksThePolicy(t *testing.T) {
	for _, tc := range []struct {
		name, policy, err string
	}{
		{"misspelled argument", `rules:
  - name: email
    tools: [send_email]
    effect: allow
    when: args.bdy.size() < 10
`, `mcpguard: Declare: authz: RegisterTool: tool "send_email": bad.yaml:5:15: rule "email": when: undefined field 'bdy' (tool send_email declares arguments body, to; read other arguments with dyn(args).NAME)`},
		{"conflicting tools block", `tools:
  send_email: {args: {to: string, body: bytes}}
rules:
  - {name: email, tools: [send_email], effect: allow, when: 'true'}
`, `tool "send_email" is declared differently in bad.yaml:2:3 and RegisterTool: body is bytes in bad.yaml:2:3 but string in RegisterTool`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := authz.ParsePolicy("bad.yaml", []byte(tc.policy))
			require.NoError(t, err)
			g, err := authz.New(authz.WithPolicy(p))
			require.NoError(t, err)
			guard, err := mcpguard.New(g, sessionSpec, describers)
			require.NoError(t, err)
			t.Cleanup(func() { _ = guard.Close() })
			server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "v1.0.0"}, nil)
			err = mcpguard.AddTool(server, guard, &mcp.Tool{Name: "send_email"},
				func(context.Context, *mcp.CallToolRequest, emailArgs) (*mcp.CallToolResult, any, error) {
					return &mcp.CallToolResult{}, nil, nil
				})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}

func TestDeclareValidates(t *testing.T) {
	g, err := authz.New()
	require.NoError(t, err)
	guard, err := mcpguard.New(g, sessionSpec, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = guard.Close() })
	assert.ErrorContains(t, guard.Declare(&mcp.Tool{Name: "x"}), `tool "x" has no input schema`)
	assert.ErrorContains(t, guard.Declare(&mcp.Tool{Name: "x", InputSchema: map[string]any{"type": "object",
		"properties": map[string]any{"content-type": map[string]any{"type": "string"}}}}), `argument name "content-type"`)
	require.NoError(t, guard.Declare(&mcp.Tool{Name: "x", InputSchema: map[string]any{"type": "object",
		"properties": map[string]any{"n": map[string]any{"type": "integer"}}}}))
	assert.Equal(t, []string{"x"}, g.Tools())
}
