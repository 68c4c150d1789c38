package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/store"
)

// TestDeleteAccountDeletesUploads: api.md 1.1 "Account": deleting an
// account deletes its uploads, sent or not, and no one else's.
func TestDeleteAccountDeletesUploads(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.signup("alice", "correct-horse-1")
	aliceID := alice.user().ID
	bobID := h.signup("bob", "correct-horse-1").user().ID
	ctx := context.Background()
	up := func(uploader string) store.Upload {
		u, err := h.store.CreateAttachment(ctx, store.Upload{UploaderID: uploader, Name: "f", Type: "text/plain"}, strings.NewReader("data"), 100)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	sent, unsent, bobs := up(aliceID), up(aliceID), up(bobID)
	if _, err := h.store.ReferenceAttachments(ctx, []string{sent.ID}, aliceID, store.ConversationID(aliceID, bobID)); err != nil {
		t.Fatal(err)
	}
	r := h.do(http.MethodDelete, "/auth/account", `{"password":"correct-horse-1"}`, withCookies(alice.cookie(token.SessionCookieName(true))), h.sameOrigin())
	if r.StatusCode != 204 {
		t.Fatalf("delete account: %d %s", r.StatusCode, r.body)
	}
	for _, u := range []store.Upload{sent, unsent} {
		if _, err := h.store.Attachment(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an upload of the deleted account: %v, want not found", err)
		}
	}
	if _, err := h.store.Attachment(ctx, bobs.ID); err != nil {
		t.Fatalf("another user's upload after the deletion: %v", err)
	}
}
