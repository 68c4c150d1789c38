package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

var attachmentsTests = []contractTest{
	{"RoundTrip", testAttachmentRoundTrip},
	{"TooLarge", testAttachmentTooLarge},
	{"BodyFails", testAttachmentBodyFails},
	{"Streams", testAttachmentStreams},
	{"Reference", testAttachmentReference},
	{"ReferenceRace", testAttachmentReferenceRace},
	{"Prune", testAttachmentPrune},
	{"DeleteOf", testAttachmentDeleteOf},
	{"Delete", testAttachmentDelete},
	{"Invalid", testAttachmentInvalid},
}

// upload stores body for uploader at time n, with the given limit.
func upload(t *testing.T, s store.Store, uploader, body string, n int) store.Upload {
	t.Helper()
	u, err := s.CreateAttachment(ctxFor(t), store.Upload{UploaderID: uploader, Name: "f.txt", Type: "text/plain", CreatedAt: at(n)},
		strings.NewReader(body), 1<<20)
	if err != nil {
		t.Fatalf("CreateAttachment(%q): %v", body, err)
	}
	return u
}

func readAll(t *testing.T, s store.Store, id string) (store.Upload, string) {
	t.Helper()
	u, r, err := s.OpenAttachment(ctxFor(t), id)
	if err != nil {
		t.Fatalf("OpenAttachment(%s): %v", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read attachment %s: %v", id, err)
	}
	return u, string(b)
}

func wantUsage(t *testing.T, s store.Store, uploader string, count, size int64) {
	t.Helper()
	c, b, err := s.AttachmentUsage(ctxFor(t), uploader, at(-3600))
	if err != nil {
		t.Fatalf("AttachmentUsage: %v", err)
	}
	if c != count || b != size {
		t.Fatalf("AttachmentUsage = %d uploads, %d bytes; want %d, %d", c, b, count, size)
	}
}

func testAttachmentRoundTrip(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	in := store.Upload{ID: store.NewID(), UploaderID: "alice-id", Name: "notes.txt", Type: "text/plain",
		CreatedAt: at(0).Add(1500 * time.Microsecond)}
	u, err := s.CreateAttachment(ctx, in, strings.NewReader("hello, world"), 12)
	if err != nil {
		t.Fatalf("CreateAttachment: %v", err)
	}
	want := store.Upload{ID: in.ID, UploaderID: "alice-id", Name: "notes.txt", Type: "text/plain", Size: 12, CreatedAt: at(0).Add(time.Millisecond)}
	if u != want {
		t.Fatalf("created = %+v, want %+v", u, want)
	}
	got, err := s.Attachment(ctx, u.ID)
	if err != nil || got != want {
		t.Fatalf("Attachment = %+v, %v; want %+v", got, err, want)
	}
	got, body := readAll(t, s, u.ID)
	if got != want || body != "hello, world" {
		t.Fatalf("OpenAttachment = %+v %q, want %+v %q", got, body, want, "hello, world")
	}
	// Seeking, as a Range request does.
	_, r, err := s.OpenAttachment(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if end, err := r.Seek(0, io.SeekEnd); err != nil || end != 12 {
		t.Fatalf("Seek(end) = %d, %v; want 12", end, err)
	}
	for _, c := range []struct {
		off  int64
		want string
	}{{7, "world"}, {0, "hello"}, {5, ", wor"}} {
		if _, err := r.Seek(c.off, io.SeekStart); err != nil {
			t.Fatalf("Seek(%d): %v", c.off, err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r, buf); err != nil || string(buf) != c.want {
			t.Fatalf("read at %d = %q, %v; want %q", c.off, buf, err, c.want)
		}
	}
	// An empty file is a file.
	e, err := s.CreateAttachment(ctx, store.Upload{UploaderID: "alice-id", Name: "empty", Type: "application/octet-stream"}, strings.NewReader(""), 10)
	if err != nil || e.Size != 0 || e.ID == "" || e.CreatedAt.IsZero() {
		t.Fatalf("empty upload = %+v, %v", e, err)
	}
	if _, body := readAll(t, s, e.ID); body != "" {
		t.Fatalf("empty upload reads %q", body)
	}
	_, err = s.Attachment(ctx, store.NewID())
	wantErr(t, "Attachment(unknown)", err, store.ErrNotFound)
	_, _, err = s.OpenAttachment(ctx, store.NewID())
	wantErr(t, "OpenAttachment(unknown)", err, store.ErrNotFound)
	_, _, err = s.OpenAttachment(ctx, "../chatd.db")
	wantErr(t, "OpenAttachment(a path)", err, store.ErrNotFound)
}

func testAttachmentTooLarge(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	_, err := s.CreateAttachment(ctx, store.Upload{UploaderID: "alice-id", Name: "big", Type: "text/plain"}, strings.NewReader("0123456789x"), 10)
	wantErr(t, "CreateAttachment(11 bytes, limit 10)", err, store.ErrTooLarge)
	wantUsage(t, s, "alice-id", 0, 0)
	u, err := s.CreateAttachment(ctx, store.Upload{UploaderID: "alice-id", Name: "fits", Type: "text/plain"}, strings.NewReader("0123456789"), 10)
	if err != nil || u.Size != 10 {
		t.Fatalf("CreateAttachment(10 bytes, limit 10) = %+v, %v", u, err)
	}
	wantUsage(t, s, "alice-id", 1, 10)
	// The limit holds while reading, whatever the body is: a stream that
	// never ends is cut just past the limit.
	endless := &countingReader{}
	_, err = s.CreateAttachment(ctx, store.Upload{UploaderID: "alice-id", Name: "endless", Type: "text/plain"}, endless, 1<<20)
	wantErr(t, "CreateAttachment(endless)", err, store.ErrTooLarge)
	if endless.n > 1<<20+1 {
		t.Fatalf("read %d bytes of an endless body with a 1 MiB limit, want at most the limit + 1", endless.n)
	}
	wantUsage(t, s, "alice-id", 1, 10)
}

// countingReader is an endless body of 'x'.
type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	r.n += int64(len(p))
	return len(p), nil
}

var errCut = errors.New("connection reset")

type failingReader struct {
	r io.Reader
}

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errCut
	}
	return n, err
}

