//go:build unix

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatd/chatd/internal/apitest"
	"github.com/chatd/chatd/internal/testserver"
)

// The chaos suite (issue 8): one fault per scenario, injected into real
// processes while the load client of chaosclient_test.go sends from many
// pairs, then the checks of chaosResult.check. Each scenario logs one
// machine-readable CHAOS line; docs/reliability.md is the table of them.
//
// Every scenario runs in CI; CHATD_CHAOS_SOAK=1 makes every phase longer.

// phases returns the load before the fault and after it.
func phases() (before, after time.Duration) {
	if os.Getenv("CHATD_CHAOS_SOAK") != "" {
		return 30 * time.Second, 60 * time.Second
	}
	return 3 * time.Second, 5 * time.Second
}

func soak() bool { return os.Getenv("CHATD_CHAOS_SOAK") != "" }

// chaosCluster is the split deployment on fixed ports.
type chaosCluster struct {
	redis   *testserver.Redis
	mongo   *testserver.Mongo
	auth    *node
	chats   []*node
	gateway *node
}

func startChaosCluster(t *testing.T) *chaosCluster {
	t.Helper()
	r := testserver.StartRedis(t)
	m := testserver.StartMongo(t)
	backends := append([]string{
		"CHATD_STORE_BACKEND=mongo",
		"CHATD_STORE_MONGO_URI=" + m.URI(),
		"CHATD_STORE_MONGO_DATABASE=" + m.Database(),
		"CHATD_PUBSUB_BACKEND=redis",
		"CHATD_PUBSUB_REDIS_URL=" + r.URL(),
		// The gateway's X-Forwarded-For names each test client's own
		// loopback address, for the per-address limits.
		"CHATD_HTTP_TRUSTED_PROXIES=127.0.0.1",
	}, lowArgon...)
	c := &chaosCluster{redis: r, mongo: m}
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	c.auth = startNode(t, "auth", append(backends, "CHATD_AUTH_KEY_FILE="+keyFile, "CHATD_DATA_DIR="+t.TempDir()),
		"--role=auth", "--http-addr="+freeAddr(t))
	jwks := "CHATD_KEYS_JWKS_URL=" + c.auth.url() + "/auth/jwks"
	var ups []string
	for i := range 2 {
		n := startNode(t, fmt.Sprintf("chat%d", i+1), append(backends, jwks, "CHATD_CHAT_OFFLINE_GRACE=500ms", "CHATD_DATA_DIR="+t.TempDir()),
			"--role=chat", "--http-addr="+freeAddr(t), fmt.Sprintf("--node-id=chat%d", i+1))
		c.chats = append(c.chats, n)
		ups = append(ups, n.url())
	}
	c.gateway = startNode(t, "gateway", []string{jwks, "CHATD_DATA_DIR=" + t.TempDir(),
		"CHATD_GATEWAY_AUTH_UPSTREAMS=" + c.auth.url(),
		"CHATD_GATEWAY_CHAT_UPSTREAMS=" + strings.Join(ups, ","),
		"CHATD_GATEWAY_HEALTH_INTERVAL=300ms",
	}, "--role=gateway", "--http-addr="+freeAddr(t))
	for _, n := range append([]*node{c.auth, c.gateway}, c.chats...) {
		waitReady(t, n.url())
	}
	return c
}

// startChaosAll is a --role=all node on a fixed port and dataDir.
func startChaosAll(t *testing.T, dataDir string) *node {
	t.Helper()
	return startNode(t, "all", lowArgon,
		"--role=all", "--http-addr="+freeAddr(t), "--data-dir="+dataDir)
}

// signal sends sig to n's process.
func (n *node) signal(sig os.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("signal %s to %s: %v", sig, n.name, err)
	}
}

// restart starts a stopped or killed node again with the same arguments
// (the same port) and waits until it is ready.
func (n *node) restart() {
	n.t.Helper()
	n.start()
	waitReady(n.t, n.url())
}

