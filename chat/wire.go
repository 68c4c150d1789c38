package chat

import (
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/store"
)

// The wire forms of api.md's objects that only chat serves; User and the
// time format are httpapi's, shared with auth.

// presenceJSON is api.md's Presence; LastSeen is nil while online or unknown.
type presenceJSON struct {
	Online   bool    `json:"online"`
	LastSeen *string `json:"last_seen"`
}

func toPresenceJSON(st pubsub.Status) presenceJSON {
	p := presenceJSON{Online: st.Online}
	if !st.Online && !st.LastSeen.IsZero() {
		s := httpapi.FormatTime(st.LastSeen)
		p.LastSeen = &s
	}
	return p
}

// messageJSON is api.md's Message (1.1: with kind and, by kind, the fields
// of a text message or of an event). Deleted is also set on an event whose
// sender's account was deleted.
type messageJSON struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	Seq            int64  `json:"seq"`
	From           string `json:"from"`
	To             string `json:"to"`
	Text           string `json:"text"`
	ClientMsgID    string `json:"client_msg_id"`
	CreatedAt      string `json:"created_at"`
	Kind           string `json:"kind"` // text, edit, delete or reaction
	Deleted        bool   `json:"deleted"`
	// Exactly one of the two is set; encoding/json skips a nil embedded
	// pointer's fields.
	*textFieldsJSON
	*eventFieldsJSON
}

// textFieldsJSON are a text message's own fields and its current state.
type textFieldsJSON struct {
	ReplyTo     *int64              `json:"reply_to"`    // null: not a reply
	Attachments []attachmentJSON    `json:"attachments"` // [] for none
	EditedAt    *string             `json:"edited_at"`   // null: never edited
	Reactions   map[string][]string `json:"reactions"`   // emoji → user ids
}

// eventFieldsJSON are an event's (edit, delete, reaction).
type eventFieldsJSON struct {
	Target int64   `json:"target"`
	Emoji  *string `json:"emoji,omitempty"` // reactions only; "" removes
}

func toMessageJSON(m store.Message) messageJSON {
	j := messageJSON{
		ID: m.ID, ConversationID: m.ConversationID, Seq: m.Seq, From: m.From, To: m.To,
		Text: m.Text, ClientMsgID: m.ClientMsgID, CreatedAt: httpapi.FormatTime(m.CreatedAt),
		Kind: m.Kind, Deleted: m.Deleted,
	}
	if !m.IsText() {
		j.eventFieldsJSON = &eventFieldsJSON{Target: m.Target}
		if m.Kind == store.KindReaction {
			j.Emoji = &m.Emoji
		}
		return j
	}
	j.Kind = store.KindText
	t := &textFieldsJSON{Attachments: toAttachmentsJSON(m.Attachments), Reactions: m.Reactions}
	if m.ReplyTo > 0 {
		t.ReplyTo = &m.ReplyTo
	}
	if !m.EditedAt.IsZero() {
		e := httpapi.FormatTime(m.EditedAt)
		t.EditedAt = &e
	}
	if t.Reactions == nil {
		t.Reactions = map[string][]string{}
	}
	j.textFieldsJSON = t
	return j
}

// conversationJSON is api.md's Conversation.
type conversationJSON struct {
	ID               string        `json:"id"`
	Peer             httpapi.User  `json:"peer"`
	Presence         *presenceJSON `json:"presence"` // null: not a contact
	LastMessage      *messageJSON  `json:"last_message"`
	LastSeq          int64         `json:"last_seq"`
	Unread           int64         `json:"unread"`
	ReadSeq          int64         `json:"read_seq"`
	PeerReadSeq      int64         `json:"peer_read_seq"`
	PeerDeliveredSeq int64         `json:"peer_delivered_seq"`
	MutedUntil       *string       `json:"muted_until"` // an extension: null unless muted (push.go)
}

// userWithPresence is an entry of GET /api/users: User + "presence".
type userWithPresence struct {
	httpapi.User
	Presence *presenceJSON `json:"presence"` // null: not a contact
}

// clientFrame is every field a client frame may carry; unknown fields are ignored.
type clientFrame struct {
	Type        string  `json:"type"`
	To          string  `json:"to"`
	Text        string  `json:"text"`
	ClientMsgID *string `json:"client_msg_id"`
	Peer        string  `json:"peer"`
	Seq         *int64  `json:"seq"`
	// Message events (api.md 1.1): a send's reply_to and attachment ids,
	// a react's emoji.
	ReplyTo     *int64   `json:"reply_to"`
	Attachments []string `json:"attachments"`
	Emoji       *string  `json:"emoji"`
}