func testAttachmentBodyFails(t *testing.T, s store.Store) {
	_, err := s.CreateAttachment(ctxFor(t), store.Upload{UploaderID: "alice-id", Name: "cut", Type: "text/plain"},
		failingReader{strings.NewReader(strings.Repeat("y", 100_000))}, 1<<20)
	wantErr(t, "CreateAttachment(a body cut short)", err, errCut)
	wantUsage(t, s, "alice-id", 0, 0)
}

// patternReader generates n bytes of a pattern without holding them, and
// samples the live heap (after a GC) every sampleEvery bytes.
type patternReader struct {
	n, off   int64
	next     int64
	peakHeap uint64
}

const sampleEvery = 2 << 20

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if r.off >= r.next {
		r.next += sampleEvery
		r.sample()
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	for i := range p {
		p[i] = patternByte(r.off + int64(i))
	}
	r.off += int64(len(p))
	return len(p), nil
}

func (r *patternReader) sample() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.peakHeap = max(r.peakHeap, ms.HeapAlloc)
}

func patternByte(off int64) byte { return byte(off*7 + off/4096) }

// heapNow is the live heap after a GC.
func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// testAttachmentStreams uploads and downloads 40 MiB generated on the fly
// and never held: the live heap must stay well below the file's size both
// ways (mongostore's GridFS upload buffers 16 MiB; the files backend ~32 KiB).
func testAttachmentStreams(t *testing.T, s store.Store) {
	if testing.Short() {
		t.Skip("40 MiB through the store")
	}
	const size = 40 << 20
	const allowed = 24 << 20 // well below size
	ctx := ctxFor(t)
	base := heapNow()
	src := &patternReader{n: size}
	u, err := s.CreateAttachment(ctx, store.Upload{UploaderID: "alice-id", Name: "big.bin", Type: "application/octet-stream"}, src, size)
	if err != nil {
		t.Fatalf("CreateAttachment(40 MiB): %v", err)
	}
	if u.Size != size {
		t.Fatalf("size = %d, want %d", u.Size, size)
	}
	if grew := int64(src.peakHeap) - int64(base); grew > allowed {
		t.Fatalf("the live heap grew by %d MiB during a %d MiB upload: the body is being buffered", grew>>20, size>>20)
	}
	want := sha256.New()
	_, _ = io.Copy(want, &patternReader{n: size, next: 1 << 62})

	_, r, err := s.OpenAttachment(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := sha256.New()
	buf := make([]byte, 64<<10)
	var read int64
	var peak uint64
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		read += int64(n)
		if read/sampleEvery != (read-int64(n))/sampleEvery {
			peak = max(peak, heapNow())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read at %d: %v", read, err)
		}
	}
	if read != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("read back %d bytes, sha256 match %v; want %d identical bytes", read, bytes.Equal(got.Sum(nil), want.Sum(nil)), size)
	}
	if grew := int64(peak) - int64(base); grew > allowed {
		t.Fatalf("the live heap grew by %d MiB during a %d MiB download", grew>>20, size>>20)
	}
}

