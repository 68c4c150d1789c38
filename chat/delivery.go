package chat

import (
	"context"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/textpolicy"
	"go.opentelemetry.io/otel/trace"
)

const maxClientMsgID = 64

// sendRequest is a validated-to-be send, from REST or WebSocket: a text
// message or an event (events.go).
type sendRequest struct {
	from, to, text, clientMsgID string
	hasClientMsgID              bool
	except                      uint64 // the sending connection, 0 for REST
	wantAck                     bool

	kind          string // "" (text), store.KindEdit, KindDelete or KindReaction
	target        int64  // an event's target seq
	hasTarget     bool
	replyTo       int64 // a text message's reply_to, 0 for none
	hasReplyTo    bool
	emoji         string
	hasEmoji      bool
	wasContact    bool               // from and to were contacts before this text send (contacts.go)
	attachmentIDs []string           // as sent (attachments.go)
	attachments   []store.Attachment // referenced by prepareSend
	// dropAttachments are the uploads of a delete's target, removed once
	// the delete is stored (prepareSend, dropAttachments).
	dropAttachments []string
	tr              *sendTrace // nil unless traced (tracing.go)
}

// sendResult is a stored message and its encodings.
type sendResult struct {
	msg     store.Message
	created bool
	env     []byte // the envelope of its `message` frame
	ack     []byte // the ack frame when asked for

	wasContact bool // sendRequest.wasContact
	tr         *sendTrace
}

// validateSend checks a send or an event against api.md's rules
// (prepareSend then references a send's attachments).
func (s *Service) validateSend(ctx context.Context, req *sendRequest) *httpapi.Error {
	if herr := s.allowSend(req.from); herr != nil {
		return herr
	}
	switch {
	case !req.hasClientMsgID || req.clientMsgID == "":
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "client_msg_id is required")
	case !utf8.ValidString(req.clientMsgID) || utf8.RuneCountInString(req.clientMsgID) > maxClientMsgID:
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "client_msg_id must be 1 to %d characters", maxClientMsgID)
	case req.to == "":
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "%s is required", req.peerField())
	}
	if herr := s.validateKind(req); herr != nil {
		return herr
	}
	if req.to == req.from {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeCannotMessageSelf, "you cannot message yourself")
	}
	if _, herr := s.lookupUser(ctx, req.to); herr != nil {
		return herr
	}
	// A store that refuses blocked senders in its append (mongostore,
	// one read per batch) spares this read per message; a send with
	// attachments still asks first, since referencing them binds the
	// uploads to the conversation before the append.
	if !s.appendRefusesBlocked || len(req.attachmentIDs) > 0 {
		if herr := s.checkBlocked(ctx, req.from, req.to); herr != nil {
			return herr
		}
	}
	if req.kind == "" {
		req.wasContact = s.wasContact(ctx, req.from, req.to)
	}
	return nil
}

// checkText applies the text rules (valid UTF-8, at most MaxTextBytes, and
// unless blankOK not blank) to a send's or an edit's text.
func (s *Service) checkText(text string, blankOK bool) *httpapi.Error {
	switch {
	case !utf8.ValidString(text):
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "text must be valid UTF-8")
	case len(text) > s.cfg.MaxTextBytes:
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeTextTooLong, "text is longer than %d bytes", s.cfg.MaxTextBytes)
	case !blankOK && textpolicy.IsBlank(text): // white space, format and other invisible characters only
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeTextEmpty, "text is empty")
	}
	return nil
}

// send validates and stores one message and encodes its frames once; the
// caller answers its sender, then calls fanOut. A retry (same sender and
// client_msg_id) returns the stored message with created false; fanOut
// publishes it again.
func (s *Service) send(ctx context.Context, req sendRequest) (sendResult, *httpapi.Error) {
	vs := req.tr.start("chat.validate", trace.SpanKindInternal)
	herr := s.prepareSend(ctx, &req)
	finishSpan(vs, herr)
	if herr != nil {
		return sendResult{}, herr
	}
	req.tr.startAppend()
	msg, created, err := s.store.AppendMessage(ctx, newMessage(req, time.Now()))
	req.tr.endAppend(msg, created, err)
	return s.sendResultOf(req, msg, created, err)
}