// runScenario signs up the load, sends for the phase before the fault,
// runs fault (which returns once the fault is removed), sends for the phase
// after it and returns the figures, checked by the caller.
func runScenario(t *testing.T, name, base string, cfg loadConfig, fault func(l *chaosLoad)) *chaosResult {
	t.Helper()
	before, after := phases()
	l := newChaosLoad(t, base, cfg)
	l.startSending()
	time.Sleep(before)
	l.markFault()
	fault(l)
	l.markFaultEnd()
	time.Sleep(after)
	return l.finish(name, 30*time.Second)
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: skipped with -short")
	}
	t.Run("Baseline", chaosBaseline)
	t.Run("ReplicaKill", chaosReplicaKill)
	t.Run("RedisKill", chaosRedisKill)
	t.Run("ReplicaFreeze", chaosReplicaFreeze)
	t.Run("StoreFreeze", chaosStoreFreeze)
	t.Run("AuthKill", chaosAuthKill)
	t.Run("GatewayRestart", chaosGatewayRestart)
	t.Run("RollingRestart", chaosRollingRestart)
	t.Run("AllKill3", chaosAllKill3)
	t.Run("DiskFull", chaosDiskFull)
	t.Run("SlowConsumer", chaosSlowConsumer)
}

// splitLoad is the load on the split deployment: one send per second per
// user, which the FerretDB test server keeps up with on a busy machine.
func splitLoad() loadConfig {
	cfg := defaultLoad()
	cfg.Rate = 1
	return cfg
}

// No fault at all: the split deployment under the same load, the control
// row of the table (a failure here is the rig's or the machine's, not a
// fault's).
func chaosBaseline(t *testing.T) {
	c := startChaosCluster(t)
	res := runScenario(t, "Baseline", c.gateway.url(), splitLoad(), func(*chaosLoad) { time.Sleep(3 * time.Second) })
	res.check(t, expect{noErrors: true})
}

// A chat replica is SIGKILLed and started again: its clients reconnect to
// the other replica and catch up.
func chaosReplicaKill(t *testing.T) {
	c := startChaosCluster(t)
	res := runScenario(t, "ReplicaKill", c.gateway.url(), splitLoad(), func(*chaosLoad) {
		c.chats[1].kill()
		time.Sleep(time.Second)
		c.chats[1].restart()
	})
	res.check(t, expect{})
}

// Redis is killed (kill -9) and started again; no client reconnects, so
// only `resync` can close the gap in live delivery.
func chaosRedisKill(t *testing.T) {
	c := startChaosCluster(t)
	res := runScenario(t, "RedisKill", c.gateway.url(), splitLoad(), func(*chaosLoad) {
		c.redis.Stop()
		time.Sleep(3 * time.Second)
		c.redis.Start()
	})
	res.check(t, expect{})
	if users := 2 * splitLoad().Pairs; res.Resyncs < users {
		t.Errorf("RedisKill: %d resync frames, want one on each of the %d connections", res.Resyncs, users)
	}
}

// A replica is frozen (SIGSTOP) for 15 s, then resumed.
func chaosReplicaFreeze(t *testing.T) {
	c := startChaosCluster(t)
	n := c.chats[1]
	t.Cleanup(func() { _ = n.cmd.Process.Signal(syscall.SIGCONT) })
	res := runScenario(t, "ReplicaFreeze", c.gateway.url(), splitLoad(), func(*chaosLoad) {
		n.signal(syscall.SIGSTOP)
		time.Sleep(15 * time.Second)
		n.signal(syscall.SIGCONT)
	})
	res.check(t, expect{})
}

