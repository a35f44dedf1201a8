//go:build linux

package redistest

import "syscall"

// sysProcAttr kills redis-server when the test process dies without running
// its cleanups (a crash, or go test's timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
