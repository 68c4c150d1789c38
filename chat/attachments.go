package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
)

// Attachments (api.md 1.1 "Attachments"): POST /api/attachments streams a
// raw body into the store (store.Attachments: files in the data directory
// or GridFS), GET /api/attachments/{id} streams it back to its uploader and
// to the members of the conversation whose message references it, and a
// send's `attachments` reference uploads of its sender (prepareSend).
// Every AttachmentPruneInterval a node removes the uploads no message
// referenced within AttachmentRetention.

const (
	// maxAttachments is how many uploads one message references (api.md).
	maxAttachments = 10
	// maxAttachmentName is the longest file name, in UTF-8 bytes (what
	// most file systems take).
	maxAttachmentName = 255
	// maxMediaType is the longest media type kept; a longer one is
	// application/octet-stream.
	maxMediaType = 127
	// uploadQuotaWindow is the window of chat.upload_quota_bytes.
	uploadQuotaWindow = 24 * time.Hour
	// maxUploadsInFlight is how many uploads of one user a node takes at
	// once: the quota counts finished uploads, so uploads in flight could
	// otherwise pass it by up to upload_burst × max_attachment_bytes.
	maxUploadsInFlight = 3
)

// Error codes of the attachment rules (besides too_large, rate_limited).
const (
	codeInvalidAttachment = "invalid_attachment" // not an upload of the sender's
	codeAttachmentInUse   = "attachment_in_use"  // referenced by another conversation
)

// inlineTypes are the media types a download shows in the browser; every
// other one is Content-Disposition: attachment.
var inlineTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

// attachmentState is the Service's attachment part.
type attachmentState struct {
	uploads *httpapi.Limiter // per user
	now     func() time.Time // the clock of uploads and of the prune (tests set it)

	mu       sync.Mutex
	inFlight map[string]int // uploads in progress per user
}

func newAttachmentState(cfg Config) *attachmentState {
	return &attachmentState{uploads: httpapi.NewLimiter(cfg.UploadRate, cfg.UploadBurst, maxLimiterKeys), now: time.Now,
		inFlight: make(map[string]int)}
}

// begin admits one more upload of userID unless maxUploadsInFlight run;
// end must follow an admitted one.
func (a *attachmentState) begin(userID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight[userID] >= maxUploadsInFlight {
		return false
	}
	a.inFlight[userID]++
	return true
}

func (a *attachmentState) end(userID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight[userID]--; a.inFlight[userID] <= 0 {
		delete(a.inFlight, userID)
	}
}

type attachmentJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

func toAttachmentJSON(a store.Attachment) attachmentJSON {
	return attachmentJSON{ID: a.ID, Name: a.Name, Type: a.Type, Size: a.Size}
}

// toAttachmentsJSON is a message's attachments on the wire: [] for none.
func toAttachmentsJSON(as []store.Attachment) []attachmentJSON {
	out := make([]attachmentJSON, 0, len(as))
	for _, a := range as {
		out = append(out, toAttachmentJSON(a))
	}
	return out
}

// attachmentName checks and cleans an upload's file name: valid UTF-8 of
// at most maxAttachmentName bytes, not empty, "." or ".." once trimmed;
// path separators, controls and format characters (bidi overrides that
// would show "exe.txt" as "txt.exe") become "_".
func attachmentName(raw string) (string, *httpapi.Error) {
	name := strings.TrimSpace(raw)
	switch {
	case !utf8.ValidString(name):
		return "", badRequest("name must be valid UTF-8")
	case name == "" || name == "." || name == "..":
		return "", badRequest("name (the file name) is required")
	case len(name) > maxAttachmentName:
		return "", httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "name is longer than %d bytes", maxAttachmentName)
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp) {
			return '_'
		}
		return r
	}, name), nil
}

// attachmentType is the media type an upload is stored and served with:
// its Content-Type's type/subtype, lower case, without parameters, or
// application/octet-stream when that is missing or malformed.
func attachmentType(header string) string {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil || len(mt) > maxMediaType || strings.Count(mt, "/") != 1 || strings.HasPrefix(mt, "/") || strings.HasSuffix(mt, "/") {
		return "application/octet-stream"
	}
	return mt
}

