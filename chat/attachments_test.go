package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/auth/token"
	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/internal/apitest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// uploadResp is an upload's answer.
type uploadResp struct {
	status int
	header http.Header
	att    frame
	err    apiError
}

// upload posts body as a file named name with contentType, by tok.
// chunked sends it without a Content-Length.
func (e *testEnv) upload(tok, name, contentType string, body string, chunked bool) uploadResp {
	e.t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length: sent chunked
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/attachments?name="+url.QueryEscape(name), rd)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Attachment frame `json:"attachment"`
		apiError
	}
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &out)
	return uploadResp{status: resp.StatusCode, header: resp.Header, att: out.Attachment, err: out.apiError}
}

// uploadOK uploads and fails the test unless it is stored.
func (e *testEnv) uploadOK(u *testUser, name, contentType, body string) frame {
	e.t.Helper()
	r := e.upload(u.token, name, contentType, body, false)
	if r.status != http.StatusCreated {
		e.t.Fatalf("upload %q: %d %+v", name, r.status, r.err)
	}
	return r.att
}

// download GETs an attachment by tok with extra headers.
func (e *testEnv) download(tok, id string, hdr map[string]string) (int, http.Header, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/attachments/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

// sendWith posts a message with attachments.
func (e *testEnv) sendWith(from, to *testUser, text, cmid string, ids ...string) (int, frame, apiError) {
	e.t.Helper()
	var out struct {
		Message frame `json:"message"`
		apiError
	}
	st := e.call(from.token, "POST", "/api/messages", map[string]any{"to": to.id, "text": text, "client_msg_id": cmid, "attachments": ids}, &out)
	return st, out.Message, out.apiError
}

func attachmentsOf(m frame) []frame {
	raw, _ := m["attachments"].([]any)
	out := make([]frame, 0, len(raw))
	for _, a := range raw {
		o, _ := a.(map[string]any)
		out = append(out, frame(o))
	}
	return out
}

func TestAttachmentUploadDownloadAccess(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	att := e.uploadOK(alice, "notes.txt", "text/plain; charset=utf-8", "hello world")
	id := att.str("id")
	if id == "" || att.str("name") != "notes.txt" || att.str("type") != "text/plain" || att.num("size") != 11 {
		t.Fatalf("attachment = %v, want notes.txt, text/plain, 11 bytes", att)
	}
	// The uploader reads it back, with the headers of api.md.
	st, h, body := e.download(alice.token, id, nil)
	if st != 200 || body != "hello world" {
		t.Fatalf("uploader's download: %d %q", st, body)
	}
	for k, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "sandbox",
		"Content-Disposition":     `attachment; filename=notes.txt`,
		"Content-Type":            "text/plain",
		"Content-Length":          "11",
		"Etag":                    `"` + id + `"`,
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// Not referenced yet: nobody else sees it, as if it did not exist.
	for _, u := range []*testUser{bob, carol} {
		if st, _, _ := e.download(u.token, id, nil); st != 404 {
			t.Fatalf("%s's download of an unsent upload: %d, want 404", u.name, st)
		}
	}
	if st, _, _ := e.download(alice.token, "nosuchid", nil); st != 404 {
		t.Fatalf("unknown id: %d, want 404", st)
	}
	// Sent to Bob, with no text: Bob may read it, Carol still may not.
	st, msg, aerr := e.sendWith(alice, bob, "", cmid(), id)
	if st != 201 {
		t.Fatalf("send with an attachment and no text: %d %+v", st, aerr)
	}
	if as := attachmentsOf(msg); len(as) != 1 || as[0].str("id") != id || as[0].num("size") != 11 || as[0].str("name") != "notes.txt" {
		t.Fatalf("message attachments = %v", msg["attachments"])
	}
	if st, _, body := e.download(bob.token, id, nil); st != 200 || body != "hello world" {
		t.Fatalf("the recipient's download: %d %q", st, body)
	}
	if st, _, _ := e.download(carol.token, id, nil); st != 404 {
		t.Fatalf("a stranger's download of a sent attachment: %d, want 404", st)
	}
	// Range and revalidation (http.ServeContent).
	if st, _, body := e.download(bob.token, id, map[string]string{"Range": "bytes=6-10"}); st != 206 || body != "world" {
		t.Fatalf("range: %d %q, want 206 world", st, body)
	}
	if st, _, _ := e.download(bob.token, id, map[string]string{"If-None-Match": `"` + id + `"`}); st != 304 {
		t.Fatalf("If-None-Match: %d, want 304", st)
	}
	// The history carries the attachments; a message without any has [].
	var page struct {
		Messages []frame `json:"messages"`
	}
	e.restSend(bob, alice, "thanks", cmid())
	if st := e.call(bob.token, "GET", "/api/conversations/"+alice.id+"/messages", nil, &page); st != 200 || len(page.Messages) != 2 {
		t.Fatalf("history: %d %v", st, page.Messages)
	}
	if as := attachmentsOf(page.Messages[0]); len(as) != 1 || as[0].str("id") != id {
		t.Fatalf("history attachments = %v", page.Messages[0]["attachments"])
	}
	if raw, ok := page.Messages[1]["attachments"].([]any); !ok || len(raw) != 0 {
		t.Fatalf("a message without attachments has attachments %v, want []", page.Messages[1]["attachments"])
	}
}

func TestAttachmentImagesInline(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.user("alice")
	for typ, want := range map[string]string{
		"image/png":     "inline",
		"image/jpeg":    "inline",
		"image/webp":    "inline",
		"image/gif":     "inline",
		"image/svg+xml": "attachment", // scripts
		"text/html":     "attachment",
	} {
		att := e.uploadOK(alice, "pic", typ, "bytes")
		_, h, _ := e.download(alice.token, att.str("id"), nil)
		if got := h.Get("Content-Disposition"); !strings.HasPrefix(got, want+";") {
			t.Errorf("%s: Content-Disposition %q, want %s", typ, got, want)
		}
		if h.Get("Content-Type") != typ || h.Get("Content-Security-Policy") != "sandbox" {
			t.Errorf("%s: served as %q with CSP %q", typ, h.Get("Content-Type"), h.Get("Content-Security-Policy"))
		}
	}
	// A non-ASCII name is RFC 2231 encoded.
	att := e.uploadOK(alice, "صورة 🚀.png", "image/png", "x")
	_, h, _ := e.download(alice.token, att.str("id"), nil)
	if got := h.Get("Content-Disposition"); !strings.HasPrefix(got, "inline; filename*=utf-8''") {
		t.Errorf("non-ASCII name: Content-Disposition %q", got)
	}
}

// attachmentFiles lists the attachment directory of e's store.
func attachmentFiles(t *testing.T, e *testEnv) []string {
	t.Helper()
	ents, err := os.ReadDir(e.st.AttachmentDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	return names
}

func TestAttachmentTooLargeLeavesNothing(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxAttachmentBytes = 1000; c.UploadQuotaBytes = 1 << 20 })
	alice := e.user("alice")
	big := strings.Repeat("x", 1001)
	for _, chunked := range []bool{false, true} {
		r := e.upload(alice.token, "big.bin", "application/octet-stream", big, chunked)
		if r.status != 413 || r.err.Error.Code != "too_large" {
			t.Fatalf("1001 bytes (chunked %v): %d %+v, want 413 too_large", chunked, r.status, r.err)
		}
	}
	if n, size, err := e.st.AttachmentUsage(context.Background(), alice.id, time.Now().Add(-time.Hour)); err != nil || n != 0 || size != 0 {
		t.Fatalf("after refused uploads the store holds %d uploads, %d bytes (%v)", n, size, err)
	}
	if files := attachmentFiles(t, e); len(files) != 0 {
		t.Fatalf("after refused uploads the attachment directory holds %v", files)
	}
	if r := e.upload(alice.token, "fits.bin", "", strings.Repeat("x", 1000), true); r.status != 201 || r.att.str("type") != "application/octet-stream" {
		t.Fatalf("1000 bytes: %d %v", r.status, r.att)
	}
}

