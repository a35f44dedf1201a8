package redisbackend_test

import (
	"os"
	"testing"

	"github.com/taskguard/taskguard/internal/redistest"
)

// sharedAddr is a redis-server shared by the examples, which get no
// testing.TB. Tests that stop or freeze Redis start their own.
var sharedAddr string

func TestMain(m *testing.M) {
	os.Exit(redistest.Run(m, func(addr string) { sharedAddr = addr }))
}
