package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chatd/chatd/store"
)

// Attachments: a row in the attachments table per upload and its blob, the
// file <AttachmentDir>/<id> (0600; the directory is 0700). An upload is
// written as a row (complete 0), then <id>.part, fsynced and renamed to
// <id> (the directory fsynced), then the row completed with its size; a
// failure on the way removes both, and a crash leaves an incomplete row
// that PruneAttachments removes with its files. A removal claims the row
// first (conversation_id '~', which no reference matches), then removes the
// files, then the row: a crash in between leaves a claimed row that the
// next prune finishes.

const (
	blobFileMode  = 0o600
	blobDirMode   = 0o700
	attachSelect  = `SELECT id, uploader_id, name, type, size, created_at, conversation_id FROM attachments`
	attachChunk   = 200         // rows claimed by one write of a removal
	cleanupBudget = time.Minute // the cleanup of a failed upload, after its request ended
)

// privateDir creates dir 0700, or takes group and other permissions away
// from it when it exists.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, blobDirMode); err != nil {
		return fmt.Errorf("attachment directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("attachment directory: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, st.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("attachment directory: %w", err)
		}
	}
	return nil
}

// AttachmentDir is the directory of the blobs (Options.AttachmentDir).
func (s *Store) AttachmentDir() string { return s.attachDir }

// blobPath is the blob's file; ids are base32 (store.NewID) but are checked
// anyway, so that no id names a file elsewhere.
func (s *Store) blobPath(id string) (string, bool) {
	if id == "" || strings.ContainsAny(id, `/\.`) || strings.ContainsRune(id, 0) {
		return "", false
	}
	return filepath.Join(s.attachDir, id), true
}

// CreateAttachment stores body as a new upload (see store.Attachments).
func (s *Store) CreateAttachment(ctx context.Context, u store.Upload, body io.Reader, maxBytes int64) (store.Upload, error) {
	u, err := store.PrepareUpload(u, maxBytes)
	if err != nil {
		return store.Upload{}, fmt.Errorf("sqlitestore: create attachment: %w", err)
	}
	path, ok := s.blobPath(u.ID)
	if !ok {
		return store.Upload{}, fmt.Errorf("sqlitestore: create attachment: bad id: %w", store.ErrInvalid)
	}
	err = s.write(ctx, func(b *batch) error {
		_, err := b.execSQL(`INSERT INTO attachments (id, uploader_id, name, type, created_at) VALUES (?, ?, ?, ?, ?)`,
			u.ID, u.UploaderID, u.Name, u.Type, u.CreatedAt.UnixMilli())
		return err
	})
	if err != nil {
		if isUniqueViolation(err) {
			err = store.ErrConflict
		}
		return store.Upload{}, fmt.Errorf("sqlitestore: create attachment: %w", err)
	}
	n, err := writeBlob(path, store.NewLimitReader(body, maxBytes))
	if err == nil {
		err = s.write(ctx, func(b *batch) error {
			_, err := b.execSQL(`UPDATE attachments SET complete = 1, size = ? WHERE id = ?`, n, u.ID)
			return err
		})
	}
	if err != nil {
		s.removeUpload(ctx, u.ID)
		return store.Upload{}, fmt.Errorf("sqlitestore: create attachment: %w", wrapCtx(ctx, err))
	}
	u.Size = n
	return u, nil
}

// writeBlob copies r into path through path.part, durably.
func writeBlob(path string, r io.Reader) (int64, error) {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, blobFileMode)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, path)
	}
	if err != nil {
		_ = os.Remove(part)
		return 0, err
	}
	return n, syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeUpload removes a failed upload's files and row, also when ctx has
// ended (the client went away); what it cannot remove, prune does later.
func (s *Store) removeUpload(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupBudget)
	defer cancel()
	if s.removeBlob(id) != nil {
		return
	}
	_ = s.write(ctx, func(b *batch) error {
		_, err := b.execSQL(`DELETE FROM attachments WHERE id = ?`, id)
		return err
	})
}

