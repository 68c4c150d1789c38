package store

import (
	"context"
	"fmt"
	"io"
	"time"
)

// ErrTooLarge: an attachment's body is longer than the limit its
// CreateAttachment was given. Nothing of it is kept.
var ErrTooLarge = &Error{kind: KindTooLarge, msg: "store: attachment too large"}

// KindTooLarge is ErrTooLarge's Kind.
const KindTooLarge = "too_large"

// Upload is the record of one attachment (api.md 1.1 "Attachments"): an
// uploader's blob with its name and media type, and the conversation whose
// message references it once one does.
type Upload struct {
	ID         string
	UploaderID string
	Name       string // as chat sanitized it
	Type       string // a media type, as chat checked it
	Size       int64  // bytes
	CreatedAt  time.Time
	// ConversationID is the conversation a message of which references the
	// upload, "" while none does. It is set once, by ReferenceAttachments.
	ConversationID string
}

// Attachments are the uploaded blobs and their records: files in the data
// directory (sqlitestore), GridFS (mongostore). Blobs stream: no method
// holds a whole blob in memory.
//
// An upload is written in three steps (record, blob, completion); one that
// failed or was cut short half-way (crash, cancelled request) is never
// returned by any read, and PruneAttachments removes what is left of it.
type Attachments interface {
	// CreateAttachment stores the bytes read from body until io.EOF as a new
	// upload: u's ID (a fresh NewID when empty), UploaderID (required,
	// else ErrInvalid), Name, Type and CreatedAt (now when zero; kept to the
	// millisecond in UTC) as given; Size is what was read and
	// ConversationID is "". It reads at most maxBytes+1 bytes: a body longer
	// than maxBytes is ErrTooLarge, and nothing of it stays stored. A read
	// error of body (the client went away) is returned wrapped, and nothing
	// stays stored either. The upload is durable when it returns nil.
	CreateAttachment(ctx context.Context, u Upload, body io.Reader, maxBytes int64) (Upload, error)
	// Attachment returns the record of a complete upload, or ErrNotFound
	// (unknown, unfinished, deleted, or being pruned).
	Attachment(ctx context.Context, id string) (Upload, error)
	// OpenAttachment returns the record and the bytes of a complete upload
	// (ErrNotFound as for Attachment). The reader seeks, so that a download
	// can answer a Range request; the caller closes it. It reads through
	// ctx: a reader outlives neither.
	OpenAttachment(ctx context.Context, id string) (Upload, io.ReadSeekCloser, error)
	// ReferenceAttachments marks the uploads ids as referenced by a message
	// of conversationID and returns their records (ConversationID set), in
	// the order of ids. Every one must be a complete upload of uploaderID
	// (else ErrNotFound) and not referenced by another conversation (else
	// ErrConflict); referencing one again from the same conversation is
	// allowed (a retried send, the same file sent twice). On an error none
	// of ids is newly referenced. Of two concurrent calls that reference one
	// upload from different conversations at most one succeeds.
	ReferenceAttachments(ctx context.Context, ids []string, uploaderID, conversationID string) ([]Upload, error)
	// DeleteAttachment removes the upload's blob and record; an unknown id
	// is nil.
	DeleteAttachment(ctx context.Context, id string) error
	// DeleteAttachmentsOf removes every upload of uploaderID, referenced or
	// not (account deletion), and returns how many. After an error some may
	// be removed; calling it again finishes the work.
	DeleteAttachmentsOf(ctx context.Context, uploaderID string) (int64, error)
	// PruneAttachments removes the uploads created before before that no
	// message references, complete or not, and returns how many. An upload
	// it removes can no longer be referenced: a concurrent
	// ReferenceAttachments either wins (the upload stays) or fails. After
	// an error some may be removed; a later call goes on.
	PruneAttachments(ctx context.Context, before time.Time) (int64, error)
	// AttachmentUsage returns how many uploads uploaderID created at or
	// after since, and their total size (uploads still being written count
	// with the bytes they have so far, possibly 0).
	AttachmentUsage(ctx context.Context, uploaderID string, since time.Time) (count int64, bytes int64, err error)
}

// PrepareUpload is the part of CreateAttachment every backend does first:
// it refuses an upload without an uploader (ErrInvalid) or a negative
// limit, and sets what the store owns: a fresh ID when u has none,
// CreatedAt (now when zero) to the millisecond in UTC, Size 0 and no
// conversation.
func PrepareUpload(u Upload, maxBytes int64) (Upload, error) {
	if u.UploaderID == "" || maxBytes < 0 {
		return Upload{}, fmt.Errorf("upload without an uploader or with a negative limit: %w", ErrInvalid)
	}
	if u.ID == "" {
		u.ID = NewID()
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	u.CreatedAt = time.UnixMilli(u.CreatedAt.UnixMilli()).UTC()
	u.Size, u.ConversationID = 0, ""
	return u, nil
}

// LimitReader reads from r until more than max bytes came, then fails with
// ErrTooLarge: a backend copies a body through it so that the limit holds
// while reading, whatever length the body claimed.
type LimitReader struct {
	r      io.Reader
	max, n int64
}

// NewLimitReader returns a LimitReader of r with limit max.
func NewLimitReader(r io.Reader, max int64) *LimitReader { return &LimitReader{r: r, max: max} }

// Read reads at most up to one byte past the limit; from there on it
// returns ErrTooLarge.
func (l *LimitReader) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, ErrTooLarge
	}
	if room := l.max + 1 - l.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		return n, ErrTooLarge
	}
	return n, err
}

// Count is how many bytes were read.
func (l *LimitReader) Count() int64 { return l.n }

// ReservedConversation marks, in a backend's reference field, an upload
// that PruneAttachments or DeleteAttachmentsOf claimed for removal: no
// conversation id can equal it ("~" is never in an id).
const ReservedConversation = "~"

// Attachment is the part of u that a message carries.
func (u Upload) Attachment() Attachment {
	return Attachment{ID: u.ID, Name: u.Name, Type: u.Type, Size: u.Size}
}
