package httpguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/dest"
)

// RuleDial is [authz.RuleDial], the [authz.Decision] Rule of a dial the transport refused:
// the address a name resolved to, or the address asked for, is not what
// the request was authorized for.
const RuleDial = authz.RuleDial

// ErrPrivateAddress is wrapped by the *[authz.DeniedError] of a dial
// refused because a destination that was not private resolved to a
// private address: errors.Is(err, ErrPrivateAddress) and
// errors.Is(err, authz.ErrDenied) are both true.
var ErrPrivateAddress = errors.New("httpguard: private address")

// grant is what RoundTrip authorized, carried to the dial in the request's
// context.
type grant struct {
	tool, task   string
	dest         string     // canonical destination
	host         string     // canonical host
	port         int        // port, explicit or the scheme's default
	ip           netip.Addr // valid when host is an IP literal
	private      bool       // the destination is private by its text
	allowPrivate bool       // host matches WithAllowPrivate
}

type grantKey struct{}

func withGrant(ctx context.Context, gr *grant) context.Context {
	return context.WithValue(ctx, grantKey{}, gr)
}

// deny returns the error of a refused dial.
func (gr *grant) deny(reason string, err error) error {
	return &authz.DeniedError{Tool: gr.tool, Decision: authz.Decision{
		Effect: authz.Deny, Rule: RuleDial, Reason: reason, Err: err, Task: gr.task, Destination: gr.dest,
	}}
}

// dial is the http.Transport's DialContext. It dials only for a request
// RoundTrip authorized (the grant in ctx), only the authorized host and
// port, and only addresses it checked: a host that is not private by its
// text must not resolve to a private address unless WithAllowPrivate
// covers it. Names are resolved once, here; the addresses checked are the
// addresses dialed.
func (t *transport) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := t.dialChecked(ctx, network, addr)
	var de *authz.DeniedError
	if err != nil && errors.As(err, &de) && de.Decision.Rule == RuleDial && t.g != nil {
		// A refusal at dial time goes to the audit log like any decision.
		d := de.Decision
		return nil, t.g.Deny(ctx, authz.Call{Tool: de.Tool, Intent: "dial", Destination: d.Destination}, RuleDial, d.Reason, d.Err)
	}
	return conn, err
}

func (t *transport) dialChecked(ctx context.Context, network, addr string) (net.Conn, error) {
	gr, _ := ctx.Value(grantKey{}).(*grant)
	if gr == nil {
		return nil, &authz.DeniedError{Tool: t.cfg.tool, Decision: authz.Decision{
			Rule: RuleDial, Reason: "dial without an authorized request",
		}}
	}
	if t.proxyAddr != "" && addr == t.proxyAddr {
		return t.cfg.netDial(ctx, network, addr)
	}
	literal, port, err := gr.target(addr)
	if err != nil {
		return nil, err
	}
	resolved := []netip.Addr{literal}
	if !literal.IsValid() {
		if resolved, err = t.lookup(ctx, network, gr.host); err != nil {
			return nil, err
		}
	}
	if len(resolved) == 0 {
		return nil, fmt.Errorf("httpguard: %s has no address", gr.host)
	}
	// A copy: the resolver owns its slice.
	ips := make([]netip.Addr, len(resolved))
	for i, ip := range resolved {
		ips[i] = ip.Unmap()
		if !gr.private && !gr.allowPrivate && PrivateAddr(ips[i]) {
			return nil, gr.deny(fmt.Sprintf("%s resolved to the private address %s and the authorized destination is not private",
				gr.host, ips[i].WithZone("")), ErrPrivateAddress)
		}
	}
	var errs []error
	for i, ip := range ips {
		actx, cancel := attemptContext(ctx, len(ips)-i)
		c, err := t.cfg.netDial(actx, network, netip.AddrPortFrom(ip, port).String())
		cancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("httpguard: dial %s: %w", gr.host, errors.Join(errs...))
}

// attemptContext bounds one of left remaining dial attempts to its share
// of the time left, at least two seconds, as net.Dialer does when it dials
// several addresses: an address that never answers does not use up the
// time of the others.
func attemptContext(ctx context.Context, left int) (context.Context, context.CancelFunc) {
	if left <= 1 {
		return ctx, func() {}
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(dialTimeout)
	}
	remaining := time.Until(deadline)
	share := remaining / time.Duration(left)
	if share < 2*time.Second {
		share = min(2*time.Second, remaining)
	}
	return context.WithTimeout(ctx, share)
}

// target checks that addr, the host:port http.Transport asks for, is the
// authorized destination, and returns its IP when the host is an IP
// literal (with its zone, if any) and its port.
func (gr *grant) target(addr string) (netip.Addr, uint16, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.Addr{}, 0, gr.deny("dial address does not parse", err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || int(port) != gr.port {
		return netip.Addr{}, 0, gr.deny("dial to a port other than the authorized destination's", nil)
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if !gr.ip.IsValid() || ip.WithZone("").Unmap() != gr.ip {
			return netip.Addr{}, 0, gr.deny("dial to "+ip.String()+", not the authorized destination", nil)
		}
		return ip, uint16(port), nil
	}
	d, err := dest.Parse("http://"+h+"/", "")
	if err != nil || d.Host != gr.host {
		return netip.Addr{}, 0, gr.deny("dial to a host other than the authorized destination", nil)
	}
	if d.IP.IsValid() { // a name spelling an IP address, such as 0x7f.1
		return d.IP, uint16(port), nil
	}
	return netip.Addr{}, uint16(port), nil
}

// lookup resolves host with the configured resolver, recovering a panic.
func (t *transport) lookup(ctx context.Context, network, host string) (ips []netip.Addr, err error) {
	defer func() {
		if r := recover(); r != nil {
			ips, err = nil, fmt.Errorf("httpguard: resolving %s: resolver panicked", host)
		}
	}()
	ipNet := "ip"
	switch network {
	case "tcp4":
		ipNet = "ip4"
	case "tcp6":
		ipNet = "ip6"
	}
	ips, err = t.cfg.resolver.LookupNetIP(ctx, ipNet, host)
	if err != nil {
		return nil, fmt.Errorf("httpguard: resolving %s: %w", host, err)
	}
	return ips, nil
}

// PrivateAddr reports whether ip is not a public unicast address: it is
// loopback, private (RFC 1918), link-local (169.254.169.254 included),
// CGNAT 100.64/10, unique-local fc00::/7, unspecified, multicast,
// reserved or documentation space, an IPv6 form embedding such an IPv4
// address (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, NAT64
// 64:ff9b::/96, 6to4, Teredo) or local NAT64 64:ff9b:1::/48, or invalid.
// It is the classification of destination.private in policies. The zone
// is ignored.
func PrivateAddr(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.WithZone("")
	u := ip.Unmap()
	if u.IsLoopback() || u.IsPrivate() || u.IsUnspecified() || u.IsMulticast() ||
		u.IsLinkLocalUnicast() || u.IsLinkLocalMulticast() || u.IsInterfaceLocalMulticast() {
		return true
	}
	return dest.PrivateIP(u)
}