// The store (the MongoDB-wire server) is frozen for 10 s.
func chaosStoreFreeze(t *testing.T) {
	c := startChaosCluster(t)
	if err := c.mongo.Signal(syscall.Signal(0)); errors.Is(err, testserver.ErrExternalMongo) {
		t.Skip("the store is an external server (CHATD_TEST_MONGO_URI): it cannot be frozen")
	}
	t.Cleanup(func() { _ = c.mongo.Signal(syscall.SIGCONT) })
	res := runScenario(t, "StoreFreeze", c.gateway.url(), splitLoad(), func(*chaosLoad) {
		if err := c.mongo.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		if err := c.mongo.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	})
	res.check(t, expect{})
}

// The auth process is killed: existing sessions keep working (no send
// fails), logins get 503 until it is back.
func chaosAuthKill(t *testing.T) {
	c := startChaosCluster(t)
	login := func() apitest.Response {
		u := apitest.NewUser(t, c.gateway.url())
		u.BindLocal("127.0.3.250")
		return u.Do("POST", "/auth/login", map[string]string{"username": "nobody-here", "password": chaosPassword})
	}
	var during apitest.Response
	res := runScenario(t, "AuthKill", c.gateway.url(), splitLoad(), func(*chaosLoad) {
		c.auth.kill()
		time.Sleep(time.Second)
		during = login()
		time.Sleep(2 * time.Second)
		c.auth.restart()
	})
	res.check(t, expect{noErrors: true})
	if during.Status != http.StatusServiceUnavailable || during.ErrorCode() != "unavailable" {
		t.Errorf("a login while auth is down got %d %s, want 503 unavailable", during.Status, during.Body)
	}
	if r := login(); r.Status != http.StatusUnauthorized {
		t.Errorf("a login with auth back got %d %s, want 401 invalid_credentials", r.Status, r.Body)
	}
}

// The gateway is SIGKILLed and started again on its port: every client
// reconnects through it and catches up.
func chaosGatewayRestart(t *testing.T) {
	c := startChaosCluster(t)
	res := runScenario(t, "GatewayRestart", c.gateway.url(), splitLoad(), func(*chaosLoad) {
		c.gateway.kill()
		time.Sleep(time.Second)
		c.gateway.restart()
	})
	res.check(t, expect{})
}

// Both replicas are restarted with SIGTERM, one after the other, as a
// rolling deploy does: clients see reconnects and no send fails.
func chaosRollingRestart(t *testing.T) {
	c := startChaosCluster(t)
	res := runScenario(t, "RollingRestart", c.gateway.url(), splitLoad(), func(*chaosLoad) {
		for _, n := range c.chats {
			n.stop()
			n.restart()
			time.Sleep(2 * time.Second) // the gateway's health checks take it back
		}
	})
	res.check(t, expect{noErrors: true})
}

// A --role=all node is SIGKILLed three times at a high send rate.
func chaosAllKill3(t *testing.T) {
	n := startChaosAll(t, t.TempDir())
	cfg := defaultLoad()
	cfg.Rate = 8
	kills := 3
	if soak() {
		kills = 10
	}
	res := runScenario(t, "AllKill3", n.url(), cfg, func(*chaosLoad) {
		for i := range kills {
			if i > 0 {
				time.Sleep(time.Second)
			}
			n.kill()
			n.restart()
		}
	})
	res.check(t, expect{})
}

