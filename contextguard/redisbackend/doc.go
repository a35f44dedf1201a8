// Package redisbackend stores contextguard memory in Redis, so a task's
// conversation memory survives a process restart and is shared by the
// replicas serving the task.
//
// # Use it under Encrypted
//
// Always wrap the backend with [contextguard.Encrypted]:
//
//	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
//	b, err := redisbackend.New(rdb, redisbackend.WithPrefix("myapp:mem:"))
//	if err != nil {
//		return err
//	}
//	store := contextguard.NewStore(
//		contextguard.WithBackend(contextguard.Encrypted(b)),
//		contextguard.WithRedactor(broker))
//
// Redis then only ever holds ciphertext under a per-task AES-256-GCM key
// that exists in the process alone. When the task ends, Encrypted destroys
// the key and asks this backend to wipe: the keys are deleted, but Redis
// cannot overwrite the memory it frees, and replicas, RDB snapshots and
// append-only files may keep copies. Those copies are unreadable once the
// key is gone (crypto-shredding). Without Encrypted, whatever Redis and its
// persistence kept stays readable to anyone with access to them.
//
// Encrypted also checks that Redis returns exactly the history written:
// entries lost with a Redis restart (no persistence, a failover to a
// replica that lagged) make reads fail with [contextguard.ErrTampered]
// instead of returning a silently shorter memory.
//
// The key lives in one process: a task's memory is readable by the process
// that wrote it. Replicas sharing a task must share its key by other means.
//
// # Keys and expiry
//
// A task's entries are a Redis list at prefix + "{" + task ID + "}" (the
// hash tag keeps a task's keys in one Redis Cluster slot) with its byte
// count at that key + ":bytes". Every Append renews their expiry: [WithTTL]
// (default 24 hours) or, when the Append's context carries the task (as
// contextguard's Memory.Add passes it), one minute past the task's deadline
// if that is sooner. The expiry only cleans up after a process that died
// before the task's end; the wipe at task end deletes the keys.
//
// # Bounds and failures
//
// Entries ([WithMaxEntryBytes]), entries per task ([WithMaxEntries]) and
// bytes per task ([WithMaxTaskBytes]) are bounded; the checks and the append
// run as one Lua script, so concurrent appends cannot overshoot. Every Redis
// call is bounded by [WithTimeout] (default 2 seconds) and fails closed:
// an unreachable, stopped or hung Redis makes Add and Entries return an
// error, never an empty or partial memory. The go-redis client must be
// built with ContextTimeoutEnabled: true (New checks), so the timeout
// reaches the network wait.
package redisbackend
