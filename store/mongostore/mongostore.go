// Package mongostore is chatd's shared store for replicas: MongoDB through
// go.mongodb.org/mongo-driver/v2.
//
// It uses only what both MongoDB and FerretDB v1 (the test server) do
// correctly: inserts (one document, or unordered insertMany: writer.go),
// finds, counts, deletes, unique and compound indexes. No transactions, no aggregation, and no update is relied
// upon for atomicity, because FerretDB runs an update as a read followed by a
// whole-document write (two concurrent updates of one document may lose one).
// The only atomic primitive used is "insert unless a unique key exists":
//
//   - seq: a message is inserted with seq = the conversation's highest seq + 1
//     under the unique (conversation_id, seq) index; a duplicate means another
//     writer won that seq, and the append reads the new highest and tries
//     again. Since seq n+1 is only ever tried after seq n was seen stored,
//     seqs have no gaps and commit in seq order, so a reader that saw seq n
//     never later finds a smaller new seq (the catch-up rule relies on it).
//   - idempotency: the unique (from, dedup) index; a duplicate returns the
//     stored message.
//   - read/delivered pointers: one document per (conversation, member, kind,
//     seq), inserted when a pointer moves, older ones deleted afterwards; the
//     pointer is the highest seq present, so it only ever moves forward.
//   - refresh rotation: a claim document per (session, old hash), so that of
//     concurrent rotations exactly one proceeds; revocation is its own
//     document, whose first insertion wins.
//
// Read concern. With write concern majority (the default), the reads that
// show messages to a client (history, catch-up, conversation views and their
// unread counts, the message a retried send gets back) use read concern
// majority: read concern local could show a message that only the primary
// holds, and after a failover that message is rolled back and its seq given
// to another one, so a client that saw seq n would keep the wrong message or
// skip the new one. A send is acked only once its insert is majority
// acknowledged, and a retried send whose message is not yet majority
// committed gets an error (outcome unknown; a later retry answers), never
// that message. The seq allocation reads (highest seq, the id guard) stay
// local: they must see the primary's latest insert, and a stale read there
// only costs a retry under the unique index. With write concern 1 every read
// is local, like the writes.
//
// Conversation views (last message, last seq, time of activity, unread
// counts) are derived from the messages when read, never kept as counters.
//
// Collections: users, sessions, session_claims, session_revocations,
// conversations (one document per pair: its id and members), messages,
// pointers, message_states (a cache of folded events, states.go), blocks, attachments and attachment_refs with the GridFS bucket
// blobs (attachments.go). Open creates the indexes.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/chatd/chatd/store"
)

var _ store.Store = (*Store)(nil)

// Options tune a Store. Zero values pick the defaults.
type Options struct {
	// WriteConcern is "majority" (the default: an acknowledged write survives
	// the loss of a minority of the replica set) or "1" (acknowledged by the
	// primary's journal only; for a standalone server).
	WriteConcern string
	// Timeout bounds each operation, retries included (default 10 s).
	// A caller's earlier context deadline wins.
	Timeout time.Duration
	// ConnectTimeout bounds Open's first contact with the server and the
	// server selection of each operation (default 10 s).
	ConnectTimeout time.Duration
	// MaxPoolSize is the most connections per server (default 100).
	MaxPoolSize uint64
	// AppendRetries is how often AppendMessage retries after losing a seq
	// to a concurrent writer (default 100).
	AppendRetries int
	// QueueSize is how many messages AppendMessageAsync holds before it
	// waits (default 1024); BatchMax the most one batch of the writer
	// stores (default 256).
	QueueSize int
	BatchMax  int

	monitor    *event.CommandMonitor // tests only (export_test.go)
	batchHook  func()                // tests only: runs before each batch of the writer
	lookupHook func(n int)           // tests only: runs before each find of IsBlocked's, with its batch's size (lookups.go)
	// foldAfter, when set (tests only), replaces foldThreshold: how many
	// events read make a read fold them.
	foldAfter int
}

