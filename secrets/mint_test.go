package secrets

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

// mintT0 is the fake clocks' start; the 250ms checks that exp and iat are
// truncated to whole seconds.
var mintT0 = time.Date(2030, 1, 2, 3, 4, 5, 250e6, time.UTC)

const (
	mintIssuer   = "https://broker.taskguard.test"
	mintAudience = "api.github.test"
	mintHMACText = "taskguard-test-hmac-key-0123456789abcdef"
)

var mintAlgs = []string{"EdDSA", "HS256"}

// mintEd25519Key returns a fixed test key; seed varies it.
func mintEd25519Key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func mintSpecs() map[string]TokenSpec {
	return map[string]TokenSpec{
		"github": {Audience: mintAudience, Scope: []string{"repo:read", "repo:write"}, TTL: 10 * time.Minute},
		"db":     {Audience: "db.internal.test", TTL: time.Hour},
	}
}

// mintKeyOption returns the key option for alg with the fixed test keys.
func mintKeyOption(alg string) MintOption {
	if alg == "EdDSA" {
		return WithEd25519Key(mintEd25519Key(7))
	}
	return WithHMACKey([]byte(mintHMACText))
}

// withMintIDSource makes token IDs come from r instead of crypto/rand, so
// tests can mint the same tokens every run.
func withMintIDSource(r io.Reader) MintOption {
	return mintOption(func(c *mintConfig) error { c.idSource = r; return nil })
}

type mintFixture struct {
	alg   string
	clock *authztest.Clock
	m     *Minter
	v     *Verifier
}

func newMintFixture(t testing.TB, alg string, opts ...MintOption) *mintFixture {
	t.Helper()
	f := &mintFixture{alg: alg, clock: authztest.NewClock(mintT0)}
	all := append([]MintOption{mintKeyOption(alg), WithIssuer(mintIssuer), WithClock(f.clock.Now)}, opts...)
	var err error
	f.m, err = NewMinter(mintSpecs(), all...)
	require.NoError(t, err)
	f.v, err = f.m.Verifier(mintAudience)
	require.NoError(t, err)
	return f
}

func mintRequest(name string) IssueRequest {
	return IssueRequest{Name: name, Task: "task-1", Agent: "agent-7", ExpiresAt: mintT0.Add(time.Hour)}
}

// issue mints a token for req and returns the credential and the token.
func (f *mintFixture) issue(t testing.TB, req IssueRequest) (Credential, string) {
	t.Helper()
	c, err := f.m.Issue(context.Background(), req)
	require.NoError(t, err)
	return c, string(c.Value())
}

// claims returns the jwt claims Issue would put in a token for github now.
func (f *mintFixture) claims() jwtClaims {
	now := f.clock.Now()
	return jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    mintIssuer,
			Subject:   "agent-7",
			Audience:  jwt.ClaimStrings{mintAudience},
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        "crafted-token-id",
		},
		Task:  "task-1",
		Agent: "agent-7",
		Scope: "repo:read",
	}
}

// sign signs claims with the fixture's own key and algorithm.
func (f *mintFixture) sign(t testing.TB, c jwtClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(f.m.method, &c).SignedString(f.m.keys().sign)
	require.NoError(t, err)
	return tok
}

func TestMintRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		req       func(r *IssueRequest)
		wantExp   time.Time
		wantScope []string
	}{
		{"TTL bounds exp", nil, time.Date(2030, 1, 2, 3, 14, 5, 0, time.UTC), []string{"repo:read", "repo:write"}},
		{"lease bounds exp", func(r *IssueRequest) { r.ExpiresAt = mintT0.Add(90*time.Second + 500*time.Millisecond) },
			time.Date(2030, 1, 2, 3, 5, 35, 0, time.UTC), []string{"repo:read", "repo:write"}},
		{"no lease expiry", func(r *IssueRequest) { r.ExpiresAt = time.Time{} },
			time.Date(2030, 1, 2, 3, 14, 5, 0, time.UTC), []string{"repo:read", "repo:write"}},
		{"requested sub-scope", func(r *IssueRequest) { r.Scope = []string{"repo:read"} },
			time.Date(2030, 1, 2, 3, 14, 5, 0, time.UTC), []string{"repo:read"}},
	}
	for _, alg := range mintAlgs {
		for _, tc := range tests {
			t.Run(alg+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				f := newMintFixture(t, alg)
				req := mintRequest("github")
				if tc.req != nil {
					tc.req(&req)
				}
				cred, tok := f.issue(t, req)
				claims, err := f.v.Verify(tok)
				require.NoError(t, err)

				assert.Equal(t, cred.ID, claims.ID)
				id, err := base64.RawURLEncoding.Strict().DecodeString(claims.ID)
				require.NoError(t, err)
				assert.Len(t, id, 16, "jti is 128 bits")
				assert.Equal(t, mintIssuer, claims.Issuer)
				assert.Equal(t, "task-1", claims.Task)
				assert.Equal(t, "agent-7", claims.Agent)
				assert.Equal(t, "agent-7", claims.Subject)
				assert.Equal(t, []string{mintAudience}, claims.Audience)
				assert.Equal(t, tc.wantScope, claims.Scope)
				assert.Equal(t, tc.wantExp, claims.ExpiresAt)
				assert.True(t, cred.ExpiresAt.Equal(claims.ExpiresAt), "credential expiry %v, token %v", cred.ExpiresAt, claims.ExpiresAt)
				assert.Equal(t, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), claims.IssuedAt)
				assert.Equal(t, claims.IssuedAt, claims.NotBefore)
			})
		}
	}
}

