package chat

import (
	"context"
	"time"

	"github.com/chatd/chatd/store"
	"github.com/prometheus/client_golang/prometheus"
)

// timedStore is the store as the chat service uses it: every operation
// observes its latency in chatd_store_latency_seconds{op}, so that handlers
// call the store without timing it themselves. It is also always a
// store.AsyncAppender: the store's own when it has one (sqlitestore),
// otherwise its AppendMessage adapted (syncAppender), so that WebSocket
// sends take one path whatever the store (pipeline.go).
type timedStore struct {
	st    Store
	async store.AsyncAppender
	op    storeObservers
}

var (
	_ Store               = (*timedStore)(nil)
	_ store.AsyncAppender = (*timedStore)(nil)
)

// storeObservers are the latency observers of each operation, curried once.
type storeObservers struct {
	createUser, userByID, userByUsername, usersByIDs, searchUsers prometheus.Observer
	userByNameKey                                                 prometheus.Observer
	createSession, sessionByID, rotateRefresh, revokeSession      prometheus.Observer
	conversations, conversation, peerIDs, markRead, markDelivered prometheus.Observer
	appendMessage, messagesBefore, messagesAfter                  prometheus.Observer
	contactIDs, isBlocked                                         prometheus.Observer // the sends' privacy reads (timedstore_privacy.go)
}

func newTimedStore(st Store, lat *prometheus.HistogramVec) *timedStore {
	o := func(op string) prometheus.Observer { return lat.WithLabelValues(op) }
	t := &timedStore{st: st, op: storeObservers{
		createUser: o("create_user"), userByID: o("user_by_id"), userByUsername: o("user_by_username"),
		usersByIDs: o("users_by_ids"), searchUsers: o("search_users"), userByNameKey: o("user_by_name_key"),
		createSession: o("create_session"), sessionByID: o("session_by_id"),
		rotateRefresh: o("rotate_refresh"), revokeSession: o("revoke_session"),
		conversations: o("conversations"), conversation: o("conversation"), peerIDs: o("peer_ids"),
		markRead: o("mark_read"), markDelivered: o("mark_delivered"),
		appendMessage: o("append_message"), messagesBefore: o("messages_before"), messagesAfter: o("messages_after"),
		contactIDs: o("contact_ids"), isBlocked: o("is_blocked"),
	}}
	if a, ok := st.(store.AsyncAppender); ok {
		t.async = a
	} else {
		t.async = syncAppender{st}
	}
	return t
}

// since records the time since start on o; deferred as
// `defer since(o, time.Now())`.
func since(o prometheus.Observer, start time.Time) { o.Observe(time.Since(start).Seconds()) }

func (t *timedStore) CreateUser(ctx context.Context, u store.User) error {
	defer since(t.op.createUser, time.Now())
	return t.st.CreateUser(ctx, u)
}

func (t *timedStore) UserByID(ctx context.Context, id string) (store.User, error) {
	defer since(t.op.userByID, time.Now())
	return t.st.UserByID(ctx, id)
}

func (t *timedStore) UserByUsername(ctx context.Context, username string) (store.User, error) {
	defer since(t.op.userByUsername, time.Now())
	return t.st.UserByUsername(ctx, username)
}

func (t *timedStore) UsersByIDs(ctx context.Context, ids []string) ([]store.User, error) {
	defer since(t.op.usersByIDs, time.Now())
	return t.st.UsersByIDs(ctx, ids)
}

func (t *timedStore) UserByNameKey(ctx context.Context, keys []string, excludeID string) (store.User, error) {
	defer since(t.op.userByNameKey, time.Now())
	return t.st.UserByNameKey(ctx, keys, excludeID)
}

func (t *timedStore) SearchUsers(ctx context.Context, prefix, excludeID string, limit int) ([]store.User, error) {
	defer since(t.op.searchUsers, time.Now())
	return t.st.SearchUsers(ctx, prefix, excludeID, limit)
}

func (t *timedStore) CreateSession(ctx context.Context, s store.Session) error {
	defer since(t.op.createSession, time.Now())
	return t.st.CreateSession(ctx, s)
}

func (t *timedStore) SessionByID(ctx context.Context, id string) (store.Session, error) {
	defer since(t.op.sessionByID, time.Now())
	return t.st.SessionByID(ctx, id)
}

func (t *timedStore) RotateRefresh(ctx context.Context, id string, r store.Rotation) error {
	defer since(t.op.rotateRefresh, time.Now())
	return t.st.RotateRefresh(ctx, id, r)
}

func (t *timedStore) RevokeSession(ctx context.Context, id string, at time.Time) error {
	defer since(t.op.revokeSession, time.Now())
	return t.st.RevokeSession(ctx, id, at)
}

func (t *timedStore) Conversations(ctx context.Context, userID string) ([]store.ConversationView, error) {
	defer since(t.op.conversations, time.Now())
	return t.st.Conversations(ctx, userID)
}

func (t *timedStore) Conversation(ctx context.Context, userID, peerID string) (store.ConversationView, error) {
	defer since(t.op.conversation, time.Now())
	return t.st.Conversation(ctx, userID, peerID)
}

func (t *timedStore) PeerIDs(ctx context.Context, userID string) ([]string, error) {
	defer since(t.op.peerIDs, time.Now())
	return t.st.PeerIDs(ctx, userID)
}

func (t *timedStore) MarkRead(ctx context.Context, userID, peerID string, seq int64) (int64, bool, error) {
	defer since(t.op.markRead, time.Now())
	return t.st.MarkRead(ctx, userID, peerID, seq)
}

func (t *timedStore) MarkDelivered(ctx context.Context, userID, peerID string, seq int64) (int64, bool, error) {
	defer since(t.op.markDelivered, time.Now())
	return t.st.MarkDelivered(ctx, userID, peerID, seq)
}

func (t *timedStore) AppendMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	defer since(t.op.appendMessage, time.Now())
	return t.st.AppendMessage(ctx, m)
}

// AppendMessageAsync observes the time from the call to done (queueing and
// the group commit included) as append_message.
func (t *timedStore) AppendMessageAsync(ctx context.Context, m store.Message, done func(store.Message, bool, error)) {
	start := time.Now()
	o := t.op.appendMessage
	t.async.AppendMessageAsync(ctx, m, func(msg store.Message, created bool, err error) {
		since(o, start)
		done(msg, created, err)
	})
}

func (t *timedStore) MessagesBefore(ctx context.Context, conversationID string, before int64, limit int) ([]store.Message, bool, error) {
	defer since(t.op.messagesBefore, time.Now())
	return t.st.MessagesBefore(ctx, conversationID, before, limit)
}

func (t *timedStore) MessagesAfter(ctx context.Context, conversationID string, after int64, limit int) ([]store.Message, bool, error) {
	defer since(t.op.messagesAfter, time.Now())
	return t.st.MessagesAfter(ctx, conversationID, after, limit)
}

// Ping is not timed: it is /readyz's probe, not work.
func (t *timedStore) Ping(ctx context.Context) error { return t.st.Ping(ctx) }
