package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskguard/taskguard/authz/identity"
)

const testIssuer = "https://idp.example.org"

// t0 is the JWKS verifiers' fixed clock.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// testJWKS is a JWK Set with the RSA key "rsa" and the Ed25519 key "ed".
func testJWKS(t testing.TB) []byte {
	t.Helper()
	k := testKeys(t)
	return jwksJSON(t,
		jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "rsa", Use: "sig"},
		jose.JSONWebKey{Key: k.ed.Public(), KeyID: "ed", Algorithm: "EdDSA"},
	)
}

// newJWKS builds a verifier over testJWKS accepting RS256 and EdDSA with a
// minute of leeway, at t0.
func newJWKS(t testing.TB, opts ...identity.Option) *identity.JWKS {
	t.Helper()
	opts = append([]identity.Option{
		identity.WithAlgorithms("RS256", "EdDSA"),
		identity.WithLeeway(time.Minute),
		identity.WithClock(func() time.Time { return t0 }),
	}, opts...)
	v, err := identity.NewJWKS(testJWKS(t), testIssuer, testAudience, opts...)
	require.NoError(t, err)
	return v
}

// accessClaims are the claims of a valid access token at t0.
func accessClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       testIssuer,
		"sub":       "agent-7",
		"aud":       testAudience,
		"exp":       t0.Add(5 * time.Minute).Unix(),
		"iat":       t0.Unix(),
		"email":     "agent7@example.org",
		"client_id": "researcher",
		"scope":     42,
	}
}

func TestJWKSVerifies(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	v := newJWKS(t, identity.WithClaims("email", "azp"), identity.WithClaims("scope"))
	good := accessClaims()

	cases := map[string]string{
		"RS256":               mint(t, jwt.SigningMethodRS256, k.rsa, "rsa", good),
		"EdDSA":               mint(t, jwt.SigningMethodEdDSA, k.ed, "ed", good),
		"expired within skew": mint(t, jwt.SigningMethodRS256, k.rsa, "rsa", with(good, "exp", t0.Add(-30*time.Second).Unix())),
		"nbf within skew":     mint(t, jwt.SigningMethodEdDSA, k.ed, "ed", with(good, "nbf", t0.Add(30*time.Second).Unix())),
		"audience list":       mint(t, jwt.SigningMethodRS256, k.rsa, "rsa", with(good, "aud", []string{"x", testAudience})),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, err := v.VerifyIdentity(context.Background(), tok)
			require.NoError(t, err)
			assert.Equal(t, "agent-7", a.ID)
			assert.Equal(t, map[string]string{"iss": testIssuer, "email": "agent7@example.org"}, a.Attrs,
				"iss and the named string claims; absent and non-string claims left out")
		})
	}

	t.Run("ID claim", func(t *testing.T) {
		t.Parallel()
		v := newJWKS(t, identity.WithIDClaim("client_id"))
		a, err := v.VerifyIdentity(context.Background(), mint(t, jwt.SigningMethodRS256, k.rsa, "rsa", good))
		require.NoError(t, err)
		assert.Equal(t, "researcher", a.ID)
		assert.Equal(t, map[string]string{"iss": testIssuer}, a.Attrs)
	})
}

