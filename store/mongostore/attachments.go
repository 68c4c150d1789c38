package mongostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/store"
)

// Attachments: the blobs in the GridFS bucket "blobs" (blobs.files and
// blobs.chunks in GridFS's layout, file id = the upload's id; written and
// read here a few chunks at a time, deleted by the driver's gridfs), a record
// per upload in "attachments", and the reference in "attachment_refs":
// one document per referenced upload whose insertion is the atomic step
// (FerretDB's updates are not atomic, see the package comment). Its first
// insertion wins: a conversation id, or "~" when a prune or a deletion
// claimed the upload, so that a reference and a prune never both win.
// attachments.referenced is only a hint that keeps the prune's scan short.

const (
	blobBucket      = "blobs"
	blobChunkSize   = 255 << 10 // GridFS's default chunk size
	chunksPerInsert = 4
	// cleanupBudget bounds the removal of a failed upload after its
	// request ended.
	cleanupBudget = time.Minute
)

type uploadDoc struct {
	ID         string        `bson:"_id"`
	UploaderID string        `bson:"uploader_id"`
	Name       string        `bson:"name"`
	Type       string        `bson:"type"`
	Size       int64         `bson:"size"`
	CreatedAt  bson.DateTime `bson:"created_at"`
	Complete   bool          `bson:"complete"`
	Referenced bool          `bson:"referenced"`
}

type refDoc struct {
	ID             string `bson:"_id"`
	ConversationID string `bson:"conversation_id"`
}

func (s *Store) uploadsColl() *mongo.Collection { return s.db.Collection("attachments") }
func (s *Store) refsColl() *mongo.Collection    { return s.db.Collection("attachment_refs") }
func (s *Store) bucket() *mongo.GridFSBucket {
	return s.db.GridFSBucket(options.GridFSBucket().SetName(blobBucket))
}

// ensureAttachmentIndexes creates the indexes of the attachments and of
// the bucket (those GridFS specifies; writeBlob writes the bucket itself).
func (s *Store) ensureAttachmentIndexes(ctx context.Context) error {
	for _, ix := range []struct {
		coll   *mongo.Collection
		keys   bson.D
		unique bool
	}{
		{s.uploadsColl(), bson.D{{Key: "uploader_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.uploadsColl(), bson.D{{Key: "referenced", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.db.Collection(blobBucket + ".files"), bson.D{{Key: "filename", Value: 1}, {Key: "uploadDate", Value: 1}}, false},
		{s.db.Collection(blobBucket + ".chunks"), bson.D{{Key: "files_id", Value: 1}, {Key: "n", Value: 1}}, true},
	} {
		_, err := ix.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetUnique(ix.unique)})
		if err != nil {
			return fmt.Errorf("create indexes on %s: %w", ix.coll.Name(), wrapCtx(ctx, err))
		}
	}
	return nil
}

// CreateAttachment stores body as a new upload (see store.Attachments).
func (s *Store) CreateAttachment(ctx context.Context, u store.Upload, body io.Reader, maxBytes int64) (store.Upload, error) {
	u, err := store.PrepareUpload(u, maxBytes)
	if err != nil {
		return store.Upload{}, fmt.Errorf("mongostore: create attachment: %w", err)
	}
	doc := uploadDoc{ID: u.ID, UploaderID: u.UploaderID, Name: u.Name, Type: u.Type, CreatedAt: toDate(u.CreatedAt)}
	if _, err := s.uploadsColl().InsertOne(ctx, doc); err != nil {
		if isDuplicate(err) {
			err = store.ErrConflict
		}
		return store.Upload{}, fmt.Errorf("mongostore: create attachment: %w", wrapCtx(ctx, err))
	}
	n, err := s.writeBlob(ctx, u, store.NewLimitReader(body, maxBytes))
	if err == nil {
		_, err = s.uploadsColl().UpdateOne(ctx, bson.D{{Key: "_id", Value: u.ID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "complete", Value: true}, {Key: "size", Value: n}}}})
	}
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupBudget)
		_ = s.removeUpload(cctx, u.ID) // what is left, prune removes
		cancel()
		return store.Upload{}, fmt.Errorf("mongostore: create attachment: %w", wrapCtx(ctx, err))
	}
	u.Size = n
	return u, nil
}

