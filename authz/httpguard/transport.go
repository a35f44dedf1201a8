package httpguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/dest"
)

// Transport returns an [http.RoundTripper] that authorizes every request
// with g under the task in the request's context ([authz.TaskFrom]) before
// sending it, checks every address it dials, and records every response on
// the task.
//
// For each request, Transport:
//
//  1. describes it as an [authz.Call]: tool [DefaultTool] ([WithTool]),
//     intent read for GET, HEAD and OPTIONS and write otherwise,
//     destination the request URL, sensitivity from
//     [ContextWithSensitivity] or [WithSensitivity] (Public by default),
//     and args [RequestArgs] (method, URL and headers), or as
//     [WithDescribe] says. A Host header naming another host than the URL
//     is refused ([authz.RuleDescribe]);
//  2. authorizes the call with [authz.Guard.Authorize] (rate limits,
//     budgets and approvals apply). On a denial the request is not sent
//     and RoundTrip returns the *[authz.DeniedError];
//  3. sends it, dialing new connections itself: it resolves the host once
//     with the [Resolver] ([WithResolver]), refuses the dial when the
//     destination was not private but an address is (the error is a
//     *[authz.DeniedError] with rule [RuleDial] wrapping
//     [ErrPrivateAddress], naming the host and the address), and dials
//     only the addresses it checked;
//  4. when a response arrives (any status), calls [authz.Task.Observe]
//     once with the canonical host as the source, the call's sensitivity,
//     and trusted only for hosts matching [WithTrusted]. A denied or
//     failed round trip records nothing.
//
// Redirects are followed by the [http.Client], which calls RoundTrip again
// for each hop, so every hop is authorized and dialed as above. Use
// [Client] for a client that limits the hops.
//
// Private addresses: loopback, RFC 1918, link-local (including the
// 169.254.169.254 metadata service), CGNAT 100.64/10, unique-local fc00::/7,
// unspecified, multicast and reserved addresses, and IPv6 forms embedding
// such an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64); the list is
// that of destination.private in policies. A destination the policy
// allowed although it is private by its text (http://127.0.0.1:8080/,
// http://localhost/) is dialed normally; so are names matching
// [WithAllowPrivate]. A name with any private address among its records
// is refused.
//
// Connections are pooled and reused per host and port as by
// [http.Transport]; every request on a reused connection is still
// authorized. Proxies are off ([WithProxy] turns one on).
//
// An invalid option or a nil g makes every RoundTrip fail with an error
// naming the problem, and nothing is sent. RoundTrip never panics on a
// panicking [WithDescribe] or [Resolver] (the request is denied) and always
// closes the request body. The returned RoundTripper is safe for
// concurrent use and has a CloseIdleConnections method.
func Transport(g *authz.Guard, opts ...Option) http.RoundTripper {
	cfg, err := newConfig(opts)
	return newTransport(g, cfg, err)
}

// Client returns an [http.Client] whose transport is [Transport](g,
// opts...) and that follows at most [WithMaxRedirects] redirects (default
// [DefaultMaxRedirects]), each one authorized as its own request. The
// client has no cookie jar and no timeout; set them on the returned value
// if needed (not after its first use).
func Client(g *authz.Guard, opts ...Option) *http.Client {
	cfg, err := newConfig(opts)
	maxRedirects := DefaultMaxRedirects
	if cfg != nil {
		maxRedirects = cfg.maxRedirects
	}
	return &http.Client{
		Transport: newTransport(g, cfg, err),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			switch {
			case maxRedirects == 0:
				return http.ErrUseLastResponse
			case len(via) > maxRedirects:
				return fmt.Errorf("httpguard: stopped after %d redirects", maxRedirects)
			}
			return nil
		},
	}
}

// transport is the RoundTripper Transport returns. It is immutable.
type transport struct {
	g         *authz.Guard
	cfg       *config
	err       error             // a configuration error: every request fails with it
	rt        *http.Transport   // sends the authorized requests; dials through dial
	send      http.RoundTripper // rt; a test seam
	proxyAddr string            // host:port of the proxy, or ""
}

func newTransport(g *authz.Guard, cfg *config, err error) *transport {
	if err == nil && g == nil {
		err = errors.New("httpguard: nil guard")
	}
	if err != nil {
		return &transport{err: fmt.Errorf("httpguard: transport not usable: %w", err)}
	}
	t := &transport{g: g, cfg: cfg}
	rt := cfg.base
	if rt == nil {
		if def, ok := http.DefaultTransport.(*http.Transport); ok {
			rt = def.Clone()
		} else {
			rt = &http.Transport{ForceAttemptHTTP2: true}
		}
	}
	rt.Proxy = nil
	// Only t.dial dials: the deprecated hooks would take precedence.
	rt.Dial, rt.DialTLS, rt.DialTLSContext = nil, nil, nil
	rt.DialContext = t.dial
	if cfg.proxy != nil {
		rt.Proxy = http.ProxyURL(cfg.proxy)
		t.proxyAddr = proxyAddr(cfg.proxy)
	}
	t.rt, t.send = rt, rt
	return t
}

// proxyAddr is the address http.Transport dials for proxy u.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// CloseIdleConnections closes the idle connections of the transport's
// pool; [http.Client.CloseIdleConnections] calls it.
func (t *transport) CloseIdleConnections() {
	if t.rt != nil {
		t.rt.CloseIdleConnections()
	}
}

