// Package store defines chatd's records and the persistence interface that
// every storage backend implements (sqlitestore for one node, mongostore for
// replicas). It imports only the standard library: no driver type appears in
// a signature, so handlers never depend on a backend.
//
// The store is the record of truth: a message is acknowledged to its sender
// only after AppendMessage returned it.
package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"time"
)

// Sentinel errors. Backends wrap them with %w; callers test with errors.Is.
// Each is an *Error whose Kind lets a transport map it to a status without
// importing this package (httpapi matches the Kind method).
var (
	// ErrNotFound: the record asked for does not exist.
	ErrNotFound = &Error{kind: KindNotFound, msg: "store: not found"}
	// ErrConflict: a uniqueness rule or a compare-and-swap precondition failed
	// (username taken, refresh hash no longer current, session revoked).
	ErrConflict = &Error{kind: KindConflict, msg: "store: conflict"}
	// ErrInvalid: the caller broke a rule of the record it passed (a message
	// without a sender or a recipient, or to its own sender).
	ErrInvalid = &Error{kind: KindInvalid, msg: "store: invalid record"}
)

// The kinds of the sentinel errors, as Error.Kind reports them.
const (
	KindNotFound = "not_found"
	KindConflict = "conflict"
	KindInvalid  = "invalid"
)

// Error is the type of the sentinel errors.
type Error struct{ kind, msg string }

func (e *Error) Error() string { return e.msg }

// Kind is KindNotFound, KindConflict or KindInvalid.
func (e *Error) Kind() string { return e.kind }

// User is an account. Username is stored folded to lower case.
type User struct {
	ID           string
	Username     string
	DisplayName  string
	PasswordHash string // argon2id PHC string; never leaves the auth package
	CreatedAt    time.Time
	// UsernameKey and DisplayNameKey are the look-alike keys of Username and
	// DisplayName (the caller computes them, with textpolicy.NameKey); the
	// store keeps them and matches them in UserByNameKey, nothing more.
	// Accounts stored before the keys existed have them empty.
	UsernameKey    string
	DisplayNameKey string
}

// Session is one login. The refresh token itself is never stored, only its
// hash. PrevRefreshHash is the hash of the token the current one replaced: a
// client presenting it again has replayed a rotated token, and the session
// must be revoked (unless it is the concurrent-refresh race; auth decides).
// Generation counts the rotations: the current token is the session's
// Generation-th (0 for the login's).
type Session struct {
	ID              string
	UserID          string
	RefreshHash     string
	PrevRefreshHash string
	Generation      int64
	CreatedAt       time.Time
	ExpiresAt       time.Time // when the refresh token stops working
	RevokedAt       time.Time // zero while the session is active
	LastUsedAt      time.Time // the login or the latest rotation
	UserAgent       string    // the login's User-Agent, as auth trimmed it
}

// Rotation is one step of a session's refresh-token chain
// (Sessions.RotateRefresh).
type Rotation struct {
	OldHash    string    // the hash that must be current
	NewHash    string    // replaces it
	Generation int64     // the new token's generation (the old one's + 1)
	ExpiresAt  time.Time // the new token's expiry
	At         time.Time // the time of the rotation: LastUsedAt
}

// Revoked reports whether the session was revoked.
func (s Session) Revoked() bool { return !s.RevokedAt.IsZero() }

// Message is one stored chat message. Seq is assigned by the store, per
// conversation, strictly increasing in commit order; gaps are allowed,
// repeats never.
type Message struct {
	ID             string
	ConversationID string
	Seq            int64
	From           string
	To             string
	Text           string
	ClientMsgID    string
	CreatedAt      time.Time
	// Kind is KindText ("" on the wire and in a Message the caller builds
	// means text too), KindEdit, KindDelete or KindReaction. Every change to
	// a message is a new message of its own kind and seq whose Target is the
	// seq of the text message it changes.
	Kind string
	// ReplyTo is the seq of the message a text message answers, 0 for none.
	ReplyTo int64
	// Target is the seq of the text message an edit, delete or reaction
	// applies to; 0 on a text message.
	Target int64
	// Emoji is a reaction's emoji; "" removes the sender's reaction.
	Emoji string
	// Attachments are the uploads a text message carries (h10-attach's
	// attachment store fills them in before the append); [] once deleted.
	Attachments []Attachment
	// The current state of a text message, as its events left it:
	// EditedAt is the time of its latest edit (zero: never edited);
	// Reactions maps an emoji to the ids of the users who reacted with it,
	// one reaction per user, in the order they reacted.
	EditedAt  time.Time
	Reactions map[string][]string
	// Deleted: the message was deleted for everyone (a KindDelete event), or
	// its sender's account was deleted (Messages.EraseMessagesFrom); Text is
	// then "" and Attachments empty.
	Deleted bool
}

