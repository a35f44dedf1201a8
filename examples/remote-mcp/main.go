// Command remote-mcp runs an agent runtime and an MCP tool server as two
// parties that share no memory: they talk MCP over the SDK's streamable
// HTTP transport on loopback. The agent verifies its own SPIFFE JWT-SVID,
// begins a task and sends a short-lived task token with every request; the
// server resumes the task from the token, decides its tools with the same
// policy and signs a report of what the task read there, which the agent
// applies, so a confidential document read on the server blocks an email
// sent by the agent. Ending the task on the agent stops its calls.
//
// With -role demo (the default) both run in this process, the server on a
// loopback port. With -role server only the tool server runs: it trusts
// the agent key given by -agent-key, listens on -listen and prints its
// endpoint and report key as one JSON line.
package main

import (
	"context"
	"crypto/ed25519"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/identity"
)

//go:embed policy.yaml
var policyYAML []byte

const (
	// researcherID is the agent's SPIFFE ID.
	researcherID = "spiffe://example.org/agent/researcher"
	// svidAudience is the audience the agent runtime verifies SVIDs for.
	svidAudience = "agent-runtime"
	// tokenTTL bounds task tokens: the time a token already sent stays
	// valid on a server in another process after its task ended.
	tokenTTL = 30 * time.Second
)

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

// realMain runs the command with args and returns its exit code.
func realMain(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("remote-mcp", flag.ContinueOnError)
	flags.SetOutput(stderr)
	role := flags.String("role", "demo", "demo (agent and server in one process) or server")
	listen := flags.String("listen", "127.0.0.1:0", "server: the address to listen on")
	agentKey := flags.String("agent-key", "", "server: the agent's token key as KEYID=BASE64 (Ed25519 public key)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch *role {
	case "demo":
		err = run(ctx, stdout)
	case "server":
		err = runServer(ctx, stdout, *listen, *agentKey)
	default:
		err = fmt.Errorf("unknown -role %q (want demo or server)", *role)
	}
	if err != nil {
		fmt.Fprintln(stderr, "remote-mcp:", err)
		return 1
	}
	return 0
}

func loadPolicy() (*authz.Policy, error) { return authz.ParsePolicy("policy.yaml", policyYAML) }

// serve serves s's MCP endpoint at /mcp on ln until the returned function
// is called; it closes the HTTP server, waits for it, and closes s.
func serve(ln net.Listener, s *toolServer) (endpoint string, stop func() error) {
	mux := http.NewServeMux()
	mux.Handle("/mcp", s.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/mcp", func() error {
		err := hs.Close()
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		_ = s.Close() // only ErrClosed on a second call
		return err
	}
}

// announcement is the line a -role server process prints once it listens.
// It holds public keys only.
type announcement struct {
	Endpoint    string `json:"endpoint"`
	ReportKeyID string `json:"report_key_id"`
	ReportKey   string `json:"report_key"` // base64 Ed25519 public key
}

// runServer runs the tool server alone until ctx ends.
func runServer(ctx context.Context, out io.Writer, listen, agentKey string) error {
	kid, b64, ok := strings.Cut(agentKey, "=")
	pub, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("-agent-key must be KEYID=BASE64 of an Ed25519 public key")
	}
	policy, err := loadPolicy()
	if err != nil {
		return err
	}
	reportPub, reportKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	s, err := newToolServer(policy, serverConfig{AgentKeyID: kid, AgentKey: pub, ReportKeyID: "tools-1", ReportKey: reportKey})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	endpoint, stop := serve(ln, s)
	line, err := json.Marshal(announcement{Endpoint: endpoint, ReportKeyID: "tools-1",
		ReportKey: base64.StdEncoding.EncodeToString(reportPub)})
	if err == nil {
		_, err = fmt.Fprintf(out, "%s\n", line)
	}
	if err == nil {
		<-ctx.Done()
	}
	return errors.Join(err, stop())
}

