package mongostore

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/store"
)

type messageDoc struct {
	ID             string `bson:"_id"`
	ConversationID string `bson:"conversation_id"`
	Seq            int64  `bson:"seq"`
	From           string `bson:"from"`
	To             string `bson:"to"`
	Text           string `bson:"text"`
	ClientMsgID    string `bson:"client_msg_id"`
	// Dedup is the idempotency key, unique per sender: "c:" + ClientMsgID,
	// or "m:" + ID for a message sent without one (never a retry).
	Dedup     string        `bson:"dedup"`
	CreatedAt bson.DateTime `bson:"created_at"`
	Deleted   bool          `bson:"deleted,omitempty"` // erased with its sender's account
	// Kind is "" for a text message (absent in documents from before
	// events), else the event's kind; Target the seq it changes.
	Kind        string          `bson:"kind,omitempty"`
	ReplyTo     int64           `bson:"reply_to,omitempty"`
	Target      int64           `bson:"target,omitempty"`
	Emoji       string          `bson:"emoji,omitempty"`
	Attachments []attachmentDoc `bson:"attachments,omitempty"`
}

type attachmentDoc struct {
	ID   string `bson:"id"`
	Name string `bson:"name"`
	Type string `bson:"type"`
	Size int64  `bson:"size"`
}

func attachmentDocs(as []store.Attachment) []attachmentDoc {
	if len(as) == 0 {
		return nil
	}
	ds := make([]attachmentDoc, len(as))
	for i, a := range as {
		ds[i] = attachmentDoc(a)
	}
	return ds
}

func (d messageDoc) message() store.Message {
	var as []store.Attachment
	if len(d.Attachments) > 0 {
		as = make([]store.Attachment, len(d.Attachments))
		for i, a := range d.Attachments {
			as[i] = store.Attachment(a)
		}
	}
	return store.Message{
		ID:             d.ID,
		ConversationID: d.ConversationID,
		Seq:            d.Seq,
		From:           d.From,
		To:             d.To,
		Text:           d.Text,
		Deleted:        d.Deleted,
		ClientMsgID:    d.ClientMsgID,
		CreatedAt:      fromDate(d.CreatedAt),
		Kind:           d.Kind,
		ReplyTo:        d.ReplyTo,
		Target:         d.Target,
		Emoji:          d.Emoji,
		Attachments:    as,
	}
}

func dedupKey(m store.Message) string {
	if m.ClientMsgID != "" {
		return "c:" + m.ClientMsgID
	}
	return "m:" + m.ID
}

// newMessageDoc is the document of the prepared m (with m.Seq).
func newMessageDoc(m store.Message) messageDoc {
	return messageDoc{
		ID:             m.ID,
		ConversationID: m.ConversationID,
		Seq:            m.Seq,
		From:           m.From,
		To:             m.To,
		Text:           m.Text,
		ClientMsgID:    m.ClientMsgID,
		Dedup:          dedupKey(m),
		CreatedAt:      toDate(m.CreatedAt),
		Kind:           m.Kind,
		ReplyTo:        m.ReplyTo,
		Target:         m.Target,
		Emoji:          m.Emoji,
		Attachments:    attachmentDocs(m.Attachments),
	}
}

// conversationDoc records that two users share a conversation. It is
// created before the conversation's first message and never updated.
type conversationDoc struct {
	ID      string   `bson:"_id"`
	Members []string `bson:"members"`
}

// AppendMessage stores m with the next seq of its conversation, or returns
// the message stored earlier with the same From and ClientMsgID.
//
// The insert itself allocates the seq: it tries the highest stored seq + 1
// (remembered from this process's last append when possible) and, when the
// unique (conversation_id, seq) index says another writer took it, reads the
// highest seq again and retries. Seqs thus have no gaps and become visible
// in seq order, on MongoDB and on FerretDB alike.
func (s *Store) AppendMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return store.Message{}, false, fmt.Errorf("mongostore: append message: %w", err)
	}
	switch blocked, err := s.IsBlocked(ctx, m.To, m.From); {
	case err != nil:
		return store.Message{}, false, fmt.Errorf("mongostore: append message: %w", err)
	case blocked:
		return store.Message{}, false, fmt.Errorf("mongostore: append message: %w", store.ErrBlocked)
	}
	stored, created, err := s.appendMessage(ctx, m)
	if err != nil {
		return store.Message{}, false, fmt.Errorf("mongostore: append message: %w", err)
	}
	return stored, created, nil
}

