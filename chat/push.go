package chat

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
)

// The notification endpoints of the chat role (api.md 1.1 "Notifications"):
// GET /api/push/key, POST and DELETE /api/push/subscriptions, and
// PUT /api/conversations/{peer_id}/mute. The sending is the Notifier's.

// Notifier sends Web Push notifications for the messages this node stores
// (the push package's Sender; Deps.Notifier, nil when push is off).
type Notifier interface {
	// PublicKey is the VAPID public key, base64url without padding: the
	// applicationServerKey browsers subscribe with.
	PublicKey() string
	// CheckEndpoint reports why endpoint may not be subscribed, nil if it may.
	CheckEndpoint(endpoint string) error
	// MessageStored is called once for every message this node stored
	// (not for a retry that found it stored), of every kind (the notifier
	// pushes text only). It must not block: the
	// notifier decides off the caller's path whether the recipient gets a
	// push (no connection on any node, conversation not muted).
	MessageStored(m store.Message)
}

// maxPushSubscriptions is how many subscriptions a user keeps: a further
// one replaces the oldest (browsers drop subscriptions without telling).
const maxPushSubscriptions = 10

// maxEndpointLen bounds a subscription's endpoint URL.
const maxEndpointLen = 1024

// pushRate and pushBurst limit each user's subscription and mute changes
// (each is a few store writes): a page subscribes once per login and a
// person mutes by hand.
const (
	pushRate  = 1.0
	pushBurst = 20
)

// allowPushChange applies pushLimit to userID: nil, or 429 rate_limited.
func (s *Service) allowPushChange(userID string) *httpapi.Error {
	ok, wait := s.pushLimit.Allow(userID, time.Now())
	if ok {
		return nil
	}
	s.refusedBy("push_rate", "user", userID, "retry_after", wait)
	return httpapi.RateLimited(wait, "too many notification changes, slow down")
}

var errPushOff = httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "push notifications are not enabled on this server")

// GET /api/push/key
func (s *Service) handlePushKey(w http.ResponseWriter, _ *http.Request, _ principal) *httpapi.Error {
	if s.notifier == nil {
		return errPushOff
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"public_key": s.notifier.PublicKey()})
	return nil
}

type pushSubscriptionBody struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// decodeKey decodes a subscription key as browsers give it: base64url,
// with or without padding.
func decodeKey(s string) ([]byte, bool) {
	if len(s) > 128 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	return b, err == nil
}

// POST /api/push/subscriptions {"endpoint","keys":{"p256dh","auth"}}
func (s *Service) handleSubscribe(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	if s.notifier == nil {
		return errPushOff
	}
	var body pushSubscriptionBody
	if herr := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &body); herr != nil {
		return herr
	}
	if len(body.Endpoint) > maxEndpointLen {
		return badRequest("endpoint is too long")
	}
	if err := s.notifier.CheckEndpoint(body.Endpoint); err != nil {
		return badRequest(err.Error())
	}
	if p, ok := decodeKey(body.Keys.P256dh); !ok || len(p) != 65 {
		return badRequest("keys.p256dh must be an uncompressed P-256 public key, base64url")
	} else if _, err := ecdh.P256().NewPublicKey(p); err != nil {
		return badRequest("keys.p256dh is not a point of P-256")
	}
	if a, ok := decodeKey(body.Keys.Auth); !ok || len(a) != 16 {
		return badRequest("keys.auth must be 16 bytes, base64url")
	}
	if herr := s.allowPushChange(me.UserID); herr != nil {
		return herr
	}
	ctx := r.Context()
	sub := store.PushSubscription{
		Endpoint: body.Endpoint, UserID: me.UserID, P256dh: body.Keys.P256dh, Auth: body.Keys.Auth,
		SessionID: me.SessionID, CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
	if err := s.store.AddPushSubscription(ctx, sub); err != nil {
		return httpapi.Fail(s.log, "add push subscription", err)
	}
	subs, err := s.store.PushSubscriptions(ctx, me.UserID)
	if err != nil {
		return httpapi.Fail(s.log, "push subscriptions", err)
	}
	for i := 0; i < len(subs)-maxPushSubscriptions; i++ { // oldest first
		if subs[i].Endpoint == sub.Endpoint {
			continue
		}
		if err := s.store.DeletePushSubscription(ctx, me.UserID, subs[i].Endpoint); err != nil {
			return httpapi.Fail(s.log, "delete push subscription", err)
		}
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// DELETE /api/push/subscriptions {"endpoint"}
func (s *Service) handleUnsubscribe(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	var body struct {
		Endpoint string `json:"endpoint"`
	}
	if herr := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &body); herr != nil {
		return herr
	}
	if body.Endpoint == "" || len(body.Endpoint) > maxEndpointLen {
		return badRequest("endpoint is required")
	}
	if err := s.store.DeletePushSubscription(r.Context(), me.UserID, body.Endpoint); err != nil {
		return httpapi.Fail(s.log, "delete push subscription", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// PUT /api/conversations/{peer_id}/mute {"until": time|null}
func (s *Service) handleMute(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	var body struct {
		Until json.RawMessage `json:"until"`
	}
	if herr := httpapi.DecodeJSON(w, r, s.cfg.BodyLimit, &body); herr != nil {
		return herr
	}
	var until time.Time
	switch raw := bytes.TrimSpace(body.Until); {
	case len(raw) == 0:
		return badRequest("until is required: a time, or null to unmute")
	case string(raw) == "null":
	default:
		var t string
		if err := json.Unmarshal(raw, &t); err != nil {
			return badRequest("until must be an RFC 3339 time or null")
		}
		var err error
		if until, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return badRequest("until must be an RFC 3339 time or null")
		}
		until = until.UTC().Truncate(time.Millisecond)
		if !until.After(time.Now()) {
			until = time.Time{} // a mute that ended already: unmuted
		}
	}
	peer := r.PathValue("peer_id")
	if peer == me.UserID {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeCannotMessageSelf, "you have no conversation with yourself")
	}
	if _, herr := s.lookupUser(r.Context(), peer); herr != nil {
		return herr
	}
	if herr := s.allowPushChange(me.UserID); herr != nil {
		return herr
	}
	if err := s.store.SetMute(r.Context(), me.UserID, peer, until); err != nil {
		return httpapi.Fail(s.log, "set mute", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// mutedUntil returns the conversation JSON's muted_until for a mute that
// ends at until: null unless it is still running at now.
func mutedUntil(until, now time.Time) *string {
	if !until.After(now) {
		return nil
	}
	t := httpapi.FormatTime(until)
	return &t
}