func TestAttachmentUploadRules(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.user("alice")
	for _, c := range []struct {
		name, wantName string
		status         int
	}{
		{"", "", 400},
		{"  ", "", 400},
		{"..", "", 400},
		{strings.Repeat("a", 256), "", 400},
		{"a/b\\c.txt", "a_b_c.txt", 201},
		{"evil\u202etxt.exe", "evil_txt.exe", 201}, // a bidi override that would show "exe.txt"
		{"line\nbreak", "line_break", 201},
		{" report.pdf ", "report.pdf", 201},
	} {
		r := e.upload(alice.token, c.name, "text/plain", "x", false)
		if r.status != c.status || (c.status == 201 && r.att.str("name") != c.wantName) {
			t.Errorf("name %q: %d %q, want %d %q", c.name, r.status, r.att.str("name"), c.status, c.wantName)
		}
	}
	for header, want := range map[string]string{
		"":                        "application/octet-stream",
		"not a type":              "application/octet-stream",
		"IMAGE/PNG":               "image/png",
		"application/pdf; x=1":    "application/pdf",
		"text/html; charset=utf8": "text/html",
	} {
		if r := e.upload(alice.token, "f", header, "x", false); r.status != 201 || r.att.str("type") != want {
			t.Errorf("Content-Type %q: %d, stored as %q, want %q", header, r.status, r.att.str("type"), want)
		}
	}
	if r := e.upload("", "f", "text/plain", "x", false); r.status != 401 {
		t.Errorf("without a token: %d, want 401", r.status)
	}
	// Cookie-authenticated: same-origin only.
	for origin, want := range map[string]int{"http://evil.example": 403, e.srv.URL: 201} {
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/attachments?name=f", strings.NewReader("x"))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", origin)
		req.AddCookie(&http.Cookie{Name: token.SessionCookie, Value: alice.token})
		if st := e.do(req, nil); st != want {
			t.Errorf("cookie upload from Origin %s: %d, want %d", origin, st, want)
		}
	}
}

