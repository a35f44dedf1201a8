package identity_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keys are the test signing keys, generated once per test binary.
type keys struct {
	ec      *ecdsa.PrivateKey // SPIFFE authority "ec1" and JWKS key "ec"
	ecOther *ecdsa.PrivateKey // an untrusted key, for forged signatures
	rsa     *rsa.PrivateKey   // JWKS key "rsa"
	ed      ed25519.PrivateKey
	edOther ed25519.PrivateKey
}

var genKeys = sync.OnceValues(func() (k keys, err error) {
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return k, err
	}
	if k.ecOther, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return k, err
	}
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return k, err
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return k, err
	}
	_, k.edOther, err = ed25519.GenerateKey(rand.Reader)
	return k, err
})

// testKeys returns the shared test keys.
func testKeys(t testing.TB) keys {
	t.Helper()
	k, err := genKeys()
	require.NoError(t, err)
	return k
}

// mint signs claims with key under method, with the header kid (none when
// kid is empty).
func mint(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// mintNone returns an unsigned ("alg": "none") token.
func mintNone(t testing.TB, kid string, claims jwt.MapClaims) string {
	t.Helper()
	return mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims)
}

// jwksJSON marshals a JWK Set of the given public keys.
func jwksJSON(t testing.TB, ks ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: ks})
	require.NoError(t, err)
	return b
}

// publicPEM is the PEM encoding of pub, as an attacker would fetch it.
func publicPEM(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// assertNoToken checks that err does not repeat the token or its parts.
func assertNoToken(t *testing.T, err error, token string) {
	t.Helper()
	if token == "" {
		return
	}
	assert.NotContains(t, err.Error(), token, "errors never carry the credential")
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 16 {
			assert.NotContains(t, err.Error(), part, "errors never carry part of the credential")
		}
	}
}