func TestMintStandaloneVerifier(t *testing.T) {
	t.Parallel()
	for _, alg := range mintAlgs {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			f := newMintFixture(t, alg)
			_, tok := f.issue(t, mintRequest("github"))
			key := mintVerifyKey(alg)
			v, err := NewVerifier(key, WithExpectedIssuer(mintIssuer), WithExpectedAudience(mintAudience),
				WithClock(f.clock.Now), WithRevocations(f.m.Revocations()))
			require.NoError(t, err)
			claims, err := v.Verify(tok)
			require.NoError(t, err)
			assert.Equal(t, "task-1", claims.Task)

			// Without a revocation list nothing is revoked.
			noList, err := NewVerifier(key, WithExpectedIssuer(mintIssuer), WithExpectedAudience(mintAudience),
				WithClock(f.clock.Now))
			require.NoError(t, err)
			cred, tok2 := f.issue(t, mintRequest("github"))
			require.NoError(t, f.m.Revoke(context.Background(), cred))
			_, err = v.Verify(tok2)
			require.ErrorIs(t, err, errTokenRevoked)
			_, err = noList.Verify(tok2)
			require.NoError(t, err)
		})
	}
}

// mintSwapHeader returns tok with its header replaced by header (JSON).
func mintSwapHeader(tok, header string) string {
	parts := strings.SplitN(tok, ".", 3)
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + parts[1] + "." + parts[2]
}

