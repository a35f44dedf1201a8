package httpguard

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
)

const policy = `
rules:
  - name: public
    tools: [http.fetch]
    effect: allow
    when: "!destination.private"
  - name: loopback
    tools: [http.fetch]
    effect: allow
    when: destination.host == "127.0.0.1"
`

func testGuard(t *testing.T) (*authz.Guard, context.Context, *authz.Task) {
	t.Helper()
	p, err := authz.ParsePolicy("policy.yaml", []byte(policy))
	require.NoError(t, err)
	g, err := authz.New(authz.WithPolicy(p))
	require.NoError(t, err)
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "agent"}})
	require.NoError(t, err)
	t.Cleanup(task.End)
	return g, ctx, task
}

// counter counts observations per task.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) observe(t *authz.Task, source string, s authz.Sensitivity, trusted bool) {
	c.mu.Lock()
	c.n[source]++
	c.mu.Unlock()
	t.Observe(source, s, trusted)
}

func (c *counter) get(source string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[source]
}

type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if ips, ok := m[host]; ok {
		return ips, nil
	}
	return nil, errors.New("no such host")
}

func TestObservesOncePerSuccessfulRoundTrip(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/", http.StatusFound)
		case "/missing":
			http.NotFound(w, r)
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	tests := []struct {
		name string
		url  string
		want int
	}{
		{"200", srv.URL + "/", 1},
		{"404", srv.URL + "/missing", 1},
		{"redirect: two round trips", srv.URL + "/redirect", 2},
		{"denied by policy", "http://169.254.169.254/", 0},
		{"denied at dial", "http://rebind.example:" + port + "/", 0},
		{"connection refused", closedURL, 0},
		{"no such host", "http://nowhere.example/", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, ctx, task := testGuard(t)
			c := &counter{n: map[string]int{}}
			cl := Client(g, WithResolver(mapResolver{"rebind.example": {netip.MustParseAddr("127.0.0.1")}}),
				func(cfg *config) error { cfg.observe = c.observe; return nil })
			t.Cleanup(cl.CloseIdleConnections)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
			require.NoError(t, err)
			resp, err := cl.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			total := 0
			c.mu.Lock()
			for _, n := range c.n {
				total += n
			}
			c.mu.Unlock()
			assert.Equal(t, tt.want, total)
			if tt.want == 0 {
				require.Error(t, err)
				assert.Equal(t, authz.Taint{}, task.Taint())
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.want, c.get("127.0.0.1"))
			}
		})
	}
}

func TestDialsOnlyCheckedAddresses(t *testing.T) {
	t.Parallel()
	g, ctx, _ := testGuard(t)
	var mu sync.Mutex
	var dialed []string
	noDial := func(_ context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, network+" "+addr)
		mu.Unlock()
		return nil, errors.New("test: not dialing")
	}
	public := mapResolver{
		"public.example": {netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("::ffff:1.1.1.1"), netip.MustParseAddr("2001:4860:4860::8888")},
	}
	rt := Transport(g, WithResolver(public), func(c *config) error { c.netDial = noDial; return nil })
	for _, u := range []string{"http://public.example/", "https://public.example:8443/x", "http://8.8.4.4/", "http://[2001:4860:4860::8844]:81/"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		require.NoError(t, err)
		_, err = rt.RoundTrip(req)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "test: not dialing")
		assert.NotErrorIs(t, err, authz.ErrDenied, "a failed dial is an error, not a denial")
	}
	assert.Equal(t, []string{
		"tcp 8.8.8.8:80", "tcp 1.1.1.1:80", "tcp [2001:4860:4860::8888]:80",
		"tcp 8.8.8.8:8443", "tcp 1.1.1.1:8443", "tcp [2001:4860:4860::8888]:8443",
		"tcp 8.8.4.4:80",
		"tcp [2001:4860:4860::8844]:81",
	}, dialed)
}

