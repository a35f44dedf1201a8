// Package identity verifies the credentials AI agents present and turns
// them into the [authz.Agent] a task runs under: it holds the
// implementations of [authz.IdentityVerifier]. Give one to
// [authz.WithIdentityVerifier]; [authz.Guard.Begin] then verifies every
// [authz.TaskSpec.Credential] and policies read the verified claims as
// agent.id and agent.attrs.
//
// Tokens are checked by the field's libraries, not by hand: go-spiffe for
// SPIFFE JWT-SVIDs, golang-jwt over a key set parsed by go-jose for OIDC
// and OAuth 2.0 access tokens.
//
// This package is its own Go module (github.com/taskguard/taskguard/authz/identity),
// so that go-spiffe's dependencies (gRPC, protobuf) stay out of the build
// list of programs that use taskguard without it.
//
// # SPIFFE JWT-SVIDs
//
// [SPIFFE] validates a JWT-SVID with [jwtsvid.ParseAndValidate] against a
// JWT bundle source and one required audience: [NewSPIFFE] takes any
// [jwtbundle.Source] (a bundle, a set of bundles, or a Workload API source
// that follows key rotation), [SPIFFEFromBundleFile] reads a bundle file.
// The agent's ID is the SVID's SPIFFE ID; its Attrs hold:
//
//	trust_domain  the SPIFFE ID's trust domain ("example.org")
//	iss           the "iss" claim, when the SVID carries one
//	NAME          each string claim named by WithClaims("NAME", ...)
//
// # OIDC and JWT access tokens
//
// [JWKS] verifies JWTs signed with a key of a static JSON Web Key Set for
// one issuer and one audience. The allowed algorithms are required
// ([WithAlgorithms]); "none" and HMAC are refused, so a token "signed"
// with a public key as an HMAC secret never verifies. exp is required and
// exp, nbf and iat are checked with [WithLeeway] of skew against the clock
// of [WithClock]. The agent's ID is the "sub" claim (or [WithIDClaim]'s);
// its Attrs hold "iss" and the string claims named by [WithClaims].
//
//	v, err := identity.NewJWKS(jwksJSON, "https://idp.example.org", "tools.example.org",
//		identity.WithAlgorithms("RS256", "EdDSA"),
//		identity.WithLeeway(30*time.Second),
//		identity.WithClaims("email", "azp", "client_id"))
//	g, err := authz.New(authz.WithIdentityVerifier(v), authz.WithPolicy(p))
//	ctx, task, err := g.Begin(ctx, authz.TaskSpec{Credential: accessToken})
//
// # Errors and secrets
//
// Every refusal wraps [ErrCredential] and says what failed (audience,
// expiry, unknown key ID, signature); no error contains the credential,
// which is a bearer token, and the verifiers keep nothing of it. Claims not
// named are never copied into Attrs.
package identity

import "errors"

// ErrCredential is wrapped by every error a verifier's VerifyIdentity
// returns: the credential is malformed, does not verify, is expired, is
// for another audience or issuer, or lacks the agent's ID.
var ErrCredential = errors.New("identity: credential refused")