// mintFlipPaddingBits changes the unused low bits of the last base64
// character of tok, which a non-strict decoder ignores.
func mintFlipPaddingBits(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[last^1])
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	type kit struct {
		f   *mintFixture
		tok string // a valid token for github
	}
	tests := []struct {
		name string
		algs []string // nil: all
		tok  func(t *testing.T, k kit) string
		v    func(t *testing.T, k kit) *Verifier // nil: k.f.v
		want error
	}{
		{name: "empty", tok: func(*testing.T, kit) string { return "" }, want: errTokenMalformed},
		{name: "one segment", tok: func(*testing.T, kit) string { return "not-a-token" }, want: errTokenMalformed},
		{name: "two segments", tok: func(_ *testing.T, k kit) string { return k.tok[:strings.LastIndexByte(k.tok, '.')] }, want: errTokenMalformed},
		{name: "four segments", tok: func(_ *testing.T, k kit) string { return k.tok + ".e30" }, want: errTokenMalformed},
		{name: "only dots", tok: func(*testing.T, kit) string { return ".." }, want: errTokenMalformed},
		{name: "spaces", tok: func(*testing.T, kit) string { return "a b.c d.e f" }, want: errTokenMalformed},
		{name: "base64 garbage", tok: func(*testing.T, kit) string { return "eyJ!!!.e30.sig" }, want: errTokenMalformed},
		{name: "padded base64", tok: func(_ *testing.T, k kit) string { return k.tok + "==" }, want: errTokenMalformed},
		{name: "header not JSON", tok: func(*testing.T, kit) string { return "bm90IGpzb24.e30.AAAA" }, want: errTokenMalformed},
		{name: "payload not JSON", tok: func(_ *testing.T, k kit) string {
			p := strings.Split(k.tok, ".")
			return p[0] + ".bm90IGpzb24." + p[2]
		}, want: errTokenMalformed},
		{name: "wrong claim type", tok: func(_ *testing.T, k kit) string {
			p := strings.Split(k.tok, ".")
			return p[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":"soon"}`)) + "." + p[2]
		}, want: errTokenMalformed},
		{name: "newline in signature", tok: func(_ *testing.T, k kit) string { return k.tok[:len(k.tok)-4] + "\n" + k.tok[len(k.tok)-4:] }, want: errTokenMalformed},
		{name: "non-zero base64 padding bits", tok: func(_ *testing.T, k kit) string { return mintFlipPaddingBits(k.tok) }, want: errTokenMalformed},
		{name: "non-ASCII", tok: func(*testing.T, kit) string { return "é.é.é" }, want: errTokenMalformed},
		{name: "longer than 8 KiB", tok: func(_ *testing.T, k kit) string { return k.tok + strings.Repeat("A", maxTokenLen) }, want: errTokenTooLong},

		{name: "alg none", tok: func(_ *testing.T, k kit) string {
			t := mintSwapHeader(k.tok, `{"alg":"none","typ":"JWT"}`)
			return t[:strings.LastIndexByte(t, '.')+1]
		}, want: errTokenAlg},
		{name: "alg none with signature", tok: func(_ *testing.T, k kit) string { return mintSwapHeader(k.tok, `{"alg":"none","typ":"JWT"}`) }, want: errTokenAlg},
		{name: "alg None", tok: func(_ *testing.T, k kit) string { return mintSwapHeader(k.tok, `{"alg":"None","typ":"JWT"}`) }, want: errTokenAlg},
		{name: "alg missing", tok: func(_ *testing.T, k kit) string { return mintSwapHeader(k.tok, `{"typ":"JWT"}`) }, want: errTokenAlg},
		{name: "alg not a string", tok: func(_ *testing.T, k kit) string { return mintSwapHeader(k.tok, `{"alg":["EdDSA","HS256"]}`) }, want: errTokenAlg},
		{name: "alg unknown", tok: func(_ *testing.T, k kit) string { return mintSwapHeader(k.tok, `{"alg":"XS256","typ":"JWT"}`) }, want: errTokenAlg},
		{name: "alg swapped, signature kept", tok: func(_ *testing.T, k kit) string {
			other := map[string]string{"EdDSA": "HS256", "HS256": "EdDSA"}[k.f.alg]
			return mintSwapHeader(k.tok, `{"alg":"`+other+`","typ":"JWT"}`)
		}, want: errTokenAlg},
		{name: "HS256 with the public key as HMAC secret", algs: []string{"EdDSA"}, tok: func(t *testing.T, k kit) string {
			pub := []byte(k.f.m.keys().verify.(ed25519.PublicKey))
			c := k.f.claims()
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, &c).SignedString(pub)
			require.NoError(t, err)
			return tok
		}, want: errTokenAlg},
		{name: "HS512 with the right key", algs: []string{"HS256"}, tok: func(t *testing.T, k kit) string {
			c := k.f.claims()
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS512, &c).SignedString([]byte(mintHMACText))
			require.NoError(t, err)
			return tok
		}, want: errTokenAlg},

		{name: "signed by another key", tok: func(t *testing.T, k kit) string {
			key := WithHMACKey([]byte(strings.Repeat("x", 32)))
			if k.f.alg == "EdDSA" {
				key = WithEd25519Key(mintEd25519Key(8))
			}
			other, err := NewMinter(mintSpecs(), key, WithIssuer(mintIssuer), WithClock(k.f.clock.Now))
			require.NoError(t, err)
			c, err := other.Issue(context.Background(), mintRequest("github"))
			require.NoError(t, err)
			return string(c.Value())
		}, want: errTokenSignature},
		{name: "tampered payload", tok: func(t *testing.T, k kit) string {
			p := strings.Split(k.tok, ".")
			payload, err := base64.RawURLEncoding.DecodeString(p[1])
			require.NoError(t, err)
			payload = bytes.Replace(payload, []byte(`"task":"task-1"`), []byte(`"task":"task-2"`), 1)
			return p[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + p[2]
		}, want: errTokenSignature},
		{name: "tampered signature", tok: func(t *testing.T, k kit) string {
			p := strings.Split(k.tok, ".")
			sig, err := base64.RawURLEncoding.DecodeString(p[2])
			require.NoError(t, err)
			sig[0] ^= 1
			return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}, want: errTokenSignature},
		{name: "truncated signature", tok: func(t *testing.T, k kit) string {
			p := strings.Split(k.tok, ".")
			sig, err := base64.RawURLEncoding.DecodeString(p[2])
			require.NoError(t, err)
			return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(sig[:len(sig)-1])
		}, want: errTokenSignature},
		{name: "empty signature", tok: func(_ *testing.T, k kit) string { return k.tok[:strings.LastIndexByte(k.tok, '.')+1] }, want: errTokenSignature},

		{name: "wrong issuer", tok: func(t *testing.T, k kit) string {
			c := k.f.claims()
			c.Issuer = "https://evil.test"
			return k.f.sign(t, c)
		}, want: errTokenIssuer},
		{name: "no issuer", tok: func(t *testing.T, k kit) string {
			c := k.f.claims()
			c.Issuer = ""
			return k.f.sign(t, c)
		}, want: errTokenIssuer},
		{name: "audience for another service", tok: func(t *testing.T, k kit) string {
			_, tok := k.f.issue(t, mintRequest("db"))
			return tok
		}, want: errTokenAudience},
		{name: "verifier for another service", v: func(t *testing.T, k kit) *Verifier {
			v, err := k.f.m.Verifier("db.internal.test")
			require.NoError(t, err)
			return v
		}, want: errTokenAudience},
		{name: "no audience", tok: func(t *testing.T, k kit) string {
			c := k.f.claims()
			c.Audience = nil
			return k.f.sign(t, c)
		}, want: errTokenAudience},
		{name: "expired", v: func(t *testing.T, k kit) *Verifier {
			k.f.clock.Advance(10*time.Minute + time.Second)
			return k.f.v
		}, want: errTokenExpired},
		{name: "expired at exactly exp", v: func(t *testing.T, k kit) *Verifier {
			k.f.clock.Set(time.Date(2030, 1, 2, 3, 14, 5, 0, time.UTC))
			return k.f.v
		}, want: errTokenExpired},
		{name: "not yet valid", v: func(t *testing.T, k kit) *Verifier {
			k.f.clock.Advance(-time.Minute)
			return k.f.v
		}, want: errTokenNotYetValid},
		{name: "issued in the future", tok: func(t *testing.T, k kit) string {
			c := k.f.claims()
			c.NotBefore = nil
			c.IssuedAt = jwt.NewNumericDate(k.f.clock.Now().Add(time.Minute))
			return k.f.sign(t, c)
		}, want: errTokenIssuedLater},
		{name: "no jti", tok: func(t *testing.T, k kit) string {
			c := k.f.claims()
			c.ID = ""
			return k.f.sign(t, c)
		}, want: errTokenNoID},
		{name: "no exp", tok: func(t *testing.T, k kit) string {
			c := k.f.claims()
			c.ExpiresAt = nil
			return k.f.sign(t, c)
		}, want: errTokenNoExpiry},
		{name: "no task", tok: func(t *testing.T, k kit) string {
			c := k.f.claims()
			c.Task = ""
			return k.f.sign(t, c)
		}, want: errTokenNoTask},
		{name: "no agent", tok: func(t *testing.T, k kit) string {
			c := k.f.claims()
			c.Agent = ""
			return k.f.sign(t, c)
		}, want: errTokenNoAgent},
		{name: "revoked after Minter.Revoke", tok: func(t *testing.T, k kit) string {
			c, tok := k.f.issue(t, mintRequest("github"))
			_, err := k.f.v.Verify(tok)
			require.NoError(t, err)
			require.NoError(t, k.f.m.Revoke(context.Background(), c))
			return tok
		}, want: errTokenRevoked},
		{name: "zero verifier", v: func(*testing.T, kit) *Verifier { return &Verifier{} }, want: errTokenNotConfigured},
		{name: "nil verifier", v: func(*testing.T, kit) *Verifier { return nil }, want: errTokenNotConfigured},
	}
	for _, alg := range mintAlgs {
		for _, tc := range tests {
			if tc.algs != nil && !containsString(tc.algs, alg) {
				continue
			}
			t.Run(alg+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				f := newMintFixture(t, alg)
				_, valid := f.issue(t, mintRequest("github"))
				k := kit{f: f, tok: valid}
				tok := valid
				if tc.tok != nil {
					tok = tc.tok(t, k)
				}
				v := f.v
				if tc.v != nil {
					v = tc.v(t, k)
				}
				claims, err := v.Verify(tok)
				require.Error(t, err)
				assert.Nil(t, claims)
				assert.ErrorIs(t, err, ErrInvalidToken)
				assert.ErrorIs(t, err, tc.want)
				assert.Equal(t, tc.want.Error(), err.Error())
				assert.True(t, strings.HasPrefix(err.Error(), "secrets: "))
				if tok != "" {
					assert.NotContains(t, err.Error(), tok)
				}
				for _, seg := range strings.Split(tok, ".") {
					if len(seg) >= 8 {
						assert.NotContains(t, err.Error(), seg)
					}
				}
			})
		}
	}
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	for _, alg := range mintAlgs {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			f := newMintFixture(t, alg)
			_, tok := f.issue(t, mintRequest("github"))
			key := mintVerifyKey(alg)
			lenient, err := NewVerifier(key, WithExpectedIssuer(mintIssuer), WithExpectedAudience(mintAudience),
				WithClock(f.clock.Now), WithLeeway(time.Minute), WithRevocations(f.m.Revocations()))
			require.NoError(t, err)

			f.clock.Advance(-30 * time.Second) // before nbf and iat
			_, err = f.v.Verify(tok)
			require.ErrorIs(t, err, errTokenNotYetValid)
			_, err = lenient.Verify(tok)
			require.NoError(t, err)

			f.clock.Set(mintT0.Add(10*time.Minute + 30*time.Second)) // past exp
			_, err = f.v.Verify(tok)
			require.ErrorIs(t, err, errTokenExpired)
			_, err = lenient.Verify(tok)
			require.NoError(t, err)

			f.clock.Set(mintT0.Add(11*time.Minute + time.Second))
			_, err = lenient.Verify(tok)
			require.ErrorIs(t, err, errTokenExpired)
		})
	}
}

