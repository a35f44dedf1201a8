package contextguard

import (
	"errors"
	"fmt"
	"time"
)

// ClockOption sets the clock of a [Store] or a [Cache]: it is an [Option]
// and a [CacheOption]. Build it with [WithClock].
type ClockOption struct{ now func() time.Time }

// WithClock sets the clock (default time.Now), which must be safe for
// concurrent use: for a [Store] it stamps entries whose Time is zero, for
// a [Cache] it decides expiry. A nil now is an error (see [NewStore] and
// [NewCache]). The last WithClock wins.
func WithClock(now func() time.Time) ClockOption { return ClockOption{now: now} }

func (o ClockOption) check() error {
	if o.now == nil {
		return errors.New("WithClock: nil clock")
	}
	return nil
}

func (o ClockOption) applyStore(s *Store) error {
	if err := o.check(); err != nil {
		return err
	}
	s.clock = o.now
	return nil
}

func (o ClockOption) applyCache(c *cacheConfig) error {
	if err := o.check(); err != nil {
		return err
	}
	c.clock = o.now
	return nil
}

// MaxEntriesOption bounds the entries per task of a [Store] or a [Cache]:
// it is an [Option] and a [CacheOption]. Build it with [WithMaxEntries].
type MaxEntriesOption struct{ n int }

// WithMaxEntries bounds the entries per task; n must be positive. The last
// WithMaxEntries wins.
//
//   - For a [Store] (default [DefaultMaxEntries]), Add beyond it fails.
//   - For a [Cache] (default [DefaultCacheMaxEntries]), Set beyond it
//     first drops expired entries, then fails.
func WithMaxEntries(n int) MaxEntriesOption { return MaxEntriesOption{n: n} }

func (o MaxEntriesOption) check() error {
	if o.n <= 0 {
		return fmt.Errorf("WithMaxEntries: %d is not positive", o.n)
	}
	return nil
}

func (o MaxEntriesOption) applyStore(s *Store) error {
	if err := o.check(); err != nil {
		return err
	}
	s.maxEntries = o.n
	return nil
}

func (o MaxEntriesOption) applyCache(c *cacheConfig) error {
	if err := o.check(); err != nil {
		return err
	}
	c.maxEntries = o.n
	return nil
}