// removeBlob removes the blob and its partial file; a missing file is nil.
func (s *Store) removeBlob(id string) error {
	path, ok := s.blobPath(id)
	if !ok {
		return nil
	}
	for _, p := range []string{path, path + ".part"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func scanUpload(sc interface{ Scan(...any) error }) (store.Upload, error) {
	var (
		u  store.Upload
		at int64
	)
	if err := sc.Scan(&u.ID, &u.UploaderID, &u.Name, &u.Type, &u.Size, &at, &u.ConversationID); err != nil {
		return store.Upload{}, err
	}
	u.CreatedAt = fromMillis(at)
	return u, nil
}

// Attachment returns a complete, unclaimed upload's record.
func (s *Store) Attachment(ctx context.Context, id string) (store.Upload, error) {
	u, err := scanUpload(s.rdb.QueryRowContext(ctx, attachSelect+` WHERE id = ? AND complete = 1 AND conversation_id != ?`,
		id, store.ReservedConversation))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Upload{}, fmt.Errorf("sqlitestore: attachment: %w", store.ErrNotFound)
	case err != nil:
		return store.Upload{}, fmt.Errorf("sqlitestore: attachment: %w", wrapCtx(ctx, err))
	}
	return u, nil
}

// OpenAttachment returns the record and the blob's file.
func (s *Store) OpenAttachment(ctx context.Context, id string) (store.Upload, io.ReadSeekCloser, error) {
	u, err := s.Attachment(ctx, id)
	if err != nil {
		return store.Upload{}, nil, err
	}
	path, _ := s.blobPath(u.ID)
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist): // being removed
		return store.Upload{}, nil, fmt.Errorf("sqlitestore: open attachment: %w", store.ErrNotFound)
	case err != nil:
		return store.Upload{}, nil, fmt.Errorf("sqlitestore: open attachment: %w", err)
	}
	return u, f, nil
}