func (o *Options) setDefaults() error {
	switch o.WriteConcern {
	case "", "majority":
		o.WriteConcern = "majority"
	case "1":
	default:
		return fmt.Errorf("invalid write concern %q (want majority or 1)", o.WriteConcern)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.MaxPoolSize == 0 {
		o.MaxPoolSize = 100
	}
	if o.AppendRetries <= 0 {
		o.AppendRetries = 100
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.BatchMax <= 0 {
		o.BatchMax = 256
	}
	return nil
}

// Store is a store.Store on one MongoDB database. Use Open.
type Store struct {
	opts   Options
	client *mongo.Client
	pinger *mongo.Client // Ping's, with a pool of its own
	db     *mongo.Database

	users       *mongo.Collection
	sessions    *mongo.Collection
	claims      *mongo.Collection // session_claims
	revocations *mongo.Collection // session_revocations
	convs       *mongo.Collection // conversations
	messages    *mongo.Collection
	pointers    *mongo.Collection
	states      *mongo.Collection // message_states, see states.go
	// shown reads the messages that a client is shown (history, catch-up,
	// conversation views, the message a retried send gets back): with read
	// concern majority when writes are majority (see "Read concern" above).
	shown *mongo.Collection

	seqs seqCache
	// senders holds conv + "\x00" + from for each user known to have a
	// text message in a conversation (hasSentCached); two of them make a
	// contact (ContactIDs).
	senders  contactCache
	w        *batchQueue[*appendReq]   // AppendMessageAsync's (writer.go)
	lookups  *batchQueue[*blockLookup] // IsBlocked's (lookups.go)
	cleanups chan struct{}             // slots of the background deletes (cleanup)
	bg       sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Open connects to the server at uri (a MongoDB connection string), checks
// that it answers, and ensures the indexes of database. Close releases it.
func Open(ctx context.Context, uri, database string, opts Options) (*Store, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("mongostore: open: %w", err)
	}
	if database == "" {
		return nil, errors.New("mongostore: open: empty database name")
	}
	wc := writeconcern.Majority()
	if opts.WriteConcern == "1" {
		journal := true
		wc = &writeconcern.WriteConcern{W: 1, Journal: &journal}
	}
	co := options.Client().ApplyURI(uri).
		SetAppName("chatd").
		SetWriteConcern(wc).
		SetReadPreference(readpref.Primary()).
		SetTimeout(opts.Timeout).
		SetConnectTimeout(opts.ConnectTimeout).
		SetServerSelectionTimeout(opts.ConnectTimeout).
		SetMaxPoolSize(opts.MaxPoolSize)
	if opts.monitor != nil {
		co.SetMonitor(opts.monitor)
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("mongostore: open: %w", err)
	}
	// Ping's own client: a readiness check queued behind the node's own
	// load (every pooled connection busy, a reconnect storm's reads) would
	// take a busy replica out of the gateway's rotation when it is needed.
	pinger, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetAppName("chatd-ping").
		SetReadPreference(readpref.Primary()).
		SetConnectTimeout(opts.ConnectTimeout).
		SetServerSelectionTimeout(opts.ConnectTimeout).
		SetMaxPoolSize(1))
	if err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("mongostore: open: %w", err)
	}
	fail := func(err error) (*Store, error) {
		_ = client.Disconnect(context.Background())
		_ = pinger.Disconnect(context.Background())
		return nil, err
	}
	db := client.Database(database)
	s := &Store{
		opts:        opts,
		client:      client,
		pinger:      pinger,
		db:          db,
		users:       db.Collection("users"),
		sessions:    db.Collection("sessions"),
		claims:      db.Collection("session_claims"),
		revocations: db.Collection("session_revocations"),
		convs:       db.Collection("conversations"),
		messages:    db.Collection("messages"),
		pointers:    db.Collection("pointers"),
		states:      db.Collection("message_states"),
	}
	s.shown = s.messages
	if opts.WriteConcern == "majority" {
		s.shown = db.Collection("messages", options.Collection().SetReadConcern(readconcern.Majority()))
	}
	s.seqs.m = make(map[string]int64)
	s.cleanups = make(chan struct{}, cleanupMax)
	if err := client.Ping(ctx, readpref.Primary()); err != nil {
		return fail(fmt.Errorf("mongostore: open: ping: %w", err))
	}
	if err := s.ensureIndexes(ctx); err != nil {
		return fail(fmt.Errorf("mongostore: open: %w", err))
	}
	if err := s.ensurePrivacyIndexes(ctx); err != nil {
		return fail(fmt.Errorf("mongostore: open: %w", err))
	}
	if err := s.backfillSearchKeys(ctx); err != nil {
		return fail(fmt.Errorf("mongostore: open: %w", err))
	}
	if err := s.ensureAttachmentIndexes(ctx); err != nil {
		return fail(fmt.Errorf("mongostore: open: %w", err))
	}
	if err := s.ensurePushIndexes(ctx); err != nil {
		return fail(fmt.Errorf("mongostore: open: %w", err))
	}
	s.startWriter()
	s.startLookups()
	return s, nil
}