// errUploadTooLarge is the 413 of an upload over max_attachment_bytes.
func (s *Service) errUploadTooLarge() *httpapi.Error {
	return httpapi.Errorf(http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, "an attachment is at most %d bytes", s.cfg.MaxAttachmentBytes)
}

// bodyReader records the error of the request body, so that a client that
// went away is told from a store that failed.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// POST /api/attachments?name=FILENAME, the raw bytes as body.
func (s *Service) handleUpload(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	name, herr := attachmentName(r.URL.Query().Get("name"))
	if herr != nil {
		return herr
	}
	limit := s.cfg.MaxAttachmentBytes
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close") // do not read the rest
		s.refusedBy("attachment_size", "user", me.UserID)
		return s.errUploadTooLarge()
	}
	if !s.att.begin(me.UserID) {
		s.refusedBy("uploads_in_flight", "user", me.UserID)
		return httpapi.RateLimited(time.Second, fmt.Sprintf("at most %d uploads at once", maxUploadsInFlight))
	}
	defer s.att.end(me.UserID)
	now := s.att.now()
	if ok, retry := s.att.uploads.Allow(me.UserID, now); !ok {
		s.refusedBy("upload_rate", "user", me.UserID, "retry_after", retry)
		return httpapi.RateLimited(retry, "too many uploads, slow down")
	}
	ctx := r.Context()
	_, used, err := s.store.AttachmentUsage(ctx, me.UserID, now.Add(-uploadQuotaWindow))
	if err != nil {
		return httpapi.Fail(s.log, "attachment usage", err)
	}
	if used+max(r.ContentLength, 0) > s.cfg.UploadQuotaBytes {
		s.refusedBy("upload_quota", "user", me.UserID, "used_bytes", used)
		return httpapi.RateLimited(time.Hour, fmt.Sprintf("you uploaded %d MiB in 24 hours, the most allowed; try again later", s.cfg.UploadQuotaBytes>>20))
	}
	size := r.ContentLength
	if size < 0 {
		size = limit
	}
	httpapi.ExtendBodyDeadline(w, size)
	body := &bodyReader{r: r.Body}
	u, err := s.store.CreateAttachment(ctx, store.Upload{UploaderID: me.UserID, Name: name, Type: attachmentType(r.Header.Get("Content-Type")), CreatedAt: now}, body, limit)
	switch {
	case errors.Is(err, store.ErrTooLarge):
		w.Header().Set("Connection", "close")
		s.refusedBy("attachment_size", "user", me.UserID)
		return s.errUploadTooLarge()
	case body.err != nil:
		s.log.Debug("upload cut short", "err", body.err)
		return badRequest("the body could not be read to its end")
	case err != nil:
		return httpapi.Fail(s.log, "create attachment", err)
	}
	s.m.attachments.WithLabelValues("uploaded").Inc()
	s.m.attachmentBytes.Add(float64(u.Size))
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"attachment": toAttachmentJSON(u.Attachment())})
	return nil
}

// canRead reports whether userID may download u: its uploader, or a member
// of the conversation whose message references it.
func canRead(u store.Upload, userID string) bool {
	if u.UploaderID == userID {
		return true
	}
	a, b, ok := strings.Cut(u.ConversationID, ".")
	return ok && (a == userID || b == userID)
}