func TestAttachmentUploadLimits(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.UploadRate, c.UploadBurst = 0.001, 3
		c.MaxAttachmentBytes, c.UploadQuotaBytes = 1000, 1500
	})
	alice, bob := e.user("alice"), e.user("bob")
	e.uploadOK(alice, "a", "", strings.Repeat("a", 800))
	// The quota: 800 + 800 > 1500.
	r := e.upload(alice.token, "b", "", strings.Repeat("b", 800), false)
	if r.status != 429 || r.err.Error.Code != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the quota: %d %+v (Retry-After %q), want 429 rate_limited", r.status, r.err, r.header.Get("Retry-After"))
	}
	e.uploadOK(alice, "c", "", strings.Repeat("c", 100))
	// The rate: a burst of 3 per user, then 429; another user is not held up.
	r = e.upload(alice.token, "d", "", "d", false)
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("past the burst: %d, want 429 with Retry-After", r.status)
	}
	e.uploadOK(bob, "e", "", "e")
	for _, c := range []struct {
		c    prometheus.Counter
		want float64
	}{
		{e.svc.m.refused.WithLabelValues("upload_rate"), 1},
		{e.svc.m.refused.WithLabelValues("upload_quota"), 1},
		{e.svc.m.attachments.WithLabelValues("uploaded"), 3},
		{e.svc.m.attachmentBytes, 901},
	} {
		var m dto.Metric
		if err := c.c.Write(&m); err != nil || m.GetCounter().GetValue() != c.want {
			t.Errorf("%s = %v, want %v", c.c.Desc(), m.GetCounter().GetValue(), c.want)
		}
	}
}

