package httpguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/glob"
)

// DefaultTool is the tool name of the calls the transport authorizes unless
// [WithTool] or [WithDescribe] says otherwise.
const DefaultTool = "http.fetch"

// DefaultMaxRedirects is the number of redirects a [Client] follows unless
// [WithMaxRedirects] says otherwise, as many as net/http's default.
const DefaultMaxRedirects = 10

// Resolver resolves host names to the addresses the transport dials.
// *net.Resolver is one. The transport calls LookupNetIP once per dial, with
// network "ip", "ip4" or "ip6", checks every address it returns and dials
// only those addresses.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Option configures [Transport] and [Client]. Options are applied in
// order; each says how repeated uses combine. An invalid option (a nil
// resolver, an invalid host pattern, ...) makes every request fail with an
// error that names it, so a misconfigured transport sends nothing.
type Option func(*config) error

// dialTimeout bounds dialing one host, over all its addresses.
const dialTimeout = 30 * time.Second

// config is the transport's configuration, immutable after Transport.
type config struct {
	resolver     Resolver
	tool         string
	sensitivity  authz.Sensitivity
	describe     func(*http.Request) (authz.Call, error)
	trusted      []string // host globs whose responses taint as trusted
	allowPrivate []string // host globs that may resolve to private addresses
	proxy        *url.URL
	base         *http.Transport
	maxRedirects int

	// Test seams: how addresses are dialed and how responses are
	// recorded on the task.
	netDial func(ctx context.Context, network, addr string) (net.Conn, error)
	observe func(t *authz.Task, source string, s authz.Sensitivity, trusted bool)
}

func newConfig(opts []Option) (*config, error) {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	c := &config{
		resolver:     net.DefaultResolver,
		tool:         DefaultTool,
		maxRedirects: DefaultMaxRedirects,
		netDial:      dialer.DialContext,
		observe:      (*authz.Task).Observe,
	}
	var errs []error
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// WithResolver sets the resolver the transport resolves host names with
// at dial time; the default is [net.DefaultResolver]. A later use replaces
// an earlier one; nil is an error.
func WithResolver(r Resolver) Option {
	return func(c *config) error {
		if r == nil {
			return errors.New("httpguard: WithResolver(nil)")
		}
		c.resolver = r
		return nil
	}
}

// WithTool sets the tool name of the authorized calls; the default is
// [DefaultTool], "http.fetch". A later use replaces an earlier one; "" is
// an error.
func WithTool(name string) Option {
	return func(c *config) error {
		if name == "" {
			return errors.New("httpguard: WithTool with an empty name")
		}
		c.tool = name
		return nil
	}
}

// WithSensitivity sets the sensitivity of every call and of what the
// responses taint the task with; the default is Public. A per-request
// [ContextWithSensitivity] overrides it. A later use replaces an earlier
// one; an undefined sensitivity is an error.
func WithSensitivity(s authz.Sensitivity) Option {
	return func(c *config) error {
		if !s.Valid() {
			return fmt.Errorf("httpguard: WithSensitivity(%d): invalid sensitivity", s)
		}
		c.sensitivity = s
		return nil
	}
}

// WithDescribe replaces how a request becomes a call. f runs for every
// request and every redirect hop; its call is completed with the defaults
// for what it leaves empty: Tool ([WithTool]), Intent (read for GET, HEAD
// and OPTIONS, write otherwise), Args ([RequestArgs]) and Destination (the
// request URL). A Destination f does set must canonically equal the
// request URL, since the transport sends the request there and checks
// the dialed address against it. Sensitivity is taken as f returns it
// (read [SensitivityFrom] to honour per-request values). Args f sets
// replace the default ones: include the headers ([RequestArgs]) so
// policies and the secrets inspector see a leased token in them. An error
// or a panic in f denies the request. A later use replaces an earlier
// one; nil is an error.
func WithDescribe(f func(*http.Request) (authz.Call, error)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("httpguard: WithDescribe(nil)")
		}
		c.describe = f
		return nil
	}
}

// WithTrusted marks responses from hosts matching the patterns as trusted
// when they taint the task (see [Transport]). Patterns are host globs as in
// policies: "*.corp.example" matches one or more labels before
// corp.example, and a pattern without '*' matches that host only; they are
// matched against the canonical host. Repeated uses add patterns. An
// invalid pattern is an error.
func WithTrusted(hostPatterns ...string) Option {
	return func(c *config) error {
		if err := validHostPatterns("WithTrusted", hostPatterns); err != nil {
			return err
		}
		c.trusted = append(c.trusted, hostPatterns...)
		return nil
	}
}

