package chat

import (
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rivo/uniseg"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
)

// Message events (api.md 1.1 "Message events"): replies, edits, deletes
// and reactions. Every one is a message of its own that the store appends
// (store.Messages.AppendMessage checks the target and applies the event
// atomically), so each goes the way of a send: the same send limit,
// validation, block check, WebSocket pipeline (acks in frame order) and
// fan-out as a `message` frame, and the same idempotency by client_msg_id.

// Error codes of message events, beside httpapi's.
const (
	codeDeleted        = "deleted"          // 409: the target was deleted
	codeInvalidReplyTo = "invalid_reply_to" // 400: reply_to is no text message of the conversation
	codeInvalidEmoji   = "invalid_emoji"    // 400: not an emoji (see validEmoji)
)

// maxEmojiBytes bounds a reaction's emoji: room for the longest common
// sequences (a family of four joined by ZWJ is 25 bytes, a subdivision
// flag with its tags 28).
const maxEmojiBytes = 32

// frameRequest makes a `send`, `edit`, `delete` or `react` frame into the
// request validateSend checks.
func frameRequest(c *conn, f clientFrame) sendRequest {
	req := sendRequest{from: c.userID, to: f.To, text: f.Text, except: c.id, wantAck: true}
	if f.ClientMsgID != nil {
		req.clientMsgID, req.hasClientMsgID = *f.ClientMsgID, true
	}
	req.attachmentIDs = f.Attachments
	if f.ReplyTo != nil {
		req.replyTo, req.hasReplyTo = *f.ReplyTo, true
	}
	if f.Type == "send" {
		return req
	}
	req.to = f.Peer
	switch f.Type {
	case "edit":
		req.kind = store.KindEdit
	case "delete":
		req.kind = store.KindDelete
	case "react":
		req.kind = store.KindReaction
	}
	if f.Seq != nil {
		req.target, req.hasTarget = *f.Seq, true
	}
	if f.Emoji != nil {
		req.emoji, req.hasEmoji = *f.Emoji, true
	}
	return req
}

// peerField names the request's peer as its client spelt it.
func (req *sendRequest) peerField() string {
	if req.kind == "" {
		return "to"
	}
	return "peer"
}

// validateKind checks what is particular to req's kind.
func (s *Service) validateKind(req *sendRequest) *httpapi.Error {
	if req.kind == "" {
		if req.hasReplyTo && req.replyTo < 1 {
			return httpapi.Errorf(http.StatusBadRequest, codeInvalidReplyTo, "reply_to must be the seq of a message")
		}
		if herr := checkAttachmentIDs(req.attachmentIDs); herr != nil {
			return herr
		}
		// With attachments the text may be empty (api.md 1.1).
		return s.checkText(req.text, len(req.attachmentIDs) > 0)
	}
	switch {
	case !req.hasTarget || req.target < 1:
		return badRequest("seq (the message's) is required")
	case req.hasReplyTo || len(req.attachmentIDs) > 0:
		return badRequest("reply_to and attachments go with a send only")
	}
	switch req.kind {
	case store.KindEdit:
		return s.checkText(req.text, false)
	case store.KindDelete:
		req.text = ""
	case store.KindReaction:
		req.text = ""
		switch {
		case !req.hasEmoji:
			return httpapi.Errorf(http.StatusBadRequest, codeInvalidEmoji, `emoji is required ("" removes your reaction)`)
		case req.emoji != "" && !validEmoji(req.emoji):
			return httpapi.Errorf(http.StatusBadRequest, codeInvalidEmoji, "emoji must be one emoji of at most %d bytes", maxEmojiBytes)
		}
	}
	return nil
}

