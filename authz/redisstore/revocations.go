package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxTokenID bounds the token IDs the store accepts.
const maxTokenID = 1024

// RevokeToken records the token ID id as revoked until until, after which
// Redis drops it: the key PREFIX + "rev:" + id. It implements the secrets
// package's RevocationStore, so a secrets.Minter given the store with
// secrets.WithRevocationStore revokes its tokens for verifiers in every
// process that share the Redis and prefix. A zero until is an error; an
// until in the past records nothing (the token can no longer verify).
// It is one round trip, bounded by ctx.
func (s *Store) RevokeToken(ctx context.Context, id string, until time.Time) error {
	if s.isClosed() {
		return ErrClosed
	}
	if err := checkTokenID(id); err != nil {
		return err
	}
	if until.IsZero() {
		return errors.New("redisstore: revoke token: no expiry")
	}
	if !until.After(time.Now()) {
		return nil
	}
	err := s.c.SetArgs(ctx, s.prefix+"rev:"+id, "1", redis.SetArgs{ExpireAt: until}).Err()
	if err != nil {
		return fmt.Errorf("redisstore: revoke token: %w", err)
	}
	return nil
}

// TokenRevoked reports whether the token ID id was revoked (and not yet
// dropped), for the secrets package's RevocationStore: a secrets.Verifier
// given the store with secrets.WithRevocationStore asks it on every
// Verify and rejects the token when it cannot answer. It is one round
// trip, bounded by ctx.
func (s *Store) TokenRevoked(ctx context.Context, id string) (bool, error) {
	if s.isClosed() {
		return false, ErrClosed
	}
	if err := checkTokenID(id); err != nil {
		return false, err
	}
	n, err := s.c.Exists(ctx, s.prefix+"rev:"+id).Result()
	if err != nil {
		return false, fmt.Errorf("redisstore: token revoked: %w", err)
	}
	return n == 1, nil
}

func checkTokenID(id string) error {
	if id == "" || len(id) > maxTokenID {
		return fmt.Errorf("redisstore: token ID is empty or longer than %d bytes", maxTokenID)
	}
	return nil
}
