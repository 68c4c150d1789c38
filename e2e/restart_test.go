package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/apitest"
)

// lowArgon keeps signups fast in tests; production uses OWASP's parameters.
// lowArgon is the environment of every test node: cheap password hashing,
// and the per-user send limit (api.md 1.1, 20/s) lifted, because these
// tests resend and burst far faster than a person; the limit itself is
// tested in package chat.
var lowArgon = []string{"CHATD_AUTH_ARGON2_MEMORY_KIB=1024", "CHATD_LOG_LEVEL=info",
	"CHATD_CHAT_SEND_RATE=1000000", "CHATD_CHAT_SEND_BURST=1000000"}

// startAllWithUsers starts a --role=all node on a fresh data directory with
// alice and bob signed up; args start it again on the same directory.
func startAllWithUsers(t *testing.T) (n *node, args []string, alice, bob *apitest.User) {
	t.Helper()
	args = []string{"--role=all", "--http-addr=127.0.0.1:0", "--data-dir=" + t.TempDir()}
	n = startNode(t, "all", lowArgon, args...)
	return n, args, apitest.SignUp(t, n.url(), "alice"), apitest.SignUp(t, n.url(), "bob")
}

// TestRestartKeepsMessagesAndSessions writes messages, stops the node with
// SIGTERM and starts it again on the same data directory: every message,
// the session cookies and the refresh token still work.
func TestRestartKeepsMessagesAndSessions(t *testing.T) {
	n, args, alice, bob := startAllWithUsers(t)
	ac := alice.Dial()
	const total = 60
	var acked []apitest.Message
	for i := range total {
		id := fmt.Sprintf("m%d", i)
		if i%2 == 0 {
			ac.Send(map[string]string{"type": "send", "to": bob.ID, "text": "hello " + id, "client_msg_id": id})
			acked = append(acked, ac.Wait(apitest.IsMessage("ack", id), 10*time.Second).Message)
			continue
		}
		r := bob.Do("POST", "/api/messages", map[string]string{"to": alice.ID, "text": "hello " + id, "client_msg_id": id})
		if r.Status != http.StatusCreated {
			t.Fatalf("REST send: %d %s", r.Status, r.Body)
		}
		var out struct{ Message apitest.Message }
		r.JSON(t, &out)
		acked = append(acked, out.Message)
	}
	n.stop()
	if ac.WaitClosed(5*time.Second) != 1001 {
		t.Errorf("a socket open during SIGTERM must close with 1001")
	}

	// Same data directory, new process (and a new port: cookies are per host, not port).
	n = startNode(t, "all-again", lowArgon, args...)
	alice.Base, bob.Base = n.url(), n.url()
	if r := alice.Do("GET", "/auth/me", nil); r.Status != http.StatusOK {
		t.Fatalf("the session did not survive the restart: %d %s", r.Status, r.Body)
	}
	if r := bob.Do("POST", "/auth/refresh", nil); r.Status != http.StatusOK {
		t.Fatalf("the refresh token did not survive the restart: %d %s", r.Status, r.Body)
	}
	got := alice.History(bob.ID)
	if len(got) != total {
		t.Fatalf("after restart %d messages, want %d", len(got), total)
	}
	for i, m := range got {
		if m.ID != acked[i].ID || m.Seq != acked[i].Seq || m.Text != acked[i].Text {
			t.Fatalf("message %d: got %+v, want %+v", i, m, acked[i])
		}
	}
	// Seqs keep growing after the restart, and the idempotency key is still known.
	ac = alice.Dial()
	ac.Send(map[string]string{"type": "send", "to": bob.ID, "text": "again", "client_msg_id": "m0"})
	if again := ac.Wait(apitest.IsMessage("ack", "m0"), 5*time.Second).Message; again.ID != acked[0].ID {
		t.Fatalf("a resend after restart made a new message: %+v", again)
	}
	ac.Send(map[string]string{"type": "send", "to": bob.ID, "text": "after", "client_msg_id": "after"})
	if m := ac.Wait(apitest.IsMessage("ack", "after"), 5*time.Second).Message; m.Seq <= acked[total-1].Seq {
		t.Fatalf("seq went back after restart: %d <= %d", m.Seq, acked[total-1].Seq)
	}
}

// TestCrashKeepsAckedMessages kills a --role=all node with SIGKILL while
// senders are busy: every message acked before the crash is stored after
// the restart, exactly once, and a resend of any of them is recognised.
func TestCrashKeepsAckedMessages(t *testing.T) {
	n, args, alice, bob := startAllWithUsers(t)
	ac := alice.Dial()
	// A window of sends in flight, as a busy client has.
	const total = 200
	for i := range total {
		id := fmt.Sprintf("m%d", i)
		ac.Send(map[string]string{"type": "send", "to": bob.ID, "text": id, "client_msg_id": id})
	}
	// Crash once some, but likely not all, have been acked.
	ac.Wait(apitest.IsMessage("ack", "m20"), 10*time.Second)
	n.kill()
	ac.WaitClosed(5 * time.Second)
	acked := map[string]apitest.Message{}
	for _, e := range ac.Events() {
		if e.Type == "ack" {
			acked[e.ClientMsgID] = e.Message
		}
	}

	n = startNode(t, "all-again", lowArgon, args...)
	alice.Base, bob.Base = n.url(), n.url()
	stored := map[string]apitest.Message{}
	for _, m := range bob.History(alice.ID) {
		if _, dup := stored[m.ClientMsgID]; dup {
			t.Fatalf("%s stored twice", m.ClientMsgID)
		}
		stored[m.ClientMsgID] = m
	}
	for id, m := range acked {
		if got, ok := stored[id]; !ok || got.ID != m.ID || got.Seq != m.Seq {
			t.Fatalf("acked %s (seq %d) lost in the crash: %+v", id, m.Seq, got)
		}
	}
	t.Logf("%d acked before SIGKILL, %d stored after restart", len(acked), len(stored))
	// The client resends everything it has no ack for, with the same ids:
	// nothing is stored twice and every message ends up stored once.
	ac = alice.Dial()
	for i := range total {
		id := fmt.Sprintf("m%d", i)
		ac.Send(map[string]string{"type": "send", "to": bob.ID, "text": id, "client_msg_id": id})
		m := ac.Wait(apitest.IsMessage("ack", id), 10*time.Second).Message
		if prev, ok := stored[id]; ok && prev.ID != m.ID {
			t.Fatalf("resend of %s made a second message", id)
		}
	}
	if h := bob.History(alice.ID); len(h) != total {
		t.Fatalf("%d messages after resending, want %d", len(h), total)
	}
}
