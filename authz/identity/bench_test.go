package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"github.com/taskguard/taskguard/authz/identity"
)

func BenchmarkVerifySPIFFE(b *testing.B) {
	v, err := identity.NewSPIFFE(spiffeBundle(b), testAudience, identity.WithClaims("email"))
	require.NoError(b, err)
	tok := mint(b, jwt.SigningMethodES256, testKeys(b).ec, "ec1", svidClaims(time.Now()))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.VerifyIdentity(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkVerifyJWKS(b *testing.B) {
	k := testKeys(b)
	for _, bc := range []struct {
		name   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"RS256", jwt.SigningMethodRS256, k.rsa, "rsa"},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, "ed"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := newJWKS(b, identity.WithClaims("email", "client_id"))
			tok := mint(b, bc.method, bc.key, bc.kid, accessClaims())
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.VerifyIdentity(ctx, tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
