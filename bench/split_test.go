package bench

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// make perf-split starts its replicas itself: they must run with the limits
// bench --serve lifts, or the split figures measure the limits.
func TestPerfSplitLiftsBenchLimits(t *testing.T) {
	script, err := os.ReadFile("../scripts/perf-split.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range benchServerEnv {
		if !strings.Contains(string(script), "\n  "+kv+"\n") {
			t.Errorf("scripts/perf-split.sh does not set %s (bench/server.go benchServerEnv)", kv)
		}
	}
}

func TestReadProcsSums(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// Until the child has exec'd sleep its memory still changes: wait for
	// two equal readings first.
	var one procStats
	for i := 0; ; i++ {
		a, err := readProc(cmd.Process.Pid)
		if err != nil {
			t.Skipf("no /proc: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
		if one, err = readProc(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if a == one || i == 100 {
			break
		}
	}
	two, err := readProcs([]int{cmd.Process.Pid, cmd.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	if one.RSSBytes <= 0 || two.RSSBytes != 2*one.RSSBytes || two.HWMBytes != 2*one.HWMBytes {
		t.Fatalf("one %+v, two of it %+v", one, two)
	}
	if _, err := readProcs([]int{cmd.Process.Pid, math.MaxInt32}); err == nil {
		t.Fatal("readProcs of a missing process: no error")
	}
}

func TestIdleReport(t *testing.T) {
	r := IdleResult{Conns: 1000, AfterGC: true,
		Before: map[string]float64{"process_resident_memory_bytes": 10 << 20, "go_memstats_heap_inuse_bytes": 4 << 20, "go_memstats_stack_inuse_bytes": 1 << 20, "go_goroutines": 30},
		After:  map[string]float64{"process_resident_memory_bytes": 10<<20 + 16000*1024, "go_memstats_heap_inuse_bytes": 4<<20 + 4000*1024, "go_memstats_stack_inuse_bytes": 1<<20 + 4000*1024, "go_goroutines": 2030}}
	rep := r.report(Options{URL: "http://gw", MetricsURL: "http://gw-ops/metrics"})
	if rep.RSSKiB != 16 || rep.HeapKiB != 4 || rep.StacksKiB != 4 || rep.HeapStacksKiB != 8 || rep.GoroutinesTo != 2030 || rep.MetricsURL != "http://gw-ops/metrics" {
		t.Fatalf("report %+v", rep)
	}
	if s := r.String(); !strings.Contains(s, "heap + stacks in use growth: 8.0 KB/conn (heap 4.0, stacks 4.0)") {
		t.Fatalf("String %q", s)
	}
}

func TestStormReport(t *testing.T) {
	r := StormResult{Clients: 2000, Missed: 10, Fanout: 10, CaughtUp: 2000, All: 1500 * time.Millisecond, ServerCPU: 3,
		ServerCPUByPID: []float64{1, 2}, ServerPIDs: []int{11, 12}}
	rep := r.report(Options{ServerPIDs: []int{11, 12}})
	if rep.ServerCPUPerClientUS != 1500 || rep.AllMS != 1500 || rep.Fanout != 10 || len(rep.ServerPIDs) != 2 ||
		!slices.Equal(rep.ServerCPUByPID, []float64{1, 2}) {
		t.Fatalf("report %+v", rep)
	}
	want := "server: 3.00 CPU s during the storm, 1500 µs per client; by process: pid 11 1.00 s (500 µs per client), pid 12 2.00 s (1000 µs per client)"
	if s := r.String(); !strings.Contains(s, want) {
		t.Fatalf("String %q, want it to hold %q", s, want)
	}
}

// sendMissed's messages are the storm's setup: a send a replica refuses
// for now (its store breaker open: "unavailable", with retry_after_ms) is
// sent again, not the end of the storm. Before, the first such refusal
// ended bench --storm against the split deployment ("send the missed
// messages: ... send refused: ... unavailable").
func TestSendMissedRetriesUnavailable(t *testing.T) {
	var mu sync.Mutex
	tries := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"hello","node":"n1"}`))
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			var f struct {
				ClientMsgID string `json:"client_msg_id"`
			}
			_ = json.Unmarshal(data, &f)
			mu.Lock()
			tries[f.ClientMsgID]++
			n := tries[f.ClientMsgID]
			mu.Unlock()
			answer := `{"type":"ack","client_msg_id":"` + f.ClientMsgID + `"}`
			if n == 1 {
				answer = `{"type":"error","ref":"` + f.ClientMsgID + `","error":{"code":"unavailable","message":"a backend is unavailable, try again"},"retry_after_ms":20}`
			}
			if err := c.Write(ctx, websocket.MessageText, []byte(answer)); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	s, err := newClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tos := []*client{{id: "u1"}, {id: "u2"}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sendMissed(ctx, s, tos, 3); err != nil {
		t.Fatalf("sendMissed: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tries) != 6 {
		t.Fatalf("%d messages sent, want 6: %v", len(tries), tries)
	}
	for id, n := range tries {
		if n != 2 {
			t.Errorf("%s sent %d times, want 2 (refused once, then acked)", id, n)
		}
	}
}

// Any other refusal still ends the setup, with the frame in the error.
func TestSendMissedStopsOnOtherErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_ = c.Write(r.Context(), websocket.MessageText, []byte(`{"type":"hello","node":"n1"}`))
		_, data, err := c.Read(r.Context())
		if err != nil {
			return
		}
		var f struct {
			ClientMsgID string `json:"client_msg_id"`
		}
		_ = json.Unmarshal(data, &f)
		_ = c.Write(r.Context(), websocket.MessageText, []byte(`{"type":"error","ref":"`+f.ClientMsgID+`","error":{"code":"blocked"}}`))
		_, _, _ = c.Read(r.Context())
	}))
	defer srv.Close()
	s, _ := newClient(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := sendMissed(ctx, s, []*client{{id: "u1"}}, 1)
	if err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Fatalf("sendMissed = %v, want the blocked refusal", err)
	}
}

// A sign-up answered 503 (the auth node's store timed out behind the load)
// is retried after Retry-After: sign-ups are bench's setup. Before, the
// first 503 ended bench --storm against the split deployment ("sign up:
// POST /auth/signup: 503 ... unavailable").
func TestLoginRetriesUnavailable(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		n := calls[r.URL.Path]
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"code":"unavailable"}}`, http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/auth/signup" {
			w.WriteHeader(http.StatusCreated)
			return
		}
		_, _ = w.Write([]byte(`{"token":"t1","user":{"id":"u1"}}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := login(ctx, srv.URL, "alice", "pw")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if c.token != "t1" || calls["/auth/signup"] != 2 || calls["/auth/token"] != 2 {
		t.Fatalf("token %q, calls %v", c.token, calls)
	}
}

// The catch-up GETs of a storm client retry a 503 after its Retry-After, as
// api.md has a client do; before, the first 503 made the client failed
// (all 500 of a storm through the split deployment).
func TestGetRetriesUnavailable(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"code":"unavailable"}}`, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"conversations":[]}`))
	}))
	defer srv.Close()
	c, err := newClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out struct {
		Conversations []any `json:"conversations"`
	}
	if err := c.get(ctx, "/api/conversations", &out); err != nil {
		t.Fatalf("get: %v", err)
	}
	if calls != 2 || c.retries503 != 1 {
		t.Fatalf("calls %d, retries %d", calls, c.retries503)
	}
}

// Storm clients each keep their connection from one GET to the next (as a
// browser does): 50 clients, a GET each at once and, once all are
// answered, a second GET each, dial 50 connections. On
// http.DefaultTransport (2 idle per host) the second round dialed 48 anew.
func TestStormClientsKeepAlive(t *testing.T) {
	var mu sync.Mutex
	dialed := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"conversations":[]}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			dialed++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	const n = 50
	cs := make([]*client, n)
	for i := range cs {
		c, err := newClient(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c
	}
	defer keepAlive(cs).CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for round := range 2 {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, c := range cs {
			wg.Go(func() {
				var out struct{}
				if err := c.get(ctx, "/api/conversations", &out); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if dialed > n {
		t.Fatalf("%d clients dialed %d connections for two GETs each; want at most %d (one each)", n, dialed, n)
	}
}
