package app

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// /metrics carries chatd_build_info with the stamped version, and the
// SQLite store's metrics.
func TestBuildInfoMetric(t *testing.T) {
	old := Version
	Version = "v1.2.3-4-gabcdef0-dirty"
	t.Cleanup(func() { Version = old })

	cfg := DefaultConfig()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.OpsAddr = "127.0.0.1:0" // tests run side by side; the default port would collide
	cfg.DataDir = t.TempDir()
	cfg.Log.Level = "warn"
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	res, err := http.Get("http://" + a.OpsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := `chatd_build_info{goversion="` + runtime.Version() + `",version="v1.2.3-4-gabcdef0-dirty"} 1`
	if !strings.Contains(string(body), want+"\n") {
		t.Errorf("/metrics lacks %s", want)
	}
	// The SQLite writer's log truncations (store/sqlitestore/wal.go): none
	// on a store that has barely written.
	for _, want := range []string{"chatd_store_wal_truncations_total 0", "chatd_store_wal_truncations_failed_total 0", "chatd_store_wal_truncation_seconds_total 0"} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestBuildVersionFallback(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9"
	if got := BuildVersion(); got != "v9" {
		t.Errorf("stamped: %q", got)
	}
	Version = ""
	if got := BuildVersion(); got == "" {
		t.Error("unstamped version is empty")
	}
}
