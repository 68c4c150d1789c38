package mongostore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/chatd/chatd/store"
)

// Pointer kinds.
const (
	kindRead      = "read"
	kindDelivered = "delivered"
)

// pointerDoc says that a member's read or delivered pointer reached seq. A
// pointer is the highest seq among its documents; moving it inserts a
// document and then deletes the lower ones, so it never moves back even
// when two moves race.
type pointerDoc struct {
	ID             string `bson:"_id"` // conversation/user/kind/seq
	ConversationID string `bson:"conversation_id"`
	UserID         string `bson:"user_id"`
	Kind           string `bson:"kind"`
	Seq            int64  `bson:"seq"`
}

// pointers are one member's pointers in one conversation.
type pointers struct{ read, delivered int64 }

// effectiveDelivered is the delivered pointer as reported: never below the
// read pointer (MarkRead raises it implicitly).
func (p pointers) effectiveDelivered() int64 { return max(p.read, p.delivered) }

// loadPointers returns the pointers in the conversations matched by filter,
// by conversation and then user.
func (s *Store) loadPointers(ctx context.Context, filter bson.D) (map[string]map[string]pointers, error) {
	cur, err := s.pointers.Find(ctx, filter)
	if err != nil {
		return nil, wrapCtx(ctx, err)
	}
	var docs []pointerDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	out := make(map[string]map[string]pointers)
	for _, d := range docs {
		users := out[d.ConversationID]
		if users == nil {
			users = make(map[string]pointers, 2)
			out[d.ConversationID] = users
		}
		p := users[d.UserID]
		switch d.Kind {
		case kindRead:
			p.read = max(p.read, d.Seq)
		case kindDelivered:
			p.delivered = max(p.delivered, d.Seq)
		}
		users[d.UserID] = p
	}
	return out, nil
}

// view assembles userID's view of conversation conv with peerID from its
// last message (text or event) and both members' pointers, reading the last
// text message's state and counting the unread text messages.
func (s *Store) view(ctx context.Context, conv, userID, peerID string, last store.Message, ptrs map[string]pointers) (store.ConversationView, error) {
	mine, theirs := ptrs[userID], ptrs[peerID]
	unread, err := s.shown.CountDocuments(ctx, bson.D{
		{Key: "conversation_id", Value: conv},
		{Key: "from", Value: peerID},
		{Key: "seq", Value: bson.D{{Key: "$gt", Value: mine.read}}},
		textOnly,
	})
	if err != nil {
		return store.ConversationView{}, wrapCtx(ctx, err)
	}
	// The last message, unless an event: the last text message.
	var lm *store.Message
	if last.IsText() {
		msgs := []store.Message{last}
		if err := s.withState(ctx, s.shown, conv, msgs); err != nil {
			return store.ConversationView{}, err
		}
		lm = &msgs[0]
	} else if t, ok, err := s.lastText(ctx, conv); err != nil {
		return store.ConversationView{}, err
	} else if ok {
		lm = &t
	}
	updated := last.CreatedAt
	if lm != nil {
		updated = lm.CreatedAt
	}
	return store.ConversationView{
		ID:               conv,
		PeerID:           peerID,
		LastMessage:      lm,
		LastSeq:          last.Seq,
		Unread:           unread,
		ReadSeq:          mine.read,
		DeliveredSeq:     mine.effectiveDelivered(),
		PeerReadSeq:      theirs.read,
		PeerDeliveredSeq: theirs.effectiveDelivered(),
		UpdatedAt:        updated,
	}, nil
}

// peerOf returns the member of d other than userID.
func (d conversationDoc) peerOf(userID string) string {
	for _, m := range d.Members {
		if m != userID {
			return m
		}
	}
	return userID
}

// memberConversations returns the conversation documents of userID.
func (s *Store) memberConversations(ctx context.Context, userID string) ([]conversationDoc, error) {
	cur, err := s.convs.Find(ctx, bson.D{{Key: "members", Value: userID}})
	if err != nil {
		return nil, wrapCtx(ctx, err)
	}
	var docs []conversationDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrapCtx(ctx, err)
	}
	return docs, nil
}

// Conversations returns userID's conversations, most recent activity first
// (the time of the last message, then the id).
func (s *Store) Conversations(ctx context.Context, userID string) ([]store.ConversationView, error) {
	views, err := s.conversations(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("mongostore: conversations: %w", err)
	}
	return views, nil
}

