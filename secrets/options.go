package secrets

import (
	"errors"
	"time"
)

// ClockOption sets the clock of a [Broker], a [Minter] or a [Verifier]: it
// is an [Option], a [MintOption] and a [VerifyOption]. Build it with
// [WithClock].
type ClockOption struct{ now func() time.Time }

// WithClock sets the clock (default time.Now), which must be safe for
// concurrent use. A nil now is an error at construction. The last
// WithClock wins.
//
//   - For a [Broker] it is the clock of lease expiry; with it, leases start
//     no timers: expiry is enforced on every use.
//   - For a [Minter] it is the clock tokens are minted by, and also the
//     clock of [Minter.Verifier] and of the minter's default revocation
//     list.
//   - For a [Verifier] it is the clock exp, nbf and iat are checked
//     against.
func WithClock(now func() time.Time) ClockOption { return ClockOption{now: now} }

func (o ClockOption) applyBroker(b *Broker) error {
	if o.now == nil {
		return errors.New("WithClock: nil clock")
	}
	b.clock, b.realClock = o.now, false
	return nil
}

func (o ClockOption) applyMint(c *mintConfig) error {
	if o.now == nil {
		return errors.New("secrets: WithClock: nil clock")
	}
	c.now = o.now
	return nil
}

func (o ClockOption) applyVerify(c *verifyConfig) error {
	if o.now == nil {
		return errors.New("secrets: WithClock: nil clock")
	}
	c.now = o.now
	return nil
}

// RevocationsOption shares a revocation list with a [Minter] or a
// [Verifier]: it is a [MintOption] and a [VerifyOption]. Build it with
// [WithRevocations] or [WithRevocationStore].
type RevocationsOption struct {
	r     *Revocations
	store RevocationStore
	isSet bool // built by WithRevocationStore
}

// WithRevocations shares the revocation list r. A nil r is an error at
// construction. The last WithRevocations wins.
//
//   - A [Minter] adds the tokens it revokes to r, so a [Verifier] in the
//     same process using r (through WithRevocations or [Minter.Verifier])
//     rejects them. The minter's default is a new list on its clock.
//   - A [Verifier] rejects tokens whose ID is on r. Without it no token is
//     treated as revoked.
func WithRevocations(r *Revocations) RevocationsOption { return RevocationsOption{r: r} }

// WithRevocationStore shares the revocation store s across processes. A
// nil s is an error at construction. The last WithRevocationStore wins;
// it combines with [WithRevocations].
//
//   - A [Minter] records every token it revokes in s as well as in its
//     revocation list; [Minter.Revoke] returns the store's error.
//   - A [Verifier] rejects tokens whose ID s reports revoked, and every
//     token while s cannot answer.
func WithRevocationStore(s RevocationStore) RevocationsOption {
	return RevocationsOption{store: s, isSet: true}
}

// resolve returns the list or the store o sets, or why it sets neither.
func (o RevocationsOption) resolve() (*Revocations, RevocationStore, error) {
	switch {
	case o.isSet && o.store == nil:
		return nil, nil, errors.New("secrets: WithRevocationStore: nil store")
	case o.isSet:
		return nil, o.store, nil
	case o.r == nil:
		return nil, nil, errors.New("secrets: WithRevocations: nil revocation list")
	}
	return o.r, nil, nil
}

func (o RevocationsOption) applyMint(c *mintConfig) error {
	revs, store, err := o.resolve()
	if err != nil {
		return err
	}
	if store != nil {
		c.store = store
	} else {
		c.revs = revs
	}
	return nil
}

func (o RevocationsOption) applyVerify(c *verifyConfig) error {
	revs, store, err := o.resolve()
	if err != nil {
		return err
	}
	if store != nil {
		c.store = store
	} else {
		c.revs = revs
	}
	return nil
}
