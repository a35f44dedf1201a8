// Package redistest runs a real redis-server for tests.
//
// [Start] launches redis-server on a free loopback port with persistence off
// (no RDB snapshots, no append-only file, a temporary working directory),
// waits until it answers PING and stops it when the test ends. The returned
// [*Server] can simulate the faults a Redis-backed component must survive:
// [Server.Stop] kills the server (an outage), [Server.Restart] starts it again
// on the same address (empty, since nothing is persisted), and
// [Server.Freeze] / [Server.Thaw] suspend and resume the process with SIGSTOP
// and SIGCONT (a hung or very slow server: connections are accepted by the
// kernel but never answered).
//
// # Missing redis-server
//
// When redis-server is not on PATH, Start skips the test with a message that
// says how to install it (apt-get install redis-server) — unless the
// environment variable CI is true, in which case the test fails: tests that
// need Redis never pass silently in continuous integration. .ci/run installs
// redis-server and sets CI=true.
//
// # Usage
//
//	func TestStore(t *testing.T) {
//		srv := redistest.Start(t)
//		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
//		defer c.Close()
//		// ...
//		srv.Stop()    // calls now fail
//		srv.Restart() // and succeed again, on an empty server
//	}
//
// Examples get no testing.TB; a package whose examples need Redis starts
// one server for the whole test binary with [Run] from TestMain.
//
// The package speaks RESP directly over a net.Conn to check readiness, so it
// adds no dependency. Freeze and Thaw need a Unix system.
package redistest