// writeBlob writes r into the bucket as GridFS specifies (255 KiB chunks
// {files_id, n, data}, then the files document {_id, length, chunkSize,
// uploadDate, filename}), chunksPerInsert chunks per insert, so that an
// upload holds about 1 MiB whatever its size: the driver's own upload
// stream buffers 16 MiB and sends them as one batch (the live heap grew by
// 49 MiB during a 40 MiB upload in the contract's Streams test). The
// driver's gridfs package deletes what this writes, and would read it.
func (s *Store) writeBlob(ctx context.Context, u store.Upload, r io.Reader) (int64, error) {
	chunks := s.db.Collection(blobBucket + ".chunks")
	buf := make([]byte, blobChunkSize)
	docs := make([]any, 0, chunksPerInsert)
	flush := func() error {
		if len(docs) == 0 {
			return nil
		}
		_, err := chunks.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
		docs = docs[:0]
		return err
	}
	var n int64
	for i := int32(0); ; i++ {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			docs = append(docs, bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "files_id", Value: u.ID},
				{Key: "n", Value: i}, {Key: "data", Value: bytes.Clone(buf[:k])}})
			n += int64(k)
			if len(docs) == chunksPerInsert {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	_, err := s.db.Collection(blobBucket+".files").InsertOne(ctx, bson.D{{Key: "_id", Value: u.ID}, {Key: "length", Value: n},
		{Key: "chunkSize", Value: int32(blobChunkSize)}, {Key: "uploadDate", Value: toDate(time.Now())}, {Key: "filename", Value: u.Name}})
	return n, err
}

// removeUpload removes the blob, then the record, then the reference.
func (s *Store) removeUpload(ctx context.Context, id string) error {
	if err := s.bucket().Delete(ctx, id); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
		return err
	}
	if _, err := s.uploadsColl().DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return err
	}
	_, err := s.refsColl().DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	return err
}

// Attachment returns a complete, unclaimed upload's record.
func (s *Store) Attachment(ctx context.Context, id string) (store.Upload, error) {
	u, err := s.attachment(ctx, id)
	if err != nil {
		return store.Upload{}, fmt.Errorf("mongostore: attachment: %w", wrapCtx(ctx, err))
	}
	return u, nil
}

func (s *Store) attachment(ctx context.Context, id string) (store.Upload, error) {
	var d uploadDoc
	err := s.uploadsColl().FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return store.Upload{}, store.ErrNotFound
	case err != nil:
		return store.Upload{}, err
	case !d.Complete:
		return store.Upload{}, store.ErrNotFound
	}
	conv, err := s.reference(ctx, id)
	if err != nil {
		return store.Upload{}, err
	}
	if conv == store.ReservedConversation {
		return store.Upload{}, store.ErrNotFound
	}
	return store.Upload{ID: d.ID, UploaderID: d.UploaderID, Name: d.Name, Type: d.Type, Size: d.Size,
		CreatedAt: fromDate(d.CreatedAt), ConversationID: conv}, nil
}

// reference returns the upload's reference, "" when there is none.
func (s *Store) reference(ctx context.Context, id string) (string, error) {
	var r refDoc
	err := s.refsColl().FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&r)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return "", nil
	case err != nil:
		return "", err
	}
	return r.ConversationID, nil
}

// OpenAttachment returns the record and a seekable reader of the blob.
func (s *Store) OpenAttachment(ctx context.Context, id string) (store.Upload, io.ReadSeekCloser, error) {
	u, err := s.attachment(ctx, id)
	if err != nil {
		return store.Upload{}, nil, fmt.Errorf("mongostore: open attachment: %w", wrapCtx(ctx, err))
	}
	var f struct {
		Length    int64 `bson:"length"`
		ChunkSize int32 `bson:"chunkSize"`
	}
	err = s.db.Collection(blobBucket+".files").FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&f)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments): // removed meanwhile
		return store.Upload{}, nil, fmt.Errorf("mongostore: open attachment: %w", store.ErrNotFound)
	case err != nil:
		return store.Upload{}, nil, fmt.Errorf("mongostore: open attachment: %w", wrapCtx(ctx, err))
	case f.Length > 0 && f.ChunkSize <= 0:
		return store.Upload{}, nil, fmt.Errorf("mongostore: open attachment %s: no chunk size", id)
	}
	return u, &blobReader{ctx: ctx, chunks: s.db.Collection(blobBucket + ".chunks"), id: id, size: f.Length, chunkSize: int64(f.ChunkSize)}, nil
}