// validEmoji reports whether e is a short emoji sequence: at most
// maxEmojiBytes of valid UTF-8 that starts with a symbol and holds only
// symbols (category So: pictographs, dingbats, regional indicators), the
// few emoji outside it, and what joins or modifies them (ZWJ, variation
// selectors, skin tones, the keycap mark after 0-9 # *, tag characters).
// No letter, space or control character passes, and it must be one
// extended grapheme cluster (UAX #29, github.com/rivo/uniseg): "👍👍" is two.
func validEmoji(e string) bool {
	if e == "" || len(e) > maxEmojiBytes || !utf8.ValidString(e) || uniseg.GraphemeClusterCount(e) != 1 {
		return false
	}
	keycapBase := false
	for i, r := range e {
		base := unicode.Is(unicode.So, r) || r == 0x203C || r == 0x2049 || r == 0x2139 || r == 0x3030 || r == 0x303D
		switch {
		case base:
		case r >= '0' && r <= '9' || r == '#' || r == '*':
			keycapBase = true
			base = true
		case r == 0x200D, r == 0xFE0E, r == 0xFE0F, r == 0x20E3,
			r >= 0x1F3FB && r <= 0x1F3FF, // skin tones (Sk)
			r >= 0xE0020 && r <= 0xE007F: // tags (subdivision flags)
		default:
			return false
		}
		if i == 0 && !base {
			return false
		}
	}
	if keycapBase {
		for _, r := range e {
			if r == 0x20E3 {
				return true
			}
		}
		return false
	}
	return true
}

// eventError maps the store's refusals of an event or a reply (nil for
// any other outcome, which sendResultOf maps).
func eventError(req sendRequest, err error) *httpapi.Error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrForbidden):
		return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "only its author can edit or delete a message")
	case errors.Is(err, store.ErrDeleted):
		return httpapi.Errorf(http.StatusConflict, codeDeleted, "the message was deleted")
	case req.kind != "" && errors.Is(err, store.ErrNotFound):
		return httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "no such message in this conversation")
	case req.kind == "" && req.replyTo != 0 && errors.Is(err, store.ErrInvalid):
		return httpapi.Errorf(http.StatusBadRequest, codeInvalidReplyTo, "reply_to is not a message of this conversation")
	}
	return nil
}

// seqParam parses the {seq} of an event's path.
func seqParam(r *http.Request) (int64, *httpapi.Error) {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 1 {
		return 0, badRequest("seq must be a positive integer")
	}
	return seq, nil
}

// PATCH /api/conversations/{peer_id}/messages/{seq} {"text","client_msg_id"}
func (s *Service) handleEdit(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	var body struct {
		Text        string  `json:"text"`
		ClientMsgID *string `json:"client_msg_id"`
	}
	if herr := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &body); herr != nil {
		return herr
	}
	return s.restEvent(w, r, me, store.KindEdit, body.ClientMsgID, func(req *sendRequest) { req.text = body.Text })
}

// DELETE /api/conversations/{peer_id}/messages/{seq}?client_msg_id=…
func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	var cmid *string
	if q := r.URL.Query(); q.Has("client_msg_id") {
		v := q.Get("client_msg_id")
		cmid = &v
	}
	return s.restEvent(w, r, me, store.KindDelete, cmid, nil)
}

// PUT /api/conversations/{peer_id}/messages/{seq}/reaction {"emoji","client_msg_id"}
func (s *Service) handleReact(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	var body struct {
		Emoji       *string `json:"emoji"`
		ClientMsgID *string `json:"client_msg_id"`
	}
	if herr := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &body); herr != nil {
		return herr
	}
	return s.restEvent(w, r, me, store.KindReaction, body.ClientMsgID, func(req *sendRequest) {
		if body.Emoji != nil {
			req.emoji, req.hasEmoji = *body.Emoji, true
		}
	})
}

// restEvent sends the event of kind on the message {seq} of the caller's
// conversation with {peer_id} and answers 200 {"message"} (the event).
func (s *Service) restEvent(w http.ResponseWriter, r *http.Request, me principal, kind string, clientMsgID *string, fill func(*sendRequest)) *httpapi.Error {
	seq, herr := seqParam(r)
	if herr != nil {
		return herr
	}
	req := sendRequest{from: me.UserID, to: r.PathValue("peer_id"), kind: kind, target: seq, hasTarget: true}
	if clientMsgID != nil {
		req.clientMsgID, req.hasClientMsgID = *clientMsgID, true
	}
	if fill != nil {
		fill(&req)
	}
	return s.restSend(w, r, req, time.Now(), http.StatusOK)
}