func TestJWKSRefuses(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	v := newJWKS(t)
	good := accessClaims()
	rs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodRS256, k.rsa, "rsa", c) }
	otherRSA := otherRSAKey(t)

	cases := map[string]string{
		"wrong iss":               rs(with(good, "iss", "https://evil.example.org")),
		"no iss":                  rs(with(good, "iss", nil)),
		"wrong aud":               rs(with(good, "aud", "another-service")),
		"no aud":                  rs(with(good, "aud", nil)),
		"expired beyond skew":     rs(with(good, "exp", t0.Add(-2*time.Minute).Unix())),
		"no exp":                  rs(with(good, "exp", nil)),
		"nbf beyond skew":         rs(with(good, "nbf", t0.Add(2*time.Minute).Unix())),
		"iat in the future":       rs(with(good, "iat", t0.Add(time.Hour).Unix())),
		"missing sub":             rs(with(good, "sub", nil)),
		"empty sub":               rs(with(good, "sub", "")),
		"non-string sub":          rs(with(good, "sub", 7)),
		"alg not allowed (RS384)": mint(t, jwt.SigningMethodRS384, k.rsa, "rsa", good),
		"alg not allowed (PS256)": mint(t, jwt.SigningMethodPS256, k.rsa, "rsa", good),
		"alg confusion HS256 with the RSA public key": mint(t, jwt.SigningMethodHS256, publicPEM(t, k.rsa.Public()), "rsa", good),
		"alg confusion HS256 with the Ed25519 key":    mint(t, jwt.SigningMethodHS256, []byte(k.ed.Public().(ed25519.PublicKey)), "ed", good),
		"alg none":                  mintNone(t, "rsa", good),
		"kid not in JWKS":           mint(t, jwt.SigningMethodRS256, k.rsa, "rsa2", good),
		"no kid":                    mint(t, jwt.SigningMethodRS256, k.rsa, "", good),
		"key of another type":       mint(t, jwt.SigningMethodEdDSA, k.ed, "rsa", good),
		"RS256 under the EdDSA key": mint(t, jwt.SigningMethodRS256, k.rsa, "ed", good),
		"forged RSA signature":      mint(t, jwt.SigningMethodRS256, otherRSA, "rsa", good),
		"forged EdDSA signature":    mint(t, jwt.SigningMethodEdDSA, k.edOther, "ed", good),
		"tampered payload":          tamperRS(t, rs(good)),
		"malformed":                 "not-a-jwt",
		"garbage segments":          "eyJhbGciOiJSUzI1NiJ9.bm90LWpzb24.c2ln",
		"empty":                     "",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, err := v.VerifyIdentity(context.Background(), tok)
			require.Error(t, err)
			assert.ErrorIs(t, err, identity.ErrCredential)
			assert.Empty(t, a.ID)
			assertNoToken(t, err, tok)
		})
	}

	t.Run("key alg mismatch", func(t *testing.T) {
		t.Parallel()
		set := jwksJSON(t, jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "rsa", Algorithm: "RS512"})
		v, err := identity.NewJWKS(set, testIssuer, testAudience, identity.WithAlgorithms("RS256", "RS512"),
			identity.WithClock(func() time.Time { return t0 }))
		require.NoError(t, err)
		_, err = v.VerifyIdentity(context.Background(), rs(good))
		require.ErrorIs(t, err, identity.ErrCredential, "the key is for RS512 only")
		_, err = v.VerifyIdentity(context.Background(), mint(t, jwt.SigningMethodRS512, k.rsa, "rsa", good))
		require.NoError(t, err)
	})
	t.Run("EC key on the wrong curve", func(t *testing.T) {
		t.Parallel()
		p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		require.NoError(t, err)
		set := jwksJSON(t, jose.JSONWebKey{Key: p384.Public(), KeyID: "ec"})
		v, err := identity.NewJWKS(set, testIssuer, testAudience, identity.WithAlgorithms("ES256", "ES384"),
			identity.WithClock(func() time.Time { return t0 }))
		require.NoError(t, err)
		_, err = v.VerifyIdentity(context.Background(), mint(t, jwt.SigningMethodES384, p384, "ec", good))
		require.NoError(t, err)
		_, err = v.VerifyIdentity(context.Background(), mint(t, jwt.SigningMethodES256, testKeys(t).ec, "ec", good))
		require.ErrorIs(t, err, identity.ErrCredential)
	})
	t.Run("cancelled context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := v.VerifyIdentity(ctx, rs(good))
		require.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, err, identity.ErrCredential)
	})
	t.Run("zero value", func(t *testing.T) {
		t.Parallel()
		var zero identity.JWKS
		_, err := zero.VerifyIdentity(context.Background(), rs(good))
		require.ErrorIs(t, err, identity.ErrCredential)
		var nilv *identity.JWKS
		_, err = nilv.VerifyIdentity(context.Background(), rs(good))
		require.ErrorIs(t, err, identity.ErrCredential)
	})
	t.Run("errors wrap golang-jwt's sentinels", func(t *testing.T) {
		t.Parallel()
		_, err := v.VerifyIdentity(context.Background(), rs(with(good, "exp", t0.Add(-time.Hour).Unix())))
		require.ErrorIs(t, err, jwt.ErrTokenExpired)
	})
}

