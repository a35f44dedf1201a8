package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/taskguard/taskguard/authz"
)

// Guard names: a task token's audience is the receiving guard's name, a
// report's audience the name of the guard that issued the token.
const (
	agentName  = "agent"
	serverName = "tools"
)

var errNoReport = errors.New("remote-mcp: the tool result carries no taskguard report")

// agentConfig is what the agent runtime's guard needs besides the policy
// and the identity verifier: its token signing key and the key the tool
// server signs its reports with.
type agentConfig struct {
	KeyID        string
	Key          ed25519.PrivateKey
	ServerKeyID  string
	ServerKey    ed25519.PublicKey
	IdentityAuth authz.IdentityVerifier
	Options      []authz.Option // extra options (a clock, in tests)
}

// newAgentGuard returns the agent runtime's guard: it verifies the agent's
// SVID at Begin, signs task tokens (30 s: a token already sent stays valid
// on the server until it expires, see README) and trusts the server's
// reports.
func newAgentGuard(policy *authz.Policy, cfg agentConfig) (*authz.Guard, error) {
	opts := []authz.Option{authz.WithPolicy(policy),
		authz.WithName(agentName),
		authz.WithSigningKey(cfg.KeyID, cfg.Key),
		authz.WithTrustedKey(cfg.ServerKeyID, cfg.ServerKey),
		authz.WithTokenTTL(tokenTTL)}
	if cfg.IdentityAuth != nil {
		opts = append(opts, authz.WithIdentityVerifier(cfg.IdentityAuth))
	}
	return authz.New(append(opts, cfg.Options...)...)
}

// taskTransport is the agent's HTTP transport to the tool server: every
// request made with a context that carries a task gets a fresh token of
// that task for the server's guard in the Taskguard-Task header. Minting
// per request costs one Ed25519 signature and means an ended task (or one
// past its deadline) sends nothing: Token fails and so does the request,
// before it leaves the process. Requests without a task (the MCP
// initialize handshake) go out without a token; the server refuses tools
// requests without one.
type taskTransport struct {
	base     http.RoundTripper
	audience string
}

// RoundTrip implements [http.RoundTripper]. It does not modify req.
func (t taskTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	task, ok := authz.TaskFrom(req.Context())
	if !ok {
		return t.base.RoundTrip(req)
	}
	tok, err := task.Token(t.audience)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // RoundTrip closes the body, even on errors
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set(TaskHeader, tok)
	return t.base.RoundTrip(r)
}

// applyReports is a client sending middleware: every tools/call result must
// carry the server's report, which the agent's guard verifies and applies
// to the calling task, so what the server read taints the task here. A
// result without a report, or with one that does not verify, is refused:
// the agent cannot know what it brings.
func applyReports(g *authz.Guard) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if err != nil || method != "tools/call" {
				return res, err
			}
			r, ok := res.(*mcp.CallToolResult)
			if !ok || r == nil {
				return nil, fmt.Errorf("remote-mcp: tools/call returned %T", res)
			}
			report, _ := r.Meta[ReportMetaKey].(string)
			if report == "" {
				return nil, errNoReport
			}
			if err := g.ApplyReport(ctx, report); err != nil {
				return nil, err
			}
			return r, nil
		}
	}
}

// connectTools connects the agent's MCP client to the tool server at
// endpoint over the streamable HTTP transport, with task tokens on every
// request and reports applied on every tools/call result. Calls must be
// made with a context carrying the agent's task.
func connectTools(ctx context.Context, g *authz.Guard, endpoint string) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "researcher", Version: "v1.0.0"}, nil)
	client.AddSendingMiddleware(applyReports(g))
	transport := &mcp.StreamableClientTransport{
		Endpoint:             endpoint,
		HTTPClient:           &http.Client{Transport: taskTransport{base: http.DefaultTransport, audience: serverName}},
		DisableStandaloneSSE: true,
		MaxRetries:           -1,
	}
	return client.Connect(ctx, transport, nil)
}

type emailArgs struct {
	To   string `json:"to"`
	Body string `json:"body"`
}

// sendEmail is a tool the agent runtime runs itself, under its own guard:
// an export, refused once the task has read confidential data, here or on
// the tool server.
func sendEmail(g *authz.Guard) func(ctx context.Context, a emailArgs) (string, error) {
	return authz.Wrap(g, authz.Tool[emailArgs]{Name: "send_email", Intent: "export",
		Describe: func(a emailArgs) (authz.Call, error) {
			return authz.Call{Destination: "mailto:" + a.To, Sensitivity: authz.Internal}, nil
		}},
		func(_ context.Context, a emailArgs) (string, error) { return "sent to " + a.To, nil })
}