// The data directory of a --role=all node runs out of space for 3 s: sends
// get a clear 503, the node stays up, and it recovers when space returns.
func chaosDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("disk full: cannot mount a small tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s", dir, err, out)
		}
	})
	n := startChaosAll(t, dir)
	cfg := defaultLoad()
	cfg.Pairs = 10
	notReady := false
	res := runScenario(t, "DiskFull", n.url(), cfg, func(*chaosLoad) {
		filler := filepath.Join(dir, "filler")
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 64<<10)
		for range 1 << 12 { // bounded: 256 MiB at most
			if _, err := f.Write(chunk); err != nil {
				break
			}
		}
		_ = f.Close()
		// Full for 3 s, and until /readyz has said not ready (at most 10 s).
		start := time.Now()
		for time.Since(start) < 3*time.Second || (!notReady && time.Since(start) < 10*time.Second) {
			if readyzStatus(n.url()) == http.StatusServiceUnavailable {
				notReady = true
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	})
	select {
	case <-n.done:
		t.Fatalf("the node exited when its disk was full:\n%s", n.logs())
	default:
	}
	res.check(t, expect{})
	if !notReady {
		t.Errorf("DiskFull: /readyz never said 503 while the disk was full")
	}
	deadline := time.Now().Add(30 * time.Second)
	for readyzStatus(n.url()) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Errorf("DiskFull: /readyz still not 200 30 s after the load ended")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("DiskFull: %d ERROR lines logged", strings.Count(n.logs(), "level=ERROR"))
	for kind, k := range res.AttemptErrs {
		if kind == "internal" || strings.HasPrefix(kind, "http_5") {
			t.Errorf("DiskFull: %d attempts failed with %s, want 503 unavailable", k, kind)
		}
	}
}

// One user's socket never reads while messages pour in for it: the server
// drops it with 1013, and every other client still gets every message.
func chaosSlowConsumer(t *testing.T) {
	n := startChaosAll(t, t.TempDir())
	cfg := defaultLoad()
	cfg.Pairs = 10
	var code websocket.StatusCode = -2
	res := runScenario(t, "SlowConsumer", n.url(), cfg, func(*chaosLoad) {
		code = slowConsumer(t, n.url())
	})
	res.check(t, expect{})
	t.Logf("SlowConsumer: the socket that never reads ended with %d", code)
	if code != websocket.StatusTryAgainLater {
		t.Errorf("SlowConsumer: the socket that never reads ended with %d, want 1013", code)
	}
}

// readyzStatus is the status of GET base/readyz, 0 when it does not answer.
func readyzStatus(base string) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// slowConsumer connects a user that reads its hello and nothing more while
// ten senders send it 4 KB messages, then reads what is buffered and
// returns the close code (-1: ended without one; -2: never ended).
func slowConsumer(t *testing.T, base string) websocket.StatusCode {
	victim := apitest.SignUpFrom(t, base, "slowvictim", chaosPassword, "127.0.4.2")
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.4.2")}}
	d.Control = func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}
	hc := &http.Client{Jar: victim.HTTP.Jar, Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {base}}, HTTPClient: hc})
	cancel()
	if err != nil {
		t.Fatalf("slow consumer dial: %v", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	_, _, err = ws.Read(ctx) // hello
	cancel()
	if err != nil {
		t.Fatalf("slow consumer hello: %v", err)
	}
	// Ten senders, 4 KB each, for at most 10 s or 3,000 messages.
	text := strings.Repeat("s", 4000)
	done := make(chan int, 10)
	stop := time.Now().Add(10 * time.Second)
	for i := range 10 {
		s := apitest.SignUpFrom(t, base, fmt.Sprintf("slowsender%d", i), chaosPassword, fmt.Sprintf("127.0.4.%d", 10+i))
		s.HTTP.Timeout = 5 * time.Second
		go func() {
			sent := 0
			for j := 0; j < 300 && time.Now().Before(stop); j++ {
				body := fmt.Sprintf(`{"to":%q,"text":%q,"client_msg_id":"flood-%d"}`, victim.ID, text, j)
				req, _ := http.NewRequest("POST", base+"/api/messages", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Origin", base)
				if resp, err := s.HTTP.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusTooManyRequests {
						time.Sleep(200 * time.Millisecond)
					}
					sent++
				}
			}
			done <- sent
		}()
	}
	total := 0
	for range 10 {
		total += <-done
	}
	t.Logf("SlowConsumer: %d messages of 4 KB sent to the socket that never reads", total)
	// The server has had its chance to give up on the socket; now drain it,
	// for at most 15 s, and see how it ended.
	ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			if ctx.Err() != nil {
				return -2
			}
			return websocket.CloseStatus(err)
		}
	}
}
