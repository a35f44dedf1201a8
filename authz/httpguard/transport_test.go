package httpguard_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/httpguard"
)

func client(t testing.TB, g *authz.Guard, opts ...httpguard.Option) *http.Client {
	t.Helper()
	c := httpguard.Client(g, opts...)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// requireDenied checks that err is a denial by rule and returns it.
func requireDenied(t *testing.T, err error, rule string) *authz.DeniedError {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, authz.ErrDenied)
	var denied *authz.DeniedError
	require.ErrorAs(t, err, &denied)
	assert.Equal(t, rule, denied.Decision.Rule, "reason: %s", denied.Decision.Reason)
	return denied
}

func TestAllowedRequestsReachTheServer(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	tests := []struct {
		name   string
		policy string
		url    string
		opts   []httpguard.Option
	}{
		{"loopback allowed by the policy", loopbackPolicy, srv.URL, nil},
		{"name allowed to resolve privately", namesPolicy, srv.at("api.example.com"),
			[]httpguard.Option{httpguard.WithAllowPrivate("api.example.com")}},
		{"name matching an allow-private glob", namesPolicy, srv.at("svc.corp.example.com"),
			[]httpguard.Option{httpguard.WithAllowPrivate("*.example.com")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGuard(t, tt.policy)
			ctx, task := begin(t, g)
			res := resolver(map[string]string{"api.example.com": "127.0.0.1", "svc.corp.example.com": "127.0.0.1"})
			c := client(t, g, append(tt.opts, httpguard.WithResolver(res))...)
			resp, body, err := get(ctx, c, tt.url)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "ok", body)
			u, _ := url.Parse(tt.url)
			assert.Equal(t, authz.Taint{Untrusted: true, Sources: []string{u.Hostname()}}, task.Taint())
			assert.Equal(t, 1, task.Calls()[httpguard.DefaultTool])
		})
	}
}

func TestRebindingNamesAreDeniedAtDial(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	names := []string{"127.0.0.1.nip.io", "api.example.com", "localtest.me", "7f000001.rbndr.example", "metadata.example.net"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newGuard(t, namesPolicy)
			ctx, task := begin(t, g)
			ip := "127.0.0.1"
			if name == "metadata.example.net" {
				ip = "169.254.169.254"
			}
			res := resolver(map[string]string{name: ip})
			c := client(t, g, httpguard.WithResolver(res))
			_, _, err := get(ctx, c, srv.at(name))
			denied := requireDenied(t, err, httpguard.RuleDial)
			assert.ErrorIs(t, err, httpguard.ErrPrivateAddress)
			assert.Contains(t, denied.Decision.Reason, name)
			assert.Contains(t, denied.Decision.Reason, ip)
			assert.Contains(t, err.Error(), name)
			assert.Equal(t, task.ID(), denied.Decision.Task)
			assert.Equal(t, 1, res.lookups(name))
			assert.Zero(t, srv.hits.Load())
			assert.Equal(t, authz.Taint{}, task.Taint(), "a failed round trip taints nothing")
		})
	}
}

func TestDialChecksEveryAddressForm(t *testing.T) {
	t.Parallel()
	private := []string{
		"127.0.0.1", "127.255.255.254", "::1",
		"10.0.0.1", "172.16.0.1", "192.168.1.1",
		"169.254.169.254", "fe80::1", "fe80::1%eth0",
		"100.64.0.1", "100.127.255.254",
		"fc00::1", "fd12:3456::1",
		"0.0.0.0", "0.1.2.3", "::",
		"224.0.0.1", "239.255.255.250", "ff02::1", "240.0.0.1", "255.255.255.255",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", // IPv4-mapped
		"::127.0.0.1", "::10.0.0.1", // IPv4-compatible
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::192.168.0.1", // NAT64 well-known prefix
		"64:ff9b:1::1", "64:ff9b:1::808:808", // local-use NAT64
		"2002:7f00:1::1", // 6to4 of 127.0.0.1
		"192.0.2.1", "2001:db8::1",
	}
	for _, ip := range private {
		t.Run(ip, func(t *testing.T) {
			t.Parallel()
			assert.True(t, httpguard.PrivateAddr(netip.MustParseAddr(ip)))
			g := newGuard(t, namesPolicy)
			ctx, task := begin(t, g)
			res := resolver(map[string]string{"public.example": ip})
			c := client(t, g, httpguard.WithResolver(res))
			_, _, err := get(ctx, c, "http://public.example/")
			denied := requireDenied(t, err, httpguard.RuleDial)
			assert.ErrorIs(t, err, httpguard.ErrPrivateAddress)
			assert.Contains(t, denied.Decision.Reason, "public.example")
			want := netip.MustParseAddr(ip).WithZone("").Unmap().String()
			assert.Contains(t, denied.Decision.Reason, want)
			assert.Equal(t, authz.Taint{}, task.Taint())
		})
	}
	t.Run("one private record among public ones", func(t *testing.T) {
		t.Parallel()
		g := newGuard(t, namesPolicy)
		ctx, _ := begin(t, g)
		res := resolver(nil).sequence("public.example", []string{"8.8.8.8", "2001:4860:4860::8888", "127.0.0.1"})
		c := client(t, g, httpguard.WithResolver(res))
		_, _, err := get(ctx, c, "http://public.example/")
		denied := requireDenied(t, err, httpguard.RuleDial)
		assert.Contains(t, denied.Decision.Reason, "127.0.0.1")
	})
	for _, ip := range []string{"8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "93.184.215.14"} {
		assert.False(t, httpguard.PrivateAddr(netip.MustParseAddr(ip)), ip)
	}
	assert.True(t, httpguard.PrivateAddr(netip.Addr{}), "an invalid address is private")
}

