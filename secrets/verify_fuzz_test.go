package secrets

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// verifyFuzzKit is FuzzVerify's fixed world: a verifier per algorithm and
// the tokens each must accept. Keys, clock and token IDs are fixed, so
// every process (the fuzzing coordinator and its workers) mints the same
// tokens and the seeds in testdata/fuzz/FuzzVerify stay valid.
type verifyFuzzKit struct {
	verifiers map[string]*Verifier
	valid     map[string]map[string]string // alg → token → jti
	seeds     []string
}

func newVerifyFuzzKit(tb testing.TB) *verifyFuzzKit {
	tb.Helper()
	k := &verifyFuzzKit{verifiers: map[string]*Verifier{}, valid: map[string]map[string]string{}}
	now := func() time.Time { return mintT0 }
	before := func() time.Time { return mintT0.Add(-2 * time.Hour) }
	for i, alg := range mintAlgs {
		ids := mintRand(uint64(i + 1))
		m, err := NewMinter(mintSpecs(), mintKeyOption(alg), WithIssuer(mintIssuer), WithClock(now), withMintIDSource(ids))
		if err != nil {
			tb.Fatal(err)
		}
		v, err := m.Verifier(mintAudience)
		if err != nil {
			tb.Fatal(err)
		}
		k.verifiers[alg] = v
		k.valid[alg] = map[string]string{}
		issue := func(m *Minter, req IssueRequest) Credential {
			c, err := m.Issue(context.Background(), req)
			if err != nil {
				tb.Fatal(err)
			}
			return c
		}
		for _, req := range []IssueRequest{
			mintRequest("github"),
			{Name: "github", Task: "task-2", Agent: "agent-2", Scope: []string{"repo:read"}},
		} {
			c := issue(m, req)
			k.valid[alg][string(c.Value())] = c.ID
			k.seeds = append(k.seeds, string(c.Value()))
		}
		// Rejected: another audience, revoked, expired.
		k.seeds = append(k.seeds, string(issue(m, mintRequest("db")).Value()))
		revoked := issue(m, mintRequest("github"))
		if err := m.Revoke(context.Background(), revoked); err != nil {
			tb.Fatal(err)
		}
		k.seeds = append(k.seeds, string(revoked.Value()))
		old, err := NewMinter(mintSpecs(), mintKeyOption(alg), WithIssuer(mintIssuer), WithClock(before), withMintIDSource(ids))
		if err != nil {
			tb.Fatal(err)
		}
		k.seeds = append(k.seeds, string(issue(old, mintRequest("github")).Value()))
	}
	// Alg confusion: HS256 keyed with the Ed25519 public key.
	pub := mintEd25519Key(7).Public().(ed25519.PublicKey)
	confused, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": mintIssuer, "aud": mintAudience, "exp": mintT0.Add(time.Hour).Unix(), "jti": "x", "task": "t", "agent": "a",
	}).SignedString([]byte(pub))
	if err != nil {
		tb.Fatal(err)
	}
	k.seeds = append(k.seeds, confused)
	return k
}

// verifyFuzzMutations returns malformed variants of tok.
func verifyFuzzMutations(tok string) []string {
	p := strings.Split(tok, ".")
	enc := base64.RawURLEncoding.EncodeToString
	out := []string{
		tok[:len(tok)-1],
		tok[:len(tok)/2],
		tok + ".",
		"." + tok,
		p[0] + ".." + p[1] + "." + p[2],
		p[0] + "." + p[1],
		p[0] + "." + p[1] + ".",
		p[0] + "." + p[1] + "." + p[2] + "=",
		p[0] + "." + p[1] + "." + p[2][:4] + "\n" + p[2][4:],
		mintFlipPaddingBits(tok),
		p[0] + ".!!!" + p[1] + "." + p[2],
		p[0] + "." + p[2] + "." + p[1],
		strings.ToUpper(tok),
		tok + tok,
	}
	for _, h := range []string{
		`{"alg":"none","typ":"JWT"}`, `{"alg":"HS256","typ":"JWT"}`, `{"alg":"EdDSA","typ":"JWT"}`,
		`{"alg":"RS256"}`, `{"alg":"HS512"}`, `{"alg":null}`, `{}`, `[]`, `{"alg":"EdDSA","crit":["x"]}`,
	} {
		out = append(out, enc([]byte(h))+"."+p[1]+"."+p[2], enc([]byte(h))+"."+p[1]+".")
	}
	return out
}

// verifyFuzzMessages is every message Verify may return.
var verifyFuzzMessages = func() map[string]bool {
	m := map[string]bool{}
	for _, e := range []error{errTokenNotConfigured, errTokenTooLong, errTokenMalformed, errTokenAlg,
		errTokenSignature, errTokenIssuer, errTokenAudience, errTokenExpired, errTokenNotYetValid,
		errTokenIssuedLater, errTokenNoID, errTokenNoExpiry, errTokenNoTask, errTokenNoAgent,
		errTokenClaims, errTokenRevoked} {
		m[e.Error()] = true
	}
	return m
}()

func FuzzVerify(f *testing.F) {
	k := newVerifyFuzzKit(f)
	for _, s := range k.seeds {
		f.Add(s)
		for _, m := range verifyFuzzMutations(s) {
			f.Add(m)
		}
	}
	for _, s := range []string{"", ".", "..", "...", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.", "\x00", "é.é.é"} {
		f.Add(s)
	}
	var vocabulary strings.Builder
	for msg := range verifyFuzzMessages {
		vocabulary.WriteString(msg + "\n")
	}
	f.Fuzz(func(t *testing.T, token string) {
		for alg, v := range k.verifiers {
			claims, err := v.Verify(token)
			if err == nil {
				jti, ok := k.valid[alg][token]
				if !ok {
					t.Fatalf("%s verifier accepted a token it never minted: %q", alg, token)
				}
				if claims == nil || claims.ID != jti || claims.Task == "" || claims.Agent == "" {
					t.Fatalf("%s verifier returned wrong claims %+v for a minted token", alg, claims)
				}
				continue
			}
			if claims != nil {
				t.Fatalf("claims with an error: %+v", claims)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error does not wrap ErrInvalidToken: %v", err)
			}
			msg := err.Error()
			if !verifyFuzzMessages[msg] {
				t.Fatalf("error text is not one of the fixed reasons: %q", msg)
			}
			if token != "" && strings.Contains(msg, token) && !strings.Contains(vocabulary.String(), token) {
				t.Fatalf("error contains the token: %q", msg)
			}
			if _, minted := k.valid[alg][token]; minted {
				t.Fatalf("%s verifier rejected a token it minted: %v", alg, err)
			}
		}
	})
}

// TestVerifyFuzzCorpusIsCurrent checks that the valid tokens stored in
// testdata/fuzz/FuzzVerify are the ones the fuzz setup mints, so the
// corpus exercises acceptance and not only rejection.
func TestVerifyFuzzCorpusIsCurrent(t *testing.T) {
	t.Parallel()
	k := newVerifyFuzzKit(t)
	for file, alg := range map[string]string{
		"eddsa-valid": "EdDSA", "eddsa-valid-subscope": "EdDSA",
		"hs256-valid": "HS256", "hs256-valid-subscope": "HS256",
	} {
		b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", file))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		require.Len(t, lines, 2, file)
		require.Equal(t, "go test fuzz v1", lines[0])
		tok, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		require.NoError(t, err, file)
		assert.Contains(t, k.valid[alg], tok, "%s is stale: regenerate it from newVerifyFuzzKit", file)
		_, err = k.verifiers[alg].Verify(tok)
		assert.NoError(t, err, file)
	}
}
