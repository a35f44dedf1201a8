package authz

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeVerifier accepts "good:<id>" credentials.
var fakeVerifier = IdentityVerifierFunc(func(ctx context.Context, cred string) (Agent, error) {
	switch {
	case strings.HasPrefix(cred, "good:"):
		return Agent{ID: strings.TrimPrefix(cred, "good:"), Attrs: map[string]string{"trust_domain": "example.org"}}, nil
	case cred == "panic":
		panic("verifier bug")
	case cred == "empty":
		return Agent{}, nil
	}
	return Agent{}, errors.New("signature does not verify")
})

func TestBeginVerifiesIdentity(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `rules: [{name: domain, tools: ["*"], effect: allow, when: 'agent.attrs.trust_domain == "example.org" && agent.id == "spiffe://example.org/agent"'}]`,
		WithIdentityVerifier(fakeVerifier))

	ctx, task, err := g.Begin(context.Background(), TaskSpec{Credential: "good:spiffe://example.org/agent"})
	require.NoError(t, err)
	defer task.End()
	assert.Equal(t, "spiffe://example.org/agent", task.Agent().ID)
	assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "t", Intent: "read"}).Effect, "policies read the verified claims")

	_, _, err = g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "spiffe://example.org/agent"}, Credential: "good:spiffe://example.org/agent"})
	require.NoError(t, err, "a spec that agrees with the credential")

	// A sub-task may run under a sub-agent its host names, or verify its own.
	_, sub, err := g.Begin(ctx, TaskSpec{Agent: Agent{ID: "helper"}})
	require.NoError(t, err)
	assert.Equal(t, "helper", sub.Agent().ID)
	_, sub2, err := g.Begin(ctx, TaskSpec{Credential: "good:spiffe://example.org/other"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/other", sub2.Agent().ID)

	refused := map[string]TaskSpec{
		"no credential":        {Agent: Agent{ID: "spiffe://example.org/agent"}},
		"bad credential":       {Credential: "forged-token-value"},
		"agent mismatch":       {Agent: Agent{ID: "spiffe://example.org/admin"}, Credential: "good:spiffe://example.org/agent"},
		"attrs from the spec":  {Agent: Agent{Attrs: map[string]string{"role": "admin"}}, Credential: "good:spiffe://example.org/agent"},
		"panicking verifier":   {Credential: "panic"},
		"verifier without ID":  {Credential: "empty"},
		"oversized credential": {Credential: "good:" + strings.Repeat("x", MaxCredentialSize)},
	}
	for name, spec := range refused {
		_, _, err := g.Begin(context.Background(), spec)
		require.Error(t, err, name)
		assert.ErrorIs(t, err, ErrIdentity, name)
		assert.NotContains(t, err.Error(), "forged-token-value", "errors never carry the credential")
	}
}

func TestCredentialWithoutVerifierRefused(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, allowAll)
	_, _, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Credential: "good:a"})
	require.ErrorIs(t, err, ErrIdentity)
	_, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err, "without a verifier, the agent is taken as written")
	task.End()
	_, err = New(WithIdentityVerifier(nil))
	require.Error(t, err)
}
