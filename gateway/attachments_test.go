package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/internal/apitest"
)

func postThrough(t *testing.T, url string, hdr http.Header, body io.Reader, size int64) (int, int64) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, body)
	req.ContentLength = size
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	var out struct {
		Received int64 `json:"received"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Received
}

// TestUploadThroughGateway: a 25 MiB upload streams through the proxy to a
// chat replica whole (no body limit or buffering on the way).
func TestUploadThroughGateway(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), true)
	const size = 25 << 20
	st, got := postThrough(t, tg.srv.URL+"/api/attachments?name=big.bin", tg.bearer(t), apitest.Pattern(size), size)
	if st != 200 || got != size {
		t.Fatalf("25 MiB through the gateway: status %d, the replica received %d bytes, want %d", st, got, size)
	}
}

// TestUploadOutlivesBodyTimeout: behind http.body_timeout (BodyDeadline),
// an upload's body gets time for its size, while any other body is still
// cut at the timeout.
func TestUploadOutlivesBodyTimeout(t *testing.T) {
	a, c := newTestUpstream(t, "auth-1"), newTestUpstream(t, "chat-1")
	tg := newTestGateway(t, testConfig([]string{a.URL()}, []string{c.URL()}), true)
	srv := httptest.NewServer(httpapi.BodyDeadline(tg.g.Handler(), 300*time.Millisecond))
	t.Cleanup(srv.Close)
	const pieces = 8
	st, got := postThrough(t, srv.URL+"/api/attachments?name=slow.bin", tg.bearer(t), apitest.Slow(pieces, 100*time.Millisecond), pieces*1024)
	if st != 200 || got != pieces*1024 {
		t.Fatalf("a slow upload behind a 300 ms body timeout: status %d, received %d bytes, want %d", st, got, pieces*1024)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/other", apitest.Slow(pieces, 100*time.Millisecond))
	req.ContentLength = pieces * 1024
	req.Header = tg.bearer(t)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		var e echo
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode == 200 && len(e.Body) == pieces*1024 {
			t.Fatal("a slow body to another path was not cut at the body timeout")
		}
	}
}