// blobReader reads a GridFS file through a cursor on its chunks in
// batches of chunksPerInsert (about 1 MiB): a seek only moves the
// position, and a read away from the cursor's next chunk opens a new
// cursor from the chunk holding it. The driver's download stream instead
// holds a whole cursor batch (up to 16 MiB; the contract's Streams test
// measured 25 MiB of live heap for a 40 MiB download) and seeks by reading.
type blobReader struct {
	ctx       context.Context
	chunks    *mongo.Collection
	id        string
	size      int64
	chunkSize int64
	pos       int64
	buf       []byte // the chunk holding bufAt
	bufAt     int64
	cur       *mongo.Cursor
	next      int64 // the chunk cur returns next
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if b.pos < b.bufAt || b.pos >= b.bufAt+int64(len(b.buf)) {
		if err := b.fill(b.pos / b.chunkSize); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.pos-b.bufAt:])
	b.pos += int64(n)
	return n, nil
}

// fill loads chunk n.
func (b *blobReader) fill(n int64) error {
	if b.cur == nil || b.next != n {
		b.closeCursor()
		cur, err := b.chunks.Find(b.ctx, bson.D{{Key: "files_id", Value: b.id}, {Key: "n", Value: bson.D{{Key: "$gte", Value: n}}}},
			options.Find().SetSort(bson.D{{Key: "n", Value: 1}}).SetBatchSize(chunksPerInsert))
		if err != nil {
			return fmt.Errorf("mongostore: read attachment: %w", wrapCtx(b.ctx, err))
		}
		b.cur, b.next = cur, n
	}
	if !b.cur.Next(b.ctx) {
		if err := b.cur.Err(); err != nil {
			return fmt.Errorf("mongostore: read attachment: %w", wrapCtx(b.ctx, err))
		}
		return fmt.Errorf("mongostore: read attachment %s: chunk %d missing", b.id, n)
	}
	var c struct {
		N    int64  `bson:"n"`
		Data []byte `bson:"data"`
	}
	if err := b.cur.Decode(&c); err != nil {
		return fmt.Errorf("mongostore: read attachment: %w", err)
	}
	if c.N != n || len(c.Data) == 0 {
		return fmt.Errorf("mongostore: read attachment %s: chunk %d missing", b.id, n)
	}
	b.buf, b.bufAt, b.next = c.Data, n*b.chunkSize, n+1
	return nil
}

func (b *blobReader) closeCursor() {
	if b.cur != nil {
		_ = b.cur.Close(context.WithoutCancel(b.ctx))
		b.cur = nil
	}
}

func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.pos
	case io.SeekEnd:
		offset += b.size
	default:
		return 0, errors.New("mongostore: seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("mongostore: seek: negative position")
	}
	b.pos = offset
	return offset, nil
}

func (b *blobReader) Close() error { b.closeCursor(); b.buf = nil; return nil }

// ReferenceAttachments inserts a reference per upload; on a refusal it
// removes the ones it inserted.
func (s *Store) ReferenceAttachments(ctx context.Context, ids []string, uploaderID, conversationID string) ([]store.Upload, error) {
	if conversationID == "" || conversationID == store.ReservedConversation || uploaderID == "" {
		return nil, fmt.Errorf("mongostore: reference attachments: %w", store.ErrInvalid)
	}
	out := make([]store.Upload, 0, len(ids))
	for _, id := range ids {
		u, err := s.attachment(ctx, id)
		if err == nil && u.UploaderID != uploaderID {
			err = store.ErrNotFound
		}
		if err == nil && u.ConversationID != "" && u.ConversationID != conversationID {
			err = store.ErrConflict
		}
		if err != nil {
			return nil, fmt.Errorf("mongostore: reference attachments: %w", wrapCtx(ctx, err))
		}
		u.ConversationID = conversationID
		out = append(out, u)
	}
	var inserted []string
	for _, id := range ids {
		_, err := s.refsColl().InsertOne(ctx, refDoc{ID: id, ConversationID: conversationID})
		if isDuplicate(err) {
			var conv string
			if conv, err = s.reference(ctx, id); err == nil {
				switch conv {
				case conversationID:
				case store.ReservedConversation, "":
					err = store.ErrNotFound
				default:
					err = store.ErrConflict
				}
			}
		} else if err == nil {
			inserted = append(inserted, id)
		}
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupBudget)
			for _, done := range inserted {
				_, _ = s.refsColl().DeleteOne(cctx, bson.D{{Key: "_id", Value: done}, {Key: "conversation_id", Value: conversationID}})
			}
			cancel()
			return nil, fmt.Errorf("mongostore: reference attachments: %w", wrapCtx(ctx, err))
		}
	}
	if len(inserted) > 0 { // the prune's hint; a lost update only costs it a look
		_, _ = s.uploadsColl().UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: inserted}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "referenced", Value: true}}}})
	}
	return out, nil
}