// WithAllowPrivate lets names matching the patterns resolve to private
// addresses: the dial-time check accepts a private address for them (the
// policy must still allow each request). Use it for internal services
// with public-looking names ("*.svc.example.com"), and in tests that map a
// name to a loopback server. Destinations that are private by their text
// (an IP literal such as 127.0.0.1, localhost, a single-label name) need
// no pattern: the policy decided on a private destination, so any address
// it resolves to is dialed. Patterns are host globs as for [WithTrusted].
// Repeated uses add patterns. An invalid pattern is an error.
func WithAllowPrivate(hostPatterns ...string) Option {
	return func(c *config) error {
		if err := validHostPatterns("WithAllowPrivate", hostPatterns); err != nil {
			return err
		}
		c.allowPrivate = append(c.allowPrivate, hostPatterns...)
		return nil
	}
}

// WithProxy sends every request through the HTTP proxy at proxyURL
// ("http://proxy.corp.example:3128"). Proxies are off by default, and the
// environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) is never read; to use the
// environment's proxy, read it once and pass it here.
//
// A proxy costs the dial-time check: the proxy, not the transport,
// resolves the names of the requests it carries, so the transport dials
// only the proxy and cannot see where a name resolves. Every request and
// redirect hop is still authorized, but a public name resolving to a
// private address is then for the proxy to refuse. The proxy's own address
// is dialed without the private-address check (a proxy is usually on the
// private network). A later use replaces an earlier one; nil or a URL
// without a host is an error.
func WithProxy(proxyURL *url.URL) Option {
	return func(c *config) error {
		if proxyURL == nil || proxyURL.Host == "" {
			return errors.New("httpguard: WithProxy needs a proxy URL with a host")
		}
		switch proxyURL.Scheme {
		case "http", "https":
		default:
			return fmt.Errorf("httpguard: WithProxy: unsupported proxy scheme %q (want http or https)", proxyURL.Scheme)
		}
		c.proxy = proxyURL
		return nil
	}
}

// WithBase makes the transport a clone of base (its TLS configuration,
// timeouts, connection pool sizes, HTTP/2 settings), with dialing and
// proxying replaced by the transport's own: base's Proxy, DialContext,
// DialTLSContext, Dial and DialTLS are ignored (TLS is done on the guarded
// connection with base's TLSClientConfig). base is cloned, never modified,
// and not used afterwards. The default is a clone of
// [http.DefaultTransport] without its proxy. A later use replaces an
// earlier one; nil is an error.
func WithBase(base *http.Transport) Option {
	return func(c *config) error {
		if base == nil {
			return errors.New("httpguard: WithBase(nil)")
		}
		c.base = base.Clone()
		return nil
	}
}

// WithMaxRedirects sets how many redirects a [Client] follows before it
// returns an error; 0 makes it return the redirect response itself. The
// default is [DefaultMaxRedirects]. [Transport] ignores it: the
// http.Client that uses a transport decides whether to follow. A later use
// replaces an earlier one; a negative n is an error.
func WithMaxRedirects(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("httpguard: WithMaxRedirects(%d): negative", n)
		}
		c.maxRedirects = n
		return nil
	}
}

func validHostPatterns(option string, patterns []string) error {
	for _, p := range patterns {
		if _, err := glob.Host(p, "example.com"); err != nil || p == "" {
			return fmt.Errorf("httpguard: %s: invalid host pattern %q", option, p)
		}
	}
	return nil
}

// matchHost reports whether host matches one of patterns.
func matchHost(patterns []string, host string) bool {
	for _, p := range patterns {
		if ok, _ := glob.Host(p, host); ok {
			return true
		}
	}
	return false
}

// sensitivityKey is the context key of ContextWithSensitivity.
type sensitivityKey struct{}

// ContextWithSensitivity returns a copy of ctx under which the requests a
// transport sends are calls of sensitivity s, and their responses taint
// the task with s. It overrides [WithSensitivity] for those requests.
func ContextWithSensitivity(ctx context.Context, s authz.Sensitivity) context.Context {
	return context.WithValue(ctx, sensitivityKey{}, s)
}

// SensitivityFrom returns the sensitivity [ContextWithSensitivity] put in
// ctx, and whether there was one.
func SensitivityFrom(ctx context.Context) (authz.Sensitivity, bool) {
	s, ok := ctx.Value(sensitivityKey{}).(authz.Sensitivity)
	return s, ok
}
