package redisbackend

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Option configures [New]. A nil Option is skipped; an invalid one makes
// New fail. Repeated options: the last one wins.
type Option interface{ apply(*Backend) error }

type optionFunc func(*Backend) error

func (f optionFunc) apply(b *Backend) error { return f(b) }

// WithPrefix sets the prefix of every key (default [DefaultPrefix]); a
// task's entries live at prefix + "{" + taskID + "}" and its byte count at
// that key + ":bytes". Give each application sharing a Redis its own prefix.
// The prefix must be non-empty, at most 128 bytes, without '{', '}' or
// control characters.
func WithPrefix(p string) Option {
	return optionFunc(func(b *Backend) error {
		if p == "" || len(p) > 128 || strings.ContainsAny(p, "{}") || strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return fmt.Errorf("WithPrefix: invalid prefix %q", p)
		}
		b.prefix = p
		return nil
	})
}

// WithTTL sets how long a task's keys live after its last Append (default
// [DefaultTTL]); when the Append's context carries the task, the keys
// expire one minute past the task's deadline if that is sooner. The TTL
// cleans up after processes that died before the task's wipe; it is not
// the wipe. d must be at least one second.
func WithTTL(d time.Duration) Option {
	return optionFunc(func(b *Backend) error {
		if d < time.Second {
			return fmt.Errorf("WithTTL: %v is less than a second", d)
		}
		b.ttl = d
		return nil
	})
}

// WithTimeout bounds every Redis call (default [DefaultTimeout]); a call
// that takes longer fails. It applies on top of the caller's context
// deadline, whichever is sooner. d must be positive.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(b *Backend) error {
		if d <= 0 {
			return fmt.Errorf("WithTimeout: %v is not positive", d)
		}
		b.timeout = d
		return nil
	})
}

// WithMaxEntryBytes bounds the encoded size of one entry (default
// [DefaultMaxEntryBytes]; under [contextguard.Encrypted] the ciphertext is
// about 4/3 of the content). n must be positive.
func WithMaxEntryBytes(n int) Option {
	return optionFunc(func(b *Backend) error {
		if n <= 0 {
			return fmt.Errorf("WithMaxEntryBytes: %d is not positive", n)
		}
		b.maxEntryBytes = n
		return nil
	})
}

// WithMaxTaskBytes bounds the encoded size of all of a task's entries
// (default [DefaultMaxTaskBytes]), which also bounds what Load reads. n
// must be positive.
func WithMaxTaskBytes(n int64) Option {
	return optionFunc(func(b *Backend) error {
		if n <= 0 {
			return fmt.Errorf("WithMaxTaskBytes: %d is not positive", n)
		}
		b.maxTaskBytes = n
		return nil
	})
}

// WithMaxEntries bounds the number of a task's entries (default
// [DefaultMaxEntries], the same as contextguard's). n must be positive.
func WithMaxEntries(n int) Option {
	return optionFunc(func(b *Backend) error {
		if n <= 0 {
			return fmt.Errorf("WithMaxEntries: %d is not positive", n)
		}
		b.maxEntries = n
		return nil
	})
}

// WithClock sets the clock (default time.Now) used to turn a task's
// deadline into a TTL; use the guard's clock. now must be safe for
// concurrent use; nil is an error.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(b *Backend) error {
		if now == nil {
			return errors.New("WithClock: nil clock")
		}
		b.now = now
		return nil
	})
}