// DeleteAttachment removes one upload.
func (s *Store) DeleteAttachment(ctx context.Context, id string) error {
	if err := s.removeUpload(ctx, id); err != nil {
		return fmt.Errorf("mongostore: delete attachment: %w", wrapCtx(ctx, err))
	}
	return nil
}

// DeleteAttachmentsOf removes every upload of uploaderID.
func (s *Store) DeleteAttachmentsOf(ctx context.Context, uploaderID string) (int64, error) {
	var total int64
	for {
		ids, err := s.ids(ctx, s.uploadsColl(), bson.D{{Key: "uploader_id", Value: uploaderID}})
		if err != nil {
			return total, fmt.Errorf("mongostore: delete attachments of user: %w", wrapCtx(ctx, err))
		}
		if len(ids) == 0 {
			return total, nil
		}
		for _, id := range ids {
			if err := s.removeUpload(ctx, id); err != nil {
				return total, fmt.Errorf("mongostore: delete attachments of user: %w", wrapCtx(ctx, err))
			}
			total++
		}
	}
}

// PruneAttachments claims ("~") and removes the unreferenced uploads
// created before before.
func (s *Store) PruneAttachments(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	filter := bson.D{{Key: "referenced", Value: bson.D{{Key: "$ne", Value: true}}}, {Key: "created_at", Value: bson.D{{Key: "$lt", Value: toDate(before)}}}}
	for {
		ids, err := s.ids(ctx, s.uploadsColl(), filter)
		if err != nil {
			return total, fmt.Errorf("mongostore: prune attachments: %w", wrapCtx(ctx, err))
		}
		if len(ids) == 0 {
			return total, nil
		}
		for _, id := range ids {
			claimed, err := s.claim(ctx, id)
			if err != nil {
				return total, fmt.Errorf("mongostore: prune attachments: %w", wrapCtx(ctx, err))
			}
			if !claimed {
				continue
			}
			if err := s.removeUpload(ctx, id); err != nil {
				return total, fmt.Errorf("mongostore: prune attachments: %w", wrapCtx(ctx, err))
			}
			total++
		}
	}
}

// claim reserves an unreferenced upload for removal; false when a
// message references it (the hint is then set, so the scan skips it).
func (s *Store) claim(ctx context.Context, id string) (bool, error) {
	_, err := s.refsColl().InsertOne(ctx, refDoc{ID: id, ConversationID: store.ReservedConversation})
	if err == nil {
		return true, nil
	}
	if !isDuplicate(err) {
		return false, err
	}
	conv, err := s.reference(ctx, id)
	if err != nil {
		return false, err
	}
	if conv == store.ReservedConversation || conv == "" {
		return true, nil // an earlier claim that a failure cut short
	}
	_, err = s.uploadsColl().UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "referenced", Value: true}}}})
	return false, err
}

// AttachmentUsage sums uploaderID's uploads since since.
func (s *Store) AttachmentUsage(ctx context.Context, uploaderID string, since time.Time) (int64, int64, error) {
	cur, err := s.uploadsColl().Find(ctx, bson.D{{Key: "uploader_id", Value: uploaderID}, {Key: "created_at", Value: bson.D{{Key: "$gte", Value: toDate(since)}}}},
		options.Find().SetProjection(bson.D{{Key: "size", Value: 1}}))
	if err != nil {
		return 0, 0, fmt.Errorf("mongostore: attachment usage: %w", wrapCtx(ctx, err))
	}
	defer func() { _ = cur.Close(ctx) }()
	var count, bytes int64
	for cur.Next(ctx) {
		var d struct {
			Size int64 `bson:"size"`
		}
		if err := cur.Decode(&d); err != nil {
			return 0, 0, fmt.Errorf("mongostore: attachment usage: %w", err)
		}
		count++
		bytes += d.Size
	}
	if err := cur.Err(); err != nil {
		return 0, 0, fmt.Errorf("mongostore: attachment usage: %w", wrapCtx(ctx, err))
	}
	return count, bytes, nil
}
