package secrets

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mapRevocationStore is a RevocationStore in a map, standing in for a
// shared one (authz/redisstore tests the Redis one).
type mapRevocationStore struct {
	mu    sync.Mutex
	ids   map[string]time.Time
	err   error
	panic bool
}

func (s *mapRevocationStore) RevokeToken(ctx context.Context, id string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.ids == nil {
		s.ids = map[string]time.Time{}
	}
	s.ids[id] = until
	return nil
}

func (s *mapRevocationStore) TokenRevoked(ctx context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.panic {
		panic("boom")
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if s.err != nil {
		return false, s.err
	}
	_, ok := s.ids[id]
	return ok, nil
}

func TestRevocationStoreAcrossProcesses(t *testing.T) {
	t.Parallel()
	for _, alg := range mintAlgs {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			store := &mapRevocationStore{}
			f := newMintFixture(t, alg, WithRevocationStore(store))
			cred, tok := f.issue(t, mintRequest("github"))
			// A verifier in another process: its own (empty) list, the
			// shared store.
			other, err := NewVerifier(mintVerifyKey(alg), WithExpectedIssuer(mintIssuer),
				WithExpectedAudience(mintAudience), WithClock(f.clock.Now), WithRevocationStore(store))
			require.NoError(t, err)
			_, err = other.Verify(tok)
			require.NoError(t, err)

			require.NoError(t, f.m.Revoke(context.Background(), cred))
			assert.Equal(t, cred.ExpiresAt.Add(maxLeeway), store.ids[cred.ID], "kept until expiry plus leeway")
			_, err = other.Verify(tok)
			assert.ErrorIs(t, err, ErrInvalidToken)
			assert.ErrorContains(t, err, "revoked")
			_, err = f.v.Verify(tok) // the minter's own verifier, through the list
			assert.ErrorContains(t, err, "revoked")

			// The minter's Verifier carries the store: a token revoked by
			// another minter sharing it is rejected too.
			cred2, tok2 := f.issue(t, mintRequest("github"))
			require.NoError(t, store.RevokeToken(context.Background(), cred2.ID, time.Time{}))
			_, err = f.v.Verify(tok2)
			assert.ErrorContains(t, err, "revoked")
		})
	}
}

func TestRevocationStoreFailsClosed(t *testing.T) {
	t.Parallel()
	store := &mapRevocationStore{}
	f := newMintFixture(t, "EdDSA", WithRevocationStore(store))
	cred, tok := f.issue(t, mintRequest("github"))

	store.err = errors.New("redis: connection refused")
	_, err := f.v.Verify(tok)
	assert.ErrorIs(t, err, ErrInvalidToken)
	assert.ErrorContains(t, err, "revocation store unavailable")
	assert.NotContains(t, err.Error(), tok)
	// Revoke reports the store's failure, and the in-process list still
	// has the ID.
	err = f.m.Revoke(context.Background(), cred)
	assert.ErrorContains(t, err, "connection refused")
	assert.True(t, f.m.Revocations().Revoked(cred.ID))

	store.err = nil
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, tok2 := f.issue(t, mintRequest("github"))
	_, err = f.v.VerifyContext(ctx, tok2)
	assert.ErrorContains(t, err, "revocation store unavailable", "a done context rejects")
	_, err = f.v.VerifyContext(context.Background(), tok2)
	assert.NoError(t, err)

	store.panic = true
	_, err = f.v.Verify(tok2)
	assert.ErrorContains(t, err, "revocation store unavailable", "a panicking store rejects")
}

func TestRevocationStoreNil(t *testing.T) {
	t.Parallel()
	_, err := NewMinter(mintSpecs(), mintKeyOption("EdDSA"), WithIssuer(mintIssuer), WithRevocationStore(nil))
	assert.ErrorContains(t, err, "nil store")
	_, err = NewVerifier(mintVerifyKey("EdDSA"), WithExpectedIssuer(mintIssuer), WithExpectedAudience(mintAudience),
		WithRevocationStore(nil))
	assert.ErrorContains(t, err, "nil store")
}
