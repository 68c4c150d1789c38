package store

import (
	"fmt"
	"time"
)

// PrepareMessage is the part of AppendMessage that every backend does before
// its insert: it refuses a message without a sender or a recipient, or to
// its own sender (ErrInvalid), and sets what the store owns: ConversationID
// from From and To, CreatedAt (now when zero) truncated to the millisecond in
// UTC, which is what a read returns, and a fresh ID when m has none. Kind
// KindText becomes "" (a text message), and the state a message gains from
// its events (EditedAt, Reactions, Deleted) starts empty. A message whose
// fields do not fit its kind (a text message with a Target, an event
// without one, with a ReplyTo or Attachments, an Emoji on other than a
// reaction, a Text on other than an edit) is ErrInvalid.
func PrepareMessage(m Message) (Message, error) {
	switch {
	case m.From == "" || m.To == "":
		return Message{}, fmt.Errorf("message without a sender or a recipient: %w", ErrInvalid)
	case m.From == m.To:
		return Message{}, fmt.Errorf("message to its own sender: %w", ErrInvalid)
	}
	m.ConversationID = ConversationID(m.From, m.To)
	if m.Kind == KindText {
		m.Kind = ""
	}
	// A new message's state is the store's: never edited, deleted or
	// reacted to.
	m.EditedAt, m.Reactions, m.Deleted = time.Time{}, nil, false
	if err := checkShape(m); err != nil {
		return Message{}, err
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	m.CreatedAt = time.UnixMilli(m.CreatedAt.UnixMilli()).UTC()
	if m.ID == "" {
		m.ID = NewID()
	}
	return m, nil
}