// ensureIndexes creates the indexes the queries and the uniqueness rules
// need; creating an existing index is a no-op.
func (s *Store) ensureIndexes(ctx context.Context) error {
	asc := func(keys ...string) bson.D {
		d := make(bson.D, len(keys))
		for i, k := range keys {
			d[i] = bson.E{Key: k, Value: 1}
		}
		return d
	}
	unique := func(name string) *options.IndexOptionsBuilder {
		return options.Index().SetName(name).SetUnique(true)
	}
	named := func(name string) *options.IndexOptionsBuilder {
		return options.Index().SetName(name)
	}
	indexes := []struct {
		coll   *mongo.Collection
		models []mongo.IndexModel
	}{
		{s.users, []mongo.IndexModel{
			{Keys: asc("username"), Options: unique("username")},
			{Keys: asc("display_fold"), Options: named("display_fold")},
			{Keys: asc("username_key"), Options: named("username_key")},
			{Keys: asc("display_key"), Options: named("display_key")},
			// SearchUsers (a multikey index on an array).
			{Keys: asc("search_keys"), Options: named("search_keys")},
		}},
		{s.sessions, []mongo.IndexModel{
			{Keys: asc("user_id"), Options: named("user_id")},
			// PruneSessions finds the expired and the revoked ones.
			{Keys: asc("expires_at"), Options: named("expires_at")},
		}},
		{s.revocations, []mongo.IndexModel{
			{Keys: asc("revoked_at"), Options: named("revoked_at")},
		}},
		{s.claims, []mongo.IndexModel{
			{Keys: asc("session_id"), Options: named("session_id")},
		}},
		{s.convs, []mongo.IndexModel{
			// A user's conversations (members is an array: a multikey index).
			{Keys: asc("members"), Options: named("members")},
		}},
		{s.messages, []mongo.IndexModel{
			// The seq guard; also serves paging and the newest message.
			{Keys: asc("conversation_id", "seq"), Options: unique("conversation_seq")},
			// Idempotency of retried sends.
			{Keys: asc("from", "dedup"), Options: unique("from_dedup")},
			// Unread counts: the peer's messages above a read pointer.
			{Keys: asc("conversation_id", "from", "seq"), Options: named("conversation_from_seq")},
			// The events of the text messages a read returns, after their
			// cached state (states.go): with seq in the index MongoDB reads
			// only those, not every event of the texts. (Databases created
			// before it also keep the older conversation_target, its prefix.)
			{Keys: asc("conversation_id", "target", "seq"), Options: named("conversation_target_seq")},
		}},
		{s.states, []mongo.IndexModel{
			// EraseMessagesFrom forgets the sender's states.
			{Keys: asc("from"), Options: named("from")},
		}},
		{s.pointers, []mongo.IndexModel{
			{Keys: asc("conversation_id", "user_id", "kind", "seq"), Options: named("conversation_user_kind_seq")},
		}},
	}
	// One index per command: FerretDB v1 panics on a createIndexes that
	// names two or more existing indexes.
	for _, ix := range indexes {
		for _, model := range ix.models {
			if _, err := ix.coll.Indexes().CreateOne(ctx, model); err != nil {
				return fmt.Errorf("create indexes on %s: %w", ix.coll.Name(), wrapCtx(ctx, err))
			}
		}
	}
	return nil
}

// Ping reports whether the primary answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pinger.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("mongostore: ping: %w", wrapCtx(ctx, err))
	}
	return nil
}

// Close disconnects from the server, waiting (up to the operation timeout)
// for operations in progress. Calls after Close fail; a second Close
// returns the first one's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopWriter() // answers what is queued first
		s.lookups.close()
		s.bg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		defer cancel()
		if err := s.client.Disconnect(ctx); err != nil {
			s.closeErr = fmt.Errorf("mongostore: close: %w", err)
		}
		_ = s.pinger.Disconnect(ctx) // nothing of the caller's is on it
	})
	return s.closeErr
}

// ---- helpers ----

// seqCache remembers the highest seq this process saw stored per
// conversation, so that an append usually needs no read before its insert.
// It is only a hint: a stale entry costs one failed insert, never a wrong seq.
type seqCache struct {
	mu sync.Mutex
	m  map[string]int64
}

const seqCacheMax = 1 << 16

func (c *seqCache) get(conv string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[conv]
}

func (c *seqCache) put(conv string, seq int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq <= c.m[conv] {
		return
	}
	if len(c.m) >= seqCacheMax {
		clear(c.m)
	}
	c.m[conv] = seq
}

// in is the filter value "one of vs": vs's only value itself when it has
// one, else {$in: vs}. MongoDB plans both alike; FerretDB v1 pushes an
// equality down to PostgreSQL (an index read) but no $in, which reads the
// whole collection, and the common case on the send and catch-up paths is
// one value (a user's one peer, one conversation, a writer batch of one).
func in[T any](vs []T) any {
	if len(vs) == 1 {
		return vs[0]
	}
	return bson.D{{Key: "$in", Value: vs}}
}

// toDate converts t to a BSON date (milliseconds).
func toDate(t time.Time) bson.DateTime { return bson.NewDateTimeFromTime(t) }

// fromDate is the inverse of toDate, in UTC.
func fromDate(d bson.DateTime) time.Time { return time.UnixMilli(int64(d)).UTC() }

// wrapCtx returns an error that matches ctx's error when ctx ended (the
// driver reports it in its own words), else err.
func wrapCtx(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// notFound maps the driver's "no document" to store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.ErrNotFound
	}
	return err
}

// isDuplicate reports a unique-index violation. FerretDB does not say
// which index; callers find out by reading.
func isDuplicate(err error) bool { return mongo.IsDuplicateKeyError(err) }

// lowerPrefix is the case-folded form used for prefix search.
func lowerPrefix(s string) string { return strings.ToLower(s) }
