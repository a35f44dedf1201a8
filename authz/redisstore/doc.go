// Package redisstore keeps the shared state of taskguard tasks in Redis,
// so that several replicas of a service enforce one policy over one set
// of tasks: an [authz.Store] for [authz.WithStore], built on
// github.com/redis/go-redis/v9.
//
// Each replica creates its own [Store] on a client of the same Redis (or
// Redis Cluster) with the same prefix, and gives it to its guard:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379", ContextTimeoutEnabled: true})
//	store, err := redisstore.New(rdb)
//	if err != nil { ... }
//	defer store.Close()
//	g, err := authz.New(authz.WithPolicy(p), authz.WithStore(store))
//	if err != nil { ... }
//	defer g.Close()
//
// Tasks move between replicas with task tokens ([authz.Task.Token],
// [authz.Guard.Resume]).
//
// # What is shared
//
// A task ended on any replica is ended on all of them (their end hooks
// run: leases revoked, memory wiped); a rate limit of 10/min is 10/min
// across the replicas; MaxCalls budgets and task.calls count every
// replica's calls; a standing approval given on one replica holds on the
// others, while a single-use approval is used by its one call; taint
// observed on one replica decides the next call on every other, at once.
// [Store.RevokeToken] and [Store.TokenRevoked] share revoked token IDs
// for the secrets package (secrets.WithRevocationStore), so a verifier
// in another process rejects a revoked minted token.
//
// # Round trips
//
// [authz.Guard.Check] makes none: it decides on the replica's local
// view, which the store keeps current through Redis pub/sub.
// [authz.Guard.Authorize] makes one: a Lua script, run atomically by
// Redis (EVALSHA, falling back to EVAL after a script flush), checks
// that the task and its ancestors are live and that the taint the
// decision saw is current, takes the rate-limit tokens (GCRA on the
// server's clock), spends the budgets, counts the call and applies the
// approval, all or nothing. A decision made on an outdated taint is made
// again on the new one (one more round trip, only then).
//
// # Keys
//
// All keys start with the prefix ([WithPrefix], default "taskguard:").
// A task's state is one hash, PREFIX{ROOT}:ID, where ROOT is the ID of
// the root of its task tree: the hash tag keeps a tree in one Redis
// Cluster slot, so the script runs on Cluster, while different trees
// spread over the slots. Every key expires at its task's deadline plus a
// margin ([WithMargin]), so Redis never accumulates dead tasks. Changes
// are published on the channel PREFIX + "events".
//
// # Failures
//
// Every call is bounded by its context; [New] therefore requires a
// client with ContextTimeoutEnabled. An unreachable, failing or slow
// Redis makes Authorize deny with [authz.RuleStore] within the guard's
// store timeout ([authz.WithStoreTimeout]); nothing is allowed on an
// error. The subscription pings Redis every heartbeat ([WithHeartbeat])
// and reports itself down after three silent ones, so the guard's Check
// denies once its view is older than [authz.WithStoreStaleness]. When
// Redis is back the store resubscribes and the guard reloads the state
// of its tasks, without a restart.
//
// Redis without persistence forgets tasks when it restarts: their rate
// limits, budgets and ended flags are gone, so the store reports them
// unknown and every call of theirs is denied (new tasks work at once).
// Run Redis with persistence (appendonly yes) if tasks must survive a
// Redis restart.
package redisstore