// TestRevokedWithinLeeway checks that a revocation outlives the token by
// the largest leeway, so a lenient verifier cannot accept it.
func TestRevokedWithinLeeway(t *testing.T) {
	t.Parallel()
	f := newMintFixture(t, "EdDSA")
	cred, tok := f.issue(t, mintRequest("github"))
	require.NoError(t, f.m.Revoke(context.Background(), cred))
	lenient, err := NewVerifier(WithEd25519PublicKey(mintEd25519Key(7).Public().(ed25519.PublicKey)),
		WithExpectedIssuer(mintIssuer), WithExpectedAudience(mintAudience),
		WithClock(f.clock.Now), WithLeeway(time.Minute), WithRevocations(f.m.Revocations()))
	require.NoError(t, err)
	f.clock.Set(cred.ExpiresAt.Add(59 * time.Second))
	f.m.Revocations().Add("trigger-prune", f.clock.Now().Add(time.Hour))
	_, err = lenient.Verify(tok)
	require.ErrorIs(t, err, errTokenRevoked)
}

func TestRevocationsPrune(t *testing.T) {
	t.Parallel()
	clock := authztest.NewClock(mintT0)
	r := NewRevocations(clock.Now)
	r.Add("a", mintT0.Add(time.Minute))
	r.Add("b", mintT0.Add(5*time.Minute))
	r.Add("forever", time.Time{})
	r.Add("", mintT0.Add(time.Hour))
	require.Equal(t, 3, r.Len())
	assert.True(t, r.Revoked("a"))
	assert.False(t, r.Revoked("c"))
	assert.False(t, r.Revoked(""))

	// Entries stay one minute past expiry.
	clock.Set(mintT0.Add(2 * time.Minute))
	r.Add("c", mintT0.Add(3*time.Minute))
	assert.Equal(t, 4, r.Len())
	assert.True(t, r.Revoked("a"))

	clock.Set(mintT0.Add(2*time.Minute + time.Second))
	r.Add("d", mintT0.Add(10*time.Minute))
	assert.Equal(t, 4, r.Len(), "a dropped, d added")
	assert.False(t, r.Revoked("a"))

	// Re-adding keeps the later expiry.
	r.Add("c", mintT0.Add(20*time.Minute))
	r.Add("c", mintT0.Add(time.Minute))
	clock.Set(mintT0.Add(15 * time.Minute))
	r.Add("e", mintT0.Add(15*time.Minute))
	assert.Equal(t, []bool{false, true, true, false, true}, []bool{r.Revoked("b"), r.Revoked("c"), r.Revoked("forever"), r.Revoked("d"), r.Revoked("e")})
	assert.Equal(t, 3, r.Len())

	clock.Set(mintT0.Add(time.Hour))
	r.Add("f", mintT0.Add(2*time.Hour))
	assert.Equal(t, 2, r.Len(), "only forever and f left")
	assert.True(t, r.Revoked("forever"))
}

