package httpguard_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
)

// namesPolicy allows every destination that is not private by its text,
// except blocked.example.
const namesPolicy = `
rules:
  - name: public
    tools: [http.fetch]
    effect: allow
    when: "!destination.private"
  - name: blocked
    tools: [http.fetch]
    effect: deny
    when: destination.host == "blocked.example"
    reason: blocked host
`

// loopbackPolicy also allows the loopback address 127.0.0.1 explicitly,
// so that httptest servers can be reached by their URL.
const loopbackPolicy = namesPolicy + `
  - name: loopback
    tools: [http.fetch]
    effect: allow
    when: destination.host == "127.0.0.1"
`

func newGuard(t testing.TB, policy string) *authz.Guard {
	t.Helper()
	p, err := authz.ParsePolicy("policy.yaml", []byte(policy))
	require.NoError(t, err)
	g, err := authz.New(authz.WithPolicy(p))
	require.NoError(t, err)
	return g
}

// begin starts a task that may read, write and lease secrets at up to
// Confidential; it ends with the test.
func begin(t testing.TB, g *authz.Guard) (context.Context, *authz.Task) {
	t.Helper()
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://example.org/agent/fetcher"},
		Intents:   []string{"read", "write", "secret.read"},
		Clearance: authz.Confidential,
	})
	require.NoError(t, err)
	t.Cleanup(task.End)
	return ctx, task
}

// server is a loopback test server that counts its requests.
type server struct {
	*httptest.Server
	hits atomic.Int64
}

func newServer(t testing.TB, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	if h == nil {
		h = func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// port is the server's port as a string.
func (s *server) port() string {
	u, _ := url.Parse(s.URL)
	return u.Port()
}

// at is the URL of the server under another host name.
func (s *server) at(host string) string {
	return "http://" + net.JoinHostPort(host, s.port()) + "/"
}

// fakeResolver answers from a table; each name may have a sequence of
// answers, one per lookup, the last repeating. Unknown names do not
// resolve. It counts lookups per name.
type fakeResolver struct {
	answers map[string][][]netip.Addr

	mu    sync.Mutex
	calls map[string]int
}

func resolver(static map[string]string) *fakeResolver {
	r := &fakeResolver{answers: map[string][][]netip.Addr{}, calls: map[string]int{}}
	for name, ip := range static {
		r.answers[name] = [][]netip.Addr{{netip.MustParseAddr(ip)}}
	}
	return r
}

// sequence makes name answer with each list in turn.
func (r *fakeResolver) sequence(name string, answers ...[]string) *fakeResolver {
	var seq [][]netip.Addr
	for _, a := range answers {
		var ips []netip.Addr
		for _, s := range a {
			ips = append(ips, netip.MustParseAddr(s))
		}
		seq = append(seq, ips)
	}
	r.answers[name] = seq
	return r
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.calls[host]
	r.calls[host] = n + 1
	seq, ok := r.answers[host]
	if !ok || len(seq) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return seq[min(n, len(seq)-1)], nil
}

func (r *fakeResolver) lookups(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

// get sends a GET for rawURL under ctx and returns the response with its
// body read and closed.
func get(ctx context.Context, c *http.Client, rawURL string, header ...string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return strconv.Itoa(port)
}