// The kinds of message (Message.Kind).
const (
	KindText     = "text"
	KindEdit     = "edit"
	KindDelete   = "delete"
	KindReaction = "reaction"
)

// IsText reports whether m is a text message (Kind "" or KindText), as
// opposed to an event that changes one.
func (m Message) IsText() bool { return m.Kind == "" || m.Kind == KindText }

// Attachment is an uploaded file a message references.
type Attachment struct {
	ID   string
	Name string
	Type string // its media type, as uploaded
	Size int64  // bytes
}

// ConversationView is a conversation as seen by one of its two members.
type ConversationView struct {
	ID               string
	PeerID           string
	LastMessage      *Message // the last text message, in its current state; nil if none
	LastSeq          int64
	Unread           int64 // text messages from the peer with seq > ReadSeq
	ReadSeq          int64 // this member's read pointer
	DeliveredSeq     int64 // this member's delivered pointer (>= ReadSeq)
	PeerReadSeq      int64
	PeerDeliveredSeq int64
	UpdatedAt        time.Time // time of the last text message
}

// DeletedDisplayName is the display name of a deleted account's tombstone.
const DeletedDisplayName = "Deleted user"

// DeletedUsername is the username of the tombstone of account id: "~" and
// the id. No one can sign up with it ("~" is never in a username), and it
// keeps the unique-username rule among tombstones.
func DeletedUsername(id string) string { return "~" + id }

// ConversationID returns the id of the conversation between users a and b.
// It is the same whichever order the two are given in.
func ConversationID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "." + b
}

// NewID returns a fresh random id: 26 lower-case base32 characters (130 bits).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return idEncoding.EncodeToString(b[:])
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Store is everything chatd keeps: the four aggregates, each its own
// interface so that a service asks only for the ones it uses, and the
// backend's lifecycle. Implementations are safe for concurrent use.
//
// Every method of every aggregate returns ctx.Err() (possibly wrapped) when
// ctx ends first, and a wrapped backend error when the backend fails;
// callers map those to 503. For a write, such an error says nothing about
// whether the write happened (see Messages for what that means for a send).
type Store interface {
	Users
	Sessions
	Conversations
	Messages
	Privacy
	Attachments
	Notifications

	// Ping reports whether the backend answers (used by /readyz).
	Ping(ctx context.Context) error
	// Close waits for pending writes and releases the backend.
	Close() error
}

// Users are the accounts.
type Users interface {
	// CreateUser inserts u (ID, Username, DisplayName, PasswordHash, CreatedAt
	// set by the caller). ErrConflict if the username is taken.
	CreateUser(ctx context.Context, u User) error
	// UserByID returns the user or ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// UserByUsername returns the user with that (lower-case) username or ErrNotFound.
	UserByUsername(ctx context.Context, username string) (User, error)
	// UsersByIDs returns the users that exist among ids, in no particular order.
	UsersByIDs(ctx context.Context, ids []string) ([]User, error)
	// UserByNameKey returns a user other than excludeID whose UsernameKey or
	// DisplayNameKey equals one of keys, or ErrNotFound. Empty keys match
	// nothing. Which user, when several match, is unspecified. It is a
	// check, not a constraint: two concurrent CreateUser calls with
	// matching keys both succeed.
	UserByNameKey(ctx context.Context, keys []string, excludeID string) (User, error)
	// SetDisplayName replaces the user's DisplayName and DisplayNameKey (the
	// caller computes the key with textpolicy.NameKey and checks the name).
	// ErrNotFound if there is no such user.
	SetDisplayName(ctx context.Context, id, displayName, displayNameKey string) error
	// SetPasswordHash replaces the user's PasswordHash. ErrNotFound if there
	// is no such user.
	SetPasswordHash(ctx context.Context, id, hash string) error
	// DeleteUser turns the account into a tombstone that keeps its id, so
	// that its conversations keep their peer: Username becomes DeletedUsername(id)
	// (freeing the old name), DisplayName DeletedDisplayName, PasswordHash ""
	// (which no password matches), both name keys "" (it looks like no one);
	// its push subscriptions and mutes are deleted. Its sessions and messages are the
	// callers' to revoke and erase. ErrNotFound if there is no such user;
	// deleting a tombstone again changes nothing and returns nil.
	DeleteUser(ctx context.Context, id string) error
	// SearchUsers returns at most limit users, other than excludeID, whose
	// username or display name starts with prefix (case-insensitively),
	// ordered by username. An empty prefix matches everyone.
	SearchUsers(ctx context.Context, prefix, excludeID string, limit int) ([]User, error)
}

