package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/taskguard/taskguard/authz"
)

// AttrTrustDomain is the attribute a [SPIFFE] verifier sets to the trust
// domain of the JWT-SVID's SPIFFE ID ("example.org").
const AttrTrustDomain = "trust_domain"

// AttrIssuer is the attribute both verifiers set to the token's "iss"
// claim: always for [JWKS] (it is checked), and for [SPIFFE] when the
// JWT-SVID carries one.
const AttrIssuer = "iss"

var _ authz.IdentityVerifier = (*SPIFFE)(nil)

// SPIFFE verifies SPIFFE JWT-SVIDs with go-spiffe's
// [jwtsvid.ParseAndValidate] against a JWT bundle source, for one
// audience. The agent it returns has the SVID's SPIFFE ID as ID and, as
// Attrs, "trust_domain", "iss" (when the SVID has a string iss claim) and
// the string claims named by [WithClaims].
//
// go-spiffe accepts the RS, PS and ES algorithms (not EdDSA), requires kid,
// sub and exp, checks exp and nbf against the system clock with one
// minute of leeway, and looks the key up in the bundle of the trust
// domain named by the SVID's subject; a trust domain the source has no
// bundle for is refused.
//
// A SPIFFE is immutable and safe for concurrent use; build it with
// [NewSPIFFE] or [SPIFFEFromBundleFile]. The zero value refuses every
// credential.
type SPIFFE struct {
	bundles  jwtbundle.Source
	audience []string
	claims   []string
}

// NewSPIFFE returns a verifier of JWT-SVIDs whose signing keys come from
// bundles (a [jwtbundle.Bundle], a [jwtbundle.Set], or a Workload API
// source from go-spiffe's workloadapi package, which keeps the bundles
// current) and whose "aud" claim includes audience. audience is required:
// it names the service accepting the SVIDs, so one issued to another
// service is refused. The source is consulted on every verification, and
// the caller keeps ownership of it (closing a Workload API source is the
// caller's job). Options: [WithClaims].
func NewSPIFFE(bundles jwtbundle.Source, audience string, opts ...Option) (*SPIFFE, error) {
	if bundles == nil {
		return nil, errors.New("identity: NewSPIFFE: nil bundle source")
	}
	if audience == "" {
		return nil, errors.New("identity: NewSPIFFE: an audience is required")
	}
	c, err := apply(opts)
	if err != nil {
		return nil, fmt.Errorf("identity: NewSPIFFE: %w", err)
	}
	if len(c.jwksOnly) > 0 {
		return nil, fmt.Errorf("identity: NewSPIFFE: %s does not apply to SPIFFE JWT-SVIDs", c.jwksOnly[0])
	}
	for _, n := range c.claims {
		if n == AttrTrustDomain {
			return nil, fmt.Errorf("identity: NewSPIFFE: WithClaims: %q is set by the verifier", n)
		}
	}
	return &SPIFFE{bundles: bundles, audience: []string{audience}, claims: c.claims}, nil
}

// SPIFFEFromBundleFile returns a verifier like [NewSPIFFE] whose keys are
// the JWT authorities in the bundle file at path for trustDomain
// ("example.org"). The file is a SPIFFE trust bundle (a JWKS whose keys
// carry "use": "jwt-svid" or "x509-svid"; only the jwt-svid keys count) or
// a plain RFC 7517 JWKS (every key is a JWT authority and must have a
// kid). The file is read once: rotating keys needs a new verifier or a
// Workload API source given to NewSPIFFE. A file with no JWT authority is
// an error.
func SPIFFEFromBundleFile(trustDomain, path, audience string, opts ...Option) (*SPIFFE, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("identity: SPIFFEFromBundleFile: trust domain: %w", err)
	}
	b, err := loadJWTBundle(td, path)
	if err != nil {
		return nil, fmt.Errorf("identity: SPIFFEFromBundleFile: %w", err)
	}
	return NewSPIFFE(b, audience, opts...)
}

// loadJWTBundle reads the JWT authorities of td from a SPIFFE bundle or a
// plain JWKS at path.
func loadJWTBundle(td spiffeid.TrustDomain, path string) (*jwtbundle.Bundle, error) {
	if sb, err := spiffebundle.Load(td, path); err == nil && len(sb.JWTAuthorities()) > 0 {
		return sb.JWTBundle(), nil
	}
	b, err := jwtbundle.Load(td, path)
	if err != nil {
		return nil, err
	}
	if len(b.JWTAuthorities()) == 0 {
		return nil, fmt.Errorf("bundle %s has no JWT authority", path)
	}
	return b, nil
}

// VerifyIdentity implements [authz.IdentityVerifier]: it parses and
// validates credential as a JWT-SVID and returns its agent. Errors wrap
// [ErrCredential] and never contain the credential. It does not block
// unless the bundle source does; ctx is checked before verifying.
func (s *SPIFFE) VerifyIdentity(ctx context.Context, credential string) (authz.Agent, error) {
	if s == nil || s.bundles == nil {
		return authz.Agent{}, fmt.Errorf("%w: the SPIFFE verifier is not configured", ErrCredential)
	}
	if err := ctx.Err(); err != nil {
		return authz.Agent{}, fmt.Errorf("%w: %w", ErrCredential, err)
	}
	if credential == "" {
		return authz.Agent{}, fmt.Errorf("%w: empty credential", ErrCredential)
	}
	svid, err := jwtsvid.ParseAndValidate(credential, s.bundles, s.audience)
	if err != nil {
		// go-spiffe's messages name what failed (key ID, trust domain,
		// audience), never the token itself.
		return authz.Agent{}, fmt.Errorf("%w: %w", ErrCredential, err)
	}
	attrs := make(map[string]string, 2+len(s.claims))
	attrs[AttrTrustDomain] = svid.ID.TrustDomain().Name()
	if iss, ok := svid.Claims["iss"].(string); ok {
		attrs[AttrIssuer] = iss
	}
	copyClaims(attrs, svid.Claims, s.claims)
	return authz.Agent{ID: svid.ID.String(), Attrs: attrs}, nil
}

// copyClaims copies the string-valued claims named in names into attrs.
func copyClaims(attrs map[string]string, claims map[string]any, names []string) {
	for _, n := range names {
		if v, ok := claims[n].(string); ok {
			attrs[n] = v
		}
	}
}
