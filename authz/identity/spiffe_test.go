package identity_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskguard/taskguard/authz/identity"
)

const (
	testAudience = "taskguard-test"
	testAgent    = "spiffe://example.org/agent/x"
)

// spiffeBundle is a bundle for example.org with the authority "ec1".
func spiffeBundle(t testing.TB) *jwtbundle.Bundle {
	t.Helper()
	b := jwtbundle.New(spiffeid.RequireTrustDomainFromString("example.org"))
	require.NoError(t, b.AddJWTAuthority("ec1", testKeys(t).ec.Public()))
	return b
}

// svidClaims are the claims of a valid JWT-SVID for testAgent.
func svidClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"sub":   testAgent,
		"aud":   []string{testAudience},
		"exp":   now.Add(5 * time.Minute).Unix(),
		"iat":   now.Unix(),
		"email": "x@example.org",
		"team":  42,
	}
}

// with returns a copy of c with the given changes; a nil value deletes.
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestSPIFFEVerifies(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	v, err := identity.NewSPIFFE(spiffeBundle(t), testAudience, identity.WithClaims("email", "team", "absent"))
	require.NoError(t, err)
	now := time.Now()

	tok := mint(t, jwt.SigningMethodES256, k.ec, "ec1", svidClaims(now))
	a, err := v.VerifyIdentity(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, testAgent, a.ID)
	assert.Equal(t, map[string]string{"trust_domain": "example.org", "email": "x@example.org"}, a.Attrs,
		"non-string and absent claims are left out")

	tok = mint(t, jwt.SigningMethodES256, k.ec, "ec1", with(svidClaims(now), "iss", "https://spire.example.org", "aud", []string{"other", testAudience}))
	a, err = v.VerifyIdentity(context.Background(), tok)
	require.NoError(t, err, "one of several audiences")
	assert.Equal(t, "https://spire.example.org", a.Attrs["iss"])

	// A source serving several trust domains, and verification through it.
	other := jwtbundle.New(spiffeid.RequireTrustDomainFromString("other.org"))
	require.NoError(t, other.AddJWTAuthority("o1", k.ecOther.Public()))
	vs, err := identity.NewSPIFFE(jwtbundle.NewSet(spiffeBundle(t), other), testAudience)
	require.NoError(t, err)
	a, err = vs.VerifyIdentity(context.Background(), mint(t, jwt.SigningMethodES256, k.ecOther, "o1", with(svidClaims(now), "sub", "spiffe://other.org/w")))
	require.NoError(t, err)
	assert.Equal(t, "spiffe://other.org/w", a.ID)
	assert.Equal(t, "other.org", a.Attrs["trust_domain"])
}

func TestSPIFFERefuses(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	v, err := identity.NewSPIFFE(spiffeBundle(t), testAudience)
	require.NoError(t, err)
	now := time.Now()
	good := svidClaims(now)
	es := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodES256, k.ec, "ec1", c) }

	cases := map[string]string{
		"wrong audience":            es(with(good, "aud", []string{"another-service"})),
		"no audience":               es(with(good, "aud", nil)),
		"expired":                   es(with(good, "exp", now.Add(-10*time.Minute).Unix())),
		"no exp":                    es(with(good, "exp", nil)),
		"not yet valid":             es(with(good, "nbf", now.Add(time.Hour).Unix())),
		"issued in the future":      es(with(good, "iat", now.Add(time.Hour).Unix())),
		"wrong trust domain":        es(with(good, "sub", "spiffe://evil.org/agent/x")),
		"not a SPIFFE ID":           es(with(good, "sub", "agent-x")),
		"no sub":                    es(with(good, "sub", nil)),
		"unknown kid":               mint(t, jwt.SigningMethodES256, k.ec, "ec2", good),
		"no kid":                    mint(t, jwt.SigningMethodES256, k.ec, "", good),
		"forged signature":          mint(t, jwt.SigningMethodES256, k.ecOther, "ec1", good),
		"alg none":                  mintNone(t, "ec1", good),
		"HS256 with the public key": mint(t, jwt.SigningMethodHS256, publicPEM(t, k.ec.Public()), "ec1", good),
		"EdDSA unsupported":         mint(t, jwt.SigningMethodEdDSA, k.ed, "ec1", good),
		"malformed":                 "not-a-jwt",
		"three garbage parts":       "eyJhbGciOiJFUzI1NiJ9.bm90LWpzb24.c2ln",
		"empty":                     "",
		"tampered payload":          tamper(t, es(good)),
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

	t.Run("cancelled context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := v.VerifyIdentity(ctx, es(good))
		require.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, err, identity.ErrCredential)
	})
	t.Run("zero value", func(t *testing.T) {
		t.Parallel()
		var zero identity.SPIFFE
		_, err := zero.VerifyIdentity(context.Background(), es(good))
		require.ErrorIs(t, err, identity.ErrCredential)
		var nilv *identity.SPIFFE
		_, err = nilv.VerifyIdentity(context.Background(), es(good))
		require.ErrorIs(t, err, identity.ErrCredential)
	})
}

