package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func latency(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) float64 { return ms(s[min(len(s)-1, int(p*float64(len(s))))]) }
	return Latency{Count: len(s), P50: q(0.50), P99: q(0.99), P999: q(0.999), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Step is one run's report: one rate of a curve, or a single run.
type Step struct {
	RateAsked  float64 `json:"rate_asked"` // 0: as fast as the window allows
	Pairs      int     `json:"pairs"`
	CrossPairs int     `json:"cross_pairs"` // pairs whose two sockets were on different nodes (hello's node)
	// SenderNodes counts the senders per node (hello's node).
	SenderNodes  map[string]int `json:"sender_nodes,omitempty"`
	DurationS    float64        `json:"duration_s"`
	Sent         int64          `json:"sent"`
	Acked        int64          `json:"acked"`
	Delivered    int64          `json:"delivered"`
	Errors       int64          `json:"errors"`
	DeliveredPS  float64        `json:"delivered_per_s"`
	Ack          Latency        `json:"ack"`
	Delivery     Latency        `json:"delivery"`
	ServerCPU    float64        `json:"server_cpu_s,omitempty"`     // CPU seconds (user+system) during the run
	ServerCores  float64        `json:"server_cpu_cores,omitempty"` // ServerCPU / duration
	ServerRSS    int64          `json:"server_rss_bytes,omitempty"`
	ServerMaxRSS int64          `json:"server_max_rss_bytes,omitempty"`
	// StoreCommits and StoreWrites are the SQLite writer's group commits
	// during the run (its sending window and the drain second) and the
	// write requests they carried, from the server's /metrics; absent
	// for other stores.
	StoreCommits int64 `json:"store_commits,omitempty"`
	StoreWrites  int64 `json:"store_writes,omitempty"`
}

// Report is what --json writes.
type Report struct {
	Started    time.Time `json:"started"`
	URL        string    `json:"url"`
	ServerCPUs string    `json:"server_cpus,omitempty"` // taskset list the server was pinned to
	ClientCPUs string    `json:"client_cpus,omitempty"`
	ServerPIDs []int     `json:"server_pids,omitempty"` // processes whose CPU and RSS the steps sum
	GoMaxProcs int       `json:"client_gomaxprocs"`
	P99MaxMS   float64   `json:"p99_max_ms,omitempty"` // curve bound on delivery p99
	TextSize   int       `json:"text_size"`
	Window     int       `json:"window,omitempty"`
	// Warmup is the uncounted run before the steps (--warmup), when there was one.
	Warmup *Step  `json:"warmup,omitempty"`
	Steps  []Step `json:"steps"`
	// MaxRateWithinBound is the highest asked rate whose delivery p99 held
	// the bound (curve mode), 0 when none did.
	MaxRateWithinBound float64 `json:"max_rate_within_bound,omitempty"`
}

func newStep(o Options, r Result, before, after *procStats) Step {
	secs := r.Elapsed.Seconds()
	s := Step{RateAsked: o.Rate, Pairs: o.Pairs, CrossPairs: r.CrossPairs, SenderNodes: r.SenderNodes, DurationS: secs, Sent: r.Sent, Acked: r.Acked, Delivered: r.Delivered, Errors: r.Errors,
		DeliveredPS: float64(r.Delivered) / secs, Ack: latency(r.Ack), Delivery: latency(r.Delivery)}
	if before != nil && after != nil {
		s.ServerCPU = after.CPUSeconds - before.CPUSeconds
		s.ServerCores = s.ServerCPU / secs
		s.ServerRSS, s.ServerMaxRSS = after.RSSBytes, after.HWMBytes
	}
	return s
}

// tableHeader and row print a step as a markdown table row.
const tableHeader = "| rate asked | delivered/s | ack p50 | ack p99 | delivery p50 | p99 | p99.9 | max | errors | server CPU | server RSS | writes per commit |\n|---|---|---|---|---|---|---|---|---|---|---|---|"

func (s Step) row() string {
	cpu, rss := "n/a", "n/a"
	if s.ServerCPU > 0 || s.ServerRSS > 0 {
		cpu = fmt.Sprintf("%.0f %%", 100*s.ServerCores)
		rss = fmt.Sprintf("%.0f MB", float64(s.ServerRSS)/1e6)
	}
	perCommit := "n/a"
	if s.StoreCommits > 0 {
		perCommit = fmt.Sprintf("%.1f", float64(s.StoreWrites)/float64(s.StoreCommits))
	}
	rate := "window"
	if s.RateAsked > 0 {
		rate = strconv.FormatFloat(s.RateAsked, 'f', -1, 64)
	}
	return fmt.Sprintf("| %s | %.0f | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.1f ms | %d | %s | %s | %s |",
		rate, s.DeliveredPS, s.Ack.P50, s.Ack.P99, s.Delivery.P50, s.Delivery.P99, s.Delivery.P999, s.Delivery.Max, s.Errors, cpu, rss, perCommit)
}

func writeJSON(path string, r any) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// parseCurve reads start:end:step.
func parseCurve(s string) (start, end, step float64, err error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("bench: --curve wants start:end:step, got %q", s)
	}
	var v [3]float64
	for i, p := range parts {
		if v[i], err = strconv.ParseFloat(p, 64); err != nil || v[i] <= 0 {
			return 0, 0, 0, fmt.Errorf("bench: --curve wants positive start:end:step, got %q", s)
		}
	}
	if v[1] < v[0] {
		return 0, 0, 0, fmt.Errorf("bench: --curve end below start in %q", s)
	}
	return v[0], v[1], v[2], nil
}

