package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Binary is the name of the Redis server executable looked up on PATH.
const Binary = "redis-server"

// InstallHint tells a developer how to get redis-server.
const InstallHint = "install it with `sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)"

// readyTimeout bounds how long Start and Restart wait for the first PONG.
const readyTimeout = 15 * time.Second

// Server is a redis-server process owned by one test. Its methods are safe
// for concurrent use; they report problems through the test that started it
// (t.Fatal from the test goroutine). Build it with [Start]; on the zero value
// every method does nothing and Addr returns "127.0.0.1:0".
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	// mu guards the fields below.
	mu     sync.Mutex
	proc   *process // nil while stopped
	frozen bool
}

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed when the process has exited
	err  error         // exit status; read after done is closed
}

// Start starts a redis-server for t and stops it in t.Cleanup. It returns
// once the server answers PING. When redis-server is not installed it skips
// t, or fails it when the environment variable CI is true (see
// [MissingAction]).
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		fail, msg := MissingAction(os.Getenv("CI"), err)
		if fail {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.cleanup)
	if err := s.launch(); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return s
}

// launch starts the server on a free port. A free port can be taken by
// someone else between probing it and redis-server binding it, so it tries
// a few.
func (s *Server) launch() error {
	var err error
	for range 5 {
		if s.port, err = freePort(); err != nil {
			return err
		}
		s.mu.Lock()
		err = s.startLocked()
		s.mu.Unlock()
		if err == nil {
			return nil
		}
	}
	return err
}

// MissingAction decides what [Start] does when redis-server cannot be
// found: fail (true) when ci, the value of the CI environment variable, is
// true in the sense of [strconv.ParseBool], skip (false) otherwise. msg says
// why and how to install redis-server.
func MissingAction(ci string, lookErr error) (fail bool, msg string) {
	msg = fmt.Sprintf("redistest: %s not found (%v); %s", Binary, lookErr, InstallHint)
	if on, _ := strconv.ParseBool(ci); on {
		return true, msg + "; CI=true, so tests that need Redis fail instead of skipping"
	}
	return false, msg
}

// Addr returns the server's "127.0.0.1:port" address. It stays the same
// across Stop and Restart.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Stop kills the server (SIGKILL) and waits until it has exited, simulating
// an outage: clients get connection errors until [Server.Restart]. Stopping
// a stopped server does nothing.
func (s *Server) Stop() {
	if s.t == nil {
		return
	}
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart starts the server again on the same port and waits until it
// answers PING. Nothing was persisted, so it starts empty. A running server
// is stopped first.
func (s *Server) Restart() {
	if s.t == nil {
		return
	}
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.startLocked()
		if err == nil {
			return
		}
		// The port may linger for a moment after the kill.
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: restart on %s: %v", s.Addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Freeze suspends the server with SIGSTOP: connections are still accepted
// by the kernel but no command is answered, as with a hung or overloaded
// server. Freezing a frozen or stopped server does nothing.
func (s *Server) Freeze() {
	if s.t == nil {
		return
	}
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.frozen {
		return
	}
	if err := signalStop(s.proc.cmd.Process); err != nil {
		s.t.Fatalf("redistest: freeze: %v", err)
	}
	s.frozen = true
}

// Thaw resumes a frozen server with SIGCONT; it then answers the commands
// that queued up meanwhile. Thawing a running or stopped server does
// nothing.
func (s *Server) Thaw() {
	if s.t == nil {
		return
	}
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thawLocked()
}

// thawLocked requires mu held.
func (s *Server) thawLocked() {
	if s.proc == nil || !s.frozen {
		return
	}
	if err := signalCont(s.proc.cmd.Process); err != nil {
		s.errorf("redistest: thaw: %v", err)
	}
	s.frozen = false
}

// stopLocked requires mu held.
func (s *Server) stopLocked() {
	if s.proc == nil {
		return
	}
	p := s.proc
	s.thawLocked()
	s.proc = nil
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(readyTimeout):
		s.errorf("redistest: redis-server pid %d did not exit after SIGKILL", p.cmd.Process.Pid)
	}
}

// errorf reports a problem through the test, or on stderr for [Run].
func (s *Server) errorf(format string, args ...any) {
	if s.t != nil {
		s.t.Errorf(format, args...)
		return
	}
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// Run starts one redis-server for a whole test binary, calls setAddr with
// its address, runs m and stops the server, returning the exit code for
// os.Exit. Use it from TestMain when examples, which get no testing.TB,
// need Redis:
//
//	func TestMain(m *testing.M) { os.Exit(redistest.Run(m, func(a string) { addr = a })) }
//
// When redis-server is missing, Run prints why and how to install it and
// returns 0 without running anything (every test would skip), or 1 when the
// environment variable CI is true (see [MissingAction]). Tests that need to
// stop, restart or freeze a server should still [Start] their own.
func Run(m *testing.M, setAddr func(addr string)) int {
	bin, err := exec.LookPath(Binary)
	if err != nil {
		fail, msg := MissingAction(os.Getenv("CI"), err)
		fmt.Fprintln(os.Stderr, msg)
		if fail {
			return 1
		}
		fmt.Fprintln(os.Stderr, "redistest: skipping every test of this package")
		return 0
	}
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		fmt.Fprintf(os.Stderr, "redistest: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	s := &Server{bin: bin, dir: dir}
	if err := s.launch(); err != nil {
		fmt.Fprintf(os.Stderr, "redistest: %v\n", err)
		return 1
	}
	defer s.cleanup()
	setAddr(s.Addr())
	return m.Run()
}

func (s *Server) cleanup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked() // thaws first
}

// startLocked launches redis-server on s.port and waits for PING. It
// requires mu held and no process running.
func (s *Server) startLocked() error {
	out := &lockedBuffer{}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := waitReady(s.Addr(), p); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return err
	}
	s.proc = p
	s.frozen = false
	return nil
}

// waitReady polls addr with PING until it answers PONG, the process exits or
// readyTimeout passes.
func waitReady(addr string, p *process) error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited before answering PING (%v); its output:\n%s", p.err, p.out.String())
		default:
		}
		if lastErr = Ping(addr, time.Second); lastErr == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s not ready after %v: %v; its output:\n%s", addr, readyTimeout, lastErr, p.out.String())
}

// Ping sends PING to the Redis server at addr in the RESP protocol and
// returns nil when it answers +PONG within timeout.
func Ping(addr string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("find a free port: not a TCP address")
	}
	return addr.Port, nil
}

// lockedBuffer collects the server's output for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 { // keep the start, where startup errors are
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
