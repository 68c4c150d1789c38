package app

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/apitest"
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
	// One sign-up: a user and a session, written by the SQLite writer.
	apitest.SignUp(t, "http://"+a.Addr(), "alice")
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
	// The writer's group commits: the sign-up's writes were carried by at
	// least one batch, and none failed into a second run.
	batches, writes := metricValue(t, body, "chatd_store_write_batches_total"), metricValue(t, body, "chatd_store_write_requests_total")
	if batches < 1 || writes < batches {
		t.Errorf("write batches %v carrying %v requests, want at least one batch and a request per batch", batches, writes)
	}
	if reruns := metricValue(t, body, "chatd_store_write_reruns_total"); reruns != 0 {
		t.Errorf("write reruns %v, want 0", reruns)
	}
}

// metricValue is the value of the unlabelled metric name in a /metrics body.
func metricValue(t *testing.T, body []byte, name string) float64 {
	t.Helper()
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics lacks %s", name)
	return 0
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