func TestRevocationsBounded(t *testing.T) {
	t.Parallel()
	clock := authztest.NewClock(mintT0)
	r := NewRevocations(clock.Now)
	for i := range 10000 {
		r.Add(strconv.Itoa(i), clock.Now().Add(time.Second))
		clock.Advance(time.Second)
	}
	assert.LessOrEqual(t, r.Len(), 62, "entries past expiry plus one minute are dropped")
	r.mu.RLock()
	defer r.mu.RUnlock()
	assert.Equal(t, len(r.ids), len(r.byExp))
}

func TestRevocationsZeroAndNil(t *testing.T) {
	t.Parallel()
	var zero Revocations
	zero.Add("x", time.Now().Add(time.Hour))
	assert.True(t, zero.Revoked("x"))
	assert.Equal(t, 1, zero.Len())

	var nilList *Revocations
	nilList.Add("x", time.Now().Add(time.Hour))
	assert.False(t, nilList.Revoked("x"))
	assert.Equal(t, 0, nilList.Len())

	assert.NotNil(t, NewRevocations(nil).now)
}

func TestRevocationsConcurrent(t *testing.T) {
	t.Parallel()
	clock := authztest.NewClock(mintT0)
	r := NewRevocations(clock.Now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				id := fmt.Sprintf("g%d-%d", g, i)
				if i%2 == 0 {
					r.Add(id, clock.Now().Add(time.Hour))
					assert.True(t, r.Revoked(id))
				} else {
					r.Add(id, clock.Now())
				}
				_ = r.Revoked(fmt.Sprintf("g%d-%d", (g+1)%8, i))
				_ = r.Len()
				clock.Advance(100 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	assert.Less(t, r.Len(), 8*500, "short entries dropped")
	assert.GreaterOrEqual(t, r.Len(), 8*250, "long entries kept")
}

func TestMintConcurrent(t *testing.T) {
	t.Parallel()
	for _, alg := range mintAlgs {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			f := newMintFixture(t, alg)
			var wg sync.WaitGroup
			var ids sync.Map
			for g := range 8 {
				wg.Go(func() {
					for i := range 50 {
						c, err := f.m.Issue(context.Background(), mintRequest("github"))
						if !assert.NoError(t, err) {
							return
						}
						_, dup := ids.LoadOrStore(c.ID, true)
						assert.False(t, dup, "duplicate jti")
						_, err = f.v.Verify(string(c.Value()))
						assert.NoError(t, err)
						if (g+i)%2 == 0 {
							assert.NoError(t, f.m.Revoke(context.Background(), c))
							_, err = f.v.Verify(string(c.Value()))
							assert.ErrorIs(t, err, errTokenRevoked)
						}
					}
				})
			}
			wg.Wait()
			assert.Equal(t, 200, f.m.Revocations().Len())
		})
	}
}

