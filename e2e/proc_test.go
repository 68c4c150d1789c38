// Package e2e runs the built chatd binary as real processes: one
// --role=all node restarted on its data directory, the split deployment
// (auth, gateway, two chat replicas over Redis and the MongoDB-wire test
// server) and the web UI in a real Chromium.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chatd-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "chatd")
	build := exec.Command("go", "build", "-o", binary, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build chatd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one chatd process.
type node struct {
	t    testing.TB
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	addr string // host:port it listens on
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

// A node is up once every module started ("chatd ready"); it listens
// earlier, answering 503 while its backends come up.
var listenRe = regexp.MustCompile(`chatd ready"? addr=(\S+)`)

// startNode runs `chatd serve args...` with env added to the environment and
// waits until it listens. addr in args should be 127.0.0.1:0 or a fixed port.
func startNode(t testing.TB, name string, env []string, args ...string) *node {
	t.Helper()
	n := &node{t: t, name: name, args: args, env: env}
	t.Cleanup(func() { n.kill() }) // before start, which may fail the test
	n.start()
	return n
}

func (n *node) start() {
	n.t.Helper()
	n.cmd = exec.Command(binary, append([]string{"serve"}, n.args...)...)
	// Nodes run side by side: each gets its own ops listener port (the
	// default, 127.0.0.1:9090, would collide); n.env may override it.
	n.cmd.Env = append(append(os.Environ(), "CHATD_HTTP_OPS_ADDR=127.0.0.1:0"), n.env...)
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	n.cmd.Stdout = io.Discard
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan struct{})
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			n.log.WriteString(line + "\n")
			n.mu.Unlock()
			if m := listenRe.FindStringSubmatch(line); m != nil {
				select {
				case addrCh <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	select {
	case a := <-addrCh:
		n.addr = a
	case <-n.done:
		n.t.Fatalf("%s exited before listening:\n%s", n.name, n.logs())
	case <-time.After(60 * time.Second):
		n.t.Fatalf("%s did not listen within 60s:\n%s", n.name, n.logs())
	}
}

func (n *node) url() string { return "http://" + n.addr }

func (n *node) logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop() {
	n.t.Helper()
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.t.Fatalf("%s did not stop within 30s after SIGTERM:\n%s", n.name, n.logs())
	}
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		n.t.Fatalf("%s exited with %d after SIGTERM:\n%s", n.name, code, n.logs())
	}
}

// kill sends SIGKILL (a crash) and waits.
func (n *node) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Kill()
	<-n.done
}

// waitReady polls /readyz until 200.
func waitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 30s", base)
}

// A node started on freeAddr's port must get it. A port of the kernel's
// ephemeral range, free when picked and given back, can meanwhile be handed
// to any listener on port 0, such as the node's own ops listener: in a
// fresh-clone CI run the auth node of TestChaos/StoreFreeze logged its ops
// listener on 127.0.0.1:34833 and then "listen on 127.0.0.1:34833
// (http.addr): bind: address already in use". freeAddr's ports come from
// below that range, where no bind to port 0 lands.
func TestFreeAddrOutsideEphemeralRange(t *testing.T) {
	lo, ok := ephemeralLow()
	if !ok {
		t.Skip("no /proc/sys/net/ipv4/ip_local_port_range")
	}
	for range 50 {
		_, p, err := net.SplitHostPort(freeAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		if port, _ := strconv.Atoi(p); port >= lo {
			t.Fatalf("freeAddr gave port %d, inside the ephemeral range from %d", port, lo)
		}
	}
}

// ephemeralLow is the first port of the kernel's range for binds to port 0.
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	lo, err := strconv.Atoi(f[0])
	return lo, err == nil
}
