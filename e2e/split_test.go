package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/apitest"
	"github.com/chatd/chatd/internal/testserver"
)

// cluster is the split deployment of architecture.md as real processes:
// Redis, the MongoDB-wire server, one auth, two chat replicas, one gateway.
type cluster struct {
	redis   *testserver.Redis
	auth    *node
	chats   []*node
	gateway *node
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	return startClusterWith(t, nil, nil)
}

// startClusterWith is startCluster with extra environment for the auth and
// chat nodes (replicas) and for the gateway (edge).
func startClusterWith(t *testing.T, replicas, edge []string) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("split deployment: skipped with -short")
	}
	r := testserver.StartRedis(t)
	m := testserver.StartMongo(t)
	backends := append([]string{
		"CHATD_STORE_BACKEND=mongo",
		"CHATD_STORE_MONGO_URI=" + m.URI(),
		"CHATD_STORE_MONGO_DATABASE=" + m.Database(),
		"CHATD_PUBSUB_BACKEND=redis",
		"CHATD_PUBSUB_REDIS_URL=" + r.URL(),
		"CHATD_PUBSUB_PRESENCE_TTL=3s",
	}, lowArgon...)
	backends = append(backends, replicas...)
	c := &cluster{redis: r}
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	c.auth = startNode(t, "auth", append(backends, "CHATD_AUTH_KEY_FILE="+keyFile, "CHATD_DATA_DIR="+t.TempDir()),
		"--role=auth", "--http-addr=127.0.0.1:0")
	jwks := "CHATD_KEYS_JWKS_URL=" + c.auth.url() + "/auth/jwks"
	var ups []string
	for i := range 2 {
		n := startNode(t, fmt.Sprintf("chat%d", i+1), append(backends, jwks, "CHATD_CHAT_OFFLINE_GRACE=500ms"),
			"--role=chat", "--http-addr=127.0.0.1:0", fmt.Sprintf("--node-id=chat%d", i+1))
		c.chats = append(c.chats, n)
		ups = append(ups, n.url())
	}
	c.gateway = startNode(t, "gateway", append([]string{jwks,
		"CHATD_GATEWAY_AUTH_UPSTREAMS=" + c.auth.url(),
		"CHATD_GATEWAY_CHAT_UPSTREAMS=" + strings.Join(ups, ","),
		"CHATD_GATEWAY_HEALTH_INTERVAL=300ms",
	}, edge...), "--role=gateway", "--http-addr=127.0.0.1:0")
	for _, n := range append([]*node{c.auth, c.gateway}, c.chats...) {
		waitReady(t, n.url())
	}
	return c
}

// dialOn opens connections for u through the gateway until one lands on
// node (by hello.node); the others stay open, as a user's other tabs would.
func dialOn(t *testing.T, u *apitest.User, node string) *apitest.Conn {
	t.Helper()
	for range 8 {
		c := u.Dial()
		if helloNode(t, c) == node {
			return c
		}
		c.Close()
	}
	t.Fatalf("no connection of %s landed on %s", u.Username, node)
	return nil
}

func helloNode(t *testing.T, c *apitest.Conn) string {
	var h struct {
		Node string `json:"node"`
	}
	e := c.Wait(apitest.IsType("hello"), time.Second)
	if err := json.Unmarshal(e.Raw, &h); err != nil || h.Node == "" {
		t.Fatalf("hello without node: %s", e.Raw)
	}
	return h.Node
}

// aliceAndBob signs up two users through the gateway, Alice with a socket
// on chat1 and Bob with one on chat2.
func (c *cluster) aliceAndBob(t *testing.T) (alice, bob *apitest.User, a, b *apitest.Conn) {
	t.Helper()
	alice = apitest.SignUp(t, c.gateway.url(), "alice")
	bob = apitest.SignUp(t, c.gateway.url(), "bob")
	return alice, bob, dialOn(t, alice, "chat1"), dialOn(t, bob, "chat2")
}

