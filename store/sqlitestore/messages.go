package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/chatd/chatd/store"
)

// AppendMessage stores m (see store.Store): idempotent on From+ClientMsgID,
// seq allocated from the conversation row, durable when it returns nil.
func (s *Store) AppendMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	m, err := store.PrepareMessage(m)
	if err != nil {
		return store.Message{}, false, fmt.Errorf("sqlitestore: append message: %w", err)
	}
	var stored store.Message
	var created, contact bool
	err = s.write(ctx, func(b *batch) error {
		var err error
		stored, created, contact, err = appendMessage(b, m)
		return err
	})
	if contact || err != nil { // committed, or an unknown outcome
		s.contacts.forget(m.From)
		s.contacts.forget(m.To)
	}
	if err != nil {
		return store.Message{}, false, fmt.Errorf("sqlitestore: append message: %w", err)
	}
	return stored, created, nil
}

// AppendMessageAsync queues m like AppendMessage and calls done once its
// batch committed (see store.AsyncAppender); done runs on the writer
// goroutine, in queue order.
func (s *Store) AppendMessageAsync(ctx context.Context, m store.Message, done func(store.Message, bool, error)) {
	m, err := store.PrepareMessage(m)
	if err != nil {
		done(store.Message{}, false, fmt.Errorf("sqlitestore: append message: %w", err))
		return
	}
	var stored store.Message
	var created, contact bool
	req := &writeReq{ctx: ctx, fn: func(b *batch) error {
		var err error
		stored, created, contact, err = appendMessage(b, m)
		return err
	}}
	req.callback = func(err error) { // on the writer, after fn and the commit: no race on stored
		if contact || err != nil {
			s.contacts.forget(m.From)
			s.contacts.forget(m.To)
		}
		if err != nil {
			done(store.Message{}, false, fmt.Errorf("sqlitestore: append message: %w", err))
			return
		}
		done(stored, created, nil)
	}
	if err := s.enqueue(req); err != nil {
		req.callback(err)
	}
}

// errMaybeRetry fails a request with a client_msg_id in a batch run
// without savepoints: the request may be a retry of a stored message,
// which only the careful run (savepoints, the lookup first) can tell.
var errMaybeRetry = errors.New("sqlitestore: the message may be a retry: run the batch with savepoints")

// appendMessage runs in the writer, inside the batch transaction: look for
// a retry, take the next seq from the conversation row (creating the
// conversation and its two members on the first message), insert. contact
// reports that the message made its members contacts (the sender's first
// text message, the peer having sent one): the caller forgets their
// ContactIDs once the batch committed.
//
// The lookup for a retry costs a statement per message and almost never
// finds one, so the first run of a batch (b.careful false) skips it: a
// retry then fails on messages_client, or earlier on a check the stored
// message has changed the answer of (a second delete of its target), and
// any failure of a message with a client_msg_id sends the whole batch to
// the careful run, which looks first (tryBatch).
//
// A sender whose message sent a batch to the careful run looks first for a
// while (suspectFor), in every run: a client retrying its unacknowledged
// sends after a reconnect costs one careful run, not one per retry, and a
// client replaying old client_msg_ids cannot make every batch run twice.
func appendMessage(b *batch, m store.Message) (_ store.Message, created, contact bool, _ error) {
	lookFirst := m.ClientMsgID != "" && (b.careful || b.suspected(m.From))
	stored, created, contact, err := appendOnce(b, m, lookFirst)
	if err != nil && m.ClientMsgID != "" && !lookFirst {
		b.suspect(m.From)
		return store.Message{}, false, false, fmt.Errorf("%w (%v)", errMaybeRetry, err)
	}
	return stored, created, contact, err
}

// suspectFor is how long a sender's messages look for a retry first once
// one of them needed the careful run; suspectsMax bounds the senders
// remembered (beyond it the set starts again: they only skip a lookup).
const (
	suspectFor  = 10 * time.Minute
	suspectsMax = 10000
)

func (b *batch) suspected(from string) bool {
	until, ok := b.suspects[from]
	return ok && time.Now().Before(until)
}

