package chat

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
)

// apiHandler is an /api handler for an authenticated caller.
type apiHandler func(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error

// api wraps h with authentication, the session check and the same-origin
// rule for cookie-authenticated unsafe requests.
func (s *Service) api(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.isClosing() {
			httpapi.WriteError(w, httpapi.ErrUnavailable)
			return
		}
		me, viaCookie, herr := s.authenticate(r)
		if herr != nil {
			httpapi.WriteError(w, herr)
			return
		}
		if viaCookie && httpapi.IsUnsafe(r.Method) && !httpapi.SameOrigin(r, s.cfg.PublicOrigins) {
			httpapi.WriteError(w, httpapi.ErrForbidden)
			return
		}
		if herr := h(w, r, me); herr != nil {
			httpapi.WriteError(w, herr)
		}
	}
}

func badRequest(msg string) *httpapi.Error {
	return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "%s", msg)
}

var errNoSuchUser = httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "no such user")

// queryInt parses an optional integer query parameter; ok false when absent.
func queryInt(r *http.Request, name string) (v int64, ok bool, herr *httpapi.Error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, false, badRequest(name + " must be an integer")
	}
	return v, true, nil
}

// limitParam parses `limit`: default def, clamped to max, at least 1.
func limitParam(r *http.Request, def, max int) (int, *httpapi.Error) {
	v, ok, herr := queryInt(r, "limit")
	if herr != nil {
		return 0, herr
	}
	if !ok {
		return def, nil
	}
	if v < 1 {
		return 0, badRequest("limit must be at least 1")
	}
	if v > int64(max) {
		return max, nil
	}
	return int(v), nil
}

const (
	searchLimit    = 20
	searchLimitMax = 20 // api.md 1.1: at most 20
	// searchQueryMin is the shortest prefix searched (api.md 1.1): no
	// listing of the whole directory.
	searchQueryMin = 2
	// searchQueryMax is the longest prefix worth asking for: no username or
	// display name is longer.
	searchQueryMax = 64
)

// GET /api/users?q=PREFIX&limit=N
func (s *Service) handleSearchUsers(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	limit, herr := limitParam(r, searchLimit, searchLimitMax)
	if herr != nil {
		return herr
	}
	q := r.URL.Query().Get("q")
	if n := utf8.RuneCountInString(q); !utf8.ValidString(q) || n < searchQueryMin || n > searchQueryMax || strings.ContainsRune(q, 0) {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "q is a prefix of %d to %d characters", searchQueryMin, searchQueryMax)
	}
	ctx := r.Context()
	users, err := s.store.SearchUsers(ctx, q, me.UserID, limit)
	if err != nil {
		return httpapi.Fail(s.log, "search users", err)
	}
	ids := make([]string, 0, len(users))
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	pres := s.presenceFor(ctx, me.UserID, ids)
	out := make([]userWithPresence, 0, len(users))
	for _, u := range users {
		if u.ID == me.UserID {
			continue
		}
		out = append(out, userWithPresence{User: httpapi.NewUser(u.ID, u.Username, u.DisplayName), Presence: pres[u.ID]})
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

// GET /api/users/{id}
func (s *Service) handleUser(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	ctx := r.Context()
	// From the store, not the node's user cache: a display name changed
	// through another node (PATCH /api/me) shows at once.
	u, err := s.store.UserByID(ctx, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return errNoSuchUser
	} else if err != nil {
		return httpapi.Fail(s.log, "user lookup", err)
	}
	s.users.put(u)
	pres := s.presenceFor(ctx, me.UserID, []string{u.ID})
	httpapi.WriteJSON(w, http.StatusOK, struct {
		User     httpapi.User  `json:"user"`
		Presence *presenceJSON `json:"presence"` // null: not a contact
	}{httpapi.NewUser(u.ID, u.Username, u.DisplayName), pres[u.ID]})
	return nil
}

// conversationsWithPeers reads userID's conversations, their peers' ids in
// the same order, and those users by id.
func (s *Service) conversationsWithPeers(ctx context.Context, userID string) ([]store.ConversationView, []string, map[string]store.User, *httpapi.Error) {
	convs, err := s.store.Conversations(ctx, userID)
	if err != nil {
		return nil, nil, nil, httpapi.Fail(s.log, "conversations", err)
	}
	ids := make([]string, 0, len(convs))
	for _, c := range convs {
		ids = append(ids, c.PeerID)
	}
	peers := make(map[string]store.User, len(ids))
	if len(ids) > 0 {
		users, err := s.store.UsersByIDs(ctx, ids)
		if err != nil {
			return nil, nil, nil, httpapi.Fail(s.log, "users by ids", err)
		}
		for _, u := range users {
			peers[u.ID] = u
		}
	}
	return convs, ids, peers, nil
}

// GET /api/conversations
func (s *Service) handleConversations(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	ctx := r.Context()
	convs, ids, peers, herr := s.conversationsWithPeers(ctx, me.UserID)
	if herr != nil {
		return herr
	}
	pres := s.presenceFor(ctx, me.UserID, ids)
	mutes, err := s.store.Mutes(ctx, me.UserID)
	if err != nil {
		return httpapi.Fail(s.log, "mutes", err)
	}
	now := time.Now()
	out := make([]conversationJSON, 0, len(convs))
	for _, c := range convs {
		peer, ok := peers[c.PeerID]
		if !ok || c.ID != store.ConversationID(me.UserID, c.PeerID) {
			continue // never show what the caller is not a member of
		}
		cj := conversationJSON{
			ID: c.ID, Peer: httpapi.NewUser(peer.ID, peer.Username, peer.DisplayName), Presence: pres[c.PeerID],
			LastSeq: c.LastSeq, Unread: c.Unread, ReadSeq: c.ReadSeq,
			PeerReadSeq: c.PeerReadSeq, PeerDeliveredSeq: c.PeerDeliveredSeq,
			MutedUntil: mutedUntil(mutes[c.PeerID], now),
		}
		if lm := c.LastMessage; lm != nil && isMember(*lm, me.UserID) {
			mj := toMessageJSON(*lm)
			cj.LastMessage = &mj
		}
		out = append(out, cj)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"conversations": out})
	return nil
}

