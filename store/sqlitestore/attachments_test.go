package sqlitestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// dirNames lists the attachment directory.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestAttachmentFiles: blobs are private files in a private directory, and
// a refused or failed upload leaves no file behind.
func TestAttachmentFiles(t *testing.T) {
	s, path := openTemp(t, Options{})
	dir := filepath.Join(filepath.Dir(path), "attachments")
	ctx := context.Background()
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("attachment directory: %v, mode %v; want 0700", err, st.Mode().Perm())
	}
	u, err := s.CreateAttachment(ctx, store.Upload{UploaderID: "a", Name: "x", Type: "text/plain"}, strings.NewReader("abc"), 10)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, u.ID))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 3 {
		t.Fatalf("blob file: %v, mode %v, size %d; want 0600, 3 bytes", err, fi.Mode().Perm(), fi.Size())
	}
	_, err = s.CreateAttachment(ctx, store.Upload{UploaderID: "a", Name: "big", Type: "text/plain"}, strings.NewReader(strings.Repeat("z", 11)), 10)
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != u.ID {
		t.Fatalf("after a refused upload the directory holds %v, want only %s", names, u.ID)
	}
	if err := s.DeleteAttachment(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("after the delete the directory holds %v", names)
	}
}

// TestAttachmentCrashLeftovers: an upload cut short by a crash (its row
// incomplete, its .part file on disk) is removed by the prune.
func TestAttachmentCrashLeftovers(t *testing.T) {
	s, path := openTemp(t, Options{})
	dir := filepath.Join(filepath.Dir(path), "attachments")
	ctx := context.Background()
	id := store.NewID()
	old := time.Now().Add(-25 * time.Hour)
	err := s.write(ctx, func(b *batch) error {
		_, err := b.execSQL(`INSERT INTO attachments (id, uploader_id, name, type, created_at) VALUES (?, 'a', 'x', 'text/plain', ?)`, id, old.UnixMilli())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id+".part"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Attachment(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an incomplete upload is visible: %v", err)
	}
	if n, err := s.PruneAttachments(ctx, time.Now().Add(-24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneAttachments = %d, %v; want 1", n, err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("after the prune the directory holds %v", names)
	}
}
