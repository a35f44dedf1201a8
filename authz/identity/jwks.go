package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/taskguard/taskguard/authz"
)

var _ authz.IdentityVerifier = (*JWKS)(nil)

// asymmetricAlgs are the JWS algorithms [WithAlgorithms] accepts, with the
// key family each needs.
var asymmetricAlgs = map[string]string{
	"RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
	"PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
	"ES256": "EC", "ES384": "EC", "ES512": "EC",
	"EdDSA": "OKP",
}

// ecCurves maps the ES algorithms to the curve their keys must be on.
var ecCurves = map[string]elliptic.Curve{
	"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521(),
}

// minRSABits is the smallest RSA modulus a JWKS key may have.
const minRSABits = 2048

// JWKS verifies OIDC / OAuth 2.0 JWT access tokens (or ID tokens) signed by
// a key of a static JSON Web Key Set, with golang-jwt's parser. A token is
// accepted when, with the verifier's clock and leeway:
//   - its "alg" is one of [WithAlgorithms] and its "kid" names a key of
//     the set whose type (and "alg", when the key states one) fits it;
//   - its signature verifies with that key;
//   - "iss" equals the issuer, "aud" contains the audience, "exp" is
//     present and not past, "nbf" and "iat" (when present) not in the
//     future;
//   - the ID claim ([WithIDClaim], "sub" by default) is a non-empty string.
//
// The agent it returns has that claim as ID and, as Attrs, "iss" and the
// string claims named by [WithClaims]; never the token.
//
// A JWKS is immutable and safe for concurrent use; build it with
// [NewJWKS]. The zero value refuses every credential. The key set is
// fixed: to rotate keys, build a new verifier.
type JWKS struct {
	keys    map[string]jwksKey
	parser  *jwt.Parser
	idClaim string
	claims  []string
}

// jwksKey is one verification key of a [JWKS].
type jwksKey struct {
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	kty string // "RSA", "EC" or "OKP"
	alg string // the key's own "alg", or ""
}

// NewJWKS returns a verifier of JWTs issued by issuer for audience, signed
// by a key of jwksJSON (an RFC 7517 JWK Set, as served at an OIDC
// provider's jwks_uri). issuer and audience are required, and so is
// [WithAlgorithms]. Every key must be public and have a "kid"; keys with
// "use": "enc" and keys of algorithms not allowed are left out, duplicate
// kids and private or symmetric keys are an error, and so is a set left
// with no key. RSA keys must have at least 2048 bits. Options:
// [WithAlgorithms], [WithLeeway], [WithClock], [WithIDClaim],
// [WithClaims]. jwksJSON is not retained.
func NewJWKS(jwksJSON []byte, issuer, audience string, opts ...Option) (*JWKS, error) {
	if issuer == "" {
		return nil, errors.New("identity: NewJWKS: an issuer is required")
	}
	if audience == "" {
		return nil, errors.New("identity: NewJWKS: an audience is required")
	}
	c, err := apply(opts)
	if err != nil {
		return nil, fmt.Errorf("identity: NewJWKS: %w", err)
	}
	if len(c.algs) == 0 {
		return nil, errors.New("identity: NewJWKS: WithAlgorithms is required")
	}
	if slices.Contains(c.claims, AttrTrustDomain) {
		// Reserved for SPIFFE, so that a rule on agent.attrs.trust_domain
		// cannot be met by an IdP-asserted claim of that name.
		return nil, fmt.Errorf("identity: NewJWKS: WithClaims: %q is reserved for SPIFFE trust domains", AttrTrustDomain)
	}
	keys, err := parseJWKS(jwksJSON, c.algs)
	if err != nil {
		return nil, fmt.Errorf("identity: NewJWKS: %w", err)
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(c.algs),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(c.leeway),
	}
	if c.now != nil {
		popts = append(popts, jwt.WithTimeFunc(c.now))
	}
	return &JWKS{keys: keys, parser: jwt.NewParser(popts...), idClaim: c.idClaim, claims: c.claims}, nil
}

