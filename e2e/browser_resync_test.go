package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/apitest"
)

// TestBrowserTicksStopAtGapUntilResync: Bob's page misses one live message
// (the test drops its frame in the page, as a broker outage would). It
// shows the next one, but reports neither delivered nor read beyond the
// gap, so Alice never sees ticks for the message Bob does not have; on
// resync it catches up, shows the missed message and acknowledges all
// (issue 8, defect 1: the UI acknowledged up to the highest seq it held).
func TestBrowserTicksStopAtGapUntilResync(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	bob := b.newPage("bob")
	bob.signUp(n.url(), "bob", "Bob Builder")
	bobID := bob.me()
	alice := apitest.SignUp(t, n.url(), "alice")
	ac := alice.Dial()

	restSend(t, alice, bobID, "one")
	bob.openWith("alice")
	bob.waitBubble("one")

	// The page drops the live frame of "dropped" only.
	eval[bool](bob, `(() => {
		const orig = window.chatd.onFrame.bind(window.chatd);
		window.chatd.onFrame = (f) => { if (f.type === 'message' && f.message && f.message.text === 'dropped') return; orig(f); };
		return true;
	})()`)
	dropped := restSend(t, alice, bobID, "dropped")
	after := restSend(t, alice, bobID, "after gap")
	bob.waitBubble("after gap")
	bob.waitJS("acks flushed", `window.chatd.ackTimer === 0`)
	// Frames of one socket are handled in order: once Alice has the
	// message Bob's socket sends now, every receipt Bob's page sent before
	// it reached her.
	eval[bool](bob, fmt.Sprintf(`window.chatd.socket.send({type: 'send', to: %q, text: 'sync', client_msg_id: 'sync-1'})`, alice.ID))
	ac.Wait(apitest.IsMessage("message", "sync-1"), 10*time.Second)
	if seq := maxReceipt(t, ac, bobID); seq >= dropped.Seq {
		t.Fatalf("Bob's page acknowledged up to seq %d, past the message it never got (seq %d)", seq, dropped.Seq)
	}

	// resync: the page catches up and acknowledges everything.
	eval[bool](bob, `window.chatd.onFrame({type: 'resync'}), true`)
	bob.waitBubble("dropped")
	deadline := time.Now().Add(10 * time.Second)
	for maxReceipt(t, ac, bobID) < after.Seq {
		if time.Now().After(deadline) {
			t.Fatalf("no receipt up to seq %d after the resync's catch-up (got %d)", after.Seq, maxReceipt(t, ac, bobID))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// maxReceipt is the highest seq of the receipts of user on conn.
func maxReceipt(t *testing.T, conn *apitest.Conn, user string) int64 {
	t.Helper()
	top := int64(0)
	for _, e := range conn.Events() {
		if e.Type != "receipt" {
			continue
		}
		var r struct {
			UserID string `json:"user_id"`
			Seq    int64  `json:"seq"`
		}
		if err := json.Unmarshal(e.Raw, &r); err != nil {
			t.Fatalf("receipt %s: %v", e.Raw, err)
		}
		if r.UserID == user && r.Seq > top {
			top = r.Seq
		}
	}
	return top
}
