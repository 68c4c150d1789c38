package app

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/apitest"
)

// TestAccountChangesCloseSockets: on --role=all (auth and chat through the
// in-process broker), a password change closes the other sessions' sockets
// with 4001 and keeps the caller's; revoking one session from the list
// closes its socket; deleting the account closes the last ones and leaves
// the peer's history with the messages marked deleted (issue 9, point 8).
func TestAccountChangesCloseSockets(t *testing.T) {
	_, base := startAll(t, t.TempDir())
	phone := apitest.SignUp(t, base, "alice")
	laptop := apitest.Login(t, base, "alice", apitest.Password)
	tablet := apitest.Login(t, base, "alice", apitest.Password)
	bob := apitest.SignUp(t, base, "bob")
	phoneWS, laptopWS, tabletWS, bobWS := phone.Dial(), laptop.Dial(), tablet.Dial(), bob.Dial()

	// The session list shows the three (newest first), one of them current.
	r := phone.Do(http.MethodGet, "/auth/sessions", nil)
	var list struct {
		Sessions []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"sessions"`
	}
	r.JSON(t, &list)
	if r.Status != 200 || len(list.Sessions) != 3 || !list.Sessions[2].Current || list.Sessions[0].Current || list.Sessions[1].Current {
		t.Fatalf("sessions: %d %s", r.Status, r.Body)
	}

	// Revoking the tablet's session from the phone closes the tablet's socket.
	var tabletID string
	r = tablet.Do(http.MethodGet, "/auth/sessions", nil)
	r.JSON(t, &list)
	for _, s := range list.Sessions {
		if s.Current {
			tabletID = s.ID
		}
	}
	if r := phone.Do(http.MethodDelete, "/auth/sessions/"+tabletID, nil); r.Status != 204 {
		t.Fatalf("revoke the tablet: %d %s", r.Status, r.Body)
	}
	if code := tabletWS.WaitClosed(10 * time.Second); code != 4001 {
		t.Fatalf("the tablet's socket closed with %d, want 4001", code)
	}

	// The password change closes the laptop's socket, not the phone's.
	r = phone.Do(http.MethodPost, "/auth/password", map[string]string{
		"current_password": apitest.Password, "new_password": "a-much-better-secret-42",
	})
	if r.Status != 204 {
		t.Fatalf("password change: %d %s", r.Status, r.Body)
	}
	if code := laptopWS.WaitClosed(10 * time.Second); code != 4001 {
		t.Fatalf("the laptop's socket closed with %d, want 4001", code)
	}
	phoneWS.Send(map[string]string{"type": "send", "to": bob.ID, "text": "still here", "client_msg_id": "m1"})
	phoneWS.Wait(apitest.IsType("ack"), 5*time.Second)
	bobWS.Wait(apitest.IsMessage("message", "m1"), 5*time.Second)
	if r := laptop.Do(http.MethodGet, "/api/conversations", nil); r.Status != 401 {
		t.Fatalf("the laptop's token after the change: %d", r.Status)
	}

	// Deleting the account closes the phone's socket; bob keeps the
	// conversation, its message blanked and marked deleted.
	r = phone.Do(http.MethodDelete, "/auth/account", map[string]string{"password": "a-much-better-secret-42"})
	if r.Status != 204 {
		t.Fatalf("delete account: %d %s", r.Status, r.Body)
	}
	if code := phoneWS.WaitClosed(10 * time.Second); code != 4001 {
		t.Fatalf("the phone's socket closed with %d, want 4001", code)
	}
	h := bob.History(phone.ID)
	if len(h) != 1 || !h[0].Deleted || h[0].Text != "" {
		t.Fatalf("bob's history after the deletion: %+v", h)
	}
	r = bob.Do(http.MethodGet, "/api/conversations", nil)
	var convs struct {
		Conversations []struct {
			Peer struct {
				Username    string `json:"username"`
				DisplayName string `json:"display_name"`
			} `json:"peer"`
		} `json:"conversations"`
	}
	if err := json.Unmarshal(r.Body, &convs); err != nil || r.Status != 200 || len(convs.Conversations) != 1 ||
		convs.Conversations[0].Peer.Username != "~"+phone.ID || convs.Conversations[0].Peer.DisplayName != "Deleted user" {
		t.Fatalf("bob's conversations after the deletion: %d %s", r.Status, r.Body)
	}
}
