package bench

import (
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseCPUs(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "1,3": {1, 3}, "0-2": {0, 1, 2}, "0,2-3": {0, 2, 3}} {
		got, err := parseCPUs(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseCPUs(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "3-1", "1,"} {
		if _, err := parseCPUs(bad); err == nil {
			t.Errorf("parseCPUs(%q) accepted", bad)
		}
	}
}

func TestParseCurve(t *testing.T) {
	a, b, c, err := parseCurve("1000:20000:1000")
	if err != nil || a != 1000 || b != 20000 || c != 1000 {
		t.Fatalf("parseCurve = %v %v %v %v", a, b, c, err)
	}
	for _, bad := range []string{"1000", "1:2", "a:b:c", "2000:1000:100", "1000:2000:0"} {
		if _, _, _, err := parseCurve(bad); err == nil {
			t.Errorf("parseCurve(%q) accepted", bad)
		}
	}
}

func TestLatencyQuantiles(t *testing.T) {
	d := make([]time.Duration, 1000)
	for i := range d {
		d[len(d)-1-i] = time.Duration(i+1) * time.Millisecond // reversed: latency sorts a copy
	}
	l := latency(d)
	if l.Count != 1000 || l.P50 != 501 || l.P99 != 991 || l.P999 != 1000 || l.Max != 1000 {
		t.Fatalf("latency = %+v", l)
	}
	if d[0] != 1000*time.Millisecond {
		t.Fatal("latency reordered its input")
	}
	if (latency(nil) != Latency{}) {
		t.Fatal("empty latency not zero")
	}
}

func TestReadProcSelf(t *testing.T) {
	// Burn a little CPU so utime moves past one tick.
	x := 0
	for i := range 50_000_000 {
		x += i
	}
	_ = x
	st, err := readProc(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if st.RSSBytes <= 0 || st.HWMBytes < st.RSSBytes {
		t.Fatalf("RSS %d, peak %d", st.RSSBytes, st.HWMBytes)
	}
	if st.CPUSeconds <= 0 {
		t.Fatalf("CPU seconds %v", st.CPUSeconds)
	}
}

func TestStepRow(t *testing.T) {
	s := Step{RateAsked: 2000, DeliveredPS: 1999, ServerCPU: 5, ServerCores: 0.5, ServerRSS: 50e6, StoreCommits: 400, StoreWrites: 1000}
	row := s.row()
	if !strings.HasPrefix(row, "| 2000 | 1999 |") || !strings.Contains(row, "50 %") || !strings.Contains(row, "50 MB") || !strings.HasSuffix(row, "| 2.5 |") {
		t.Fatalf("row %q", row)
	}
	if strings.Count(row, "|") != strings.Count(strings.SplitN(tableHeader, "\n", 2)[0], "|") {
		t.Fatalf("row %q does not match the header's columns", row)
	}
}

// The SQLite writer's counters come from /metrics in the text format,
// with its comments and labelled series around them.
func TestWriterStats(t *testing.T) {
	var body atomic.Pointer[string]
	text := `# HELP chatd_store_write_batches_total Transactions.
# TYPE chatd_store_write_batches_total counter
chatd_store_write_batches_total 1234
chatd_store_latency_seconds_count{op="append_message"} 99
chatd_store_write_requests_total 5678
`
	body.Store(&text)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(*body.Load())) }))
	defer srv.Close()
	commits, writes, err := writerStats(t.Context(), srv.URL)
	if err != nil || commits != 1234 || writes != 5678 {
		t.Fatalf("writerStats = %v, %v, %v; want 1234, 5678", commits, writes, err)
	}
	ops, err := storeOps(t.Context(), srv.URL)
	if err != nil || len(ops) != 1 || ops["append_message"] != 99 {
		t.Fatalf("storeOps = %v, %v", ops, err)
	}
	// A server without the SQLite writer (mongostore, a gateway).
	other := "go_goroutines 12\n"
	body.Store(&other)
	if _, _, err := writerStats(t.Context(), srv.URL); err == nil {
		t.Fatal("writerStats without the counters: no error")
	}
	mem, err := serverMemory(t.Context(), srv.URL)
	if err != nil || mem["go_goroutines"] != 12 {
		t.Fatalf("serverMemory = %v, %v", mem, err)
	}
}