var _ store.BlockCheckingAppender = (*Store)(nil)

// AppendRefusesBlocked is true: AppendMessage and AppendMessageAsync read
// the blocks themselves (the writer one find per batch: writer.go).
func (*Store) AppendRefusesBlocked() bool { return true }

func (s *Store) appendMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	m, err := store.PrepareMessage(m)
	if err != nil {
		return store.Message{}, false, err
	}
	doc := newMessageDoc(m)
	if !m.IsText() || m.ReplyTo != 0 {
		if !m.IsText() {
			// A retry is answered whatever became of the target since.
			if old, ok, err := s.messageByDedup(ctx, doc.From, doc.Dedup); err != nil {
				return store.Message{}, false, err
			} else if ok {
				return old, false, nil
			}
		}
		if err := s.checkAppend(ctx, m); err != nil {
			if s.shown != s.messages && !m.IsText() {
				// Stored by a first try but not yet majority committed?
				if _, ok, ferr := s.findByDedup(ctx, s.messages, doc.From, doc.Dedup); ferr == nil && ok {
					return store.Message{}, false, errNotMajority
				}
			}
			return store.Message{}, false, err
		}
	}
	// The first try trusts the cached highest seq; every retry reads it.
	last := s.seqs.get(m.ConversationID)
	for attempt := 0; attempt <= s.opts.AppendRetries; attempt++ {
		if attempt > 0 || last == 0 {
			var err error
			if last, err = s.lastSeq(ctx, m.ConversationID); err != nil {
				return store.Message{}, false, err
			}
			if last == 0 {
				// A new conversation. Answer a retry before creating anything.
				if old, ok, err := s.messageByDedup(ctx, doc.From, doc.Dedup); err != nil {
					return store.Message{}, false, err
				} else if ok {
					return old, false, nil
				}
				if err := s.ensureConversation(ctx, m.ConversationID, m.From, m.To); err != nil {
					return store.Message{}, false, err
				}
			}
		}
		doc.Seq = last + 1
		_, err := s.messages.InsertOne(ctx, doc)
		if err == nil {
			s.seqs.put(m.ConversationID, doc.Seq)
			m.Seq = doc.Seq
			return m, true, nil
		}
		if !isDuplicate(err) {
			return store.Message{}, false, wrapCtx(ctx, err)
		}
		// Which unique key was hit? FerretDB does not say: look.
		old, ok, err := s.messageByDedup(ctx, doc.From, doc.Dedup)
		if err != nil {
			return store.Message{}, false, err
		}
		if ok {
			return old, false, nil
		}
		if s.shown != s.messages {
			// Not majority committed (yet): the first try's insert may be
			// rolled back, so it is not answered as stored.
			if _, ok, err := s.findByDedup(ctx, s.messages, doc.From, doc.Dedup); err != nil {
				return store.Message{}, false, err
			} else if ok {
				return store.Message{}, false, errNotMajority
			}
		}
		if err := s.messages.FindOne(ctx, bson.D{{Key: "_id", Value: doc.ID}}).Err(); err == nil {
			return store.Message{}, false, fmt.Errorf("message id %q exists: %w", doc.ID, store.ErrConflict)
		} else if !errors.Is(err, mongo.ErrNoDocuments) {
			return store.Message{}, false, wrapCtx(ctx, err)
		}
		// The seq was taken by a concurrent append: the next try reads the new highest.
	}
	return store.Message{}, false, fmt.Errorf("seq of %s still contended after %d attempts", m.ConversationID, s.opts.AppendRetries+1)
}

// ensureConversation creates the conversation document unless it exists.
func (s *Store) ensureConversation(ctx context.Context, id, a, b string) error {
	if b < a {
		a, b = b, a
	}
	_, err := s.convs.InsertOne(ctx, conversationDoc{ID: id, Members: []string{a, b}})
	if err != nil && !isDuplicate(err) {
		return wrapCtx(ctx, err)
	}
	return nil
}

// errNotMajority: a retried send found its message stored on the primary
// but not yet majority committed, so it may still be rolled back.
var errNotMajority = errors.New("message stored but not yet majority committed")

// messageByDedup returns the message of from with the idempotency key dedup,
// as shown to a client (see "Read concern" in the package doc).
func (s *Store) messageByDedup(ctx context.Context, from, dedup string) (store.Message, bool, error) {
	return s.findByDedup(ctx, s.shown, from, dedup)
}

