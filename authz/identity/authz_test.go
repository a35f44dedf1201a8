package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/identity"
)

// guardWith returns a guard verifying identities with v under a policy
// allowing calls when cond holds.
func guardWith(t *testing.T, v authz.IdentityVerifier, cond string) *authz.Guard {
	t.Helper()
	p, err := authz.ParsePolicy("identity", []byte(`rules: [{name: verified, tools: ["*"], effect: allow, when: '`+cond+`'}]`))
	require.NoError(t, err)
	g, err := authz.New(authz.WithIdentityVerifier(v), authz.WithPolicy(p))
	require.NoError(t, err)
	return g
}

func TestGuardBeginsFromVerifiedIdentity(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	spiffe, err := identity.NewSPIFFE(spiffeBundle(t), testAudience)
	require.NoError(t, err)
	jwks, err := identity.NewJWKS(testJWKS(t), testIssuer, testAudience,
		identity.WithAlgorithms("EdDSA"), identity.WithClaims("client_id"))
	require.NoError(t, err)
	now := time.Now()
	oidc := with(accessClaims(), "exp", now.Add(time.Minute).Unix(), "iat", now.Unix())

	cases := map[string]struct {
		verifier      authz.IdentityVerifier
		cond          string
		token, forged string
		agent         string
	}{
		"SPIFFE": {
			verifier: spiffe,
			cond:     `agent.attrs.trust_domain == "example.org" && agent.id.startsWith("spiffe://example.org/agent/")`,
			token:    mint(t, jwt.SigningMethodES256, k.ec, "ec1", svidClaims(now)),
			forged:   mint(t, jwt.SigningMethodES256, k.ecOther, "ec1", svidClaims(now)),
			agent:    testAgent,
		},
		"JWKS": {
			verifier: jwks,
			cond:     `agent.attrs.iss == "` + testIssuer + `" && agent.attrs.client_id == "researcher"`,
			token:    mint(t, jwt.SigningMethodEdDSA, k.ed, "ed", oidc),
			forged:   mint(t, jwt.SigningMethodEdDSA, k.edOther, "ed", oidc),
			agent:    "agent-7",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := guardWith(t, c.verifier, c.cond)

			ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Credential: c.token, Intents: []string{"read"}})
			require.NoError(t, err)
			defer task.End()
			assert.Equal(t, c.agent, task.Agent().ID)
			assert.Equal(t, authz.Allow, g.Check(ctx, authz.Call{Tool: "docs.read", Intent: "read"}).Effect,
				"the policy reads the verified claims")

			_, _, err = g.Begin(context.Background(), authz.TaskSpec{Credential: c.forged})
			require.ErrorIs(t, err, authz.ErrIdentity)
			assert.NotContains(t, err.Error(), c.forged)

			_, _, err = g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "spiffe://example.org/agent/admin"}, Credential: c.token})
			require.ErrorIs(t, err, authz.ErrIdentity, "the spec may not name another agent than the credential")
		})
	}

	t.Run("a verified identity outside the policy is denied", func(t *testing.T) {
		t.Parallel()
		g := guardWith(t, spiffe, `agent.attrs.trust_domain == "corp.example"`)
		ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Credential: mint(t, jwt.SigningMethodES256, k.ec, "ec1", svidClaims(now))})
		require.NoError(t, err)
		defer task.End()
		assert.Equal(t, authz.Deny, g.Check(ctx, authz.Call{Tool: "docs.read", Intent: "read"}).Effect)
	})
}