func TestSplitDeploymentCrossReplica(t *testing.T) {
	c := startCluster(t)
	gw := c.gateway.url()
	alice, bob, a1, b2 := c.aliceAndBob(t)

	// A message crosses replicas both ways.
	a1.Send(map[string]string{"type": "send", "to": bob.ID, "text": "hi from chat1", "client_msg_id": "a1"})
	ack := a1.Wait(apitest.IsMessage("ack", "a1"), 5*time.Second)
	if got := b2.Wait(apitest.IsMessage("message", "a1"), 5*time.Second); got.Message.ID != ack.Message.ID {
		t.Fatalf("delivered %+v, acked %+v", got.Message, ack.Message)
	}
	b2.Send(map[string]string{"type": "send", "to": alice.ID, "text": "hi from chat2", "client_msg_id": "b1"})
	b2.Wait(apitest.IsMessage("ack", "b1"), 5*time.Second)
	a1.Wait(apitest.IsMessage("message", "b1"), 5*time.Second)

	// Receipts, typing and presence cross too.
	b2.Send(map[string]any{"type": "read", "peer": alice.ID, "seq": ack.Message.Seq})
	a1.Wait(func(e apitest.Event) bool {
		return e.Type == "receipt" && strings.Contains(string(e.Raw), `"read"`)
	}, 5*time.Second)
	b2.Send(map[string]string{"type": "typing", "to": alice.ID})
	a1.Wait(apitest.IsType("typing"), 5*time.Second)

	// Alice's other connection, on the other replica, gets her own message.
	a2 := dialOn(t, alice, "chat2")
	a1.Send(map[string]string{"type": "send", "to": bob.ID, "text": "echo to my other tab", "client_msg_id": "a2"})
	a2.Wait(apitest.IsMessage("message", "a2"), 5*time.Second)

	// Presence: Bob going offline is seen by Alice on the other replica.
	carol := apitest.SignUp(t, gw, "carol")
	cc := dialOn(t, carol, "chat1")
	cc.Send(map[string]string{"type": "send", "to": bob.ID, "text": "hi", "client_msg_id": "c1"})
	cc.Wait(apitest.IsMessage("ack", "c1"), 5*time.Second)
	// Bob answers, so Carol and he are contacts (api.md 1.1 Privacy:
	// presence reaches only users who both sent in a conversation).
	b2.Send(map[string]string{"type": "send", "to": carol.ID, "text": "hi carol", "client_msg_id": "b-c1"})
	b2.Wait(apitest.IsMessage("ack", "b-c1"), 5*time.Second)
	b2.Close() // Bob's only connection
	cc.Wait(func(e apitest.Event) bool {
		return e.Type == "presence" && strings.Contains(string(e.Raw), bob.ID) && strings.Contains(string(e.Raw), `"online":false`)
	}, 10*time.Second)

	// A forged token is refused at the gateway and directly at a replica.
	forged := apitest.NewUser(t, gw)
	forged.Token = "eyJhbGciOiJFZERTQSIsImtpZCI6IngifQ.eyJzdWIiOiJ4In0.c2ln"
	if r := forged.Do("GET", "/api/conversations", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("gateway accepted a forged token: %d", r.Status)
	}
	forged.Base = c.chats[0].url()
	if r := forged.Do("GET", "/api/conversations", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("replica accepted a forged token: %d", r.Status)
	}

	// Logout closes the session's sockets on both replicas within 5 s.
	if r := alice.Do("POST", "/auth/logout", nil); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	for _, conn := range []*apitest.Conn{a1, a2} {
		if code := conn.WaitClosed(5 * time.Second); code != 4001 {
			t.Errorf("close code %d after logout, want 4001", code)
		}
	}
}

// TestSplitDeploymentRedisRestart restarts redis-server mid-test with
// Bob's socket left open: sends are still acked and stored, Bob's replica
// sends resync once its broker link is back, live delivery comes back by
// itself, and Bob, following the catch-up rule on resync from its gap-free
// pointer, has every message exactly once (issue 8, defect 1: the test read
// Bob's whole history itself, hiding that nothing told Bob of the gap).
func TestSplitDeploymentRedisRestart(t *testing.T) {
	c := startCluster(t)
	alice, bob, a, b := c.aliceAndBob(t)
	send := func(id string) apitest.Message {
		a.Send(map[string]string{"type": "send", "to": bob.ID, "text": "msg " + id, "client_msg_id": id})
		return a.Wait(apitest.IsMessage("ack", id), 10*time.Second).Message
	}
	var acked []apitest.Message
	acked = append(acked, send("before"))
	b.Wait(apitest.IsMessage("message", "before"), 5*time.Second)

	c.redis.Stop()
	for i := range 5 {
		acked = append(acked, send(fmt.Sprintf("during-%d", i)))
	}
	c.redis.Start()

	// Bob's socket is told that it may have missed live events.
	b.Wait(apitest.IsType("resync"), 30*time.Second)
	// Live delivery comes back by itself (resubscribe after reconnect).
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		id := fmt.Sprintf("after-%d", i)
		acked = append(acked, send(id))
		if _, err := b.TryWait(apitest.IsMessage("message", id), 500*time.Millisecond); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("live delivery did not come back after the Redis restart")
		}
	}
	assertCaughtUp(t, bob, alice.ID, b, acked)
}