func TestDialRefusesWhatWasNotAuthorized(t *testing.T) {
	t.Parallel()
	g, _, _ := testGuard(t)
	tr := newTransport(g, must(newConfig([]Option{
		WithResolver(mapResolver{"a.example": {netip.MustParseAddr("8.8.8.8")}}),
		func(c *config) error {
			c.netDial = func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("dialed") }
			return nil
		},
	})), nil)
	gr := &grant{tool: "http.fetch", task: "t", dest: "http://a.example/", host: "a.example", port: 80}
	ipGrant := &grant{tool: "http.fetch", task: "t", dest: "http://8.8.8.8/", host: "8.8.8.8", port: 80, ip: netip.MustParseAddr("8.8.8.8")}
	tests := []struct {
		name string
		gr   *grant
		addr string
		want string // "dialed" or the rule
	}{
		{"no grant", nil, "a.example:80", RuleDial},
		{"authorized", gr, "a.example:80", "dialed"},
		{"other case and trailing dot", gr, "A.EXAMPLE.:80", "dialed"},
		{"other host", gr, "b.example:80", RuleDial},
		{"other port", gr, "a.example:81", RuleDial},
		{"IP for a name", gr, "8.8.8.8:80", RuleDial},
		{"no port", gr, "a.example", RuleDial},
		{"authorized IP", ipGrant, "8.8.8.8:80", "dialed"},
		{"IP spelled as a number", ipGrant, "134744072:80", "dialed"},
		{"mapped IP", ipGrant, "[::ffff:8.8.8.8]:80", "dialed"},
		{"other IP", ipGrant, "8.8.4.4:80", RuleDial},
		{"name for an IP", ipGrant, "a.example:80", RuleDial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if tt.gr != nil {
				ctx = withGrant(ctx, tt.gr)
			}
			conn, err := tr.dial(ctx, "tcp", tt.addr)
			require.Error(t, err)
			assert.Nil(t, conn)
			if tt.want == "dialed" {
				assert.Contains(t, err.Error(), "dialed")
				return
			}
			var denied *authz.DeniedError
			require.ErrorAs(t, err, &denied)
			assert.Equal(t, tt.want, denied.Decision.Rule)
		})
	}
}

func TestPanickingResolverFails(t *testing.T) {
	t.Parallel()
	g, ctx, task := testGuard(t)
	rt := Transport(g, WithResolver(panicResolver{}))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://public.example/", nil)
	require.NoError(t, err)
	_, err = rt.RoundTrip(req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "resolver panicked")
	assert.Equal(t, authz.Taint{}, task.Taint())
}

type panicResolver struct{}

func (panicResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	panic("resolver bug")
}

func TestResponseCarriesTheCallersRequest(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(srv.Close)
	g, ctx, _ := testGuard(t)
	rt := Transport(g)
	t.Cleanup(rt.(*transport).CloseIdleConnections)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Same(t, req, resp.Request)
	assert.Nil(t, resp.Request.Context().Value(grantKey{}))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkGuardOverhead measures what the transport adds to a round trip
// (describe, Authorize, the grant, Observe) with a base that answers at
// once, without a network.
func BenchmarkGuardOverhead(b *testing.B) {
	p, err := authz.ParsePolicy("policy.yaml", []byte(policy))
	if err != nil {
		b.Fatal(err)
	}
	g, err := authz.New(authz.WithPolicy(p))
	if err != nil {
		b.Fatal(err)
	}
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "agent"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(task.End)
	tr := Transport(g).(*transport)
	resp := &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}
	tr.send = roundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil })
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.example.com/v1/items", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.RoundTrip(req); err != nil {
			b.Fatal(err)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAttemptsShareTheDialTime(t *testing.T) {
	t.Parallel()
	within := func(t *testing.T, ctx context.Context, lo, hi time.Duration) {
		t.Helper()
		d, ok := ctx.Deadline()
		require.True(t, ok)
		left := time.Until(d)
		assert.True(t, left > lo && left <= hi, "%v not in (%v, %v]", left, lo, hi)
	}
	ctx, cancel := attemptContext(context.Background(), 1)
	_, ok := ctx.Deadline()
	assert.False(t, ok, "the last attempt has the time that is left")
	cancel()
	ctx, cancel = attemptContext(context.Background(), 3)
	within(t, ctx, 9*time.Second, dialTimeout/3)
	cancel()
	ctx, cancel = attemptContext(context.Background(), 100)
	within(t, ctx, time.Second, 2*time.Second)
	cancel()
	parent, cancelParent := context.WithTimeout(context.Background(), time.Second)
	defer cancelParent()
	ctx, cancel = attemptContext(parent, 2)
	within(t, ctx, 0, time.Second)
	cancel()
}