// run is the demo: the tool server on a loopback port and the agent
// runtime calling it.
func run(ctx context.Context, out io.Writer) error {
	policy, err := loadPolicy()
	if err != nil {
		return err
	}

	// The trust domain issues the agent's SVID; the agent runtime verifies
	// it against the bundle.
	td, err := newTrustDomain("example.org")
	if err != nil {
		return err
	}
	svid, err := td.mintSVID(researcherID, svidAudience, 5*time.Minute)
	if err != nil {
		return err
	}
	verifier, err := identity.NewSPIFFE(td.bundle, svidAudience)
	if err != nil {
		return err
	}

	// The agent signs task tokens, the server signs reports; each trusts
	// the other's public key.
	agentPub, agentKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	serverPub, serverKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}

	srv, err := newToolServer(policy, serverConfig{AgentKeyID: "agent-1", AgentKey: agentPub, ReportKeyID: "tools-1", ReportKey: serverKey})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	endpoint, stop := serve(ln, srv)
	defer stop()
	fmt.Fprintf(out, "tool server listening on %s\n", ln.Addr())

	g, err := newAgentGuard(policy, agentConfig{KeyID: "agent-1", Key: agentKey,
		ServerKeyID: "tools-1", ServerKey: serverPub, IdentityAuth: verifier})
	if err != nil {
		return err
	}
	ctx, task, err := g.Begin(ctx, researchTask(svid))
	if err != nil {
		return err
	}
	defer task.End()
	fmt.Fprintf(out, "agent %s (SVID verified, trust domain %s) began task %s\n",
		task.Agent().ID, task.Agent().Attrs["trust_domain"], task.ID())

	cs, err := connectTools(ctx, g, endpoint)
	if err != nil {
		return err
	}
	defer cs.Close()

	callRemote := func(tool string, args map[string]any) error {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			fmt.Fprintf(out, "  %s %v\n    REFUSED: %v\n", tool, args, err)
			return nil
		}
		verb := "ran on the server"
		if res.IsError {
			verb = "DENIED by the server"
		}
		fmt.Fprintf(out, "  %s %v\n    %s: %s\n", tool, args, verb, resultText(res))
		return nil
	}
	email := sendEmail(g)
	sendLocal := func(to string) error {
		res, err := email(ctx, emailArgs{To: to, Body: "summary"})
		var denied *authz.DeniedError
		switch {
		case errors.As(err, &denied):
			fmt.Fprintf(out, "  send_email to %s\n    DENIED by the agent: %s\n", to, denied.Decision.Reason)
		case err != nil:
			return err
		default:
			fmt.Fprintf(out, "  send_email to %s\n    ran on the agent: %s\n", to, res)
		}
		return nil
	}
	taint := func() {
		t := task.Taint()
		fmt.Fprintf(out, "    task taint on the agent: %s, untrusted %v\n", t.Sensitivity, t.Untrusted)
	}

	steps := []func() error{
		func() error { return callRemote("web_fetch", map[string]any{"url": "https://example.com/"}) },
		func() error { taint(); return nil },
		func() error {
			return callRemote("web_fetch", map[string]any{"url": "http://169.254.169.254/latest/meta-data/"})
		},
		func() error { return sendLocal("partner@example.net") },
		func() error { return callRemote("read_doc", map[string]any{"name": "handbook"}) },
		func() error { taint(); return nil },
		func() error { return sendLocal("partner@example.net") },
		func() error {
			task.End()
			fmt.Fprintf(out, "task %s ended on the agent\n", task.ID())
			return nil
		},
		func() error { return callRemote("read_doc", map[string]any{"name": "oncall"}) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// researchTask is the agent's task, begun from its SVID: Begin verifies the
// credential and refuses it when it names another agent than the spec.
func researchTask(svid string) authz.TaskSpec {
	return authz.TaskSpec{
		Credential: svid,
		Agent:      authz.Agent{ID: researcherID},
		Purpose:    "research the roadmap and mail a summary",
		Intents:    []string{"read", "export"},
		Tools:      []string{"read_doc", "web_fetch", "send_email"},
		Clearance:  authz.Confidential,
		TTL:        10 * time.Minute,
	}
}

// resultText joins the text content of a tool result.
func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}