// GET /api/attachments/{id}
func (s *Service) handleDownload(w http.ResponseWriter, r *http.Request, me principal) *httpapi.Error {
	u, rc, err := s.store.OpenAttachment(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.ErrNotFound
	} else if err != nil {
		return httpapi.Fail(s.log, "open attachment", err)
	}
	defer rc.Close()
	if !canRead(u, me.UserID) {
		return httpapi.ErrNotFound // a stranger learns nothing, not even that it exists
	}
	h := w.Header()
	h.Set("Content-Type", u.Type)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	disposition := "attachment"
	if inlineTypes[u.Type] {
		disposition = "inline"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": u.Name}))
	// The bytes of an id never change: the ETag lets a browser revalidate
	// (each time, so that the access check runs) without downloading again.
	h.Set("ETag", `"`+u.ID+`"`)
	h.Set("Cache-Control", "private, no-cache")
	http.ServeContent(w, r, "", u.CreatedAt, rc)
	return nil
}

// prepareSend validates a send and then references its attachments: a
// send refused for any other reason references nothing. The references
// stay when the append then fails; its retry (same client_msg_id, same
// conversation) is allowed to reference them again.
func (s *Service) prepareSend(ctx context.Context, req *sendRequest) *httpapi.Error {
	if herr := s.validateSend(ctx, req); herr != nil {
		return herr
	}
	if req.kind == store.KindDelete {
		return s.targetAttachments(ctx, req)
	}
	if len(req.attachmentIDs) == 0 {
		return nil
	}
	atts, herr := s.referenceAttachments(ctx, req.from, store.ConversationID(req.from, req.to), req.attachmentIDs)
	if herr != nil {
		return herr
	}
	req.attachments = atts
	return nil
}

// targetAttachments notes the uploads of a delete's target (when the
// sender wrote it; the store refuses the delete otherwise): deleted for
// everyone, a message's files go too, so that its peer can no longer
// download them (api.md: `attachments` [] once deleted).
func (s *Service) targetAttachments(ctx context.Context, req *sendRequest) *httpapi.Error {
	msgs, _, err := s.store.MessagesAfter(ctx, store.ConversationID(req.from, req.to), req.target-1, 1)
	if err != nil {
		return httpapi.Fail(s.log, "read a delete's target", err)
	}
	if len(msgs) == 1 && msgs[0].Seq == req.target && msgs[0].From == req.from {
		for _, a := range msgs[0].Attachments {
			req.dropAttachments = append(req.dropAttachments, a.ID)
		}
	}
	return nil
}

// dropAttachments removes the uploads ids of a deleted message, in the
// background: it is called where no I/O may wait (the store's writer runs
// the completion of a WebSocket send), and a failure leaves an upload
// only its uploader and the peer, who had it, can still read.
func (s *Service) dropAttachments(ids []string) {
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
		defer cancel()
		for _, id := range ids {
			if err := s.store.DeleteAttachment(ctx, id); err != nil {
				s.log.Warn("delete a deleted message's attachment", "err", err)
				return
			}
		}
	}()
}

// checkAttachmentIDs is the part of a send's validation that needs no store.
func checkAttachmentIDs(ids []string) *httpapi.Error {
	if len(ids) > maxAttachments {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidRequest, "a message has at most %d attachments", maxAttachments)
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" || len(id) > 64 || seen[id] {
			return badRequest("attachments must be distinct upload ids")
		}
		seen[id] = true
	}
	return nil
}

// referenceAttachments references ids, uploads of from, from the
// conversation and returns what the message carries.
func (s *Service) referenceAttachments(ctx context.Context, from, conversationID string, ids []string) ([]store.Attachment, *httpapi.Error) {
	if herr := checkAttachmentIDs(ids); herr != nil {
		return nil, herr
	}
	ups, err := s.store.ReferenceAttachments(ctx, ids, from, conversationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, httpapi.Errorf(http.StatusBadRequest, codeInvalidAttachment, "an attachment is not an upload of yours (or it was removed)")
	case errors.Is(err, store.ErrConflict):
		return nil, httpapi.Errorf(http.StatusConflict, codeAttachmentInUse, "an attachment was already sent in another conversation; upload it again")
	case err != nil:
		return nil, httpapi.Fail(s.log, "reference attachments", err)
	}
	out := make([]store.Attachment, len(ups))
	for i, u := range ups {
		out[i] = u.Attachment()
	}
	return out, nil
}

// pruneAttachments removes the uploads no message referenced within the
// retention (one round of the loop).
func (s *Service) pruneAttachments() {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AttachmentPruneInterval)
	defer cancel()
	before := s.att.now().Add(-s.cfg.AttachmentRetention)
	n, err := s.store.PruneAttachments(ctx, before)
	s.m.attachments.WithLabelValues("pruned").Add(float64(n))
	switch {
	case err != nil && s.ctx.Err() == nil:
		s.log.Warn("attachment prune failed; next round will go on", "removed", n, "err", err)
	case n > 0:
		s.log.Info("removed unreferenced attachments", "removed", n, "created_before", before)
	}
}