func TestNewMinterValidates(t *testing.T) {
	t.Parallel()
	ed := mintEd25519Key(7)
	mismatched := append(ed25519.PrivateKey(nil), ed...)
	mismatched[40] ^= 1
	iss := WithIssuer(mintIssuer)
	tests := []struct {
		name  string
		specs map[string]TokenSpec
		opts  []MintOption
	}{
		{"no key", mintSpecs(), []MintOption{iss}},
		{"two keys", mintSpecs(), []MintOption{WithEd25519Key(ed), WithHMACKey([]byte(mintHMACText)), iss}},
		{"two Ed25519 keys", mintSpecs(), []MintOption{WithEd25519Key(ed), WithEd25519Key(mintEd25519Key(8)), iss}},
		{"short HMAC key", mintSpecs(), []MintOption{WithHMACKey(make([]byte, 31)), iss}},
		{"nil HMAC key", mintSpecs(), []MintOption{WithHMACKey(nil), iss}},
		{"short Ed25519 key", mintSpecs(), []MintOption{WithEd25519Key(ed[:32]), iss}},
		{"Ed25519 key halves mismatch", mintSpecs(), []MintOption{WithEd25519Key(mismatched), iss}},
		{"empty issuer", mintSpecs(), []MintOption{WithEd25519Key(ed), WithIssuer("")}},
		{"no issuer", mintSpecs(), []MintOption{WithEd25519Key(ed)}},
		{"nil clock", mintSpecs(), []MintOption{WithEd25519Key(ed), iss, WithClock(nil)}},
		{"nil revocations", mintSpecs(), []MintOption{WithEd25519Key(ed), iss, WithRevocations(nil)}},
		{"no specs", nil, []MintOption{WithEd25519Key(ed), iss}},
		{"spec without name", map[string]TokenSpec{"": {Audience: "a", TTL: time.Minute}}, []MintOption{WithEd25519Key(ed), iss}},
		{"spec without audience", map[string]TokenSpec{"x": {TTL: time.Minute}}, []MintOption{WithEd25519Key(ed), iss}},
		{"spec TTL zero", map[string]TokenSpec{"x": {Audience: "a"}}, []MintOption{WithEd25519Key(ed), iss}},
		{"spec TTL negative", map[string]TokenSpec{"x": {Audience: "a", TTL: -time.Minute}}, []MintOption{WithEd25519Key(ed), iss}},
		{"spec TTL under a second", map[string]TokenSpec{"x": {Audience: "a", TTL: 500 * time.Millisecond}}, []MintOption{WithEd25519Key(ed), iss}},
		{"spec scope with space", map[string]TokenSpec{"x": {Audience: "a", TTL: time.Minute, Scope: []string{"a b"}}}, []MintOption{WithEd25519Key(ed), iss}},
		{"spec empty scope", map[string]TokenSpec{"x": {Audience: "a", TTL: time.Minute, Scope: []string{""}}}, []MintOption{WithEd25519Key(ed), iss}},
		{"spec scope with quote", map[string]TokenSpec{"x": {Audience: "a", TTL: time.Minute, Scope: []string{`a"`}}}, []MintOption{WithEd25519Key(ed), iss}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := NewMinter(tc.specs, tc.opts...)
			require.Error(t, err)
			assert.Nil(t, m)
			assert.True(t, strings.HasPrefix(err.Error(), "secrets: "), err.Error())
		})
	}

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		specs := mintSpecs()
		key := mintEd25519Key(7)
		m, err := NewMinter(specs, nil, WithEd25519Key(key), iss, WithRevocations(NewRevocations(nil)))
		require.NoError(t, err)
		specs["github"].Scope[0] = "changed"
		key[0] ^= 1 // the minter holds its own copy
		c, err := m.Issue(context.Background(), mintRequest("github"))
		require.NoError(t, err)
		v, err := m.Verifier(mintAudience)
		require.NoError(t, err)
		claims, err := v.Verify(string(c.Value()))
		require.NoError(t, err)
		assert.Equal(t, []string{"repo:read", "repo:write"}, claims.Scope)
	})
}