// Sessions are the logins and their refresh-token chains.
type Sessions interface {
	// CreateSession inserts s (every field as given; LastUsedAt is usually
	// CreatedAt). ErrConflict if its id is taken.
	CreateSession(ctx context.Context, s Session) error
	// SessionByID returns the session (revoked or not) or ErrNotFound.
	SessionByID(ctx context.Context, id string) (Session, error)
	// SessionsByUser returns every session of userID, revoked or not, in no
	// particular order (an empty list for a user without any).
	SessionsByUser(ctx context.Context, userID string) ([]Session, error)
	// RotateRefresh atomically replaces the session's refresh hash r.OldHash
	// by r.NewHash (PrevRefreshHash becomes r.OldHash) and sets Generation,
	// ExpiresAt and LastUsedAt (= r.At) from r. It returns ErrConflict when
	// the session is revoked or its current hash is not r.OldHash (a
	// concurrent rotation won), ErrNotFound when there is no session. Of
	// concurrent rotations from one hash at most one succeeds.
	RotateRefresh(ctx context.Context, id string, r Rotation) error
	// RevokeSession marks the session revoked at at. Revoking a revoked
	// session keeps the first time and returns nil. ErrNotFound if unknown.
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// PruneSessions deletes every session whose refresh token expired
	// (ExpiresAt) before before, or that was revoked (RevokedAt) before
	// before, and returns how many it deleted; a deleted session is
	// ErrNotFound from then on. It deletes in small steps, so that other
	// writes are not held up behind it; after an error some of them may be
	// deleted, and a later call goes on.
	PruneSessions(ctx context.Context, before time.Time) (int64, error)
}

// Conversations are the member's views of their conversations and the
// read and delivered pointers in them. A conversation exists from its first
// message on (Messages.AppendMessage creates it).
type Conversations interface {
	// Conversations returns userID's conversations, most recent activity first.
	Conversations(ctx context.Context, userID string) ([]ConversationView, error)
	// Conversation returns the conversation of userID with peerID, or
	// ErrNotFound if they have exchanged no message yet.
	Conversation(ctx context.Context, userID, peerID string) (ConversationView, error)
	// PeerIDs returns the ids of everyone userID shares a conversation with.
	PeerIDs(ctx context.Context, userID string) ([]string, error)
	// MarkRead moves userID's read pointer in the conversation with peerID
	// forward to seq, clamped to the conversation's LastSeq; the delivered
	// pointer is raised to at least the read pointer. It returns the pointer
	// after the call and whether it moved. A lower seq changes nothing.
	// ErrNotFound if there is no such conversation.
	MarkRead(ctx context.Context, userID, peerID string, seq int64) (readSeq int64, moved bool, err error)
	// MarkDelivered moves userID's delivered pointer forward, like MarkRead.
	MarkDelivered(ctx context.Context, userID, peerID string, seq int64) (deliveredSeq int64, moved bool, err error)
}

