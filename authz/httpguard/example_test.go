package httpguard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/httpguard"
)

// staticResolver resolves names from a table, standing in for DNS.
type staticResolver map[string]string

func (r staticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ip, ok := r[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	return []netip.Addr{netip.MustParseAddr(ip)}, nil
}

func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello from loopback")
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]

	p, err := authz.ParsePolicy("policy.yaml", []byte(`
rules:
  - name: public-reads
    tools: [http.fetch]
    effect: allow
    when: intent == "read" && !destination.private
  - name: local-test-server
    tools: [http.fetch]
    effect: allow
    when: intent == "read" && destination.host == "127.0.0.1"
`))
	if err != nil {
		panic(err)
	}
	g, err := authz.New(authz.WithPolicy(p))
	if err != nil {
		panic(err)
	}
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{
		Agent:   authz.Agent{ID: "spiffe://example.org/agent/researcher"},
		Intents: []string{"read"},
	})
	if err != nil {
		panic(err)
	}
	defer task.End()

	// rebind.example is a public name whose DNS answers with loopback.
	client := httpguard.Client(g, httpguard.WithResolver(staticResolver{"rebind.example": "127.0.0.1"}))
	defer client.CloseIdleConnections()
	fetch := func(url string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		var denied *authz.DeniedError
		if errors.As(err, &denied) {
			fmt.Printf("denied by %s: %s\n", denied.Decision.Rule, denied.Decision.Reason)
			return
		}
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("%s: %s\n", resp.Status, body)
	}

	fetch(srv.URL)                                    // allowed by local-test-server
	fetch("http://169.254.169.254/latest/meta-data/") // private: no rule allows it
	fetch("http://rebind.example:" + port + "/")      // allowed as public, refused at dial
	fmt.Printf("%+v\n", task.Taint())
	// Output:
	// 200 OK: hello from loopback
	// denied by @no-match: no rule allows this call
	// denied by @dial: rebind.example resolved to the private address 127.0.0.1 and the authorized destination is not private
	// {Sensitivity:public Untrusted:true Sources:[127.0.0.1]}
}