func TestAttachmentSendRules(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	a1 := e.uploadOK(alice, "one.txt", "text/plain", "one").str("id")
	bobs := e.uploadOK(bob, "bob.txt", "text/plain", "bob").str("id")
	var eleven []string
	for range 11 {
		eleven = append(eleven, e.uploadOK(alice, "n", "", "n").str("id"))
	}
	for _, c := range []struct {
		what   string
		ids    []string
		status int
		code   string
	}{
		{"eleven", eleven, 400, "invalid_request"},
		{"twice the same", []string{a1, a1}, 400, "invalid_request"},
		{"unknown", []string{"nosuchupload"}, 400, "invalid_attachment"},
		{"someone else's", []string{bobs}, 400, "invalid_attachment"},
	} {
		st, _, aerr := e.sendWith(alice, bob, "see", cmid(), c.ids...)
		if st != c.status || aerr.Error.Code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.what, st, aerr.Error.Code, c.status, c.code)
		}
	}
	// Refused sends referenced nothing: ten of the eleven go now.
	if st, m, aerr := e.sendWith(alice, bob, "", cmid(), eleven[:10]...); st != 201 || len(attachmentsOf(m)) != 10 {
		t.Fatalf("ten attachments: %d %+v", st, aerr)
	}
	// No text and no attachment is still text_empty.
	if st, _, aerr := e.sendWith(alice, bob, " ", cmid()); st != 400 || aerr.Error.Code != "text_empty" {
		t.Fatalf("blank without attachments: %d %s", st, aerr.Error.Code)
	}
	// Sent to Bob; a retry is the same message; to Carol it is refused.
	id := cmid()
	st, first, _ := e.sendWith(alice, bob, "here", id, a1)
	if st != 201 {
		t.Fatalf("send: %d", st)
	}
	if st, again, _ := e.sendWith(alice, bob, "here", id, a1); st != 200 || again.num("seq") != first.num("seq") {
		t.Fatalf("retry: %d seq %d, want 200 seq %d", st, again.num("seq"), first.num("seq"))
	}
	if st, _, aerr := e.sendWith(alice, bob, "again", cmid(), a1); st != 201 || aerr.Error.Code != "" {
		t.Fatalf("the same upload again in the same conversation: %d %s", st, aerr.Error.Code)
	}
	if st, _, aerr := e.sendWith(alice, carol, "also for you", cmid(), a1); st != 409 || aerr.Error.Code != "attachment_in_use" {
		t.Fatalf("the upload in another conversation: %d %s, want 409 attachment_in_use", st, aerr.Error.Code)
	}
	if st, _, _ := e.download(carol.token, a1, nil); st != 404 {
		t.Fatalf("carol's download after the refused send: %d, want 404", st)
	}
	// Over the WebSocket: the ack and the live message carry them.
	a2 := e.uploadOK(alice, "two.txt", "text/plain", "two").str("id")
	ws, wb := e.dial(alice), e.dial(bob)
	ws.write(map[string]any{"type": "send", "to": bob.id, "text": "", "client_msg_id": "ws-1", "attachments": []string{a2}})
	ack, _ := ws.nextOf("ack")
	if as := attachmentsOf(ack.obj("message")); len(as) != 1 || as[0].str("id") != a2 {
		t.Fatalf("ack attachments = %v", ack.obj("message")["attachments"])
	}
	live, _ := wb.nextOf("message")
	if as := attachmentsOf(live.obj("message")); len(as) != 1 || as[0].str("id") != a2 {
		t.Fatalf("live message attachments = %v", live.obj("message")["attachments"])
	}
	ws.write(map[string]any{"type": "send", "to": carol.id, "text": "", "client_msg_id": "ws-2", "attachments": []string{a2}})
	ef, _ := ws.nextOf("error")
	if ef.obj("error").str("code") != "attachment_in_use" || ef.str("ref") != "ws-2" {
		t.Fatalf("ws send of a used attachment elsewhere: %v", ef)
	}
}

func TestAttachmentUnreferencedPruned(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	// Two uploads 25 h ago (the clock injected), one sent since, and one now.
	e.svc.att.now = func() time.Time { return time.Now().Add(-25 * time.Hour) }
	stale := e.uploadOK(alice, "stale", "", "stale").str("id")
	sent := e.uploadOK(alice, "sent", "", "sent").str("id")
	e.svc.att.now = time.Now
	fresh := e.uploadOK(alice, "fresh", "", "fresh").str("id")
	if st, _, _ := e.sendWith(alice, bob, "", cmid(), sent); st != 201 {
		t.Fatalf("send: %d", st)
	}
	e.svc.pruneAttachments()
	if st, _, _ := e.download(alice.token, stale, nil); st != 404 {
		t.Fatalf("an unreferenced upload older than 24 h: %d, want 404 (pruned)", st)
	}
	if st, _, _ := e.sendWith(alice, bob, "", cmid(), stale); st != 400 {
		t.Fatalf("sending a pruned upload: %d, want 400", st)
	}
	for _, id := range []string{sent, fresh} {
		if st, _, _ := e.download(alice.token, id, nil); st != 200 {
			t.Fatalf("a kept upload: %d, want 200", st)
		}
	}
	if files := attachmentFiles(t, e); len(files) != 2 {
		t.Fatalf("the attachment directory holds %v, want the 2 kept", files)
	}
}