// Messages are the messages of every conversation, in seq order.
//
// Durability of a send. When AppendMessage returns nil, the returned message
// is durable. When it returns an error, the message may or may not have been
// stored: the outcome is unknown, not a failure. sqlitestore's writer
// finishes a batch it has begun whatever becomes of its callers, so a caller
// whose ctx ends while its batch commits gets ctx.Err() although its message
// is stored; MongoDB may report a write-concern ("majority") or operation
// timeout, or lose the connection, after the insert applied.
// The caller resolves the unknown by retrying with the same From and
// ClientMsgID: the retry returns the message stored the first time, with
// created=false (or stores it now, with created=true). A message sent
// without a ClientMsgID cannot be resolved this way.
type Messages interface {
	// AppendMessage stores m. The caller sets ID, From, To, Text, ClientMsgID
	// and CreatedAt; the store sets ConversationID (ConversationID(From, To))
	// and Seq, creating the conversation on its first message, and returns the
	// stored message with created=true. CreatedAt is kept to the millisecond,
	// in UTC (what a read returns); a zero CreatedAt or an empty ID is filled
	// in (PrepareMessage). ErrInvalid if From or To is empty or they are the
	// same user. If a message with the same From and ClientMsgID exists
	// already, nothing is written and that message is returned with
	// created=false. When AppendMessage returns nil the message is durable;
	// an error leaves it unknown whether m was stored (see Messages).
	//
	// The caller also sets Kind, ReplyTo, Target, Emoji and Attachments
	// (EditedAt, Reactions and Deleted are the store's). A text message's
	// ReplyTo, when not 0, must be the seq of a text message of the
	// conversation (else ErrInvalid). An event (Kind edit, delete or
	// reaction) must name in Target a text message of the conversation
	// (else ErrNotFound, also when the conversation does not exist) and pass
	// CheckEvent against it (ErrForbidden, ErrDeleted); it is stored as a
	// message of its own with the next seq and, atomically with it, the
	// target's current state becomes target.Apply(event), which every read
	// returns from then on. Events count for LastSeq but not for Unread,
	// LastMessage, UpdatedAt or contacts (Privacy). The retry of an event
	// returns it with created=false whatever happened to its target since.
	AppendMessage(ctx context.Context, m Message) (stored Message, created bool, err error)
	// A page of MessagesBefore or MessagesAfter holds the text messages, each
	// in its current state, and the events, each as it was stored.
	//
	// MessagesBefore returns up to limit messages of the conversation with
	// seq < before (before <= 0: the newest), ascending by seq, and whether
	// older ones exist.
	MessagesBefore(ctx context.Context, conversationID string, before int64, limit int) (msgs []Message, hasMore bool, err error)
	// MessagesAfter returns up to limit messages with seq > after, ascending
	// by seq, and whether newer ones exist.
	MessagesAfter(ctx context.Context, conversationID string, after int64, limit int) (msgs []Message, hasMore bool, err error)
	// EraseMessagesFrom sets Text "" and Deleted on every message userID
	// sent, in every conversation (seqs, ids and the rest stay; a text
	// message becomes what Message.Erased returns), and returns
	// how many it changed. After an error some may be erased; calling it
	// again finishes the work.
	EraseMessagesFrom(ctx context.Context, userID string) (int64, error)
}

// AsyncAppender is implemented by a Store that can queue a message without
// the caller waiting for its commit (sqlitestore and mongostore, whose
// writers commit in groups). chat uses it to keep several sends of one WebSocket connection in
// flight; with a Store that lacks it, every send waits in AppendMessage.
// storetest.Run checks these promises for a store that implements it.
type AsyncAppender interface {
	// AppendMessageAsync does the work of AppendMessage (same fields set by
	// the caller, same idempotence) without waiting for it: it returns once
	// m is queued, blocking only while the store's queue is full. done is
	// called exactly once with what AppendMessage would have returned, after
	// the message is durable or has failed: from a store goroutine, or from
	// the caller's goroutine before AppendMessageAsync returns when m could
	// not be queued (store closed, ctx ended). An error passed to done leaves
	// it unknown whether m was stored, as for AppendMessage (see Messages). Queued messages are committed
	// in the order they were queued, and their done calls follow that order,
	// so messages queued one after another by one goroutine get increasing
	// seqs within a conversation. done must not block or do I/O: it runs on
	// the store's writer.
	AppendMessageAsync(ctx context.Context, m Message, done func(stored Message, created bool, err error))
}
