package redisstore

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/internal/redistest"
	"github.com/taskguard/taskguard/secrets"
)

var _ secrets.RevocationStore = (*Store)(nil)

func TestRevokedTokenRejectedInAnotherProcess(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := freshPrefix()
	issuerStore, verifierStore := newStore(t, srv, prefix), newStore(t, srv, prefix)

	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	m, err := secrets.NewMinter(map[string]secrets.TokenSpec{"api": {Audience: "api.test", TTL: time.Minute}},
		secrets.WithEd25519Key(priv), secrets.WithIssuer("https://broker.test"), secrets.WithRevocationStore(issuerStore))
	require.NoError(t, err)
	v, err := secrets.NewVerifier(secrets.WithEd25519PublicKey(pub), secrets.WithExpectedIssuer("https://broker.test"),
		secrets.WithExpectedAudience("api.test"), secrets.WithRevocationStore(verifierStore))
	require.NoError(t, err)

	ctx := tctx(t)
	cred, err := m.Issue(ctx, secrets.IssueRequest{Name: "api", Task: "task_1", Agent: "agent", ExpiresAt: time.Now().Add(time.Minute)})
	require.NoError(t, err)
	tok := string(cred.Value())
	_, err = v.Verify(tok)
	require.NoError(t, err)

	require.NoError(t, m.Revoke(ctx, cred))
	_, err = v.Verify(tok)
	assert.ErrorContains(t, err, "revoked")
	ttl, err := verifierStore.c.PTTL(ctx, prefix+"rev:"+cred.ID).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, time.Minute, "kept past expiry for the leeway")
	assert.LessOrEqual(t, ttl, 2*time.Minute+time.Second)

	// Another token is fine until Redis goes away; then nothing verifies.
	cred2, err := m.Issue(ctx, secrets.IssueRequest{Name: "api", Task: "task_1", Agent: "agent", ExpiresAt: time.Now().Add(time.Minute)})
	require.NoError(t, err)
	tok2 := string(cred2.Value())
	_, err = v.Verify(tok2)
	require.NoError(t, err)
	srv.Stop()
	_, err = v.Verify(tok2)
	assert.ErrorContains(t, err, "revocation store unavailable")
	assert.Error(t, m.Revoke(ctx, cred2))
}

func TestRevokeTokenInput(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv, freshPrefix())
	ctx := tctx(t)
	assert.Error(t, s.RevokeToken(ctx, "", time.Now().Add(time.Minute)))
	assert.Error(t, s.RevokeToken(ctx, "x", time.Time{}))
	require.NoError(t, s.RevokeToken(ctx, "old", time.Now().Add(-time.Second)))
	revoked, err := s.TokenRevoked(ctx, "old")
	require.NoError(t, err)
	assert.False(t, revoked, "a token past its time needs no entry")
	require.NoError(t, s.RevokeToken(ctx, "{weird}", time.Now().Add(time.Minute)))
	revoked, err = s.TokenRevoked(ctx, "{weird}")
	require.NoError(t, err)
	assert.True(t, revoked)
}
