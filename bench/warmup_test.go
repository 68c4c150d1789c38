package bench

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatd/chatd/app"
)

// --warmup sends to the same users before the measured run and reports it
// apart: its messages are delivered, and none of them is timed in the step.
func TestWarmupIsReportedApart(t *testing.T) {
	cfg := app.DefaultConfig()
	cfg.HTTP.Addr, cfg.HTTP.OpsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Auth.Argon2.MemoryKiB = 1024
	cfg.Log.Level = "error"
	a, err := app.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Shutdown(context.Background()) }()

	out := filepath.Join(t.TempDir(), "report.json")
	o := Options{URL: "http://" + a.Addr(), Pairs: 2, Rate: 10, Duration: time.Second, Warmup: time.Second,
		TextSize: 8, Password: "bench-password-1", JSON: out}
	if err := runCommand(ctx, io.Discard, o); err != nil {
		t.Fatalf("runCommand: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	// (Delivered may trail Sent by what is still in flight when a run's
	// one-second drain ends, on a loaded machine.)
	if rep.Warmup == nil || rep.Warmup.Delivered == 0 || rep.Warmup.Delivered > rep.Warmup.Sent || rep.Warmup.Errors != 0 {
		t.Fatalf("warm-up = %+v, want its sends delivered", rep.Warmup)
	}
	if len(rep.Steps) != 1 {
		t.Fatalf("%d steps, want 1", len(rep.Steps))
	}
	s := rep.Steps[0]
	if s.Delivered == 0 || s.Delivered > s.Sent || int64(s.Delivery.Count) != s.Delivered || int64(s.Ack.Count) != s.Acked {
		t.Fatalf("step = %+v, want its own sends only, each timed once", s)
	}
}