func TestRecordsThatChangeBetweenCheckAndDial(t *testing.T) {
	t.Parallel()

	t.Run("public when looked up first, private at dial", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, nil)
		g := newGuard(t, namesPolicy)
		ctx, _ := begin(t, g)
		res := resolver(nil).sequence("flip.example", []string{"8.8.8.8"}, []string{"127.0.0.1"})
		// Someone looks the name up first (a check-time resolution sees
		// a public address); the dial resolves again and sees loopback.
		ips, err := res.LookupNetIP(ctx, "ip", "flip.example")
		require.NoError(t, err)
		require.Equal(t, "8.8.8.8", ips[0].String())
		c := client(t, g, httpguard.WithResolver(res))
		_, _, err = get(ctx, c, srv.at("flip.example"))
		denied := requireDenied(t, err, httpguard.RuleDial)
		assert.Contains(t, denied.Decision.Reason, "127.0.0.1")
		assert.Equal(t, 2, res.lookups("flip.example"))
		assert.Zero(t, srv.hits.Load())
	})
	t.Run("private at dial, public afterwards: one lookup, denied", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, nil)
		g := newGuard(t, namesPolicy)
		ctx, _ := begin(t, g)
		res := resolver(nil).sequence("flop.example", []string{"127.0.0.1"}, []string{"8.8.8.8"})
		c := client(t, g, httpguard.WithResolver(res))
		_, _, err := get(ctx, c, srv.at("flop.example"))
		requireDenied(t, err, httpguard.RuleDial)
		assert.Equal(t, 1, res.lookups("flop.example"), "the name is resolved once per dial")
	})
	t.Run("the checked address is the dialed address", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, nil)
		g := newGuard(t, namesPolicy)
		ctx, _ := begin(t, g)
		// The second answer would leave the machine: it must never be used.
		res := resolver(nil).sequence("internal.example", []string{"127.0.0.1"}, []string{"8.8.8.8"})
		c := client(t, g, httpguard.WithResolver(res), httpguard.WithAllowPrivate("internal.example"))
		resp, _, err := get(ctx, c, srv.at("internal.example"))
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, 1, res.lookups("internal.example"))
	})
}