func (s *Store) conversations(ctx context.Context, userID string) ([]store.ConversationView, error) {
	docs, err := s.memberConversations(ctx, userID)
	if err != nil || len(docs) == 0 {
		return nil, err
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	ptrs, err := s.loadPointers(ctx, bson.D{{Key: "conversation_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, err
	}
	// Two reads per conversation (last message, unread count): run a few
	// conversations at a time.
	found := make([]*store.ConversationView, len(docs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		sem      = make(chan struct{}, viewConcurrency)
	)
	for i, d := range docs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			v, ok, err := s.listedView(ctx, d, userID, ptrs[d.ID])
			if err != nil {
				errOnce.Do(func() { firstErr = err; cancel() })
				return
			}
			if ok {
				found[i] = &v
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	views := make([]store.ConversationView, 0, len(docs))
	for _, v := range found {
		if v != nil {
			views = append(views, *v)
		}
	}
	slices.SortFunc(views, func(a, b store.ConversationView) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return views, nil
}

// viewConcurrency is how many conversations Conversations reads at once.
const viewConcurrency = 8

// listedView is the view of conversation d for Conversations; ok is false
// for a conversation without a message (left by an append that failed).
func (s *Store) listedView(ctx context.Context, d conversationDoc, userID string, ptrs map[string]pointers) (store.ConversationView, bool, error) {
	last, ok, err := s.lastMessage(ctx, d.ID)
	if err != nil || !ok {
		return store.ConversationView{}, false, err
	}
	v, err := s.view(ctx, d.ID, userID, d.peerOf(userID), last, ptrs)
	if err != nil {
		return store.ConversationView{}, false, err
	}
	return v, true, nil
}

// Conversation returns userID's conversation with peerID, or ErrNotFound if
// they have exchanged no message yet.
func (s *Store) Conversation(ctx context.Context, userID, peerID string) (store.ConversationView, error) {
	conv := store.ConversationID(userID, peerID)
	last, ok, err := s.lastMessage(ctx, conv)
	if err != nil {
		return store.ConversationView{}, fmt.Errorf("mongostore: conversation: %w", err)
	}
	if !ok {
		return store.ConversationView{}, fmt.Errorf("mongostore: conversation: %w", store.ErrNotFound)
	}
	ptrs, err := s.loadPointers(ctx, bson.D{{Key: "conversation_id", Value: conv}})
	if err != nil {
		return store.ConversationView{}, fmt.Errorf("mongostore: conversation: %w", err)
	}
	v, err := s.view(ctx, conv, userID, peerID, last, ptrs[conv])
	if err != nil {
		return store.ConversationView{}, fmt.Errorf("mongostore: conversation: %w", err)
	}
	return v, nil
}

// PeerIDs returns the ids of everyone userID shares a conversation with.
func (s *Store) PeerIDs(ctx context.Context, userID string) ([]string, error) {
	docs, err := s.memberConversations(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("mongostore: peer ids: %w", err)
	}
	ids := make([]string, 0, len(docs))
	for _, d := range docs {
		ids = append(ids, d.peerOf(userID))
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// MarkRead moves userID's read pointer forward to seq, clamped to the last
// seq; the delivered pointer reads as at least the read pointer.
func (s *Store) MarkRead(ctx context.Context, userID, peerID string, seq int64) (int64, bool, error) {
	ptr, moved, err := s.mark(ctx, userID, peerID, kindRead, seq)
	if err != nil {
		return 0, false, fmt.Errorf("mongostore: mark read: %w", err)
	}
	return ptr, moved, nil
}

// MarkDelivered moves userID's delivered pointer forward to seq, clamped to
// the last seq.
func (s *Store) MarkDelivered(ctx context.Context, userID, peerID string, seq int64) (int64, bool, error) {
	ptr, moved, err := s.mark(ctx, userID, peerID, kindDelivered, seq)
	if err != nil {
		return 0, false, fmt.Errorf("mongostore: mark delivered: %w", err)
	}
	return ptr, moved, nil
}

func (s *Store) mark(ctx context.Context, userID, peerID, kind string, seq int64) (int64, bool, error) {
	conv := store.ConversationID(userID, peerID)
	last, err := s.lastSeq(ctx, conv)
	if err != nil {
		return 0, false, err
	}
	if last == 0 {
		return 0, false, store.ErrNotFound
	}
	all, err := s.loadPointers(ctx, bson.D{
		{Key: "conversation_id", Value: conv},
		{Key: "user_id", Value: userID},
	})
	if err != nil {
		return 0, false, err
	}
	p := all[conv][userID]
	cur := p.read
	if kind == kindDelivered {
		cur = p.effectiveDelivered()
	}
	target := min(seq, last)
	if target <= cur {
		return cur, false, nil
	}
	_, err = s.pointers.InsertOne(ctx, pointerDoc{
		ID:             conv + "/" + userID + "/" + kind + "/" + strconv.FormatInt(target, 10),
		ConversationID: conv,
		UserID:         userID,
		Kind:           kind,
		Seq:            target,
	})
	if isDuplicate(err) {
		return target, false, nil // a concurrent call moved it there
	}
	if err != nil {
		return 0, false, wrapCtx(ctx, err)
	}
	// The lower documents are now redundant. Best effort: a leftover one is
	// harmless, and the next move deletes it.
	_, _ = s.pointers.DeleteMany(ctx, bson.D{
		{Key: "conversation_id", Value: conv},
		{Key: "user_id", Value: userID},
		{Key: "kind", Value: kind},
		{Key: "seq", Value: bson.D{{Key: "$lt", Value: target}}},
	})
	return target, true, nil
}
