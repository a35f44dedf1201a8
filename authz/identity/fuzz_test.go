package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"github.com/taskguard/taskguard/authz/identity"
)

// FuzzVerify feeds arbitrary credentials to both verifiers. Invariants: no
// panic; a refusal wraps ErrCredential; an accepted credential names the
// agent its genuine token names (no mutation forges another agent).
func FuzzVerify(f *testing.F) {
	k := testKeys(f)
	spiffe, err := identity.NewSPIFFE(spiffeBundle(f), testAudience)
	require.NoError(f, err)
	jwks := newJWKS(f)
	now := time.Now()
	f.Add(mint(f, jwt.SigningMethodES256, k.ec, "ec1", svidClaims(now)))
	f.Add(mint(f, jwt.SigningMethodRS256, k.rsa, "rsa", accessClaims()))
	f.Add(mint(f, jwt.SigningMethodEdDSA, k.ed, "ed", accessClaims()))
	f.Add(mintNone(f, "rsa", accessClaims()))
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, cred string) {
		for _, v := range []struct {
			verify func(context.Context, string) (string, error)
			want   string
		}{
			{func(ctx context.Context, c string) (string, error) {
				a, err := spiffe.VerifyIdentity(ctx, c)
				return a.ID, err
			}, testAgent},
			{func(ctx context.Context, c string) (string, error) {
				a, err := jwks.VerifyIdentity(ctx, c)
				return a.ID, err
			}, "agent-7"},
		} {
			id, err := v.verify(context.Background(), cred)
			if err != nil {
				require.ErrorIs(t, err, identity.ErrCredential)
				require.Empty(t, id)
				continue
			}
			require.Equal(t, v.want, id)
		}
	})
}