// assertCaughtUp is a client following the catch-up rule after a resync:
// from what conn received live it takes the gap-free pointer, pages after=
// it (and only after it), and then holds every acked message exactly once.
func assertCaughtUp(t *testing.T, u *apitest.User, peer string, conn *apitest.Conn, acked []apitest.Message) {
	t.Helper()
	bySeq := map[int64]apitest.Message{}
	for _, e := range conn.Events() {
		if e.Type != "message" {
			continue
		}
		if old, ok := bySeq[e.Message.Seq]; ok && old.ID != e.Message.ID {
			t.Fatalf("seq %d live twice with different messages", e.Message.Seq)
		}
		bySeq[e.Message.Seq] = e.Message
	}
	pointer := int64(0)
	for _, ok := bySeq[pointer+1]; ok; _, ok = bySeq[pointer+1] {
		pointer++
	}
	for after := pointer; ; {
		r := u.Do("GET", fmt.Sprintf("/api/conversations/%s/messages?after=%d&limit=200", peer, after), nil)
		if r.Status != http.StatusOK {
			t.Fatalf("catch-up: %d %s", r.Status, r.Body)
		}
		var page struct {
			Messages []apitest.Message `json:"messages"`
			HasMore  bool              `json:"has_more"`
		}
		r.JSON(t, &page)
		for _, m := range page.Messages {
			if m.Seq <= after {
				t.Fatalf("catch-up page after %d returned seq %d", after, m.Seq)
			}
			if old, ok := bySeq[m.Seq]; ok && old.ID != m.ID {
				t.Fatalf("seq %d: live %s, stored %s", m.Seq, old.ID, m.ID)
			}
			bySeq[m.Seq] = m
			after = m.Seq
		}
		if !page.HasMore || len(page.Messages) == 0 {
			break
		}
	}
	if len(bySeq) != len(acked) {
		t.Fatalf("client holds %d messages, %d were acked", len(bySeq), len(acked))
	}
	for _, m := range acked {
		if got, ok := bySeq[m.Seq]; !ok || got.ID != m.ID {
			t.Fatalf("acked message %s (seq %d) missing or different: %+v", m.ClientMsgID, m.Seq, got)
		}
	}
}

// TestSplitDeploymentReplicaKilled kills a chat replica with SIGKILL: its
// clients reconnect through the gateway to the survivor and, by the
// catch-up rule, have every acked message exactly once.
func TestSplitDeploymentReplicaKilled(t *testing.T) {
	c := startCluster(t)
	alice, bob, a, b := c.aliceAndBob(t)
	var acked []apitest.Message
	for i := range 5 {
		id := fmt.Sprintf("m%d", i)
		a.Send(map[string]string{"type": "send", "to": bob.ID, "text": id, "client_msg_id": id})
		acked = append(acked, a.Wait(apitest.IsMessage("ack", id), 5*time.Second).Message)
	}
	c.chats[1].kill() // Bob's replica
	if code := b.WaitClosed(5 * time.Second); code == 1000 {
		t.Errorf("a killed replica cannot close normally")
	}
	for i := 5; i < 10; i++ {
		id := fmt.Sprintf("m%d", i)
		a.Send(map[string]string{"type": "send", "to": bob.ID, "text": id, "client_msg_id": id})
		acked = append(acked, a.Wait(apitest.IsMessage("ack", id), 5*time.Second).Message)
	}
	// Bob reconnects through the gateway: every new connection lands on the survivor.
	var nb *apitest.Conn
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := bob.TryDial()
		if err == nil {
			nb = conn
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob could not reconnect through the gateway: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := helloNode(t, nb); n != "chat1" {
		t.Fatalf("reconnected to %s, want the survivor chat1", n)
	}
	for range 5 {
		if n := helloNode(t, bob.Dial()); n != "chat1" {
			t.Fatalf("the gateway still routes to the dead replica (%s)", n)
		}
	}
	assertExactlyOnce(t, bob, alice.ID, nb, acked)
}

// assertExactlyOnce applies the catch-up rule for u's conversation with
// peer and checks it holds every acked message exactly once, in seq order,
// merged with what conn received live.
func assertExactlyOnce(t *testing.T, u *apitest.User, peer string, conn *apitest.Conn, acked []apitest.Message) {
	t.Helper()
	bySeq := map[int64]apitest.Message{}
	for _, e := range conn.Events() {
		if e.Type == "message" {
			bySeq[e.Message.Seq] = e.Message
		}
	}
	history := u.History(peer)
	seen := map[string]bool{}
	for i, m := range history {
		if seen[m.ID] {
			t.Fatalf("message %s twice in history", m.ID)
		}
		seen[m.ID] = true
		if i > 0 && m.Seq <= history[i-1].Seq {
			t.Fatalf("history not in seq order at %d", i)
		}
		bySeq[m.Seq] = m
	}
	if len(bySeq) != len(acked) {
		t.Fatalf("client holds %d messages, %d were acked", len(bySeq), len(acked))
	}
	for _, m := range acked {
		if got, ok := bySeq[m.Seq]; !ok || got.ID != m.ID {
			t.Fatalf("acked message %s (seq %d) missing or different: %+v", m.ClientMsgID, m.Seq, got)
		}
	}
}