func TestEveryRedirectHopIsAuthorized(t *testing.T) {
	t.Parallel()
	target := newServer(t, nil)
	tests := []struct {
		name     string
		location string
		rule     string // "" when the hop is allowed
	}{
		{"metadata service", "http://169.254.169.254/latest/meta-data/", authz.RuleNoMatch},
		{"IPv4-mapped loopback", "http://[::ffff:127.0.0.1]:" + target.port() + "/", authz.RuleNoMatch},
		{"decimal loopback", "http://2130706433:" + target.port() + "/", authz.RuleNoMatch},
		{"localhost", target.at("localhost"), authz.RuleNoMatch},
		{"host the policy denies", target.at("blocked.example"), "blocked"},
		{"public name resolving to loopback", target.at("rebind.example"), httpguard.RuleDial},
		{"credentials in the URL", "http://user:pw@api2.example.com:" + target.port() + "/", authz.RuleDestination},
		{"path servers route differently", target.at("api2.example.com") + "a/..;/b", authz.RuleDestination},
		{"allowed host", target.at("api2.example.com"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, tt.location, http.StatusFound)
			})
			g := newGuard(t, namesPolicy)
			ctx, task := begin(t, g)
			res := resolver(map[string]string{
				"api.example.com": "127.0.0.1", "api2.example.com": "127.0.0.1",
				"blocked.example": "127.0.0.1", "rebind.example": "127.0.0.1",
			})
			c := client(t, g, httpguard.WithResolver(res), httpguard.WithAllowPrivate("api.example.com", "api2.example.com", "blocked.example"))
			resp, body, err := get(ctx, c, start.at("api.example.com"))
			assert.Equal(t, int64(1), start.hits.Load())
			if tt.rule == "" {
				require.NoError(t, err)
				assert.Equal(t, "ok", body)
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, []string{"api.example.com", "api2.example.com"}, task.Taint().Sources)
				assert.Equal(t, 2, task.Calls()[httpguard.DefaultTool])
				return
			}
			requireDenied(t, err, tt.rule)
			assert.Equal(t, []string{"api.example.com"}, task.Taint().Sources, "only the redirect response taints")
			calls := 1
			if tt.rule == httpguard.RuleDial {
				calls = 2 // the hop was authorized; its dial was refused
			}
			assert.Equal(t, calls, task.Calls()[httpguard.DefaultTool])
		})
	}
	t.Run("denied hops never reach the target", func(t *testing.T) {
		t.Parallel()
		// Run the denied cases against a target of their own.
		own := newServer(t, nil)
		for _, loc := range []string{
			"http://[::ffff:127.0.0.1]:" + own.port() + "/",
			own.at("blocked.example"),
			own.at("rebind.example"),
			own.at("localhost"),
		} {
			start := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, loc, http.StatusFound)
			})
			g := newGuard(t, namesPolicy)
			ctx, _ := begin(t, g)
			res := resolver(map[string]string{"api.example.com": "127.0.0.1", "blocked.example": "127.0.0.1", "rebind.example": "127.0.0.1"})
			c := client(t, g, httpguard.WithResolver(res), httpguard.WithAllowPrivate("api.example.com", "blocked.example"))
			_, _, err := get(ctx, c, start.at("api.example.com"))
			require.ErrorIs(t, err, authz.ErrDenied, loc)
		}
		assert.Zero(t, own.hits.Load())
	})
}

func TestClientLimitsRedirects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     []httpguard.Option
		hits     int64
		status   int // 0: an error
		redirErr string
	}{
		{"default", nil, httpguard.DefaultMaxRedirects + 1, 0, "stopped after 10 redirects"},
		{"three", []httpguard.Option{httpguard.WithMaxRedirects(3)}, 4, 0, "stopped after 3 redirects"},
		{"none", []httpguard.Option{httpguard.WithMaxRedirects(0)}, 1, http.StatusFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
			})
			g := newGuard(t, loopbackPolicy)
			ctx, task := begin(t, g)
			c := client(t, g, tt.opts...)
			resp, _, err := get(ctx, c, srv.URL)
			assert.Equal(t, tt.hits, srv.hits.Load())
			assert.Equal(t, int(tt.hits), task.Calls()[httpguard.DefaultTool])
			if tt.status == 0 {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.redirErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.status, resp.StatusCode)
		})
	}
}

func TestIntentsByMethod(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	tests := []struct {
		method string
		intent string
	}{
		{http.MethodGet, "read"}, {http.MethodHead, "read"}, {http.MethodOptions, "read"},
		{http.MethodPost, "write"}, {http.MethodPut, "write"}, {http.MethodPatch, "write"}, {http.MethodDelete, "write"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			t.Parallel()
			g := newGuard(t, loopbackPolicy)
			ctx, _, err := g.Begin(context.Background(), authz.TaskSpec{
				Agent: authz.Agent{ID: "spiffe://example.org/agent/reader"}, Intents: []string{"read"}})
			require.NoError(t, err)
			c := client(t, g)
			req, err := http.NewRequestWithContext(ctx, tt.method, srv.URL, strings.NewReader("body"))
			require.NoError(t, err)
			resp, err := c.Do(req)
			if tt.intent == "read" {
				require.NoError(t, err)
				resp.Body.Close()
				return
			}
			denied := requireDenied(t, err, authz.RuleIntent)
			assert.Contains(t, denied.Decision.Reason, `"write"`)
		})
	}
}

