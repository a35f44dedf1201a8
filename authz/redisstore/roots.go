package redisstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The keys of a task live under the hash tag of its tree's root, but End
// and State name a task by its ID alone. A root task is its own root; for
// a sub-task the store remembers the root in process (every sub-task the
// guard ends or reloads was begun through this store) and, for other
// processes and after a restart, in Redis: PREFIX + "root:" + ID holds
// the root's ID and expires with the task.

// rootEntry is what the store remembers of a sub-task.
type rootEntry struct {
	root string
	exp  time.Time // the task's deadline plus the margin
}

// rootIndex maps sub-task IDs to their roots. It is safe for concurrent
// use; entries past their expiry are swept as it grows.
type rootIndex struct {
	// mu guards m and sweepAt.
	mu      sync.Mutex
	m       map[string]rootEntry
	sweepAt int
}

const minSweep = 1024

func (x *rootIndex) put(id, root string, exp time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = make(map[string]rootEntry)
	}
	x.m[id] = rootEntry{root: root, exp: exp}
	if len(x.m) >= max(x.sweepAt, minSweep) {
		now := time.Now()
		for k, e := range x.m {
			if now.After(e.exp) {
				delete(x.m, k)
			}
		}
		x.sweepAt = 2 * len(x.m)
	}
}

func (x *rootIndex) get(id string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.m[id]
	return e.root, ok
}

func (x *rootIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.m)
}

// rootKey is the Redis key holding the root of sub-task id.
func (s *Store) rootKey(id string) string { return s.prefix + "root:" + id }

// indexRoots records the root of every sub-task of chain (root first), in
// process and in Redis, in one pipelined round trip.
func (s *Store) indexRoots(ctx context.Context, chain []string, exps []time.Time) error {
	if len(chain) < 2 {
		return nil
	}
	root := chain[0]
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := 1; i < len(chain); i++ {
			p.SetArgs(ctx, s.rootKey(chain[i]), root, redis.SetArgs{Mode: "NX", ExpireAt: exps[i]})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := 1; i < len(chain); i++ {
		s.index.put(chain[i], root, exps[i])
	}
	return nil
}

// roots returns the root of each task of ids: from the index, or from
// Redis (one pipelined round trip for all the misses); a task with no
// recorded root is a root itself.
func (s *Store) roots(ctx context.Context, ids []string) ([]string, error) {
	roots := make([]string, len(ids))
	var miss []int
	for i, id := range ids {
		if r, ok := s.index.get(id); ok {
			roots[i] = r
		} else {
			miss = append(miss, i)
		}
	}
	if len(miss) == 0 {
		return roots, nil
	}
	cmds := make([]*redis.StringCmd, len(miss))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, i := range miss {
			cmds[j] = p.Get(ctx, s.rootKey(ids[i]))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for j, i := range miss {
		r, err := cmds[j].Result()
		switch {
		case errors.Is(err, redis.Nil):
			roots[i] = ids[i]
		case err != nil:
			return nil, err
		default:
			roots[i] = r
		}
	}
	return roots, nil
}