func testAttachmentReference(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a1, a2 := upload(t, s, "alice-id", "one", 0), upload(t, s, "alice-id", "two", 1)
	refs, err := s.ReferenceAttachments(ctx, []string{a2.ID, a1.ID}, "alice-id", "conv-x")
	if err != nil {
		t.Fatalf("ReferenceAttachments: %v", err)
	}
	if len(refs) != 2 || refs[0].ID != a2.ID || refs[1].ID != a1.ID || refs[0].ConversationID != "conv-x" || refs[1].Size != 3 || refs[0].Name != "f.txt" {
		t.Fatalf("references = %+v, want a2 then a1 in conv-x", refs)
	}
	if got, _ := s.Attachment(ctx, a1.ID); got.ConversationID != "conv-x" {
		t.Fatalf("Attachment after reference: conversation %q, want conv-x", got.ConversationID)
	}
	// Again from the same conversation: a retried send.
	if _, err := s.ReferenceAttachments(ctx, []string{a1.ID}, "alice-id", "conv-x"); err != nil {
		t.Fatalf("ReferenceAttachments again from conv-x: %v", err)
	}
	_, err = s.ReferenceAttachments(ctx, []string{a1.ID}, "alice-id", "conv-y")
	wantErr(t, "ReferenceAttachments from another conversation", err, store.ErrConflict)
	_, err = s.ReferenceAttachments(ctx, []string{a1.ID}, "bob-id", "conv-x")
	wantErr(t, "ReferenceAttachments by another user", err, store.ErrNotFound)
	_, err = s.ReferenceAttachments(ctx, []string{store.NewID()}, "alice-id", "conv-x")
	wantErr(t, "ReferenceAttachments(unknown)", err, store.ErrNotFound)
	// All or none: a fresh one listed with a refused one stays unreferenced.
	a3 := upload(t, s, "alice-id", "three", 2)
	_, err = s.ReferenceAttachments(ctx, []string{a3.ID, a1.ID}, "alice-id", "conv-y")
	wantErr(t, "ReferenceAttachments(fresh, taken)", err, store.ErrConflict)
	if got, _ := s.Attachment(ctx, a3.ID); got.ConversationID != "" {
		t.Fatalf("a refused reference left a3 referenced by %q", got.ConversationID)
	}
	_, err = s.ReferenceAttachments(ctx, []string{a3.ID, store.NewID()}, "alice-id", "conv-y")
	wantErr(t, "ReferenceAttachments(fresh, unknown)", err, store.ErrNotFound)
	if got, _ := s.Attachment(ctx, a3.ID); got.ConversationID != "" {
		t.Fatalf("a refused reference left a3 referenced by %q", got.ConversationID)
	}
	if refs, err := s.ReferenceAttachments(ctx, []string{a3.ID}, "alice-id", "conv-y"); err != nil || refs[0].ConversationID != "conv-y" {
		t.Fatalf("ReferenceAttachments(a3, conv-y) = %+v, %v", refs, err)
	}
}

