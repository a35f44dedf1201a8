package httpguard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/httpguard"
)

// The two benchmarks send the same GET to the same loopback server over a
// kept-alive connection: the difference is the guarded transport's
// overhead per request (describe, Authorize, the grant, Observe).

func benchServer(b *testing.B) string {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/resource"
}

func benchGet(b *testing.B, ctx context.Context, c *http.Client, url string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func BenchmarkPlainClient(b *testing.B) {
	url := benchServer(b)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	c := &http.Client{Transport: tr}
	b.Cleanup(c.CloseIdleConnections)
	ctx := context.Background()
	benchGet(b, ctx, c, url) // open the connection
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		benchGet(b, ctx, c, url)
	}
}

func BenchmarkGuardedClient(b *testing.B) {
	url := benchServer(b)
	g := newGuard(b, loopbackPolicy)
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{
		Agent: authz.Agent{ID: "spiffe://example.org/agent/bench"}, Intents: []string{"read"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(task.End)
	c := httpguard.Client(g)
	b.Cleanup(c.CloseIdleConnections)
	benchGet(b, ctx, c, url)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		benchGet(b, ctx, c, url)
	}
}
