package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// trustDomain stands in for a SPIFFE server (SPIRE, say) of one trust
// domain: its JWT signing key and the bundle that publishes its public
// half. In production the agent gets its JWT-SVID and the bundle from the
// SPIFFE Workload API; the example generates both at start.
type trustDomain struct {
	keyID  string
	key    *ecdsa.PrivateKey
	bundle *jwtbundle.Bundle
}

// newTrustDomain returns a trust domain named name ("example.org") with a
// fresh P-256 signing key.
func newTrustDomain(name string) (*trustDomain, error) {
	td, err := spiffeid.TrustDomainFromString(name)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	d := &trustDomain{keyID: "svid-key-1", key: key, bundle: jwtbundle.New(td)}
	if err := d.bundle.AddJWTAuthority(d.keyID, key.Public()); err != nil {
		return nil, err
	}
	return d, nil
}

// mintSVID signs a JWT-SVID for the SPIFFE ID id and audience aud, valid
// for ttl, as the trust domain's server would. The SVID is a bearer
// credential: never print it.
func (d *trustDomain) mintSVID(id, aud string, ttl time.Duration) (string, error) {
	if _, err := spiffeid.FromString(id); err != nil {
		return "", fmt.Errorf("mintSVID: %w", err)
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": id,
		"aud": aud,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	})
	tok.Header["kid"] = d.keyID
	return tok.SignedString(d.key)
}
