package store

import (
	"fmt"
	"slices"
	"time"
)

// Sentinel errors of message events (Messages.AppendMessage with a Kind
// other than text). They are *Error like the others; their Kinds are
// KindForbidden and KindDeleted.
var (
	// ErrForbidden: an edit or a delete of a message the caller did not send.
	ErrForbidden = &Error{kind: KindForbidden, msg: "store: only the author may do that"}
	// ErrDeleted: the event's target was deleted (for everyone, or with its
	// sender's account); it cannot be edited, deleted again or reacted to.
	ErrDeleted = &Error{kind: KindDeleted, msg: "store: message deleted"}
)

// The kinds of ErrForbidden and ErrDeleted, as Error.Kind reports them.
const (
	KindForbidden = "forbidden"
	KindDeleted   = "deleted"
)

// checkShape is PrepareMessage's check of the fields of an event or a text
// message: each kind carries only its own fields.
func checkShape(m Message) error {
	switch m.Kind {
	case "":
		if m.Target != 0 || m.Emoji != "" || m.ReplyTo < 0 {
			return fmt.Errorf("text message with a target, an emoji or a negative reply_to: %w", ErrInvalid)
		}
		return nil
	case KindEdit, KindDelete, KindReaction:
	default:
		return fmt.Errorf("message kind %q: %w", m.Kind, ErrInvalid)
	}
	switch {
	case m.Target <= 0:
		return fmt.Errorf("%s without a target: %w", m.Kind, ErrInvalid)
	case m.ReplyTo != 0 || len(m.Attachments) > 0:
		return fmt.Errorf("%s with a reply_to or attachments: %w", m.Kind, ErrInvalid)
	case m.Kind != KindReaction && m.Emoji != "":
		return fmt.Errorf("%s with an emoji: %w", m.Kind, ErrInvalid)
	case m.Kind != KindEdit && m.Text != "":
		return fmt.Errorf("%s with a text: %w", m.Kind, ErrInvalid)
	}
	return nil
}

// CheckEvent is the rule every backend applies before it stores the event
// ev (prepared by PrepareMessage) against target, the message of ev's
// conversation whose seq is ev.Target, in its current state: ErrNotFound
// unless target is a text message, ErrForbidden for an edit or a delete by
// someone other than its sender, ErrDeleted when target is deleted.
func CheckEvent(target, ev Message) error {
	switch {
	case !target.IsText():
		return fmt.Errorf("seq %d is a %s, not a text message: %w", target.Seq, target.Kind, ErrNotFound)
	case (ev.Kind == KindEdit || ev.Kind == KindDelete) && ev.From != target.From:
		return fmt.Errorf("%s of another user's message: %w", ev.Kind, ErrForbidden)
	case target.Deleted:
		return fmt.Errorf("%s of message %d: %w", ev.Kind, target.Seq, ErrDeleted)
	}
	return nil
}

// Apply returns the text message m with the event ev applied: an edit
// replaces Text and sets EditedAt to the edit's CreatedAt; a delete blanks
// Text and clears Attachments, Reactions and EditedAt and sets Deleted; a
// reaction replaces ev.From's reaction (an empty Emoji removes it), keeping
// each emoji's users in the order they reacted. An event that CheckEvent
// refuses changes nothing (so that applying a log of events in seq order
// gives the state the backends keep, even when a racing edit was stored
// after a delete). m's maps and slices are never modified: changed ones
// are copies.
func (m Message) Apply(ev Message) Message {
	if CheckEvent(m, ev) != nil || ev.Target != m.Seq || ev.ConversationID != m.ConversationID {
		return m
	}
	switch ev.Kind {
	case KindEdit:
		m.Text, m.EditedAt = ev.Text, ev.CreatedAt
	case KindDelete:
		m = m.Erased()
	case KindReaction:
		r := make(map[string][]string, len(m.Reactions)+1)
		for emoji, users := range m.Reactions {
			if users = slices.DeleteFunc(slices.Clone(users), func(u string) bool { return u == ev.From }); len(users) > 0 {
				r[emoji] = users
			}
		}
		if ev.Emoji != "" {
			r[ev.Emoji] = append(r[ev.Emoji], ev.From)
		}
		m.Reactions = r
		if len(r) == 0 {
			m.Reactions = nil
		}
	}
	return m
}

// Erased is m deleted: Deleted set, Text "" and no attachments, reactions
// or edit time, what a delete event and Messages.EraseMessagesFrom leave.
func (m Message) Erased() Message {
	m.Deleted, m.Text, m.Attachments, m.Reactions, m.EditedAt = true, "", nil, nil, time.Time{}
	return m
}
