package redisstore

import (
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
	"github.com/taskguard/taskguard/internal/redistest"
)

// TestConformance runs the authz store conformance suite against Redis:
// one redis-server, a fresh key prefix per subtest, one client and Store
// per replica. Break suspends the server (SIGSTOP): every call hangs
// until the guard's store timeout, as with a hung Redis or a partition
// that drops packets, and Redis keeps its data for when it comes back.
func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	authztest.StoreConformance(t, func(t *testing.T) authztest.StoreBackend {
		prefix := freshPrefix()
		return authztest.StoreBackend{
			Replica: func(t *testing.T) authz.Store {
				c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true,
					DialTimeout: time.Second, DialerRetries: 1})
				s, err := New(c, WithPrefix(prefix), WithHeartbeat(50*time.Millisecond))
				require.NoError(t, err)
				t.Cleanup(func() {
					_ = s.Close()
					_ = c.Close()
				})
				return s
			},
			Break: func(t *testing.T) func() {
				srv.Freeze()
				var once sync.Once
				heal := func() { once.Do(srv.Thaw) }
				t.Cleanup(heal)
				return heal
			},
		}
	})
}
