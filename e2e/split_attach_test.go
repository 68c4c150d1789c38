package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/chatd/chatd/internal/apitest"
)

// download GETs an attachment as u (cookies), with extra headers, and
// returns the status, the sha256 of the body and its length.
func download(t *testing.T, u *apitest.User, id string, hdr map[string]string) (int, []byte, int64) {
	t.Helper()
	req, _ := http.NewRequest("GET", u.Base+"/api/attachments/"+id, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := u.HTTP.Do(req)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, _ := io.Copy(h, resp.Body)
	return resp.StatusCode, h.Sum(nil), n
}

// vmHWM is a process's peak resident set (VmHWM), in KiB, or 0.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int64
			_, _ = fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "%d", &kb)
			return kb
		}
	}
	return 0
}

// TestSplitDeploymentAttachments: a 25 MiB file uploaded through the
// gateway into GridFS (FerretDB) by a browser-like client (cookies, same
// origin), sent, and downloaded by the peer through the gateway from
// whichever replica serves it, whole and by range; a stranger gets 404.
func TestSplitDeploymentAttachments(t *testing.T) {
	c := startCluster(t)
	gw := c.gateway.url()
	alice, bob, carol := apitest.SignUp(t, gw, "alice"), apitest.SignUp(t, gw, "bob"), apitest.SignUp(t, gw, "carol")
	const size = 25 << 20
	before := map[string]int64{}
	for _, n := range append(c.chats, c.gateway) {
		before[n.name] = vmHWM(n.cmd.Process.Pid)
	}
	req, _ := http.NewRequest("POST", gw+"/api/attachments?name=big.bin", apitest.Pattern(size))
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Origin", gw)
	resp, err := alice.HTTP.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	var up struct {
		Attachment struct {
			ID   string `json:"id"`
			Size int64  `json:"size"`
		} `json:"attachment"`
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || json.Unmarshal(body, &up) != nil || up.Attachment.Size != size {
		t.Fatalf("upload of 25 MiB through the gateway: %d %s", resp.StatusCode, body)
	}
	id := up.Attachment.ID
	if r := alice.Do("POST", "/api/messages", map[string]any{"to": bob.ID, "text": "", "client_msg_id": "att-1", "attachments": []string{id}}); r.Status != 201 {
		t.Fatalf("send: %d %s", r.Status, r.Body)
	}
	want := apitest.PatternSum(size)
	for i := range 2 { // the gateway balances: likely one download per replica
		st, sum, n := download(t, bob, id, nil)
		if st != 200 || n != size || !bytes.Equal(sum, want) {
			t.Fatalf("bob's download %d: status %d, %d bytes, same bytes %v", i+1, st, n, bytes.Equal(sum, want))
		}
	}
	rangeSum := sha256.Sum256(func() []byte {
		b, _ := io.ReadAll(io.LimitReader(apitest.Pattern(size), 20<<20+10))
		return b[20<<20:]
	}())
	if st, sum, n := download(t, bob, id, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", 20<<20, 20<<20+9)}); st != 206 || n != 10 || !bytes.Equal(sum, rangeSum[:]) {
		t.Fatalf("range: %d, %d bytes, right bytes %v", st, n, bytes.Equal(sum, rangeSum[:]))
	}
	if st, _, _ := download(t, carol, id, nil); st != 404 {
		t.Fatalf("a stranger's download: %d, want 404", st)
	}
	// A measurement, not a check: the peak includes the garbage the GC
	// floor (runtime.gc_heap_floor_mb) lets accumulate; the live heap after each GC
	// stayed at 3-7 MB during the transfers (GODEBUG=gctrace=1).
	for _, n := range append(c.chats, c.gateway) {
		t.Logf("%s peak RSS: %d MiB before, %d MiB after the 25 MiB upload and 3 downloads", n.name, before[n.name]>>10, vmHWM(n.cmd.Process.Pid)>>10)
	}
}