func (s *Store) findByDedup(ctx context.Context, coll *mongo.Collection, from, dedup string) (store.Message, bool, error) {
	var d messageDoc
	err := coll.FindOne(ctx, bson.D{{Key: "from", Value: from}, {Key: "dedup", Value: dedup}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Message{}, false, nil
	}
	if err != nil {
		return store.Message{}, false, wrapCtx(ctx, err)
	}
	return d.message(), true, nil
}

// lastMessage returns the conversation's message with the highest seq.
func (s *Store) lastMessage(ctx context.Context, conv string) (store.Message, bool, error) {
	var d messageDoc
	err := s.shown.FindOne(ctx, bson.D{{Key: "conversation_id", Value: conv}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Message{}, false, nil
	}
	if err != nil {
		return store.Message{}, false, wrapCtx(ctx, err)
	}
	return d.message(), true, nil
}

// lastSeq returns the conversation's highest seq, 0 if it has no message.
func (s *Store) lastSeq(ctx context.Context, conv string) (int64, error) {
	var d struct {
		Seq int64 `bson:"seq"`
	}
	err := s.messages.FindOne(ctx, bson.D{{Key: "conversation_id", Value: conv}},
		options.FindOne().
			SetSort(bson.D{{Key: "seq", Value: -1}}).
			SetProjection(bson.D{{Key: "seq", Value: 1}, {Key: "_id", Value: 0}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, wrapCtx(ctx, err)
	}
	s.seqs.put(conv, d.Seq)
	return d.Seq, nil
}

// MessagesBefore returns up to limit messages with seq < before (before <= 0:
// the newest), ascending, and whether older ones exist.
func (s *Store) MessagesBefore(ctx context.Context, conversationID string, before int64, limit int) ([]store.Message, bool, error) {
	filter := bson.D{{Key: "conversation_id", Value: conversationID}}
	if before > 0 {
		filter = append(filter, bson.E{Key: "seq", Value: bson.D{{Key: "$lt", Value: before}}})
	}
	msgs, more, err := s.page(ctx, conversationID, filter, -1, limit)
	if err != nil {
		return nil, false, fmt.Errorf("mongostore: messages before: %w", err)
	}
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, more, nil
}

// MessagesAfter returns up to limit messages with seq > after, ascending,
// and whether newer ones exist.
func (s *Store) MessagesAfter(ctx context.Context, conversationID string, after int64, limit int) ([]store.Message, bool, error) {
	filter := bson.D{
		{Key: "conversation_id", Value: conversationID},
		{Key: "seq", Value: bson.D{{Key: "$gt", Value: after}}},
	}
	msgs, more, err := s.page(ctx, conversationID, filter, 1, limit)
	if err != nil {
		return nil, false, fmt.Errorf("mongostore: messages after: %w", err)
	}
	return msgs, more, nil
}

// page reads limit+1 messages of conv in the given seq order to learn
// whether there are more, and the current state of its text messages.
func (s *Store) page(ctx context.Context, conv string, filter bson.D, order, limit int) ([]store.Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	limit = max(limit, 0)
	cur, err := s.shown.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "seq", Value: order}}).
		SetLimit(int64(limit)+1))
	if err != nil {
		return nil, false, wrapCtx(ctx, err)
	}
	var docs []messageDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, false, wrapCtx(ctx, err)
	}
	more := len(docs) > limit
	if more {
		docs = docs[:limit]
	}
	msgs := make([]store.Message, len(docs))
	for i, d := range docs {
		msgs[i] = d.message()
	}
	if err := s.withState(ctx, s.shown, conv, msgs); err != nil {
		return nil, false, err
	}
	return msgs, more, nil
}

// EraseMessagesFrom blanks and marks deleted every message userID sent: one
// updateMany through the from_dedup index's leading "from".
func (s *Store) EraseMessagesFrom(ctx context.Context, userID string) (int64, error) {
	res, err := s.messages.UpdateMany(ctx,
		bson.D{{Key: "from", Value: userID}, {Key: "deleted", Value: bson.D{{Key: "$ne", Value: true}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "text", Value: ""}, {Key: "deleted", Value: true}, {Key: "attachments", Value: bson.A{}}}}})
	if err != nil {
		return 0, fmt.Errorf("mongostore: erase messages: %w", wrapCtx(ctx, err))
	}
	if err := s.forgetStatesFrom(ctx, userID); err != nil {
		return 0, fmt.Errorf("mongostore: erase messages: states: %w", err)
	}
	return res.ModifiedCount, nil
}
