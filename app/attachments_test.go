package app

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatd/chatd/internal/apitest"
)

// TestRoleAllStoresAttachmentsInDataDir: on --role=all an upload is a
// private file under <data_dir>/attachments, even with the SQLite file
// elsewhere (store.sqlite_path).
func TestRoleAllStoresAttachmentsInDataDir(t *testing.T) {
	dataDir := t.TempDir()
	cfg := testConfig(dataDir)
	cfg.Store.SQLitePath = filepath.Join(t.TempDir(), "elsewhere.db")
	a := startApp(t, cfg, nil)
	base := "http://" + a.Addr()
	alice := apitest.SignUp(t, base, "alice")
	req, _ := http.NewRequest("POST", base+"/api/attachments?name=hello.txt", strings.NewReader("hello"))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Origin", base)
	resp, err := alice.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		Attachment struct {
			ID string `json:"id"`
		} `json:"attachment"`
	}
	if resp.StatusCode != 201 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	dir := filepath.Join(dataDir, "attachments")
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v (mode %v), want a 0700 directory", dir, err, st.Mode().Perm())
	}
	st, err := os.Stat(filepath.Join(dir, out.Attachment.ID))
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != 5 {
		t.Fatalf("the upload's file: %v (mode %v, %d bytes), want 0600 and 5 bytes", err, st.Mode().Perm(), st.Size())
	}
}
