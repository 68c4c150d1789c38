package chat

import (
	"context"
	"io"
	"time"

	"github.com/chatd/chatd/store"
)

// The attachment operations pass through timedStore untimed: a blob's
// transfer time is the client's link, not the store's latency.

func (t *timedStore) CreateAttachment(ctx context.Context, u store.Upload, body io.Reader, maxBytes int64) (store.Upload, error) {
	return t.st.CreateAttachment(ctx, u, body, maxBytes)
}

func (t *timedStore) Attachment(ctx context.Context, id string) (store.Upload, error) {
	return t.st.Attachment(ctx, id)
}

func (t *timedStore) OpenAttachment(ctx context.Context, id string) (store.Upload, io.ReadSeekCloser, error) {
	return t.st.OpenAttachment(ctx, id)
}

func (t *timedStore) ReferenceAttachments(ctx context.Context, ids []string, uploaderID, conversationID string) ([]store.Upload, error) {
	return t.st.ReferenceAttachments(ctx, ids, uploaderID, conversationID)
}

func (t *timedStore) DeleteAttachment(ctx context.Context, id string) error {
	return t.st.DeleteAttachment(ctx, id)
}

func (t *timedStore) DeleteAttachmentsOf(ctx context.Context, uploaderID string) (int64, error) {
	return t.st.DeleteAttachmentsOf(ctx, uploaderID)
}

func (t *timedStore) PruneAttachments(ctx context.Context, before time.Time) (int64, error) {
	return t.st.PruneAttachments(ctx, before)
}

func (t *timedStore) AttachmentUsage(ctx context.Context, uploaderID string, since time.Time) (int64, int64, error) {
	return t.st.AttachmentUsage(ctx, uploaderID, since)
}