// StormReport is what --storm --json writes.
type StormReport struct {
	Started    time.Time `json:"started"`
	URL        string    `json:"url"`
	ServerPIDs []int     `json:"server_pids,omitempty"`
	Clients    int       `json:"clients"`
	Missed     int       `json:"missed"`
	Fanout     int       `json:"fanout"`     // recipients per sender of the missed messages
	CaughtUp   int       `json:"caught_up"`  // clients that got exactly seqs 1..missed
	Duplicates int       `json:"duplicates"` // messages a client got more than once
	Missing    int       `json:"missing"`
	Failed     int       `json:"failed"`
	Retried503 int       `json:"retried_503"` // catch-up GETs answered 503 and retried after Retry-After (api.md)
	FirstError string    `json:"first_error,omitempty"`
	SetupS     float64   `json:"setup_s"`          // sign-ups, tokens and the missed messages
	AllMS      float64   `json:"all_caught_up_ms"` // storm start to the last client caught up
	P50MS      float64   `json:"client_p50_ms"`
	P99MS      float64   `json:"client_p99_ms"`
	ServerCPU  float64   `json:"server_cpu_s,omitempty"` // the --server-pid processes' CPU during the storm
	// ServerCPUPerClientUS is ServerCPU per client, in microseconds.
	ServerCPUPerClientUS float64 `json:"server_cpu_per_client_us,omitempty"`
	// ServerCPUByPID is ServerCPU per process, in server_pids' order, when
	// there are several.
	ServerCPUByPID []float64 `json:"server_cpu_s_by_pid,omitempty"`
}

func (r StormResult) report(o Options) StormReport {
	rep := StormReport{Started: r.Started, URL: o.URL, ServerPIDs: o.ServerPIDs, Clients: r.Clients, Missed: r.Missed, Fanout: r.Fanout,
		CaughtUp: r.CaughtUp, Duplicates: r.Duplicates, Missing: r.Missing, Failed: r.Failed, Retried503: r.Retries503, FirstError: r.FirstErr,
		SetupS: r.Setup.Seconds(), AllMS: ms(r.All), P50MS: ms(r.P50), P99MS: ms(r.P99), ServerCPU: r.ServerCPU,
		ServerCPUByPID: r.ServerCPUByPID}
	if r.Clients > 0 {
		rep.ServerCPUPerClientUS = 1e6 * r.ServerCPU / float64(r.Clients)
	}
	return rep
}

// IdleReport is what --idle --json writes: the memory of the process whose
// /metrics bench read (--metrics-url: a chat node, or a gateway), before
// and after the idle connections opened.
type IdleReport struct {
	Started     time.Time `json:"started"`
	URL         string    `json:"url"`
	MetricsURL  string    `json:"metrics_url"`
	Connections int       `json:"connections"`
	AfterGC     bool      `json:"after_gc"` // measured after the process's GC (--pprof-url)
	// Per connection, KiB: RSS growth, and heap + stacks in use growth.
	RSSKiB         float64 `json:"rss_kib_per_conn"`
	HeapStacksKiB  float64 `json:"heap_stacks_kib_per_conn"`
	HeapKiB        float64 `json:"heap_kib_per_conn"`
	StacksKiB      float64 `json:"stacks_kib_per_conn"`
	GoroutinesFrom float64 `json:"goroutines_before"`
	GoroutinesTo   float64 `json:"goroutines_after"`
}

func (r IdleResult) report(o Options) IdleReport {
	return IdleReport{Started: r.Started, URL: o.URL, MetricsURL: o.MetricsURL, Connections: r.Conns, AfterGC: r.AfterGC,
		RSSKiB: r.growth("process_resident_memory_bytes"), HeapStacksKiB: r.growth("go_memstats_heap_inuse_bytes") + r.growth("go_memstats_stack_inuse_bytes"),
		HeapKiB: r.growth("go_memstats_heap_inuse_bytes"), StacksKiB: r.growth("go_memstats_stack_inuse_bytes"),
		GoroutinesFrom: r.Before["go_goroutines"], GoroutinesTo: r.After["go_goroutines"]}
}