func TestNewVerifierValidates(t *testing.T) {
	t.Parallel()
	pub := WithEd25519PublicKey(mintEd25519Key(7).Public().(ed25519.PublicKey))
	iss, aud := WithExpectedIssuer(mintIssuer), WithExpectedAudience(mintAudience)
	tests := []struct {
		name string
		opts []VerifyOption
	}{
		{"no key", []VerifyOption{iss, aud}},
		{"two keys", []VerifyOption{pub, WithHMACVerifyKey([]byte(mintHMACText)), iss, aud}},
		{"short HMAC key", []VerifyOption{WithHMACVerifyKey(make([]byte, 31)), iss, aud}},
		{"short Ed25519 key", []VerifyOption{WithEd25519PublicKey(make([]byte, 31)), iss, aud}},
		{"private key as public key", []VerifyOption{WithEd25519PublicKey(ed25519.PublicKey(mintEd25519Key(7))), iss, aud}},
		{"no issuer", []VerifyOption{pub, aud}},
		{"empty issuer", []VerifyOption{pub, WithExpectedIssuer(""), aud}},
		{"no audience", []VerifyOption{pub, iss}},
		{"empty audience", []VerifyOption{pub, iss, WithExpectedAudience("")}},
		{"leeway over a minute", []VerifyOption{pub, iss, aud, WithLeeway(time.Minute + 1)}},
		{"negative leeway", []VerifyOption{pub, iss, aud, WithLeeway(-time.Second)}},
		{"nil clock", []VerifyOption{pub, iss, aud, WithClock(nil)}},
		{"nil revocation list", []VerifyOption{pub, iss, aud, WithRevocations(nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(tc.opts...)
			require.Error(t, err)
			assert.Nil(t, v)
			assert.True(t, strings.HasPrefix(err.Error(), "secrets: "), err.Error())
		})
	}
	v, err := NewVerifier(nil, pub, iss, aud, WithLeeway(time.Minute))
	require.NoError(t, err)
	assert.NotNil(t, v)
}

func TestMintUnknownSecret(t *testing.T) {
	t.Parallel()
	f := newMintFixture(t, "EdDSA")
	_, err := f.m.Issue(context.Background(), mintRequest("nope"))
	require.ErrorIs(t, err, ErrUnknownSecret)
	assert.Contains(t, err.Error(), `"nope"`)

	s, ok := f.m.Class("github")
	assert.True(t, ok)
	assert.Equal(t, authz.Confidential, s)
	_, ok = f.m.Class("nope")
	assert.False(t, ok)
}

func TestMintIssueErrors(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		req  func(r *IssueRequest)
		is   error
	}{
		{name: "no task", req: func(r *IssueRequest) { r.Task = "" }},
		{name: "no agent", req: func(r *IssueRequest) { r.Agent = "" }},
		{name: "scope not granted", req: func(r *IssueRequest) { r.Scope = []string{"repo:read", "admin"} }},
		{name: "lease already over", req: func(r *IssueRequest) { r.ExpiresAt = mintT0.Add(-time.Second) }},
		{name: "lease ends within the second", req: func(r *IssueRequest) { r.ExpiresAt = mintT0.Add(500 * time.Millisecond) }},
		{name: "token over 8 KiB", req: func(r *IssueRequest) { r.Task = strings.Repeat("t", maxTokenLen) }},
		{name: "cancelled context", ctx: cancelled, is: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newMintFixture(t, "HS256")
			req := mintRequest("github")
			if tc.req != nil {
				tc.req(&req)
			}
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			c, err := f.m.Issue(ctx, req)
			require.Error(t, err)
			assert.Empty(t, c.ID)
			assert.Empty(t, c.Value())
			assert.True(t, strings.HasPrefix(err.Error(), "secrets: "), err.Error())
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
		})
	}
}

func TestMintRevoke(t *testing.T) {
	t.Parallel()
	f := newMintFixture(t, "EdDSA")
	require.Error(t, f.m.Revoke(context.Background(), Credential{}), "no ID")

	// The broker may revoke with a cancelled context when a task ends.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cred, tok := f.issue(t, mintRequest("github"))
	require.NoError(t, f.m.Revoke(cancelled, cred))
	_, err := f.v.Verify(tok)
	require.ErrorIs(t, err, errTokenRevoked)

	// Without an expiry the entry lasts the longest TTL plus the leeway.
	require.NoError(t, f.m.Revoke(context.Background(), Credential{ID: "no-expiry"}))
	assert.True(t, f.m.Revocations().Revoked("no-expiry"))
	f.clock.Advance(time.Hour + time.Minute)
	f.m.Revocations().Add("later", f.clock.Now().Add(time.Hour))
	assert.True(t, f.m.Revocations().Revoked("no-expiry"))
	f.clock.Advance(time.Second)
	f.m.Revocations().Add("later2", f.clock.Now().Add(time.Hour))
	assert.False(t, f.m.Revocations().Revoked("no-expiry"))
}