// Server frames other than message/ack (which are assembled by hand so that
// the message is encoded once).
type helloFrame struct {
	Type       string       `json:"type"`
	User       httpapi.User `json:"user"`
	Node       string       `json:"node"`
	HeartbeatS int          `json:"heartbeat_s"`
	// MaxTextBytes is chat.max_text_bytes, so clients need not hard-code it.
	MaxTextBytes int `json:"max_text_bytes"`
	// MaxAttachmentBytes is chat.max_attachment_bytes, so that a client
	// refuses a larger file before uploading it.
	MaxAttachmentBytes int64 `json:"max_attachment_bytes"`
}

type receiptFrame struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	Kind           string `json:"kind"`
	Seq            int64  `json:"seq"`
}

type typingFrame struct {
	Type string `json:"type"`
	From string `json:"from"`
}

type presenceFrame struct {
	Type     string       `json:"type"`
	UserID   string       `json:"user_id"`
	Presence presenceJSON `json:"presence"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type errorFrame struct {
	Type  string    `json:"type"`
	Ref   *string   `json:"ref"`
	Error errorBody `json:"error"`
	// RetryAfterMS is the wait of a rate_limited or unavailable error.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

// Broker envelope: every payload chat publishes on a user topic is
//
//	[0]    kind (envMessage for a `message` frame, envEvent for any other
//	       frame, envResync for none: each connection gets a resync, owedresync.go)
//	[1:9]  id of the connection that must not get the frame (big endian; 0 = none)
//	[9:]   the WebSocket frame, encoded once, handed as is to every local connection
//
// Connection ids are random 64-bit numbers, so a sender's id never matches a
// connection of another node or another user.
const (
	envMessage byte = 'm'
	envEvent   byte = 'e'
	envResync  byte = 'r'
	envHeader       = 9
)

// newEnvelope returns a buffer holding the envelope header, ready for the
// frame to be appended.
func newEnvelope(kind byte, except uint64, frameCap int) []byte {
	b := make([]byte, envHeader, envHeader+frameCap)
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:envHeader], except)
	return b
}

// parseEnvelope splits a payload; ok is false for a payload chat did not make.
func parseEnvelope(p []byte) (kind byte, except uint64, frame []byte, ok bool) {
	if len(p) > 0 && p[0] == envTraced { // tracing.go
		except, frame, ok = parseTracedEnvelope(p)
		return envMessage, except, frame, ok
	}
	if len(p) == envHeader && p[0] == envResync {
		return envResync, binary.BigEndian.Uint64(p[1:envHeader]), nil, true
	}
	if len(p) <= envHeader || (p[0] != envMessage && p[0] != envEvent) {
		return 0, 0, nil, false
	}
	return p[0], binary.BigEndian.Uint64(p[1:envHeader]), p[envHeader:], true
}

// eventEnvelope encodes v as a frame inside an envelope of kind envEvent.
func eventEnvelope(v any) ([]byte, error) {
	frame, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(newEnvelope(envEvent, 0, len(frame)), frame...), nil
}

// messageFrames encodes m once and returns the envelope carrying its
// `message` frame (except = the sending connection, 0 for none) and, when
// ack is true, the sender's `ack` frame sharing the same encoding.
func messageFrames(m store.Message, except uint64, ack bool) (env, ackFrame []byte, err error) {
	mj, err := json.Marshal(toMessageJSON(m))
	if err != nil {
		return nil, nil, err
	}
	const pre, post = `{"type":"message","message":`, `}`
	env = newEnvelope(envMessage, except, len(pre)+len(mj)+len(post))
	env = append(env, pre...)
	env = append(env, mj...)
	env = append(env, post...)
	if ack {
		cmid, err := json.Marshal(m.ClientMsgID)
		if err != nil {
			return nil, nil, err
		}
		const a1, a2 = `{"type":"ack","client_msg_id":`, `,"message":`
		ackFrame = make([]byte, 0, len(a1)+len(cmid)+len(a2)+len(mj)+1)
		ackFrame = append(ackFrame, a1...)
		ackFrame = append(ackFrame, cmid...)
		ackFrame = append(ackFrame, a2...)
		ackFrame = append(ackFrame, mj...)
		ackFrame = append(ackFrame, '}')
	}
	return env, ackFrame, nil
}

// errorFrameBytes encodes e as an `error` event: the WebSocket form of the
// error shape, with e's code and message (its status has no place in a
// frame). ref nil encodes as null. Every error frame is made here, from an
// *httpapi.Error that httpapi.FromError or httpapi.Fail gave or a handler
// made: the one error map serves both transports.
func errorFrameBytes(ref *string, e *httpapi.Error) []byte {
	f := errorFrame{Type: "error", Ref: ref, Error: errorBody{Code: e.Code, Message: e.Message}}
	if e.RetryAfter > 0 {
		f.RetryAfterMS = (e.RetryAfter + time.Millisecond - 1).Milliseconds()
	}
	b, err := json.Marshal(f)
	if err != nil { // cannot happen for strings
		return []byte(`{"type":"error","ref":null,"error":{"code":"internal","message":"internal error"}}`)
	}
	return b
}
