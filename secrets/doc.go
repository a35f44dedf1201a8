// Package secrets hands out secrets to agent tasks as task-bound leases:
// just in time, short-lived, authorized by the guard, revoked when the task
// ends, and never printable.
//
//	b, err := secrets.NewBroker(guard, secrets.Static(map[string]string{"github-token": token}),
//		secrets.WithMaxTTL(5*time.Minute))
//	defer b.Close()
//
//	lease, err := b.Lease(ctx, "github-token", secrets.TTL(time.Minute), secrets.Audience("api.github.com"))
//	err = lease.Use(func(value []byte) error {
//		req.Header.Set("Authorization", "Bearer "+string(value))
//		return nil
//	})
//
// # Leases
//
// [Broker.Lease] takes the task from the context and asks the guard to
// authorize Call{Tool: "secrets.lease", Intent: "secret.read", Destination:
// "secret://NAME", Sensitivity: the secret's class}, so policies decide who
// may lease what, and a task's clearance bounds the classes it can reach.
// A lease lives until the shortest of its TTL, the broker's max TTL and the
// task's deadline; expiry is checked on every [Lease.Use]. When a lease
// dies (expiry, [Lease.Revoke], the end of its task or of a parent task)
// its value is zeroed and the source's Revoke is called; failures of that
// call are logged and returned by [Broker.Flush] and [Broker.Close].
//
// # Sources
//
// A [Source] issues and revokes credentials. [Static] and [Env] keep
// long-lived values inside the broker so only leases go out; [Minter]
// mints short-lived JWTs (EdDSA or HS256) bound to the task, agent,
// audience and scope, and a [Verifier] lets the receiving service check
// them, including the revocations fed by lease revocation. A verifier in
// another process than the minter sees those revocations through a shared
// [RevocationStore] ([WithRevocationStore]; authz/redisstore keeps one in
// Redis), and rejects every token while the store cannot answer.
//
// The Verifier lives here, beside the Minter, so that one [WithClock] and
// one [WithRevocations] configure both. A service that only verifies thus
// links this package and what it imports, cel-go included: 22.7 MB for a
// program that verifies one token, against 4.7 MB with golang-jwt alone.
// Where that matters, note that minted tokens are standard JWTs: verify
// them with any JWT library that pins the algorithm (EdDSA or HS256) and
// the key, requires iss, aud and exp, and asks the [RevocationStore] about
// the jti.
//
// # Never printable
//
// [Lease], [Credential] and [Broker] redact in String, GoString, Format
// (every verb), MarshalJSON and LogValue. Values are held XOR-masked
// behind a pointer, so a Credential or Lease inside another value (an
// unexported field, a slice, a map, where fmt cannot call their methods)
// prints no secret either. [Broker.Redact] replaces every live lease
// value, of any task, and its common encodings (hex, percent-encoding,
// base64 also inside HTTP Basic credentials, JSON escaping) in a text in
// one pass; contextguard runs it on everything it stores. Values of dead
// leases stay redacted while they may still work: long-lived values
// (Static, Env) for good, minted tokens until their expiry plus one minute
// of verifier leeway. A lease with an [Audience] makes the guard deny calls
// of its task that would carry the value, in any of those encodings, to
// anything but a network host of the audience.
package secrets
