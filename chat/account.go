package chat

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/textpolicy"
)

// The account endpoints of the chat role (api.md 1.1 "Account"):
// PATCH /api/me and GET /api/me/export.

// maxDisplayName is the longest display name, in characters (as at signup).
const maxDisplayName = 64

var errDisplayNameTaken = httpapi.Errorf(http.StatusConflict, httpapi.CodeDisplayNameTaken, "this display name looks like another user's name")

// PATCH /api/me {"display_name"}
func (s *Service) handlePatchMe(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	var body struct {
		DisplayName *string `json:"display_name"`
	}
	if herr := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &body); herr != nil {
		return herr
	}
	ctx := r.Context()
	u, herr := s.lookupUser(ctx, me.UserID)
	if herr != nil {
		return herr
	}
	if body.DisplayName != nil {
		name := strings.TrimSpace(*body.DisplayName)
		if name == "" {
			name = u.Username // as at signup: blank means the username
		}
		switch n := utf8.RuneCountInString(name); {
		case !utf8.ValidString(name) || n > maxDisplayName:
			return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "display_name has at most %d characters", maxDisplayName)
		}
		if err := textpolicy.CheckDisplayName(name); err != nil {
			return &httpapi.Error{Status: http.StatusBadRequest, Code: httpapi.CodeInvalidRequest, Message: err.Error()}
		}
		_, err := s.store.UserByNameKey(ctx, textpolicy.LookalikeKeys(name), me.UserID)
		switch {
		case err == nil:
			return errDisplayNameTaken
		case !errors.Is(err, store.ErrNotFound):
			return httpapi.Fail(s.log, "look up names", err)
		}
		key := textpolicy.NameKey(name)
		if err := s.store.SetDisplayName(ctx, me.UserID, name, key); err != nil {
			return httpapi.Fail(s.log, "set display name", err)
		}
		u.DisplayName, u.DisplayNameKey = name, key
		s.users.put(u)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"user": httpapi.NewUser(u.ID, u.Username, u.DisplayName)})
	return nil
}

// exportPage is how many messages the export reads at a time: memory stays
// bounded by one page whatever the history's size.
const exportPage = 200

// GET /api/me/export: {"user": User, "conversations": [{"id",
// "peer": User, "messages": [Message…]}…]}, streamed.
func (s *Service) handleExport(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	ctx := r.Context()
	u, herr := s.lookupUser(ctx, me.UserID)
	if herr != nil {
		return herr
	}
	convs, _, peers, herr := s.conversationsWithPeers(ctx, me.UserID)
	if herr != nil {
		return herr
	}
	// From here on the status is sent: a failure cuts the document short
	// (invalid JSON), which a client cannot mistake for a whole export.
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="chatd-export.json"`)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	if err := s.writeExport(ctx, bw, u, convs, peers); err != nil {
		if ctx.Err() == nil {
			s.log.Error("export cut short", "err", err)
		}
		return nil
	}
	_ = bw.Flush()
	return nil
}

func (s *Service) writeExport(ctx context.Context, bw *bufio.Writer, u store.User, convs []store.ConversationView, peers map[string]store.User) error {
	enc := json.NewEncoder(bw)
	raw := func(s string) error { _, err := bw.WriteString(s); return err }
	if err := raw(`{"user":`); err != nil {
		return err
	}
	if err := enc.Encode(httpapi.NewUser(u.ID, u.Username, u.DisplayName)); err != nil {
		return err
	}
	if err := raw(`,"conversations":[`); err != nil {
		return err
	}
	first := true
	for _, c := range convs {
		peer, ok := peers[c.PeerID]
		if !ok || c.ID != store.ConversationID(u.ID, c.PeerID) {
			continue
		}
		if !first {
			if err := raw(","); err != nil {
				return err
			}
		}
		first = false
		if err := raw(`{"id":`); err != nil {
			return err
		}
		if err := enc.Encode(c.ID); err != nil {
			return err
		}
		if err := raw(`,"peer":`); err != nil {
			return err
		}
		if err := enc.Encode(httpapi.NewUser(peer.ID, peer.Username, peer.DisplayName)); err != nil {
			return err
		}
		if err := raw(`,"messages":[`); err != nil {
			return err
		}
		after, n := int64(0), 0
		for {
			msgs, more, err := s.store.MessagesAfter(ctx, c.ID, after, exportPage)
			if err != nil {
				return err
			}
			for _, m := range msgs {
				after = m.Seq
				if !isMember(m, u.ID) || m.ConversationID != c.ID {
					continue
				}
				if n > 0 {
					if err := raw(","); err != nil {
						return err
					}
				}
				n++
				if err := enc.Encode(toMessageJSON(m)); err != nil {
					return err
				}
			}
			if !more || len(msgs) == 0 {
				break
			}
		}
		if err := raw("]}"); err != nil {
			return err
		}
	}
	return raw("]}\n")
}