func (b *batch) suspect(from string) {
	if b.suspects == nil || len(b.suspects) >= suspectsMax {
		b.suspects = make(map[string]time.Time)
	}
	b.suspects[from] = time.Now().Add(suspectFor)
}

// appendOnce is appendMessage's work, looking for a retry first when
// lookFirst.
func appendOnce(b *batch, m store.Message, lookFirst bool) (_ store.Message, created, contact bool, _ error) {
	if lookFirst {
		var r messageRow
		err := b.queryRow(wMessageByClient, m.From, m.ClientMsgID).Scan(r.dest()...)
		if err == nil {
			old, err := r.message(store.ConversationID(r.from.String, r.to.String))
			return old, false, false, err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return store.Message{}, false, false, err
		}
	}
	if !m.IsText() {
		stored, created, err := appendEvent(b, m)
		return stored, created, false, err
	}
	if m.ReplyTo != 0 {
		var r messageRow
		var conv int64
		err := b.queryRow(wMessageAt, m.ConversationID, m.ReplyTo).Scan(append([]any{&conv}, r.dest()...)...)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && r.kind.String != "") {
			return store.Message{}, false, false, fmt.Errorf("reply_to %d is no text message of the conversation: %w", m.ReplyTo, store.ErrInvalid)
		}
		if err != nil {
			return store.Message{}, false, false, err
		}
	}
	at := millis(m.CreatedAt)
	userA, userB := m.From, m.To
	if userB < userA {
		userA, userB = userB, userA
	}
	sentA, sentB := 0, 0
	if m.From == userA {
		sentA = 1
	}
	if m.From == userB {
		sentB = 1
	}
	var conv, sentByA, sentByB int64
	var err error
	if cs, ok := b.convs[m.ConversationID]; ok {
		cs.seq++
		cs.sentA += int64(sentA)
		cs.sentB += int64(sentB)
		if _, err = b.exec(wSetConversation, cs.seq, at, cs.sentA, cs.sentB, cs.k); err == nil {
			b.convs[m.ConversationID] = cs
			conv, m.Seq, sentByA, sentByB = cs.k, cs.seq, cs.sentA, cs.sentB
		}
	} else if err = b.queryRow(wBumpConversation, at, sentA, sentB, m.ConversationID).Scan(&conv, &m.Seq, &sentByA, &sentByB); err == nil {
		b.rememberConv(m.ConversationID, convState{k: conv, seq: m.Seq, sentA: sentByA, sentB: sentByB})
	}
	if err == nil {
		// The sender's first text message, to a peer who sent one.
		mine, theirs := sentByA, sentByB
		if m.From == userB {
			mine, theirs = sentByB, sentByA
		}
		contact = mine == 1 && theirs > 0
	}
	if errors.Is(err, sql.ErrNoRows) {
		// The first message: create the conversation and both members.
		m.Seq = 1
		res, err := b.exec(wInsertConversation, m.ConversationID, userA, userB, at, sentA, sentB)
		if err != nil {
			return store.Message{}, false, false, err
		}
		if conv, err = res.LastInsertId(); err != nil {
			return store.Message{}, false, false, err
		}
		b.rememberConv(m.ConversationID, convState{k: conv, seq: 1, sentA: int64(sentA), sentB: int64(sentB)})
		for _, p := range [2][2]string{{m.From, m.To}, {m.To, m.From}} {
			if _, err := b.exec(wInsertMember, p[0], conv, p[1]); err != nil {
				if isForeignKeyViolation(err) {
					return store.Message{}, false, false, fmt.Errorf("no user %q: %w", p[0], store.ErrNotFound)
				}
				return store.Message{}, false, false, err
			}
		}
	} else if err != nil {
		return store.Message{}, false, false, err
	}
	if _, err := b.exec(wInsertMessage, conv, m.Seq, m.ID, m.From, m.To, m.Text, m.ClientMsgID, at,
		m.Kind, m.ReplyTo, m.Target, m.Emoji, millis(m.EditedAt), encodeReactions(m.Reactions),
		encodeAttachments(m.Attachments)); err != nil {
		return store.Message{}, false, false, err
	}
	return m, true, contact, nil
}

