package testserver_test

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
)

// roundTrip sends one inline command and returns the first reply line.
func roundTrip(t *testing.T, addr, cmd string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestRedisStopStart(t *testing.T) {
	r := testserver.StartRedis(t)
	if !strings.HasPrefix(r.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(r.URL(), "/0") {
		t.Fatalf("URL() = %q", r.URL())
	}
	if got, err := roundTrip(t, r.Addr(), "SET k v"); err != nil || got != "+OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	addr := r.Addr()
	r.Stop()
	if _, err := roundTrip(t, addr, "PING"); err == nil {
		t.Fatal("server still answers after Stop")
	}
	r.Stop() // idempotent
	r.Start()
	if r.Addr() != addr {
		t.Fatalf("restarted on %s, want the same address %s", r.Addr(), addr)
	}
	// Persistence is off: a restarted server is empty.
	if got, err := roundTrip(t, r.Addr(), "EXISTS k"); err != nil || got != ":0" {
		t.Fatalf("EXISTS k after restart = %q, %v; want :0", got, err)
	}
}

func TestRedisParallel(t *testing.T) {
	const n = 4
	addrs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addrs[i] = testserver.StartRedis(t).Addr()
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, a := range addrs {
		if a == "" || seen[a] {
			t.Fatalf("addresses not distinct: %q", addrs)
		}
		seen[a] = true
		if got, err := roundTrip(t, a, "PING"); err != nil || got != "+PONG" {
			t.Fatalf("PING %s = %q, %v", a, got, err)
		}
	}
}
