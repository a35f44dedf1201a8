package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// do sends one command in RESP and returns the reply flattened to text:
// simple strings and bulk strings as themselves, arrays as their elements
// joined by "," and errors as an error.
func do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "<nil>", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(r); err != nil {
				return "", err
			}
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func TestStartServesWithPersistenceOff(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	host, _, err := net.SplitHostPort(srv.Addr())
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)
	require.NoError(t, Ping(srv.Addr(), time.Second))

	got, err := do(srv.Addr(), "CONFIG", "GET", "save")
	require.NoError(t, err)
	assert.Equal(t, "save,", got, "RDB snapshots must be off")
	got, err = do(srv.Addr(), "CONFIG", "GET", "appendonly")
	require.NoError(t, err)
	assert.Equal(t, "appendonly,no", got)

	_, err = do(srv.Addr(), "SET", "k", "v")
	require.NoError(t, err)
	got, err = do(srv.Addr(), "GET", "k")
	require.NoError(t, err)
	assert.Equal(t, "v", got)
}

func TestStopRestart(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	addr := srv.Addr()
	_, err := do(addr, "SET", "k", "v")
	require.NoError(t, err)

	srv.Stop()
	assert.Error(t, Ping(addr, 200*time.Millisecond), "a stopped server must not answer")
	srv.Stop() // idempotent

	srv.Restart()
	assert.Equal(t, addr, srv.Addr(), "Restart keeps the address")
	require.NoError(t, Ping(addr, time.Second))
	got, err := do(addr, "GET", "k")
	require.NoError(t, err)
	assert.Equal(t, "<nil>", got, "nothing is persisted across a restart")

	srv.Restart() // restarting a running server works too
	require.NoError(t, Ping(addr, time.Second))
}

func TestFreezeThaw(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	srv.Freeze()
	srv.Freeze() // idempotent
	err := Ping(srv.Addr(), 200*time.Millisecond)
	var ne net.Error
	require.ErrorAs(t, err, &ne, "a frozen server accepts but does not answer")
	assert.True(t, ne.Timeout(), "want a timeout, got %v", err)

	srv.Thaw()
	srv.Thaw() // idempotent
	require.NoError(t, Ping(srv.Addr(), time.Second))
}

func TestStopWhileFrozen(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	srv.Freeze()
	srv.Stop()
	assert.Error(t, Ping(srv.Addr(), 200*time.Millisecond))
	srv.Restart()
	require.NoError(t, Ping(srv.Addr(), time.Second))
}

func TestCleanupKillsFrozenServer(t *testing.T) {
	t.Parallel()
	var pid int
	var addr string
	t.Run("inner", func(t *testing.T) {
		srv := Start(t)
		srv.Freeze()
		srv.mu.Lock()
		pid = srv.proc.cmd.Process.Pid
		srv.mu.Unlock()
		addr = srv.Addr()
	})
	if pid == 0 {
		t.Skip("inner test skipped")
	}
	// The process has exited and been reaped: signal 0 finds no process.
	assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "redis-server pid %d still exists after cleanup", pid)
	assert.Error(t, Ping(addr, 200*time.Millisecond))
}

func TestMissingAction(t *testing.T) {
	t.Parallel()
	lookErr := &exec.Error{Name: Binary, Err: exec.ErrNotFound}
	for _, tc := range []struct {
		ci   string
		fail bool
	}{
		{"", false},
		{"false", false},
		{"0", false},
		{"yes", false}, // not a boolean: developers' machines skip
		{"true", true},
		{"TRUE", true},
		{"1", true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Parallel()
			fail, msg := MissingAction(tc.ci, lookErr)
			assert.Equal(t, tc.fail, fail)
			assert.Contains(t, msg, "apt-get install redis-server")
			assert.Contains(t, msg, Binary)
		})
	}
}

// TestStartWithoutRedisServer runs TestHelperStartMissing in a child process
// whose PATH holds no redis-server: it must skip by default and fail, never
// skip, with CI=true.
func TestStartWithoutRedisServer(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, tc := range []struct {
		ci       string
		wantFail bool
	}{
		{"", false},
		{"true", true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(exe, "-test.run=^TestHelperStartMissing$", "-test.v", "-test.count=1")
			cmd.Env = append(withoutEnv(os.Environ(), "PATH", "CI"),
				"PATH="+t.TempDir(), "CI="+tc.ci, "REDISTEST_HELPER_MISSING=1")
			out, err := cmd.CombinedOutput()
			if tc.wantFail {
				var ee *exec.ExitError
				require.ErrorAs(t, err, &ee, "CI=true must fail the test; output:\n%s", out)
				assert.Contains(t, string(out), "--- FAIL: TestHelperStartMissing")
				assert.NotContains(t, string(out), "--- SKIP")
			} else {
				require.NoError(t, err, "output:\n%s", out)
				assert.Contains(t, string(out), "--- SKIP: TestHelperStartMissing")
			}
			assert.Contains(t, string(out), "apt-get install redis-server")
			assert.NotContains(t, string(out), "unreachable")
		})
	}
}

func TestHelperStartMissing(t *testing.T) {
	if os.Getenv("REDISTEST_HELPER_MISSING") != "1" {
		return // only meaningful in the child process of TestStartWithoutRedisServer
	}
	Start(t)
	t.Log("unreachable: Start returned without redis-server")
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

func TestZeroServer(t *testing.T) {
	t.Parallel()
	var s Server
	assert.Equal(t, "127.0.0.1:0", s.Addr())
	s.Stop()
	s.Restart()
	s.Freeze()
	s.Thaw()
}