func TestMintSharedRevocations(t *testing.T) {
	t.Parallel()
	clock := authztest.NewClock(mintT0)
	shared := NewRevocations(clock.Now)
	m, err := NewMinter(mintSpecs(), mintKeyOption("EdDSA"), WithIssuer(mintIssuer), WithClock(clock.Now), WithRevocations(shared))
	require.NoError(t, err)
	require.Same(t, shared, m.Revocations())
	v, err := NewVerifier(WithEd25519PublicKey(mintEd25519Key(7).Public().(ed25519.PublicKey)),
		WithExpectedIssuer(mintIssuer), WithExpectedAudience(mintAudience), WithClock(clock.Now), WithRevocations(shared))
	require.NoError(t, err)
	c, err := m.Issue(context.Background(), mintRequest("github"))
	require.NoError(t, err)
	require.NoError(t, m.Revoke(context.Background(), c))
	_, err = v.Verify(string(c.Value()))
	require.ErrorIs(t, err, errTokenRevoked)
}

func TestMintZeroValues(t *testing.T) {
	t.Parallel()
	for name, m := range map[string]*Minter{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := m.Issue(context.Background(), mintRequest("github"))
			assert.Error(t, err)
			assert.Error(t, m.Revoke(context.Background(), Credential{ID: "x"}))
			_, err = m.Verifier(mintAudience)
			assert.Error(t, err)
			_, ok := m.Class("github")
			assert.False(t, ok)
			assert.Nil(t, m.Revocations())
		})
	}
}

func TestMintNeverPrintsKeys(t *testing.T) {
	t.Parallel()
	for _, alg := range mintAlgs {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			f := newMintFixture(t, alg)
			var key []byte
			var secrets []string
			if alg == "EdDSA" {
				key = mintEd25519Key(7)
			} else {
				key = []byte(mintHMACText)
				secrets = append(secrets, mintHMACText, mintHMACText[:16])
			}
			secrets = append(secrets,
				hex.EncodeToString(key[:16]), strings.ToUpper(hex.EncodeToString(key[:16])),
				base64.StdEncoding.EncodeToString(key[:15]), base64.RawURLEncoding.EncodeToString(key[:15]),
				strings.Trim(fmt.Sprint(key[:16]), "[]"), fmt.Sprintf("%#v", key[:8])[len("[]byte{"):],
				fmt.Sprintf("%q", key[:16]))

			values := map[string]any{
				"minter": f.m, "minter value": *f.m, "verifier": f.v, "verifier value": *f.v,
				"exported field":   struct{ M *Minter }{f.m},
				"unexported value": struct{ m Minter }{*f.m},
				"unexported verif": struct{ v Verifier }{*f.v},
			}
			for name, v := range values {
				var outs []string
				for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v", "%10.3v"} {
					outs = append(outs, fmt.Sprintf(verb, v))
				}
				outs = append(outs, fmt.Sprint(v), fmt.Sprintln(v), fmt.Sprint([]any{v}), fmt.Sprintf("%v", map[string]any{"x": v}))
				if js, err := json.Marshal(v); err == nil {
					outs = append(outs, string(js))
				}
				var jbuf, tbuf bytes.Buffer
				slog.New(slog.NewJSONHandler(&jbuf, nil)).Info("x", "v", v)
				slog.New(slog.NewTextHandler(&tbuf, nil)).Info("x", "v", v)
				outs = append(outs, jbuf.String(), tbuf.String())
				for _, o := range outs {
					for _, s := range secrets {
						assert.NotContains(t, o, s, "%s: %s", name, o)
					}
				}
			}
			for _, s := range []string{fmt.Sprint(f.m), fmt.Sprintf("%#v", *f.v)} {
				assert.Contains(t, s, alg)
				assert.Contains(t, s, mintIssuer)
			}
			assert.Equal(t, "secrets.Minter{alg: "+alg+", issuer: "+mintIssuer+"}", f.m.String())
			assert.Equal(t, "secrets.Verifier{alg: "+alg+", issuer: "+mintIssuer+"}", f.v.String())
		})
	}
}

func BenchmarkMint(b *testing.B) {
	for _, alg := range mintAlgs {
		b.Run(alg, func(b *testing.B) {
			f := newMintFixture(b, alg)
			ctx, req := context.Background(), mintRequest("github")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.m.Issue(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/parallel", func(b *testing.B) {
			f := newMintFixture(b, alg)
			ctx, req := context.Background(), mintRequest("github")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := f.m.Issue(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range mintAlgs {
		f := newMintFixture(b, alg)
		for i := range 1000 { // a realistic revocation list
			f.m.Revocations().Add("revoked-"+strconv.Itoa(i), mintT0.Add(time.Hour))
		}
		_, tok := f.issue(b, mintRequest("github"))
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := f.v.Verify(tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run(alg+"/reject-tampered", func(b *testing.B) {
			bad := tok[:len(tok)-2] + "AA"
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.v.Verify(bad); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// mintRand returns a deterministic reader for token IDs.
func mintRand(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}

// mintVerifyKey is the verification key option of the fixture's key for alg.
func mintVerifyKey(alg string) VerifyOption {
	if alg == "EdDSA" {
		return WithEd25519PublicKey(mintEd25519Key(7).Public().(ed25519.PublicKey))
	}
	return WithHMACVerifyKey([]byte(mintHMACText))
}