// tamper changes the payload of a signed token, keeping its signature.
func tamper(t testing.TB, tok string) string {
	t.Helper()
	p := jwt.NewParser()
	claims := jwt.MapClaims{}
	_, parts, err := p.ParseUnverified(tok, claims)
	require.NoError(t, err)
	claims["sub"] = "spiffe://example.org/agent/admin"
	forged := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	s, err := forged.SigningString()
	require.NoError(t, err)
	return s + "." + parts[2]
}

func TestSPIFFEFromBundleFile(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	spiffeFormat := write("bundle.json", jwksJSON(t, jose.JSONWebKey{Key: k.ec.Public(), KeyID: "ec1", Use: "jwt-svid"}))
	plainJWKS := write("jwks.json", jwksJSON(t, jose.JSONWebKey{Key: k.ec.Public(), KeyID: "ec1"}))
	tok := mint(t, jwt.SigningMethodES256, k.ec, "ec1", svidClaims(time.Now()))

	for _, path := range []string{spiffeFormat, plainJWKS} {
		v, err := identity.SPIFFEFromBundleFile("example.org", path, testAudience)
		require.NoError(t, err, path)
		a, err := v.VerifyIdentity(context.Background(), tok)
		require.NoError(t, err, path)
		assert.Equal(t, testAgent, a.ID)
		assert.Equal(t, "example.org", a.Attrs["trust_domain"])

		v, err = identity.SPIFFEFromBundleFile("other.org", path, testAudience)
		require.NoError(t, err, path)
		_, err = v.VerifyIdentity(context.Background(), tok)
		require.ErrorIs(t, err, identity.ErrCredential, "the bundle is for another trust domain")
	}

	refused := map[string][3]string{
		"no audience":      {"example.org", spiffeFormat, ""},
		"bad trust domain": {"Example Org", spiffeFormat, testAudience},
		"missing file":     {"example.org", filepath.Join(dir, "absent.json"), testAudience},
		"not JSON":         {"example.org", write("bad.json", []byte("{")), testAudience},
		"no keys":          {"example.org", write("empty.json", []byte(`{"keys": []}`)), testAudience},
		"key without kid":  {"example.org", write("nokid.json", jwksJSON(t, jose.JSONWebKey{Key: k.ec.Public()})), testAudience},
	}
	for name, args := range refused {
		_, err := identity.SPIFFEFromBundleFile(args[0], args[1], args[2])
		assert.Error(t, err, name)
	}
}

func TestNewSPIFFERefuses(t *testing.T) {
	t.Parallel()
	b := spiffeBundle(t)
	cases := map[string]func() (*identity.SPIFFE, error){
		"nil source":  func() (*identity.SPIFFE, error) { return identity.NewSPIFFE(nil, testAudience) },
		"no audience": func() (*identity.SPIFFE, error) { return identity.NewSPIFFE(b, "") },
		"clock": func() (*identity.SPIFFE, error) {
			return identity.NewSPIFFE(b, testAudience, identity.WithClock(time.Now))
		},
		"leeway": func() (*identity.SPIFFE, error) {
			return identity.NewSPIFFE(b, testAudience, identity.WithLeeway(time.Second))
		},
		"algorithms": func() (*identity.SPIFFE, error) {
			return identity.NewSPIFFE(b, testAudience, identity.WithAlgorithms("ES256"))
		},
		"id claim": func() (*identity.SPIFFE, error) {
			return identity.NewSPIFFE(b, testAudience, identity.WithIDClaim("email"))
		},
		"claim shadows trust_domain": func() (*identity.SPIFFE, error) {
			return identity.NewSPIFFE(b, testAudience, identity.WithClaims("trust_domain"))
		},
		"empty claim name": func() (*identity.SPIFFE, error) { return identity.NewSPIFFE(b, testAudience, identity.WithClaims("")) },
		"nil option":       func() (*identity.SPIFFE, error) { return identity.NewSPIFFE(b, testAudience, nil) },
	}
	for name, build := range cases {
		v, err := build()
		assert.Error(t, err, name)
		assert.Nil(t, v, name)
	}
}
