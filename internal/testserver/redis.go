package testserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Redis is a redis-server process owned by one test.
type Redis struct {
	tb    testing.TB
	bin   string
	dir   string
	port  int
	extra []string // more redis-server arguments (StartRedisWith)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd's process has exited
}

// StartRedis starts a redis-server from PATH on a free 127.0.0.1 port, with
// persistence off, in a temporary directory, and stops it at tb's cleanup.
// It returns once the server answers PING.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	return StartRedisWith(tb)
}

// StartRedisWith is StartRedis with more redis-server arguments, such as
// "--requirepass", "secret" or a --tls-port and its certificates (the
// plain port stays open; a server that requires a password counts as up
// when it answers PING with NOAUTH).
func StartRedisWith(tb testing.TB, args ...string) *Redis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(tb, "redis-server not found in PATH: install it with `apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)")
	}
	r := &Redis{tb: tb, bin: bin, dir: tb.TempDir(), extra: args}
	tb.Cleanup(r.Stop)
	// A free port may be taken by someone else between our probe and the
	// server's bind: try again on another port.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("testserver: pick a port for redis: %v", err)
		}
		r.port = port
		if lastErr = r.start(); lastErr == nil {
			return r
		}
	}
	tb.Fatalf("testserver: start redis-server: %v", lastErr)
	return nil
}

// missing skips tb, or fails it when CI is set.
func missing(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns the server's host:port.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// URL returns a redis:// URL for database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Stop kills the server (as a crash would: clients see their connections
// reset) and waits for it to exit. It does nothing if the server is not
// running.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
}

func (r *Redis) stopLocked() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// Start restarts a stopped server on the same port (empty: persistence is
// off) and waits until it answers PING. It fails the test if the server
// cannot start.
func (r *Redis) Start() {
	r.tb.Helper()
	var err error
	// The port was ours a moment ago; retry briefly in case the kernel
	// has not released it yet.
	for range 20 {
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.tb.Fatalf("testserver: restart redis-server on port %d: %v", r.port, err)
}

func (r *Redis) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return nil
	}
	logPath := filepath.Join(r.dir, "redis.log")
	cmd := exec.Command(r.bin, append([]string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--logfile", logPath,
		"--daemonize", "no",
	}, r.extra...)...)
	cmd.Dir = r.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", r.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited at start (port %d): %s", r.port, tail(logPath))
		default:
		}
		if err := ping(r.Addr()); err == nil {
			r.cmd, r.exited = cmd, exited
			return nil
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d does not answer PING: %w; log: %s", r.port, err, tail(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping sends one PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "(no log)"
		}
		return err.Error()
	}
	b = bytes.TrimSpace(b)
	if len(b) > 1000 {
		b = b[len(b)-1000:]
	}
	return string(b)
}