// newMessage is the record a send asks the store to append.
func newMessage(req sendRequest, now time.Time) store.Message {
	return store.Message{
		ID: store.NewID(), From: req.from, To: req.to, Text: req.text,
		ClientMsgID: req.clientMsgID, CreatedAt: now.UTC().Truncate(time.Millisecond),
		Kind: req.kind, Target: req.target, ReplyTo: req.replyTo, Emoji: req.emoji,
		Attachments: req.attachments,
	}
}

// sendResultOf turns the store's answer to an append into the send's
// result: its frames encoded once, or the error to answer.
func (s *Service) sendResultOf(req sendRequest, msg store.Message, created bool, err error) (sendResult, *httpapi.Error) {
	if errors.Is(err, store.ErrBlocked) { // store.BlockCheckingAppender
		return sendResult{}, errBlocked
	}
	if herr := eventError(req, err); herr != nil {
		return sendResult{}, herr
	}
	if err != nil {
		if ok, held := s.appendErrLog.allow(); ok {
			return sendResult{}, httpapi.Fail(s.log.With("suppressed", held), "append message", err)
		}
		return sendResult{}, httpapi.FromError(err)
	}
	if msg.From != req.from { // cannot happen: the store keys retries by sender
		s.log.Error("store returned a foreign message on append", "msg", msg.ID)
		return sendResult{}, httpapi.ErrUnavailable
	}
	env, ack, err := messageFrames(msg, req.except, req.wantAck)
	if err != nil {
		s.log.Error("encode message", "err", err)
		return sendResult{}, httpapi.ErrInternal
	}
	if created {
		s.m.stored.Inc()
	}
	if len(req.dropAttachments) > 0 {
		s.dropAttachments(req.dropAttachments)
	}
	return sendResult{msg: msg, created: created, env: env, ack: ack, wasContact: req.wasContact, tr: req.tr}, nil
}

// fanOut publishes a stored message to its recipient's and its sender's
// topics (the same envelope on both; the sending connection, named in it,
// is skipped). A retry (created false) is published too: its first attempt
// may have stored the message and then reported an error (the store's
// outcome was unknown), so nothing was published then. Clients key
// messages by seq, so a second copy is harmless (api.md 1.1, resync).
func (s *Service) fanOut(ctx context.Context, res sendResult) { s.fanOutInto(ctx, res, nil) }

// fanOutInto is fanOut, the publications gathered in b when it is not nil
// (a completion batch, published by b.flush); a traced send is published
// at once, inside its span. Order holds either way: a node with a tracer
// traces every send (traceSend), so one batch never mixes the two paths.
func (s *Service) fanOutInto(ctx context.Context, res sendResult, b *pubBatch) {
	switch {
	case res.tr != nil:
		s.fanOutTraced(ctx, res) // tracing.go: the same, in a span carried by the envelope
	case b != nil:
		b.add(res.msg.To, res.env)
		b.add(res.msg.From, res.env)
	default:
		s.publishTo(ctx, res.msg.To, res.env)
		s.publishTo(ctx, res.msg.From, res.env)
	}
	if res.created && s.notifier != nil {
		s.notifier.MessageStored(res.msg) // never blocks: push.go
	}
	if res.created && res.msg.IsText() && !res.wasContact {
		if b != nil {
			b.firsts = append(b.firsts, res.msg) // after the message: flush
		} else {
			s.noteText(res.msg) // contacts.go: presence on a first contact
		}
	}
}

// publishTo hands an envelope to the broker for userID's topic. The broker
// is best effort and the store stays the record: when the publish fails,
// userID's connections on this node get a resync (api.md 1.1), and the
// failure is logged (at most every publishFailureLogEvery).
func (s *Service) publishTo(ctx context.Context, userID string, env []byte) {
	if err := s.broker.Publish(ctx, pubsub.UserTopic(userID), env); err != nil {
		s.publishFailed(ctx, userID, err)
	}
}

// pubBatch gathers the publications of one completion batch (pipeline.go),
// so that a broker with a round trip per command (pubsub.BatchPublisher:
// Redis) takes them in one: the completion goroutine no longer waits for
// two round trips per message.
type pubBatch struct {
	users []string
	ps    []pubsub.Publication
	// firsts are the batch's messages that may make two users contacts;
	// their checks start after the publications, so that the presence a
	// first contact sends never reaches a user before the message that
	// made it.
	firsts []store.Message
}