// ReferenceAttachments references ids from conversationID, all or none,
// in one write.
func (s *Store) ReferenceAttachments(ctx context.Context, ids []string, uploaderID, conversationID string) ([]store.Upload, error) {
	if conversationID == "" || conversationID == store.ReservedConversation || uploaderID == "" {
		return nil, fmt.Errorf("sqlitestore: reference attachments: %w", store.ErrInvalid)
	}
	err := s.write(ctx, func(b *batch) error {
		var failed error
		for _, id := range ids {
			var owner, conv string
			var complete int64
			err := b.queryRowSQL(`SELECT uploader_id, conversation_id, complete FROM attachments WHERE id = ?`, id).Scan(&owner, &conv, &complete)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				failed = store.ErrNotFound
			case err != nil:
				return err
			case owner != uploaderID || complete != 1 || conv == store.ReservedConversation:
				failed = store.ErrNotFound
			case conv != "" && conv != conversationID:
				failed = store.ErrConflict
			}
			if failed != nil {
				return failed // rolls this request back
			}
			if _, err := b.execSQL(`UPDATE attachments SET conversation_id = ? WHERE id = ?`, conversationID, id); err != nil {
				return err
			}
		}
		return nil
	})
	// Only err is read here: when ctx ends first, write returns before the
	// writer has run fn, so fn's variables are not ours to read.
	if err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("sqlitestore: reference attachments: %w", err)
		}
		return nil, fmt.Errorf("sqlitestore: reference attachments: %w", wrapCtx(ctx, err))
	}
	out := make([]store.Upload, 0, len(ids))
	for _, id := range ids {
		u, err := s.Attachment(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// DeleteAttachment claims, then removes, one upload.
func (s *Store) DeleteAttachment(ctx context.Context, id string) error {
	err := s.write(ctx, func(b *batch) error {
		_, err := b.execSQL(`UPDATE attachments SET conversation_id = ? WHERE id = ?`, store.ReservedConversation, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: delete attachment: %w", wrapCtx(ctx, err))
	}
	if _, err := s.removeClaimed(ctx, []string{id}); err != nil {
		return fmt.Errorf("sqlitestore: delete attachment: %w", err)
	}
	return nil
}

// DeleteAttachmentsOf removes every upload of uploaderID.
func (s *Store) DeleteAttachmentsOf(ctx context.Context, uploaderID string) (int64, error) {
	n, err := s.removeWhere(ctx, `uploader_id = ?`, uploaderID)
	if err != nil {
		return n, fmt.Errorf("sqlitestore: delete attachments of user: %w", err)
	}
	return n, nil
}

// PruneAttachments removes the unreferenced uploads created before before,
// and finishes removals a crash cut short.
func (s *Store) PruneAttachments(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.removeWhere(ctx, `conversation_id = '' AND created_at < ?`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("sqlitestore: prune attachments: %w", err)
	}
	m, err := s.removeWhere(ctx, `conversation_id = ?`, store.ReservedConversation)
	if err != nil {
		return n + m, fmt.Errorf("sqlitestore: prune attachments: %w", err)
	}
	return n + m, nil
}

// removeWhere claims the rows matching cond (with args), a chunk per
// write, and removes each chunk's files and rows.
func (s *Store) removeWhere(ctx context.Context, cond string, args ...any) (int64, error) {
	var total int64
	for {
		var ids []string
		err := s.write(ctx, func(b *batch) error {
			ids = ids[:0]
			q := `UPDATE attachments SET conversation_id = ? WHERE id IN (SELECT id FROM attachments WHERE ` + cond + ` LIMIT ?) RETURNING id`
			var err error
			ids, err = b.queryIDsSQL(q, append(append([]any{store.ReservedConversation}, args...), attachChunk)...)
			return err
		})
		if err != nil {
			return total, wrapCtx(ctx, err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		n, err := s.removeClaimed(ctx, ids)
		total += n
		if err != nil {
			return total, err
		}
		if len(ids) < attachChunk {
			return total, nil
		}
	}
}

// removeClaimed removes the claimed uploads ids: files first, then rows.
func (s *Store) removeClaimed(ctx context.Context, ids []string) (int64, error) {
	for _, id := range ids {
		if err := s.removeBlob(id); err != nil {
			return 0, err
		}
	}
	var n int64
	err := s.write(ctx, func(b *batch) error {
		n = 0
		for _, id := range ids {
			res, err := b.execSQL(`DELETE FROM attachments WHERE id = ? AND conversation_id = ?`, id, store.ReservedConversation)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
		}
		return nil
	})
	if err != nil {
		// n is not read: write may return on ctx while the writer runs fn.
		return 0, wrapCtx(ctx, err)
	}
	return n, nil
}

// AttachmentUsage counts uploaderID's uploads since since.
func (s *Store) AttachmentUsage(ctx context.Context, uploaderID string, since time.Time) (int64, int64, error) {
	var count, bytes int64
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(size), 0) FROM attachments WHERE uploader_id = ? AND created_at >= ?`,
		uploaderID, since.UnixMilli()).Scan(&count, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlitestore: attachment usage: %w", wrapCtx(ctx, err))
	}
	return count, bytes, nil
}

// queryIDsSQL runs an ad hoc statement in the batch that returns one text
// column.
func (b *batch) queryIDsSQL(query string, args ...any) ([]string, error) {
	st, err := b.conn.Prepare(query)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rows, err := queryStmt(st, b.bind(args))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	vals := make([]driver.Value, 1)
	for {
		if err := rows.Next(vals); err == io.EOF {
			return ids, nil
		} else if err != nil {
			return nil, err
		}
		id, ok := vals[0].(string)
		if !ok {
			return nil, fmt.Errorf("query ids: column is %T, want text", vals[0])
		}
		ids = append(ids, id)
	}
}