func TestArgsAndDescribe(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	policy := `
rules:
  - name: api-with-json
    tools: [http.fetch, api.call]
    effect: allow
    when: >
      destination.host == "127.0.0.1" && args.method == "GET" &&
      args.headers["Accept"][0] == "application/json" && args.url.endsWith("?page=2")
`
	tests := []struct {
		name     string
		opts     []httpguard.Option
		header   []string
		rule     string
		wantTool string
	}{
		{"default args", nil, []string{"Accept", "application/json"}, "", httpguard.DefaultTool},
		{"header rule fails closed", nil, []string{"Accept", "text/html"}, authz.RuleNoMatch, ""},
		{"missing header denies", nil, nil, "api-with-json", ""},
		{"describe names the tool", []httpguard.Option{httpguard.WithDescribe(func(*http.Request) (authz.Call, error) {
			return authz.Call{Tool: "api.call"}, nil
		})}, []string{"Accept", "application/json"}, "", "api.call"},
		{"describe error", []httpguard.Option{httpguard.WithDescribe(func(*http.Request) (authz.Call, error) {
			return authz.Call{}, errors.New("no")
		})}, nil, authz.RuleDescribe, ""},
		{"describe panic", []httpguard.Option{httpguard.WithDescribe(func(*http.Request) (authz.Call, error) {
			panic("boom")
		})}, nil, authz.RuleDescribe, ""},
		{"describe another destination", []httpguard.Option{httpguard.WithDescribe(func(*http.Request) (authz.Call, error) {
			return authz.Call{Destination: "http://127.0.0.1/elsewhere"}, nil
		})}, []string{"Accept", "application/json"}, authz.RuleDescribe, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGuard(t, policy)
			ctx, task := begin(t, g)
			c := client(t, g, tt.opts...)
			_, _, err := get(ctx, c, srv.URL+"?page=2", tt.header...)
			if tt.rule == "" {
				require.NoError(t, err)
				assert.Equal(t, 1, task.Calls()[tt.wantTool])
				return
			}
			requireDenied(t, err, tt.rule)
			assert.Empty(t, task.Calls())
		})
	}

	req := httptestRequest(t, "http://example.com/a?b=c")
	req.Header.Add("Authorization", "Bearer x")
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", "2")
	assert.Equal(t, map[string]any{
		"method": "POST",
		"url":    "http://example.com/a?b=c",
		"headers": map[string]any{
			"Authorization": []any{"Bearer x"},
			"X-Multi":       []any{"1", "2"},
		},
	}, httpguard.RequestArgs(req))
}

func httptestRequest(t *testing.T, rawURL string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, nil)
	require.NoError(t, err)
	return req
}

func TestTaint(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	closed := "http://127.0.0.1:" + closedPort(t) + "/"
	tests := []struct {
		name  string
		opts  []httpguard.Option
		ctx   func(context.Context) context.Context
		url   string
		err   bool
		taint authz.Taint
	}{
		{"untrusted by default", nil, nil, srv.URL, false,
			authz.Taint{Untrusted: true, Sources: []string{"127.0.0.1"}}},
		{"any status taints", nil, nil, srv.URL + "/missing", false,
			authz.Taint{Untrusted: true, Sources: []string{"127.0.0.1"}}},
		{"trusted host", []httpguard.Option{httpguard.WithTrusted("127.0.0.1")}, nil, srv.URL, false,
			authz.Taint{Sources: []string{"127.0.0.1"}}},
		{"trusted glob does not match", []httpguard.Option{httpguard.WithTrusted("*.corp.example")}, nil, srv.URL, false,
			authz.Taint{Untrusted: true, Sources: []string{"127.0.0.1"}}},
		{"sensitivity option", []httpguard.Option{httpguard.WithSensitivity(authz.Internal)}, nil, srv.URL, false,
			authz.Taint{Sensitivity: authz.Internal, Untrusted: true, Sources: []string{"127.0.0.1"}}},
		{"sensitivity per request", []httpguard.Option{httpguard.WithSensitivity(authz.Internal)},
			func(ctx context.Context) context.Context {
				return httpguard.ContextWithSensitivity(ctx, authz.Confidential)
			}, srv.URL, false,
			authz.Taint{Sensitivity: authz.Confidential, Untrusted: true, Sources: []string{"127.0.0.1"}}},
		{"above clearance is denied", nil,
			func(ctx context.Context) context.Context {
				return httpguard.ContextWithSensitivity(ctx, authz.Restricted)
			}, srv.URL, true, authz.Taint{}},
		{"denied", nil, nil, "http://169.254.169.254/", true, authz.Taint{}},
		{"connection refused", nil, nil, closed, true, authz.Taint{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGuard(t, loopbackPolicy)
			ctx, task := begin(t, g)
			if tt.ctx != nil {
				ctx = tt.ctx(ctx)
			}
			c := client(t, g, tt.opts...)
			_, _, err := get(ctx, c, tt.url)
			if tt.err {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.taint, task.Taint())
		})
	}
}

