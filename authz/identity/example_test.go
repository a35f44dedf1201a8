package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/taskguard/taskguard/authz/identity"
)

// A service verifies the JWT-SVID an agent presents. In production the
// bundle comes from the SPIFFE Workload API (go-spiffe's workloadapi
// package) or a bundle file ([identity.SPIFFEFromBundleFile]); here the
// example builds one, and signs the SVID the way a SPIFFE server would.
func ExampleNewSPIFFE() {
	// The trust domain's JWT signing key and its bundle.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fmt.Println(err)
		return
	}
	bundle := jwtbundle.New(spiffeid.RequireTrustDomainFromString("example.org"))
	if err := bundle.AddJWTAuthority("key-1", key.Public()); err != nil {
		fmt.Println(err)
		return
	}

	// A JWT-SVID for the agent, for the audience "tools.example.org".
	svid := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": "spiffe://example.org/agent/researcher",
		"aud": "tools.example.org",
		"exp": time.Now().Add(5 * time.Minute).Unix(),
	})
	svid.Header["kid"] = "key-1"
	token, err := svid.SignedString(key)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The service's verifier; pass it to authz.WithIdentityVerifier.
	v, err := identity.NewSPIFFE(bundle, "tools.example.org")
	if err != nil {
		fmt.Println(err)
		return
	}
	agent, err := v.VerifyIdentity(context.Background(), token)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(agent.ID)
	fmt.Println(agent.Attrs["trust_domain"])

	// A service with another audience refuses the same SVID.
	other, _ := identity.NewSPIFFE(bundle, "billing.example.org")
	_, err = other.VerifyIdentity(context.Background(), token)
	fmt.Println(err != nil)
	// Output:
	// spiffe://example.org/agent/researcher
	// example.org
	// true
}
