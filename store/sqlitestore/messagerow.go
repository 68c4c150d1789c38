package sqlitestore

import (
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/chatd/chatd/store"
)

// messageRow holds the scanned columns of messageColumns. Every field is
// nullable so that the same row serves the LEFT JOIN of a conversation view.
type messageRow struct {
	seq                       sql.NullInt64
	id, from, to, text        sql.NullString
	client                    sql.NullString
	created                   sql.NullInt64
	deleted                   sql.NullBool
	kind                      sql.NullString
	replyTo, target           sql.NullInt64
	emoji                     sql.NullString
	edited                    sql.NullInt64
	reactions, attachmentsRaw sql.NullString
}

// dest returns the scan destinations, in messageColumns' order.
func (r *messageRow) dest() []any {
	return []any{&r.seq, &r.id, &r.from, &r.to, &r.text, &r.client, &r.created, &r.deleted,
		&r.kind, &r.replyTo, &r.target, &r.emoji, &r.edited, &r.reactions, &r.attachmentsRaw}
}

// message converts the row (of conversation conversationID).
func (r *messageRow) message(conversationID string) (store.Message, error) {
	m := store.Message{
		ID:             r.id.String,
		ConversationID: conversationID,
		Seq:            r.seq.Int64,
		From:           r.from.String,
		To:             r.to.String,
		Text:           r.text.String,
		ClientMsgID:    r.client.String,
		CreatedAt:      fromMillis(r.created.Int64),
		Deleted:        r.deleted.Bool,
		Kind:           r.kind.String,
		ReplyTo:        r.replyTo.Int64,
		Target:         r.target.Int64,
		Emoji:          r.emoji.String,
		EditedAt:       fromMillis(r.edited.Int64),
	}
	var err error
	if m.Reactions, err = decodeReactions(r.reactions.String); err != nil {
		return store.Message{}, fmt.Errorf("message %s: %w", m.ID, err)
	}
	if m.Attachments, err = decodeAttachments(r.attachmentsRaw.String); err != nil {
		return store.Message{}, fmt.Errorf("message %s: %w", m.ID, err)
	}
	return m, nil
}

// attachmentJSON is an attachment in the attachments column.
type attachmentJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

// encodeAttachments is the attachments column of as: ” for none.
func encodeAttachments(as []store.Attachment) string {
	if len(as) == 0 {
		return ""
	}
	js := make([]attachmentJSON, len(as))
	for i, a := range as {
		js[i] = attachmentJSON(a)
	}
	b, _ := json.Marshal(js) // strings and ints always marshal
	return string(b)
}

func decodeAttachments(s string) ([]store.Attachment, error) {
	if s == "" {
		return nil, nil
	}
	var js []attachmentJSON
	if err := json.Unmarshal([]byte(s), &js); err != nil {
		return nil, fmt.Errorf("attachments: %w", err)
	}
	as := make([]store.Attachment, len(js))
	for i, a := range js {
		as[i] = store.Attachment(a)
	}
	return as, nil
}

// encodeReactions is the reactions column of r: ” for none.
func encodeReactions(r map[string][]string) string {
	if len(r) == 0 {
		return ""
	}
	b, _ := json.Marshal(r) // a map of strings always marshals
	return string(b)
}

func decodeReactions(s string) (map[string][]string, error) {
	if s == "" {
		return nil, nil
	}
	var r map[string][]string
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("reactions: %w", err)
	}
	return r, nil
}