// appendEvent stores the event m and its target's new state (writer, in
// the batch transaction, after the retry lookup).
func appendEvent(b *batch, m store.Message) (store.Message, bool, error) {
	var r messageRow
	var conv int64
	err := b.queryRow(wMessageAt, m.ConversationID, m.Target).Scan(append([]any{&conv}, r.dest()...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Message{}, false, fmt.Errorf("no message %d in the conversation: %w", m.Target, store.ErrNotFound)
	}
	if err != nil {
		return store.Message{}, false, err
	}
	target, err := r.message(m.ConversationID)
	if err != nil {
		return store.Message{}, false, err
	}
	if err := store.CheckEvent(target, m); err != nil {
		return store.Message{}, false, err
	}
	if err := b.queryRow(wBumpEvent, conv).Scan(&m.Seq); err != nil {
		return store.Message{}, false, err
	}
	if cs, ok := b.convs[m.ConversationID]; ok {
		cs.seq = m.Seq
		b.convs[m.ConversationID] = cs
	}
	if _, err := b.exec(wInsertMessage, conv, m.Seq, m.ID, m.From, m.To, m.Text, m.ClientMsgID, millis(m.CreatedAt),
		m.Kind, 0, m.Target, m.Emoji, 0, "", ""); err != nil {
		return store.Message{}, false, err
	}
	t := target.Apply(m)
	if _, err := b.exec(wSetState, t.Text, millis(t.EditedAt), t.Deleted, encodeReactions(t.Reactions),
		encodeAttachments(t.Attachments), conv, t.Seq); err != nil {
		return store.Message{}, false, err
	}
	return m, true, nil
}

// MessagesBefore returns up to limit messages with seq < before (before <= 0:
// the newest), ascending, and whether older ones exist.
func (s *Store) MessagesBefore(ctx context.Context, conversationID string, before int64, limit int) ([]store.Message, bool, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	msgs, more, err := s.messages(ctx, rMessagesBefore, conversationID, before, limit)
	if err != nil {
		return nil, false, fmt.Errorf("sqlitestore: messages before: %w", err)
	}
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, more, nil
}

// MessagesAfter returns up to limit messages with seq > after, ascending,
// and whether newer ones exist.
func (s *Store) MessagesAfter(ctx context.Context, conversationID string, after int64, limit int) ([]store.Message, bool, error) {
	msgs, more, err := s.messages(ctx, rMessagesAfter, conversationID, after, limit)
	if err != nil {
		return nil, false, fmt.Errorf("sqlitestore: messages after: %w", err)
	}
	return msgs, more, nil
}

// messages reads limit+1 rows in the statement's order to learn whether
// there are more.
func (s *Store) messages(ctx context.Context, stmt int, conversationID string, seq int64, limit int) ([]store.Message, bool, error) {
	if limit < 0 {
		limit = 0
	}
	rows, err := s.rstmts[stmt].QueryContext(ctx, conversationID, seq, limit+1)
	if err != nil {
		return nil, false, wrapCtx(ctx, err)
	}
	defer rows.Close()
	// Room for a catch-up's typical page, not the limit: a page of 200
	// asked for 10 messages would allocate 200 (about 60 KiB) each time.
	msgs := make([]store.Message, 0, min(limit, 16))
	more := false
	for rows.Next() {
		if len(msgs) == limit {
			more = true
			break
		}
		var r messageRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, false, wrapCtx(ctx, err)
		}
		m, err := r.message(conversationID)
		if err != nil {
			return nil, false, err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, false, wrapCtx(ctx, err)
	}
	return msgs, more, nil
}

// EraseMessagesFrom blanks and marks deleted every message userID sent: one
// UPDATE through messages_client's leading from_id.
func (s *Store) EraseMessagesFrom(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.write(ctx, func(b *batch) error {
		res, err := b.exec(wEraseMessages, userID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: erase messages: %w", err)
	}
	return n, nil
}