func isMember(m store.Message, userID string) bool { return m.From == userID || m.To == userID }

// GET /api/conversations/{peer_id}/messages?before=SEQ|after=SEQ&limit=N
func (s *Service) handleHistory(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	before, hasBefore, herr := queryInt(r, "before")
	if herr != nil {
		return herr
	}
	after, hasAfter, herr := queryInt(r, "after")
	if herr != nil {
		return herr
	}
	switch {
	case hasBefore && hasAfter:
		return badRequest("before and after cannot be combined")
	case hasBefore && before < 1:
		return badRequest("before must be at least 1")
	case hasAfter && after < 0:
		return badRequest("after must not be negative")
	}
	limit, herr := limitParam(r, s.cfg.HistoryLimit, s.cfg.HistoryMax)
	if herr != nil {
		return herr
	}
	ctx := r.Context()
	peer := r.PathValue("peer_id")
	if _, herr := s.lookupUser(ctx, peer); herr != nil {
		return herr
	}
	convID := store.ConversationID(me.UserID, peer)
	var (
		msgs    []store.Message
		hasMore bool
		err     error
	)
	if hasAfter {
		msgs, hasMore, err = s.store.MessagesAfter(ctx, convID, after, limit)
	} else {
		msgs, hasMore, err = s.store.MessagesBefore(ctx, convID, before, limit)
	}
	if err != nil {
		return httpapi.Fail(s.log, "history", err)
	}
	out := make([]messageJSON, 0, len(msgs))
	for _, m := range msgs {
		if isMember(m, me.UserID) && m.ConversationID == convID {
			out = append(out, toMessageJSON(m))
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, struct {
		Messages []messageJSON `json:"messages"`
		HasMore  bool          `json:"has_more"`
	}{out, hasMore})
	return nil
}

// POST /api/messages {"to","text","client_msg_id","reply_to","attachments"}
func (s *Service) handleSend(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	start := time.Now()
	var body struct {
		To          string   `json:"to"`
		Text        string   `json:"text"`
		ClientMsgID *string  `json:"client_msg_id"`
		ReplyTo     *int64   `json:"reply_to"`
		Attachments []string `json:"attachments"`
	}
	if herr := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &body); herr != nil {
		return herr
	}
	req := sendRequest{from: me.UserID, to: body.To, text: body.Text, attachmentIDs: body.Attachments}
	if body.ClientMsgID != nil {
		req.clientMsgID, req.hasClientMsgID = *body.ClientMsgID, true
	}
	if body.ReplyTo != nil {
		req.replyTo, req.hasReplyTo = *body.ReplyTo, true
	}
	return s.restSend(w, r, req, start, http.StatusCreated)
}

// restSend stores a REST send or event, publishes it and answers
// {"message"} with status when it is new, 200 for a retry.
func (s *Service) restSend(w http.ResponseWriter, r *http.Request, req sendRequest, start time.Time, status int) *httpapi.Error {
	if !s.beginWork() {
		return httpapi.ErrUnavailable
	}
	defer s.endWork()
	req.tr = s.traceSend(r.Context(), "rest") // nil when tracing is off
	res, herr := s.send(r.Context(), req)
	if herr != nil {
		req.tr.end(nil, herr)
		return herr
	}
	defer req.tr.end(&res, nil)
	// The message is stored: publish it even if the client goes away now.
	pctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	s.fanOut(pctx, res)
	cancel()
	if !res.created {
		status = http.StatusOK
	}
	httpapi.WriteJSON(w, status, struct {
		Message messageJSON `json:"message"`
	}{toMessageJSON(res.msg)})
	since(s.m.sendLatency, start)
	return nil
}

// POST /api/conversations/{peer_id}/read {"seq"}
func (s *Service) handleRead(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	var body struct {
		Seq *int64 `json:"seq"`
	}
	if herr := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &body); herr != nil {
		return herr
	}
	if body.Seq == nil {
		return badRequest("seq is required")
	}
	peer := r.PathValue("peer_id")
	if herr := s.markPointer(r.Context(), me.UserID, peer, *body.Seq, "read"); herr != nil {
		return herr
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