func TestFailsClosed(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	g := newGuard(t, loopbackPolicy)
	tests := []struct {
		name string
		g    *authz.Guard
		opts []httpguard.Option
		ctx  func(t *testing.T) context.Context
		rule string // "" for a non-denial error
	}{
		{"no task", g, nil, func(*testing.T) context.Context { return context.Background() }, authz.RuleNoTask},
		{"ended task", g, nil, func(t *testing.T) context.Context {
			ctx, task := begin(t, g)
			task.End()
			return ctx
		}, authz.RuleTaskEnded},
		{"task of another guard", newGuard(t, loopbackPolicy), nil, nil, authz.RuleNoTask},
		{"nil guard", nil, nil, nil, ""},
		{"nil resolver", g, []httpguard.Option{httpguard.WithResolver(nil)}, nil, ""},
		{"empty tool", g, []httpguard.Option{httpguard.WithTool("")}, nil, ""},
		{"bad sensitivity", g, []httpguard.Option{httpguard.WithSensitivity(42)}, nil, ""},
		{"bad trusted pattern", g, []httpguard.Option{httpguard.WithTrusted("a..b")}, nil, ""},
		{"bad allow-private pattern", g, []httpguard.Option{httpguard.WithAllowPrivate("")}, nil, ""},
		{"nil describe", g, []httpguard.Option{httpguard.WithDescribe(nil)}, nil, ""},
		{"nil base", g, []httpguard.Option{httpguard.WithBase(nil)}, nil, ""},
		{"nil proxy", g, []httpguard.Option{httpguard.WithProxy(nil)}, nil, ""},
		{"socks proxy", g, []httpguard.Option{httpguard.WithProxy(&url.URL{Scheme: "socks5", Host: "127.0.0.1:1080"})}, nil, ""},
		{"negative redirects", g, []httpguard.Option{httpguard.WithMaxRedirects(-1)}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var ctx context.Context
			if tt.ctx != nil {
				ctx = tt.ctx(t)
			} else {
				ctx, _ = begin(t, g)
			}
			for _, rt := range []http.RoundTripper{httpguard.Transport(tt.g, tt.opts...), client(t, tt.g, tt.opts...).Transport} {
				body := &closeRecorder{}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, body)
				require.NoError(t, err)
				resp, err := rt.RoundTrip(req)
				require.Error(t, err)
				assert.Nil(t, resp)
				assert.True(t, body.isClosed(), "RoundTrip closes the body")
				if tt.rule != "" {
					requireDenied(t, err, tt.rule)
				} else {
					assert.Contains(t, err.Error(), "httpguard")
				}
			}
			assert.Zero(t, srv.hits.Load())
		})
	}
}

// closeRecorder is a request body that records that it was closed.
type closeRecorder struct {
	mu     sync.Mutex
	closed bool
}

func (c *closeRecorder) Read([]byte) (int, error) { return 0, errors.New("not read") }
func (c *closeRecorder) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}
func (c *closeRecorder) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func TestProxy(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	proxy := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.String())
		mu.Unlock()
		_, _ = w.Write([]byte("via proxy"))
	})
	proxyURL, err := url.Parse(proxy.URL)
	require.NoError(t, err)
	g := newGuard(t, namesPolicy)
	ctx, task := begin(t, g)
	res := resolver(nil)
	c := client(t, g, httpguard.WithResolver(res), httpguard.WithProxy(proxyURL))

	_, body, err := get(ctx, c, "http://public.example/page")
	require.NoError(t, err)
	assert.Equal(t, "via proxy", body)
	assert.Zero(t, res.lookups("public.example"), "the proxy resolves names")
	assert.Equal(t, []string{"public.example"}, task.Taint().Sources)

	// Requests are still authorized before they reach the proxy.
	_, _, err = get(ctx, c, "http://blocked.example/")
	requireDenied(t, err, "blocked")
	_, _, err = get(ctx, c, "http://169.254.169.254/")
	requireDenied(t, err, authz.RuleNoMatch)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"http://public.example/page"}, seen)
}