// parseJWKS returns the verification keys of a JWK Set usable with algs.
func parseJWKS(data []byte, algs []string) (map[string]jwksKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	families := map[string]bool{}
	for _, a := range algs {
		families[asymmetricAlgs[a]] = true
	}
	keys := make(map[string]jwksKey, len(set.Keys))
	for i, k := range set.Keys {
		if !k.Valid() {
			return nil, fmt.Errorf("JWKS key %d: invalid key", i)
		}
		if !k.IsPublic() {
			return nil, fmt.Errorf("JWKS key %d (kid %q): not a public key: a JWKS for verification holds public keys only", i, k.KeyID)
		}
		if k.KeyID == "" {
			return nil, fmt.Errorf("JWKS key %d: no kid", i)
		}
		if _, dup := keys[k.KeyID]; dup {
			return nil, fmt.Errorf("JWKS key %d: duplicate kid %q", i, k.KeyID)
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		jk := jwksKey{key: k.Key, alg: k.Algorithm}
		switch pk := k.Key.(type) {
		case *rsa.PublicKey:
			if pk.N.BitLen() < minRSABits {
				return nil, fmt.Errorf("JWKS key %d (kid %q): RSA key of %d bits, fewer than %d", i, k.KeyID, pk.N.BitLen(), minRSABits)
			}
			jk.kty = "RSA"
		case *ecdsa.PublicKey:
			jk.kty = "EC"
		case ed25519.PublicKey:
			jk.kty = "OKP"
		default:
			continue // a key type no allowed algorithm can use
		}
		if !families[jk.kty] {
			continue
		}
		if jk.alg != "" {
			if _, ok := asymmetricAlgs[jk.alg]; !ok || !slices.Contains(algs, jk.alg) {
				continue
			}
		}
		keys[k.KeyID] = jk
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS: no signing key usable with the allowed algorithms")
	}
	return keys, nil
}

// maxKIDInError bounds how much of an unknown kid an error repeats.
const maxKIDInError = 64

// keyFor is the verifier's jwt.Keyfunc: the key named by the token's kid,
// if it fits the token's algorithm. The parser has already checked the
// algorithm against the allowed list.
func (v *JWKS) keyFor(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("token has no kid")
	}
	k, ok := v.keys[kid]
	if !ok {
		if len(kid) > maxKIDInError {
			kid = kid[:maxKIDInError] + "..."
		}
		return nil, fmt.Errorf("no key %q in the JWKS", kid)
	}
	alg := t.Method.Alg()
	if asymmetricAlgs[alg] != k.kty || (k.alg != "" && k.alg != alg) {
		return nil, fmt.Errorf("key %q does not sign with %s", kid, alg)
	}
	if curve, ok := ecCurves[alg]; ok {
		if pk, isEC := k.key.(*ecdsa.PublicKey); !isEC || pk.Curve != curve {
			return nil, fmt.Errorf("key %q is not on the curve of %s", kid, alg)
		}
	}
	return k.key, nil
}

// VerifyIdentity implements [authz.IdentityVerifier]: it verifies
// credential as a JWT and returns its agent. Errors wrap [ErrCredential]
// (and golang-jwt's sentinels, such as jwt.ErrTokenExpired) and never
// contain the credential. It does not block; ctx is checked before
// verifying.
func (v *JWKS) VerifyIdentity(ctx context.Context, credential string) (authz.Agent, error) {
	if v == nil || v.parser == nil {
		return authz.Agent{}, fmt.Errorf("%w: the JWKS verifier is not configured", ErrCredential)
	}
	if err := ctx.Err(); err != nil {
		return authz.Agent{}, fmt.Errorf("%w: %w", ErrCredential, err)
	}
	if credential == "" {
		return authz.Agent{}, fmt.Errorf("%w: empty credential", ErrCredential)
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(credential, claims, v.keyFor); err != nil {
		// golang-jwt's messages name the failed check, not the token.
		return authz.Agent{}, fmt.Errorf("%w: %w", ErrCredential, err)
	}
	id, _ := claims[v.idClaim].(string)
	if id == "" {
		return authz.Agent{}, fmt.Errorf("%w: token has no string %q claim", ErrCredential, v.idClaim)
	}
	iss, _ := claims["iss"].(string) // checked by the parser
	attrs := make(map[string]string, 1+len(v.claims))
	attrs[AttrIssuer] = iss
	copyClaims(attrs, claims, v.claims)
	return authz.Agent{ID: id, Attrs: attrs}, nil
}