func TestNewJWKSRefuses(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	good := testJWKS(t)
	algs := identity.WithAlgorithms("RS256")
	cases := map[string]struct {
		jwks             []byte
		issuer, audience string
		opts             []identity.Option
	}{
		"no issuer":           {good, "", testAudience, []identity.Option{algs}},
		"no audience":         {good, testIssuer, "", []identity.Option{algs}},
		"no algorithms":       {good, testIssuer, testAudience, nil},
		"alg none":            {good, testIssuer, testAudience, []identity.Option{identity.WithAlgorithms("none")}},
		"HS256":               {good, testIssuer, testAudience, []identity.Option{identity.WithAlgorithms("RS256", "HS256")}},
		"unknown alg":         {good, testIssuer, testAudience, []identity.Option{identity.WithAlgorithms("XS256")}},
		"negative leeway":     {good, testIssuer, testAudience, []identity.Option{algs, identity.WithLeeway(-time.Second)}},
		"leeway too large":    {good, testIssuer, testAudience, []identity.Option{algs, identity.WithLeeway(time.Hour)}},
		"nil clock":           {good, testIssuer, testAudience, []identity.Option{algs, identity.WithClock(nil)}},
		"empty ID claim":      {good, testIssuer, testAudience, []identity.Option{algs, identity.WithIDClaim("")}},
		"empty claim name":    {good, testIssuer, testAudience, []identity.Option{algs, identity.WithClaims("")}},
		"nil option":          {good, testIssuer, testAudience, []identity.Option{algs, nil}},
		"not JSON":            {[]byte("{"), testIssuer, testAudience, []identity.Option{algs}},
		"no keys":             {[]byte(`{"keys": []}`), testIssuer, testAudience, []identity.Option{algs}},
		"no key for the algs": {good, testIssuer, testAudience, []identity.Option{identity.WithAlgorithms("ES256")}},
		"symmetric key": {[]byte(`{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}`),
			testIssuer, testAudience, []identity.Option{algs}},
		"private key":     {jwksJSON(t, jose.JSONWebKey{Key: k.rsa, KeyID: "rsa"}), testIssuer, testAudience, []identity.Option{algs}},
		"key without kid": {jwksJSON(t, jose.JSONWebKey{Key: k.rsa.Public()}), testIssuer, testAudience, []identity.Option{algs}},
		"duplicate kid": {jwksJSON(t, jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "a"}, jose.JSONWebKey{Key: k.ed.Public(), KeyID: "a"}),
			testIssuer, testAudience, []identity.Option{algs}},
		"small RSA key": {jwksJSON(t, jose.JSONWebKey{Key: smallRSAKey(t).Public(), KeyID: "small"}), testIssuer, testAudience, []identity.Option{algs}},
		"encryption key only": {jwksJSON(t, jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "rsa", Use: "enc"}),
			testIssuer, testAudience, []identity.Option{algs}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v, err := identity.NewJWKS(c.jwks, c.issuer, c.audience, c.opts...)
			require.Error(t, err)
			assert.Nil(t, v)
		})
	}
}

// tamperRS changes the subject of an RS256 token, keeping its signature.
func tamperRS(t testing.TB, tok string) string {
	t.Helper()
	claims := jwt.MapClaims{}
	_, parts, err := jwt.NewParser().ParseUnverified(tok, claims)
	require.NoError(t, err)
	claims["sub"] = "admin"
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SigningString()
	require.NoError(t, err)
	return s + "." + parts[2]
}

func otherRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return key
}

func smallRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	return key
}
