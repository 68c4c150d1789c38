package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/chatd/chatd/store"
)

// Conversations returns userID's conversations, most recent activity first.
func (s *Store) Conversations(ctx context.Context, userID string) ([]store.ConversationView, error) {
	rows, err := s.rstmts[rConversations].QueryContext(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: conversations: %w", wrapCtx(ctx, err))
	}
	defer rows.Close()
	var views []store.ConversationView
	for rows.Next() {
		v, err := scanConversation(rows, userID)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: conversations: %w", wrapCtx(ctx, err))
		}
		views = append(views, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: conversations: %w", wrapCtx(ctx, err))
	}
	return views, nil
}

// Conversation returns userID's conversation with peerID or ErrNotFound.
func (s *Store) Conversation(ctx context.Context, userID, peerID string) (store.ConversationView, error) {
	row := s.rstmts[rConversation].QueryRowContext(ctx, userID, store.ConversationID(userID, peerID))
	v, err := scanConversation(row, userID)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.ConversationView{}, fmt.Errorf("sqlitestore: conversation: %w", wrapCtx(ctx, err))
	}
	return v, nil
}

func scanConversation(row interface{ Scan(...any) error }, userID string) (store.ConversationView, error) {
	var v store.ConversationView
	var updated int64
	var l messageRow
	dest := append([]any{&v.ID, &v.PeerID, &v.LastSeq, &updated,
		&v.ReadSeq, &v.DeliveredSeq, &v.PeerReadSeq, &v.PeerDeliveredSeq, &v.Unread}, l.dest()...)
	if err := row.Scan(dest...); err != nil {
		return store.ConversationView{}, err
	}
	v.UpdatedAt = fromMillis(updated)
	if l.id.Valid {
		m, err := l.message(v.ID)
		if err != nil {
			return store.ConversationView{}, err
		}
		v.LastMessage = &m
	}
	return v, nil
}

// PeerIDs returns the ids of everyone userID shares a conversation with.
func (s *Store) PeerIDs(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.rstmts[rPeerIDs].QueryContext(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: peer ids: %w", wrapCtx(ctx, err))
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlitestore: peer ids: %w", wrapCtx(ctx, err))
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: peer ids: %w", wrapCtx(ctx, err))
	}
	return ids, nil
}

// MarkRead moves userID's read pointer forward to seq (clamped to the last
// seq) and raises the delivered pointer to at least it.
func (s *Store) MarkRead(ctx context.Context, userID, peerID string, seq int64) (int64, bool, error) {
	ptr, moved, err := s.movePointer(ctx, userID, peerID, seq, true)
	if err != nil {
		return 0, false, fmt.Errorf("sqlitestore: mark read: %w", err)
	}
	return ptr, moved, nil
}

// MarkDelivered moves userID's delivered pointer forward to seq (clamped to
// the last seq).
func (s *Store) MarkDelivered(ctx context.Context, userID, peerID string, seq int64) (int64, bool, error) {
	ptr, moved, err := s.movePointer(ctx, userID, peerID, seq, false)
	if err != nil {
		return 0, false, fmt.Errorf("sqlitestore: mark delivered: %w", err)
	}
	return ptr, moved, nil
}

func (s *Store) movePointer(ctx context.Context, userID, peerID string, seq int64, read bool) (int64, bool, error) {
	convID := store.ConversationID(userID, peerID)
	var ptr int64
	var moved bool
	err := s.write(ctx, func(b *batch) error {
		var conv, readSeq, deliveredSeq, readCount, lastSeq int64
		err := b.queryRow(wPointers, userID, convID).Scan(&conv, &readSeq, &deliveredSeq, &readCount, &lastSeq)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		seq := min(seq, lastSeq)
		newRead, newCount := readSeq, readCount
		if read && seq > readSeq {
			// Count the peer's messages passed over, for the unread count.
			var n int64
			if err := b.queryRow(wCountFrom, conv, readSeq, seq, peerID).Scan(&n); err != nil {
				return err
			}
			newRead, newCount = seq, readCount+n
		}
		newDelivered := max(deliveredSeq, newRead)
		if !read {
			newDelivered = max(newDelivered, seq)
		}
		if read {
			ptr, moved = newRead, newRead != readSeq
		} else {
			ptr, moved = newDelivered, newDelivered != deliveredSeq
		}
		if newRead == readSeq && newDelivered == deliveredSeq {
			return nil
		}
		_, err = b.exec(wSetPointers, newRead, newDelivered, newCount, userID, conv)
		return err
	})
	if err != nil {
		return 0, false, err
	}
	return ptr, moved, nil
}