func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	g := newGuard(t, loopbackPolicy)
	c := client(t, g, httpguard.WithResolver(resolver(map[string]string{"rebind.example": "127.0.0.1"})))
	const n = 64
	ctx, task := begin(t, g)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			u := srv.URL
			if i%2 == 1 {
				u = srv.at("rebind.example")
			}
			_, _, errs[i] = get(ctx, c, u)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 1 {
			assert.ErrorIs(t, err, httpguard.ErrPrivateAddress)
		} else {
			assert.NoError(t, err)
		}
	}
	assert.Equal(t, int64(n/2), srv.hits.Load())
	assert.Equal(t, n, task.Calls()[httpguard.DefaultTool])
	assert.Equal(t, []string{"127.0.0.1"}, task.Taint().Sources)
}

func TestBaseTransport(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("tls ok"))
	}))
	t.Cleanup(srv.Close)
	base := srv.Client().Transport.(*http.Transport)
	baseDial := reflect.ValueOf(base.DialContext).Pointer()
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	// The test certificate is valid for example.com.
	target := "https://example.com:" + u.Port() + "/"
	tests := []struct {
		name  string
		opts  []httpguard.Option
		allow bool
	}{
		{"name allowed to resolve privately", []httpguard.Option{httpguard.WithAllowPrivate("example.com")}, true},
		{"rebinding refused", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGuard(t, namesPolicy)
			ctx, task := begin(t, g)
			res := resolver(map[string]string{"example.com": "127.0.0.1"})
			c := client(t, g, append(tt.opts, httpguard.WithBase(base), httpguard.WithResolver(res))...)
			resp, body, err := get(ctx, c, target)
			if !tt.allow {
				requireDenied(t, err, httpguard.RuleDial)
				assert.Equal(t, authz.Taint{}, task.Taint())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.NotNil(t, resp.TLS)
			assert.Equal(t, "tls ok", body)
			assert.Equal(t, []string{"example.com"}, task.Taint().Sources)
		})
	}
	t.Cleanup(func() {
		assert.Equal(t, baseDial, reflect.ValueOf(base.DialContext).Pointer(), "base is not modified")
	})
}

func TestHTTP2(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Proto))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	g := newGuard(t, namesPolicy)
	ctx, task := begin(t, g)
	res := resolver(map[string]string{"example.com": "127.0.0.1", "www.example.com": "127.0.0.1"})
	c := client(t, g, httpguard.WithBase(srv.Client().Transport.(*http.Transport)), httpguard.WithResolver(res),
		httpguard.WithAllowPrivate("example.com"))
	for range 3 {
		resp, body, err := get(ctx, c, "https://example.com:"+u.Port()+"/")
		require.NoError(t, err)
		assert.Equal(t, 2, resp.ProtoMajor)
		assert.Equal(t, "HTTP/2.0", body)
	}
	assert.Equal(t, 1, res.lookups("example.com"), "one connection, reused")
	assert.Equal(t, 3, task.Calls()[httpguard.DefaultTool])
	// Another name for the same server gets its own connection and check.
	_, _, err = get(ctx, c, "https://www.example.com:"+u.Port()+"/")
	requireDenied(t, err, httpguard.RuleDial)
}

func TestHostHeaderMustMatchTheURL(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	tests := []struct {
		name string
		host string
		rule string
	}{
		{"unset", "", ""},
		{"same", "127.0.0.1:" + srv.port(), ""},
		{"same, other spelling", "0x7f.1:" + srv.port(), ""},
		{"another site", "evil.example", authz.RuleDescribe},
		{"another port", "127.0.0.1:1", authz.RuleDescribe},
		{"garbage", "a b", authz.RuleDescribe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGuard(t, loopbackPolicy)
			ctx, _ := begin(t, g)
			c := client(t, g)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			require.NoError(t, err)
			req.Host = tt.host
			resp, err := c.Do(req)
			if tt.rule == "" {
				require.NoError(t, err)
				resp.Body.Close()
				return
			}
			requireDenied(t, err, tt.rule)
		})
	}
}