// TestAttachmentUploadOutlivesBodyTimeout: behind http.body_timeout
// (httpapi.BodyDeadline) an upload's body gets time for its size.
func TestAttachmentUploadOutlivesBodyTimeout(t *testing.T) {
	e := newTestEnv(t, nil)
	alice := e.user("alice")
	mux := http.NewServeMux()
	e.svc.Routes(mux)
	srv := httptest.NewServer(httpapi.BodyDeadline(mux, 300*time.Millisecond))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("POST", srv.URL+"/api/attachments?name=slow.bin", apitest.Slow(8, 100*time.Millisecond))
	req.ContentLength = 8 * 1024
	req.Header.Set("Authorization", "Bearer "+alice.token)
	var out struct {
		Attachment frame `json:"attachment"`
	}
	if st := e.do(req, &out); st != 201 || out.Attachment.num("size") != 8*1024 {
		t.Fatalf("a slow upload behind a 300 ms body timeout: %d %v", st, out.Attachment)
	}
}

// TestAttachmentGoesWithDeletedMessage: a message deleted for everyone
// takes its files along: neither member can download them afterwards. A
// refused delete (not the author) keeps them.
func TestAttachmentGoesWithDeletedMessage(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	id := e.uploadOK(alice, "photo.png", "image/png", "png bytes").str("id")
	st, msg, _ := e.sendWith(alice, bob, "", cmid(), id)
	if st != 201 {
		t.Fatalf("send: %d", st)
	}
	path := fmt.Sprintf("/api/conversations/%s/messages/%d?client_msg_id=%s", alice.id, msg.num("seq"), cmid())
	if st := e.call(bob.token, "DELETE", path, nil, nil); st != 403 {
		t.Fatalf("bob deleting alice's message: %d, want 403", st)
	}
	if st, _, _ := e.download(bob.token, id, nil); st != 200 {
		t.Fatalf("after a refused delete: %d, want 200", st)
	}
	path = fmt.Sprintf("/api/conversations/%s/messages/%d?client_msg_id=%s", bob.id, msg.num("seq"), cmid())
	if st := e.call(alice.token, "DELETE", path, nil, nil); st != 200 {
		t.Fatalf("alice deleting her message: %d, want 200", st)
	}
	for _, u := range []*testUser{alice, bob} {
		waitUntil(t, u.name+"'s download to be gone", func() bool {
			st, _, _ := e.download(u.token, id, nil)
			return st == 404
		})
	}
}

// TestAttachmentUploadsInFlight: a user has at most maxUploadsInFlight
// uploads in progress on a node; the next is 429 until one ends.
func TestAttachmentUploadsInFlight(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, bob := e.user("alice"), e.user("bob")
	inFlight := func(id string) int {
		e.svc.att.mu.Lock()
		defer e.svc.att.mu.Unlock()
		return e.svc.att.inFlight[id]
	}
	var writers []*io.PipeWriter
	done := make(chan int, maxUploadsInFlight)
	for range maxUploadsInFlight {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/attachments?name=slow", pr)
		req.Header.Set("Authorization", "Bearer "+alice.token)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	waitUntil(t, "the uploads to be in progress", func() bool { return inFlight(alice.id) == maxUploadsInFlight })
	if r := e.upload(alice.token, "one more", "", "x", false); r.status != 429 || r.err.Error.Code != "rate_limited" {
		t.Fatalf("an upload beyond %d in flight: %d %+v, want 429", maxUploadsInFlight, r.status, r.err)
	}
	e.uploadOK(bob, "bob's", "", "b") // another user is not held up
	for _, pw := range writers {
		_, _ = pw.Write([]byte("data"))
		_ = pw.Close()
	}
	for range maxUploadsInFlight {
		if st := <-done; st != 201 {
			t.Fatalf("a slow upload ended with %d, want 201", st)
		}
	}
	e.uploadOK(alice, "after", "", "x")
	if n := inFlight(alice.id); n != 0 {
		t.Fatalf("%d uploads counted in flight after all ended", n)
	}
}