func (b *pubBatch) add(userID string, env []byte) {
	b.users = append(b.users, userID)
	b.ps = append(b.ps, pubsub.Publication{Topic: pubsub.UserTopic(userID), Payload: env})
}

// flush publishes what b gathered, in order, and empties it; a failed
// publication is handled as publishTo's.
func (s *Service) flush(ctx context.Context, b *pubBatch) {
	bp, ok := s.broker.(pubsub.BatchPublisher)
	if ok && len(b.ps) > 1 {
		for i, err := range bp.PublishBatch(ctx, b.ps) {
			if err != nil {
				s.publishFailed(ctx, b.users[i], err)
			}
		}
	} else {
		for i, p := range b.ps {
			s.publishTo(ctx, b.users[i], p.Payload)
		}
	}
	for _, m := range b.firsts {
		s.noteText(m) // contacts.go: presence on a first contact
	}
	clear(b.ps)
	clear(b.firsts)
	b.ps, b.users, b.firsts = b.ps[:0], b.users[:0], b.firsts[:0]
}

// publishFailed is the answer to a lost publication to userID's topic:
// a resync on the user's connections here at once, and owed through the
// broker to its connections elsewhere.
func (s *Service) publishFailed(ctx context.Context, userID string, err error) {
	s.hub.conns.resyncUser(userID)
	s.owed.add(userID) // and, through the broker, on other nodes (owedresync.go)
	if now := time.Now().UnixNano(); ctx.Err() == nil && now-s.lastPublishWarn.Load() >= int64(publishFailureLogEvery) {
		s.lastPublishWarn.Store(now)
		s.log.Warn("publish failed; the user's connections get resync (other nodes' once the broker takes it)", "topic_kind", "user", "err", err)
	}
}

// markPointer moves userID's read or delivered pointer in its conversation
// with peerID and, when it moved, sends a receipt to both members. An
// unknown peer is not_found; a known peer without a conversation is a no-op.
func (s *Service) markPointer(ctx context.Context, userID, peerID string, seq int64, kind string) *httpapi.Error {
	if peerID == "" {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "peer is required")
	}
	if seq < 0 {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "seq must not be negative")
	}
	if _, herr := s.lookupUser(ctx, peerID); herr != nil {
		return herr
	}
	var (
		ptr   int64
		moved bool
		err   error
	)
	if kind == "read" {
		ptr, moved, err = s.store.MarkRead(ctx, userID, peerID, seq)
	} else {
		ptr, moved, err = s.store.MarkDelivered(ctx, userID, peerID, seq)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil // a known peer without a conversation: nothing to move
	case err != nil:
		return httpapi.Fail(s.log, "mark "+kind, err)
	}
	if moved {
		env, err := eventEnvelope(receiptFrame{
			Type: "receipt", ConversationID: store.ConversationID(userID, peerID),
			UserID: userID, Kind: kind, Seq: ptr,
		})
		if err == nil {
			s.publishTo(ctx, userID, env)
			s.publishTo(ctx, peerID, env)
		}
	}
	return nil
}

// publishPresence sends userID's presence to everyone it shares a
// conversation with.
func (s *Service) publishPresence(ctx context.Context, userID string, st pubsub.Status) {
	peers, err := s.presenceAudience(ctx, userID) // privacy.go: contacts only, no blocks
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("presence: peer lookup failed", "err", err)
		}
		return
	}
	if len(peers) == 0 {
		return
	}
	if st.Online {
		st.LastSeen = time.Time{}
	}
	env, err := eventEnvelope(presenceFrame{Type: "presence", UserID: userID, Presence: toPresenceJSON(st)})
	if err != nil {
		return
	}
	for _, p := range peers {
		s.publishTo(ctx, p, env)
	}
}

// lookupPresence returns the presence of ids; when the registry fails it
// logs and reports everyone offline rather than failing the request.
func (s *Service) lookupPresence(ctx context.Context, ids []string) map[string]pubsub.Status {
	if len(ids) == 0 {
		return nil
	}
	st, err := s.presence.Lookup(ctx, ids)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("presence lookup failed", "err", err)
		}
		return nil
	}
	return st
}
