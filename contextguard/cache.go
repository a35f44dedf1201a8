package contextguard

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskguard/taskguard/authz"
)

// CacheOption configures a [Cache]: [WithClock] and [WithMaxEntries] are
// CacheOptions. A nil CacheOption is skipped.
type CacheOption interface{ applyCache(*cacheConfig) error }

type cacheConfig struct {
	clock      func() time.Time
	maxEntries int
}

// errZeroCache is returned by Set on a Cache not built with NewCache.
var errZeroCache = errors.New("contextguard: Cache not built with NewCache")

// DefaultCacheMaxEntries bounds a cache's entries per task unless
// [WithMaxEntries] says otherwise.
const DefaultCacheMaxEntries = 10_000

// Cache is a task-scoped cache: entries are keyed by task, so a cached
// tool result is never served to another task; an entry lives at most
// until its TTL and its task's deadline, and a task's entries are dropped
// when it ends. A Cache is safe for concurrent use. Build it with
// [NewCache]: a zero Cache misses on Get and refuses Set.
type Cache[V any] struct {
	cfg cacheConfig
	err error // the first invalid option: the cache is inert

	mu    sync.Mutex
	tasks map[*authz.Task]map[string]cacheItem[V]
}

type cacheItem[V any] struct {
	v       V
	expires time.Time
}

// NewCache returns an empty cache. An invalid option (a nil clock, a
// non-positive bound) makes the cache inert: Get misses and Set returns
// that error, wrapped.
func NewCache[V any](opts ...CacheOption) *Cache[V] {
	c := &Cache[V]{cfg: cacheConfig{clock: time.Now, maxEntries: DefaultCacheMaxEntries}, tasks: map[*authz.Task]map[string]cacheItem[V]{}}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyCache(&c.cfg); err != nil {
			c.err = fmt.Errorf("contextguard: NewCache: %w", err)
			break
		}
	}
	return c
}

// Get returns the value task t cached under key. Another task's entries,
// expired entries and ended tasks are misses.
func (c *Cache[V]) Get(t *authz.Task, key string) (V, bool) {
	var zero V
	if t == nil || t.Ended() || c.err != nil || c.cfg.clock == nil {
		return zero, false
	}
	now := c.cfg.clock()
	c.mu.Lock()
	defer c.mu.Unlock()
	items := c.tasks[t]
	it, ok := items[key]
	if !ok {
		return zero, false
	}
	if !now.Before(it.expires) {
		delete(items, key)
		return zero, false
	}
	return it.v, true
}

// Set caches v under key for task t for ttl, bounded by the task's
// deadline. It fails with ErrTaskEnded for a nil or ended task.
func (c *Cache[V]) Set(t *authz.Task, key string, v V, ttl time.Duration) error {
	if c.err != nil {
		return c.err
	}
	if c.cfg.clock == nil {
		return errZeroCache
	}
	if t == nil || t.Ended() {
		return ErrTaskEnded
	}
	if ttl <= 0 {
		return fmt.Errorf("contextguard: cache TTL %v is not positive", ttl)
	}
	now := c.cfg.clock()
	exp := now.Add(ttl)
	if d := t.Deadline(); d.Before(exp) {
		exp = d
	}
	c.mu.Lock()
	items, hooked := c.tasks[t]
	if !hooked {
		items = map[string]cacheItem[V]{}
		c.tasks[t] = items
	}
	if _, exists := items[key]; !exists && len(items) >= c.cfg.maxEntries {
		for k, it := range items {
			if !now.Before(it.expires) {
				delete(items, k)
			}
		}
		if len(items) >= c.cfg.maxEntries {
			c.mu.Unlock()
			return errors.New("contextguard: task cache is full")
		}
	}
	items[key] = cacheItem[V]{v: v, expires: exp}
	c.mu.Unlock()
	if !hooked {
		t.OnEnd(func() { c.drop(t) })
	}
	return nil
}

// Delete removes key from task t's entries.
func (c *Cache[V]) Delete(t *authz.Task, key string) {
	c.mu.Lock()
	delete(c.tasks[t], key)
	c.mu.Unlock()
}

func (c *Cache[V]) drop(t *authz.Task) {
	c.mu.Lock()
	delete(c.tasks, t)
	c.mu.Unlock()
}
