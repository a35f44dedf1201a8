// Package httpguard enforces taskguard decisions where HTTP requests are
// made: every request, every redirect hop and every dial.
//
// A check decides on text; the world can change before the tool acts. A
// public name can resolve to a private address (DNS rebinding, wildcard DNS
// such as 127.0.0.1.nip.io), and an allowed URL can redirect anywhere.
// [Transport] closes these gaps for tools that fetch URLs: it authorizes
// each request as an [authz.Call] under the task in the request's context,
// re-checks the address it actually dials, and records each response on the
// task as untrusted content.
//
// # Sections
//
//   - Requests
//   - Redirects
//   - Dialing
//   - Responses
//   - Proxies
//
// # Usage
//
//	client := httpguard.Client(g,
//		httpguard.WithSensitivity(authz.Internal),
//		httpguard.WithTrusted("docs.corp.example"))
//	ctx, task, err := g.Begin(ctx, spec)
//	...
//	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
//	resp, err := client.Do(req) // errors.Is(err, authz.ErrDenied) when refused
//
// # Requests
//
// Each request is the call
//
//	tool         "http.fetch" (WithTool)
//	intent       read for GET, HEAD and OPTIONS, write otherwise
//	destination  the request URL (canonical in policies: destination.host ...)
//	sensitivity  ContextWithSensitivity, else WithSensitivity, else PUBLIC
//	args         {"method": "GET", "url": "...", "headers": {"Authorization": ["Bearer ..."]}}
//
// authorized with [authz.Guard.Authorize], so rate limits, budgets and
// approvals apply, and the secrets broker's inspector refuses a leased
// token in a header or the query sent outside its audience. [WithDescribe]
// describes requests differently. A request whose Host header names
// another host than its URL is refused (domain fronting would reach a site
// the policy never saw). A denied request is never sent; the
// error wraps the *[authz.DeniedError], which never quotes arguments. Keep
// secrets in headers rather than in URLs: the errors of [http.Client]
// quote the request URL.
//
// # Redirects
//
// [http.Client] follows a redirect by calling the transport again with the
// next request, so every hop is authorized as its own call: an allowed URL
// redirecting to http://169.254.169.254/ or to a host the policy does not
// allow is denied at that hop. [Client] also bounds the hops
// ([WithMaxRedirects]).
//
// # Dialing
//
// The transport dials every new connection itself. It resolves the host
// once with the [Resolver] ([WithResolver]; the default is
// [net.DefaultResolver]) and checks every address: when the destination
// the policy decided on was not private by its text but an address is
// ([PrivateAddr]: loopback, RFC 1918, link-local and metadata, CGNAT,
// unique-local, unspecified, multicast, reserved, and the IPv6 forms that
// embed such an IPv4 address), the dial is refused with a
// *[authz.DeniedError] whose rule is [RuleDial] and which wraps
// [ErrPrivateAddress]; its reason names the host and the address. It then
// dials only the addresses it checked, in the resolver's order, each
// attempt with its share of the dial time; a record that changes after
// the check is never used. A destination that is private by its text and that
// the policy allowed (a rule for http://127.0.0.1:8080/) is dialed
// normally, as are names matching [WithAllowPrivate].
//
// # Responses
//
// A round trip that returns a response (any status) calls
// [authz.Task.Observe] once with the canonical host as the source, the
// call's sensitivity and trusted = false, unless the host matches
// [WithTrusted]; policies see it as task.taint. A denied or failed round
// trip records nothing.
//
// # Proxies
//
// Proxies from the environment are never used. [WithProxy] sends requests
// through a proxy, which then resolves the names: the transport still
// authorizes every request and hop but only dials the proxy, so the
// dial-time address check no longer applies to the destinations.
package httpguard