// RoundTrip authorizes req, sends it and records the response on the task.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.err != nil {
		closeBody(req)
		return nil, t.err
	}
	ctx := req.Context()
	c, err := t.describe(req)
	if err != nil {
		closeBody(req)
		return nil, t.g.DescribeError(ctx, t.cfg.tool, err)
	}
	// The guard decides on the request URL; an unparseable one is denied
	// there (authz.RuleDestination) and audited like any other denial.
	if err := t.g.Authorize(ctx, c); err != nil {
		closeBody(req)
		return nil, err
	}
	gr, task, err := t.grant(ctx, req, c.Tool)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.send.RoundTrip(req.WithContext(withGrant(ctx, gr)))
	if err != nil {
		return nil, err
	}
	resp.Request = req
	t.cfg.observe(task, gr.host, c.Sensitivity, matchHost(t.cfg.trusted, gr.host))
	return resp, nil
}

// grant returns what an allowed request may dial: its canonical
// destination, parsed as the guard parsed it. Anything unexpected denies.
func (t *transport) grant(ctx context.Context, req *http.Request, tool string) (*grant, *authz.Task, error) {
	deny := func(rule, reason string) error {
		return &authz.DeniedError{Tool: tool, Decision: authz.Decision{Rule: rule, Reason: reason}}
	}
	task, ok := authz.TaskFrom(ctx)
	if !ok { // Authorize allows nothing without a task
		return nil, nil, deny(authz.RuleNoTask, "no task in the context")
	}
	d, canon, err := dest.ParseText(req.URL.String(), "")
	switch {
	case err != nil:
		return nil, nil, deny(authz.RuleDestination, "destination rejected: "+err.Error())
	case d.Kind != dest.KindURL || (d.Scheme != "http" && d.Scheme != "https"):
		return nil, nil, deny(authz.RuleDestination, "the transport sends only http and https requests")
	}
	return &grant{
		tool:         tool,
		task:         task.ID(),
		dest:         canon,
		host:         d.Host,
		port:         d.Port,
		ip:           d.IP,
		private:      d.Private,
		allowPrivate: matchHost(t.cfg.allowPrivate, d.Host),
	}, task, nil
}

// describe builds the call for req.
func (t *transport) describe(req *http.Request) (c authz.Call, err error) {
	if req.URL == nil {
		return c, errors.New("request has no URL")
	}
	if t.cfg.describe != nil {
		if c, err = t.runDescribe(req); err != nil {
			return authz.Call{}, err
		}
	} else {
		c.Sensitivity = t.cfg.sensitivity
		if s, ok := SensitivityFrom(req.Context()); ok {
			c.Sensitivity = s
		}
	}
	if c.Tool == "" {
		c.Tool = t.cfg.tool
	}
	if c.Intent == "" {
		c.Intent = methodIntent(req.Method)
	}
	if c.Args == nil {
		c.Args = RequestArgs(req)
	}
	if req.Host != "" && req.Host != req.URL.Host && !sameHost(req.URL.Scheme, req.Host, req.URL.Host) {
		// The Host header would route the request to another site behind
		// the authorized address (domain fronting).
		return authz.Call{}, errors.New("the Host header names another host than the request URL")
	}
	raw := req.URL.String()
	switch {
	case c.Destination == "":
		c.Destination = raw
	case c.Destination != raw:
		_, canon, err := dest.ParseText(raw, "")
		_, other, err2 := dest.ParseText(c.Destination, "")
		if err != nil || err2 != nil || other != canon {
			return authz.Call{}, errors.New("the described destination is not the request URL")
		}
	}
	return c, nil
}

// sameHost reports whether two authorities are the same canonical host
// and port under scheme.
func sameHost(scheme, a, b string) bool {
	da, errA := dest.Parse(scheme+"://"+a+"/", "")
	db, errB := dest.Parse(scheme+"://"+b+"/", "")
	return errA == nil && errB == nil && da.Host == db.Host && da.Port == db.Port
}

// runDescribe calls the WithDescribe function, recovering a panic.
func (t *transport) runDescribe(req *http.Request) (c authz.Call, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = authz.Call{}, errors.New("describe panicked")
		}
	}()
	return t.cfg.describe(req)
}

// methodIntent is the default intent of a request method.
func methodIntent(method string) string {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions:
		return "read"
	}
	return "write"
}

// RequestArgs returns the arguments policies see for req as args:
//
//	method   string: "GET", "POST", ... ("GET" when empty)
//	url      string: the request URL with its query
//	headers  map: header name (canonical, "Authorization") → list of values
//
// so a rule can read args.headers["Authorization"][0] and the secrets
// inspector finds a leased value in a header or the query. The body is not
// read: a leased value in a request body is not seen. RequestArgs returns
// new maps on every call.
func RequestArgs(req *http.Request) map[string]any {
	headers := make(map[string]any, len(req.Header))
	for k, vs := range req.Header {
		l := make([]any, len(vs))
		for i, v := range vs {
			l[i] = v
		}
		headers[k] = l
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	u := ""
	if req.URL != nil {
		u = req.URL.String()
	}
	return map[string]any{"method": method, "url": u, "headers": headers}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
