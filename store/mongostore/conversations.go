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
// last message (text or event), both members' pointers and the unread
// count (unreadCount), reading the last text message's state.
func (s *Store) view(ctx context.Context, conv, userID, peerID string, last store.Message, ptrs map[string]pointers, unread int64) (store.ConversationView, error) {
	mine, theirs := ptrs[userID], ptrs[peerID]
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

// unreadCount counts the text messages of peerID in conv above read.
func (s *Store) unreadCount(ctx context.Context, conv, peerID string, read int64) (int64, error) {
	n, err := s.shown.CountDocuments(ctx, bson.D{
		{Key: "conversation_id", Value: conv},
		{Key: "from", Value: peerID},
		{Key: "seq", Value: bson.D{{Key: "$gt", Value: read}}},
		textOnly,
	})
	if err != nil {
		return 0, wrapCtx(ctx, err)
	}
	return n, nil
}

// lastAndUnread reads the last message of conv and the unread count of
// userID at once: one round trip of latency instead of two.
func (s *Store) lastAndUnread(ctx context.Context, conv, userID, peerID string, ptrs map[string]pointers) (store.Message, bool, int64, error) {
	var (
		unread int64
		cerr   error
		wg     sync.WaitGroup
	)
	wg.Go(func() { unread, cerr = s.unreadCount(ctx, conv, peerID, ptrs[userID].read) })
	last, ok, err := s.lastMessage(ctx, conv)
	wg.Wait()
	if err == nil {
		err = cerr
	}
	return last, ok, unread, err
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
	ptrs, err := s.loadPointers(ctx, bson.D{{Key: "conversation_id", Value: in(ids)}})
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
	peer := d.peerOf(userID)
	last, ok, unread, err := s.lastAndUnread(ctx, d.ID, userID, peer, ptrs)
	if err != nil || !ok {
		return store.ConversationView{}, false, err
	}
	v, err := s.view(ctx, d.ID, userID, peer, last, ptrs, unread)
	if err != nil {
		return store.ConversationView{}, false, err
	}
	return v, true, nil
}

// Conversation returns userID's conversation with peerID, or ErrNotFound if
// they have exchanged no message yet.
func (s *Store) Conversation(ctx context.Context, userID, peerID string) (store.ConversationView, error) {
	v, err := s.conversation(ctx, userID, peerID)
	if err != nil {
		return store.ConversationView{}, fmt.Errorf("mongostore: conversation: %w", err)
	}
	return v, nil
}

// conversation reads in two round trips of latency: the last message with
// the pointers, then the unread count with the last text message's state.
func (s *Store) conversation(ctx context.Context, userID, peerID string) (store.ConversationView, error) {
	conv := store.ConversationID(userID, peerID)
	var (
		all  map[string]map[string]pointers
		perr error
		wg   sync.WaitGroup
	)
	wg.Go(func() { all, perr = s.loadPointers(ctx, bson.D{{Key: "conversation_id", Value: conv}}) })
	last, ok, err := s.lastMessage(ctx, conv)
	wg.Wait()
	if err == nil {
		err = perr
	}
	if err != nil {
		return store.ConversationView{}, err
	}
	if !ok {
		return store.ConversationView{}, store.ErrNotFound
	}
	ptrs := all[conv]
	var (
		unread int64
		cerr   error
	)
	wg.Go(func() { unread, cerr = s.unreadCount(ctx, conv, peerID, ptrs[userID].read) })
	v, err := s.view(ctx, conv, userID, peerID, last, ptrs, 0)
	wg.Wait()
	if err == nil {
		err = cerr
	}
	if err != nil {
		return store.ConversationView{}, err
	}
	v.Unread = unread
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

// mark moves a pointer in at most two round trips before the answer: the
// member's pointers are read (together with the conversation's highest
// seq, unless this process already saw a seq at or above the requested
// one: seqs are never taken back, so the clamp cannot change), then the new
// pointer document is inserted. Deleting the lower ones follows in the
// background.
func (s *Store) mark(ctx context.Context, userID, peerID, kind string, seq int64) (int64, bool, error) {
	conv := store.ConversationID(userID, peerID)
	last := s.seqs.get(conv)
	var lastErr error
	var wg sync.WaitGroup
	if last < seq || last == 0 {
		wg.Go(func() { last, lastErr = s.lastSeq(ctx, conv) })
	}
	all, err := s.loadPointers(ctx, bson.D{
		{Key: "conversation_id", Value: conv},
		{Key: "user_id", Value: userID},
	})
	wg.Wait()
	if lastErr != nil {
		return 0, false, lastErr
	}
	if err != nil {
		return 0, false, err
	}
	if last == 0 {
		return 0, false, store.ErrNotFound
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
	s.cleanup(func(ctx context.Context) {
		_, _ = s.pointers.DeleteMany(ctx, bson.D{
			{Key: "conversation_id", Value: conv},
			{Key: "user_id", Value: userID},
			{Key: "kind", Value: kind},
			{Key: "seq", Value: bson.D{{Key: "$lt", Value: target}}},
		})
	})
	return target, true, nil
}

// cleanupMax is how many best-effort deletes run in the background at
// once; beyond it the caller waits for its own.
const cleanupMax = 16

// cleanup runs fn, a best-effort write the caller's answer does not need,
// in the background when a slot is free (Close waits for it), else now.
func (s *Store) cleanup(fn func(ctx context.Context)) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	select {
	case s.cleanups <- struct{}{}:
		s.bg.Go(func() {
			defer cancel()
			defer func() { <-s.cleanups }()
			fn(ctx)
		})
	default:
		defer cancel()
		fn(ctx)
	}
}
