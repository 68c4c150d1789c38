package chat

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
)

// Privacy (api.md 1.1): presence and typing reach only contacts (users
// with whom one shares a conversation in which both have sent a message),
// never across a block in either direction; a blocked user's sends to the
// blocker are refused. visibleTo is the one rule; every presence answer,
// presence event and typing event goes through it.

// visibleTo returns the subset of ids that may see viewer's presence and
// typing, and whose presence and typing viewer may see (the relation is
// symmetric): viewer's contacts minus anyone in a block with viewer. On a
// store error it returns none and the error (hiding is the safe failure).
func (s *Service) visibleTo(ctx context.Context, viewer string, ids []string) (map[string]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	contacts, err := s.store.ContactIDs(ctx, viewer)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		if _, ok := slices.BinarySearch(contacts, id); ok {
			out[id] = true
		}
	}
	if len(out) == 0 {
		return out, nil // no contact among ids: no block to read
	}
	blocked, err := s.store.BlockedEither(ctx, viewer)
	if err != nil {
		return nil, err
	}
	for id := range out {
		if _, no := slices.BinarySearch(blocked, id); no {
			delete(out, id)
		}
	}
	return out, nil
}

// presenceAudience is who gets userID's presence events: its visible contacts.
func (s *Service) presenceAudience(ctx context.Context, userID string) ([]string, error) {
	// visibleTo(userID, contacts) without reading the contacts twice (this
	// runs on every connect and every offline).
	contacts, err := s.store.ContactIDs(ctx, userID)
	if err != nil || len(contacts) == 0 {
		return nil, err
	}
	blocked, err := s.store.BlockedEither(ctx, userID)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(contacts, func(id string) bool {
		_, no := slices.BinarySearch(blocked, id)
		return no
	}), nil
}

// presenceFor is the presence of ids as viewer is shown it: nil (JSON null)
// for anyone viewer may not see.
func (s *Service) presenceFor(ctx context.Context, viewer string, ids []string) map[string]*presenceJSON {
	vis, err := s.visibleTo(ctx, viewer, ids)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("privacy: contact lookup failed, presence hidden", "err", err)
		}
		return nil
	}
	shown := make([]string, 0, len(vis))
	for id := range vis {
		shown = append(shown, id)
	}
	slices.Sort(shown)
	st := s.lookupPresence(ctx, shown)
	out := make(map[string]*presenceJSON, len(shown))
	for _, id := range shown {
		p := toPresenceJSON(st[id])
		out[id] = &p
	}
	return out
}

// mayType reports whether a typing event of from reaches to.
func (s *Service) mayType(ctx context.Context, from, to string) bool {
	vis, err := s.visibleTo(ctx, from, []string{to})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("privacy: contact lookup failed, typing dropped", "err", err)
		}
		return false
	}
	return vis[to]
}

var errBlocked = httpapi.Errorf(http.StatusForbidden, httpapi.CodeBlocked, "this user does not accept your messages")

// checkBlocked refuses a send from a user the recipient blocks.
func (s *Service) checkBlocked(ctx context.Context, from, to string) *httpapi.Error {
	blocked, err := s.store.IsBlocked(ctx, to, from)
	if err != nil {
		return httpapi.Fail(s.log, "block lookup", err)
	}
	if blocked {
		return errBlocked
	}
	return nil
}

// PUT /api/users/{id}/block
func (s *Service) handleBlock(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	id := r.PathValue("id")
	if id == me.UserID {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "you cannot block yourself")
	}
	if _, herr := s.lookupUser(r.Context(), id); herr != nil {
		return herr
	}
	if err := s.store.Block(r.Context(), me.UserID, id, time.Now()); err != nil {
		return httpapi.Fail(s.log, "block", err)
	}
	s.pairs.forgetOneSided(me.UserID, id)
	s.publishBlockPresence(me.UserID, id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// DELETE /api/users/{id}/block
func (s *Service) handleUnblock(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	id := r.PathValue("id")
	if _, herr := s.lookupUser(r.Context(), id); herr != nil {
		return herr
	}
	if err := s.store.Unblock(r.Context(), me.UserID, id); err != nil {
		return httpapi.Fail(s.log, "unblock", err)
	}
	s.pairs.forgetOneSided(me.UserID, id) // the next send checks again: presence if they are contacts now
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// publishBlockPresence tells both sides of a new block that the other's
// presence is now unknown (presence null), so that neither keeps showing
// the other online.
func (s *Service) publishBlockPresence(a, b string) {
	ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	defer cancel()
	for _, p := range [][2]string{{a, b}, {b, a}} {
		env, err := eventEnvelope(hiddenPresenceFrame{Type: "presence", UserID: p[1]})
		if err == nil {
			s.publishTo(ctx, p[0], env)
		}
	}
}

// GET /api/blocks
func (s *Service) handleBlocks(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	ctx := r.Context()
	ids, err := s.store.BlockedIDs(ctx, me.UserID)
	if err != nil {
		return httpapi.Fail(s.log, "blocked ids", err)
	}
	byID := make(map[string]store.User, len(ids))
	if len(ids) > 0 {
		users, err := s.store.UsersByIDs(ctx, ids)
		if err != nil {
			return httpapi.Fail(s.log, "users by ids", err)
		}
		for _, u := range users {
			byID[u.ID] = u
		}
	}
	out := make([]httpapi.User, 0, len(ids))
	for _, id := range ids {
		if u, ok := byID[id]; ok {
			out = append(out, httpapi.NewUser(u.ID, u.Username, u.DisplayName))
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

// hiddenPresenceFrame is a presence event with presence null: the user's
// presence is no longer shown to the recipient.
type hiddenPresenceFrame struct {
	Type     string        `json:"type"`
	UserID   string        `json:"user_id"`
	Presence *presenceJSON `json:"presence"` // always nil
}