func testAttachmentReferenceRace(t *testing.T, s store.Store) {
	a := upload(t, s, "alice-id", "contested", 0)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.ReferenceAttachments(ctxFor(t), []string{a.ID}, "alice-id", fmt.Sprintf("conv-%d", i))
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("reference %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent references from different conversations won, want exactly 1", won, n)
	}
}

func testAttachmentPrune(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	day := 24 * 3600
	oldFree := upload(t, s, "alice-id", "old, unreferenced", 0)
	oldUsed := upload(t, s, "alice-id", "old, referenced", 1)
	newFree := upload(t, s, "alice-id", "new, unreferenced", day+60)
	if _, err := s.ReferenceAttachments(ctx, []string{oldUsed.ID}, "alice-id", "conv-x"); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneAttachments(ctx, at(day+1))
	if err != nil || n != 1 {
		t.Fatalf("PruneAttachments = %d, %v; want 1", n, err)
	}
	_, err = s.Attachment(ctx, oldFree.ID)
	wantErr(t, "Attachment(pruned)", err, store.ErrNotFound)
	_, _, err = s.OpenAttachment(ctx, oldFree.ID)
	wantErr(t, "OpenAttachment(pruned)", err, store.ErrNotFound)
	_, err = s.ReferenceAttachments(ctx, []string{oldFree.ID}, "alice-id", "conv-x")
	wantErr(t, "ReferenceAttachments(pruned)", err, store.ErrNotFound)
	if _, body := readAll(t, s, oldUsed.ID); body != "old, referenced" {
		t.Fatalf("the referenced upload reads %q after the prune", body)
	}
	if _, body := readAll(t, s, newFree.ID); body != "new, unreferenced" {
		t.Fatalf("the recent upload reads %q after the prune", body)
	}
	if n, err := s.PruneAttachments(ctx, at(day+1)); err != nil || n != 0 {
		t.Fatalf("PruneAttachments again = %d, %v; want 0", n, err)
	}
	wantUsage(t, s, "alice-id", 2, int64(len("old, referenced")+len("new, unreferenced")))
}

func testAttachmentDeleteOf(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a1, a2 := upload(t, s, "alice-id", "one", 0), upload(t, s, "alice-id", "two", 1)
	b1 := upload(t, s, "bob-id", "bob's", 2)
	if _, err := s.ReferenceAttachments(ctx, []string{a1.ID}, "alice-id", "conv-x"); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteAttachmentsOf(ctx, "alice-id")
	if err != nil || n != 2 {
		t.Fatalf("DeleteAttachmentsOf = %d, %v; want 2", n, err)
	}
	for _, u := range []store.Upload{a1, a2} {
		_, _, err := s.OpenAttachment(ctx, u.ID)
		wantErr(t, "OpenAttachment(deleted with its uploader)", err, store.ErrNotFound)
	}
	wantUsage(t, s, "alice-id", 0, 0)
	if _, body := readAll(t, s, b1.ID); body != "bob's" {
		t.Fatalf("another user's upload reads %q", body)
	}
	if n, err := s.DeleteAttachmentsOf(ctx, "alice-id"); err != nil || n != 0 {
		t.Fatalf("DeleteAttachmentsOf again = %d, %v; want 0", n, err)
	}
}

func testAttachmentDelete(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := upload(t, s, "alice-id", "one", 0)
	if err := s.DeleteAttachment(ctx, a.ID); err != nil {
		t.Fatalf("DeleteAttachment: %v", err)
	}
	_, err := s.Attachment(ctx, a.ID)
	wantErr(t, "Attachment(deleted)", err, store.ErrNotFound)
	if err := s.DeleteAttachment(ctx, a.ID); err != nil {
		t.Fatalf("DeleteAttachment(again): %v", err)
	}
	if err := s.DeleteAttachment(ctx, store.NewID()); err != nil {
		t.Fatalf("DeleteAttachment(unknown): %v", err)
	}
	wantUsage(t, s, "alice-id", 0, 0)
}

func testAttachmentInvalid(t *testing.T, s store.Store) {
	_, err := s.CreateAttachment(ctxFor(t), store.Upload{Name: "x", Type: "text/plain"}, strings.NewReader("x"), 10)
	wantErr(t, "CreateAttachment(no uploader)", err, store.ErrInvalid)
}
