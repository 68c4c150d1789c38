// Package pubsub defines the broker that links chat nodes (the fast path for
// live events) and the cluster-wide presence registry. It imports only the
// standard library. Backends: mempubsub (one process) and redispubsub.
//
// The broker is best effort: an event may be lost (a broker restart, a full
// buffer). Clients recover with the catch-up rule of api.md, because the
// store, not the broker, is the record.
package pubsub

import (
	"context"
	"time"
)

// Topic names shared by every role.
const (
	// TopicRevocations carries the id of a revoked session, so every chat
	// node closes that session's sockets.
	TopicRevocations = "revocations"
)

// UserTopic is the topic on which every event for one user travels.
func UserTopic(userID string) string { return "user." + userID }

// Handler receives one published payload. It runs on the broker's delivery
// goroutine: it must not block and must not keep payload past its return
// unless it owns a copy (backends hand every handler the same slice, which
// they never modify afterwards, so sharing it read-only is fine).
type Handler func(payload []byte)

// Subscription is an active subscription.
type Subscription interface {
	// Unsubscribe stops deliveries to this subscription's handler. It is
	// idempotent. After it returns the handler is not called again.
	Unsubscribe()
}

// Broker publishes payloads to topics and delivers them to every subscriber
// on every node. Safe for concurrent use.
type Broker interface {
	// Publish hands payload to the transport for every subscriber of topic,
	// this node's included. It never waits for a subscriber's handler. The
	// caller must not modify payload afterwards. Delivery to the subscribers
	// of one topic keeps the order of Publish calls made by one goroutine.
	Publish(ctx context.Context, topic string, payload []byte) error
	// Subscribe registers h for topic and returns once the subscription is
	// active: every payload published after Subscribe returned reaches h
	// (unless the broker loses it). Several subscriptions may share a topic.
	Subscribe(ctx context.Context, topic string, h Handler) (Subscription, error)
	// Ping reports whether the broker's backend answers (used by /readyz).
	Ping(ctx context.Context) error
	// OnReconnect registers fn to be called after this node's link to the
	// backend was lost and is back, once every subscription is active
	// again: payloads published meanwhile may have been lost, so the
	// caller tells its clients to catch up (api.md 1.1, resync). fn runs
	// on a backend goroutine and must not block for long. A broker without
	// a link to lose (mempubsub) never calls it.
	OnReconnect(fn func())
	// Close ends every subscription and releases the backend.
	Close() error
}

// Publication is one payload for one topic.
type Publication struct {
	Topic   string
	Payload []byte
}

// BatchPublisher is a Broker that hands several publications to its
// transport at once: one round trip to a remote backend instead of one per
// publication. The order is that of calling Publish for each in turn from
// one goroutine. It returns nil when every publication was handed over,
// else one error per publication (nil for those that were).
type BatchPublisher interface {
	PublishBatch(ctx context.Context, ps []Publication) []error
}

// Status is a user's presence.
type Status struct {
	Online   bool
	LastSeen time.Time // zero if never seen offline (or not known)
}

// Presence tracks which users hold a connection on some node. Nodes report
// transitions of their own local connection count (0→1 and 1→0); the
// registry answers for the whole cluster. Safe for concurrent use.
type Presence interface {
	// Connect records that nodeID holds at least one connection of userID.
	// first reports whether no node held one before (the user came online).
	Connect(ctx context.Context, userID, nodeID string) (first bool, err error)
	// Disconnect records that nodeID holds no connection of userID any more.
	// last reports whether no node holds one now (the user went offline); the
	// user's last-seen time is then set to at.
	Disconnect(ctx context.Context, userID, nodeID string, at time.Time) (last bool, err error)
	// Lookup returns the status of each of userIDs (unknown users: offline,
	// zero LastSeen).
	Lookup(ctx context.Context, userIDs []string) (map[string]Status, error)
	// Refresh tells the registry that nodeID is alive and still holds the
	// connections of userIDs. Backends that expire a dead node's entries
	// (redispubsub) need it called more often than their TTL. It renews
	// only entries that exist: a user nodeID disconnected after the caller
	// took its list stays offline (a stale Refresh never resurrects one).
	// missing lists the users of userIDs nodeID holds no entry for (left
	// meanwhile, or lost: expired and swept, the backend restarted); the
	// caller Connects again those it still holds.
	Refresh(ctx context.Context, nodeID string, userIDs []string) (missing []string, err error)
	// OnExpired registers fn to be called for each user that went offline
	// because the entries of a dead node (one that stopped calling Refresh)
	// expired. Each such transition is reported once cluster-wide, with the
	// last-seen time the registry recorded; fn runs on a backend goroutine
	// and must not block for long. A registry whose entries never expire
	// (mempubsub, one process) never calls fn.
	OnExpired(fn func(userID string, lastSeen time.Time))
}
