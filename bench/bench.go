// Package bench is `chatd bench`, a load generator that speaks only the
// public API (docs/api.md): it signs up user pairs, connects them over
// WebSocket, sends one-to-one messages and reports throughput and latency
// (send → ack at the sender, send → message at the recipient). With
// --idle it instead holds many idle connections and reports the server's
// memory per connection from its /metrics.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"
)

// Options are the load's parameters.
type Options struct {
	URL      string
	Pairs    int
	Duration time.Duration
	Rate     float64 // total messages per second; 0 = as fast as the window allows
	Window   int     // sends in flight per sender when Rate is 0
	TextSize int
	Idle     int // hold this many idle connections instead of sending
	Storm    int // reconnect storm: this many users reconnect at once (storm.go)
	Missed   int // with Storm: messages each user missed
	// StormFanout is, with Storm, how many of the users one sender sends
	// their missed messages to (0: 100).
	StormFanout int
	// StormProfile (optional) is where the server's CPU profiles of the
	// storm go (StormProfile.1, .2, …, a second each), from PprofURL.
	StormProfile string
	// MetricsURL is the server's /metrics, on its ops listener
	// (http.ops_addr), read by Idle.
	MetricsURL string
	// PprofURL (optional) is the server's net/http/pprof base URL: --idle
	// runs the server's GC through it before each measurement, so that the
	// garbage of the sign-ups (argon2's memory) is not counted.
	PprofURL string
	Password string

	JSON       string        // write a JSON report here
	ServerPIDs []int         // read these processes' CPU and RSS from /proc, summed (a split deployment's)
	Serve      bool          // start `chatd serve --role=all` on a temp data dir
	ServerCPUs string        // pin the started server (taskset list); implies Serve
	ClientCPUs string        // pin bench itself
	ServerLog  string        // the started server's log file
	ServerArgs []string      // extra arguments of the started `chatd serve`
	Curve      string        // start:end:step rates
	P99Max     time.Duration // curve bound on delivery p99
	// Warmup (optional) is how long to send at the first rate before the
	// measured run or curve, uncounted (see runCommand).
	Warmup time.Duration
}

// Command is the cobra command `chatd bench`.
func Command() *cobra.Command {
	var o Options
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load a running chatd through its public API and report throughput and latency",
		Args:  cobra.NoArgs,
		Long: `Load a running chatd through its public API and report throughput and latency.

--serve (or --server-cpus) starts "chatd serve --role=all" itself, on a free
loopback port and a temporary data directory, with its rate limits lifted;
--server-cpus 0 runs it under "taskset -c 0" (one core; the server picks its
GOMAXPROCS as on a 1-vCPU machine), --client-cpus 1 pins bench to the other
core. --curve 1000:20000:1000 steps
the rate until delivery p99 passes --p99-max and prints a markdown row per
step; --json FILE writes the report (rates, p50/p99/p99.9/max of ack and
delivery latency, errors, the server's CPU seconds and RSS when bench started
it or --server-pid names it).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCommand(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "base URL of chatd (a gateway or an all-in-one node)")
	f.IntVar(&o.Pairs, "pairs", 50, "sender/recipient pairs, one WebSocket each")
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to send")
	f.Float64Var(&o.Rate, "rate", 0, "total messages per second (0 = as fast as acks allow)")
	f.IntVar(&o.Window, "window", 4, "unacknowledged sends per sender when --rate is 0")
	f.IntVar(&o.TextSize, "text-size", 64, "bytes of text per message")
	f.IntVar(&o.Idle, "idle", 0, "hold this many idle connections and report server memory per connection")
	f.IntVar(&o.Storm, "storm", 0, "reconnect storm: this many users, each having missed --missed messages, reconnect at once and catch up (api.md's rule); reports when the last one holds all, and checks none came twice")
	f.IntVar(&o.Missed, "missed", 10, "with --storm: messages each user missed")
	f.IntVar(&o.StormFanout, "storm-fanout", defaultStormFanout, "with --storm: users one sender sends the missed messages to (a sender per this many users)")
	f.StringVar(&o.StormProfile, "storm-profile", "", "with --storm: write the server's CPU profile of the storm to FILE.1, FILE.2, … (a second each; go tool pprof merges them), from --pprof-url")
	f.StringVar(&o.PprofURL, "pprof-url", "", "net/http/pprof of the process measured (chatd serve --pprof-addr): --idle runs its GC before each measurement, --storm-profile profiles it; set by --serve")
	f.StringVar(&o.MetricsURL, "metrics-url", "http://127.0.0.1:9090/metrics", "with --idle: /metrics of the process measured, on its ops listener (http.ops_addr): a chat node's, or a gateway's for its memory per proxied socket; --storm reads the store operations there; set by --serve")
	f.StringVar(&o.Password, "password", "bench-password-1", "password of the bench users")
	f.StringVar(&o.JSON, "json", "", "write a JSON report to this file")
	f.IntSliceVar(&o.ServerPIDs, "server-pid", nil, "PID of the server, to report its CPU seconds and RSS from /proc; a comma list or repeated (a split deployment's processes) reports their sum")
	f.BoolVar(&o.Serve, "serve", false, "start chatd serve --role=all on a temporary data dir and load it (--url is ignored)")
	f.StringVar(&o.ServerCPUs, "server-cpus", "", "with --serve (implied): run the server under taskset -c LIST (it picks GOMAXPROCS from that mask)")
	f.StringVar(&o.ClientCPUs, "client-cpus", "", "pin bench itself to these CPUs (taskset list), GOMAXPROCS matching")
	f.StringArrayVar(&o.ServerArgs, "server-arg", nil, "with --serve: an extra argument of chatd serve (repeatable), e.g. --server-arg=--pprof-addr=127.0.0.1:6060")
	f.StringVar(&o.ServerLog, "server-log", "", "with --serve: write the server's log here (default: discarded)")
	f.StringVar(&o.Curve, "curve", "", "step the rate start:end:step (msg/s) until delivery p99 passes --p99-max")
	f.DurationVar(&o.P99Max, "p99-max", 50*time.Millisecond, "with --curve: stop after the first step whose delivery p99 exceeds this")
	f.DurationVar(&o.Warmup, "warmup", 0, "first send at the (first) rate for this long, to the same users, and count none of it: every conversation's first messages, the caches' first misses and the processes' own start are then behind the measured window")
	return cmd
}

// Result is what a run measured.
type Result struct {
	Sent, Acked, Delivered, Errors int64
	Pairs, CrossPairs              int            // pairs, and those whose two sockets are on different nodes
	SenderNodes                    map[string]int // senders per node (hello's node)
	Elapsed                        time.Duration
	Ack, Delivery                  []time.Duration
}

func (r Result) String() string {
	secs := r.Elapsed.Seconds()
	return fmt.Sprintf("pairs=%d (%d across nodes) sent=%d acked=%d delivered=%d errors=%d elapsed=%.1fs\nthroughput: %.0f acked msg/s, %.0f delivered msg/s\nack latency:      %s\ndelivery latency: %s",
		r.Pairs, r.CrossPairs, r.Sent, r.Acked, r.Delivered, r.Errors, secs, float64(r.Acked)/secs, float64(r.Delivered)/secs,
		quantiles(r.Ack), quantiles(r.Delivery))
}

func quantiles(d []time.Duration) string {
	if len(d) == 0 {
		return "n/a"
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return fmt.Sprintf("p50=%s p90=%s p99=%s p99.9=%s max=%s", q(0.50), q(0.90), q(0.99), q(0.999), d[len(d)-1])
}

type client struct {
	http  *http.Client
	base  *url.URL
	token string
	id    string
	// retries503 counts the 503 answers post retried; at most
	// max503Retries in a client's life.
	retries503 int
}

const max503Retries = 30

func newClient(base string) (*client, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("bench: bad --url %q", base)
	}
	return &client{http: &http.Client{Timeout: 30 * time.Second}, base: u}, nil
}

func (c *client) post(ctx context.Context, path string, body, out any) (int, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.JoinPath(path).String(), bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	// Honour Retry-After: the gateway limits logins per address (429), and
	// a node whose store is slower than bench's sign-ups answers 503 (a
	// sign-up that was stored anyway is then "taken", which login accepts).
	if resp.StatusCode == http.StatusTooManyRequests || (resp.StatusCode == http.StatusServiceUnavailable && c.retries503 < max503Retries) {
		if resp.StatusCode == http.StatusServiceUnavailable {
			c.retries503++
		}
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		select {
		case <-time.After(time.Duration(max(secs, 1)) * time.Second):
			return c.post(ctx, path, body, out)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(data, out)
	}
	return resp.StatusCode, nil
}

// login signs up name (ignoring "taken") and takes a bearer token.
func login(ctx context.Context, base, name, password string) (*client, error) {
	c, err := newClient(base)
	if err != nil {
		return nil, err
	}
	if code, err := c.post(ctx, "/auth/signup", map[string]string{"username": name, "password": password}, nil); err != nil && code != http.StatusConflict {
		return nil, err
	}
	var tok struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if _, err := c.post(ctx, "/auth/token", map[string]string{"username": name, "password": password}, &tok); err != nil {
		return nil, err
	}
	c.token, c.id = tok.Token, tok.User.ID
	return c, nil
}

// dial opens /ws and returns the connection and the node named in hello.
func (c *client) dial(ctx context.Context) (*websocket.Conn, string, error) {
	u := *c.base
	u.Scheme = map[string]string{"https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		u.Scheme = "ws"
	}
	u.Path = "/ws"
	conn, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + c.token}},
	})
	if err != nil {
		return nil, "", err
	}
	conn.SetReadLimit(1 << 20)
	// The first frame is hello: the connection is subscribed after it.
	_, data, err := conn.Read(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("read hello: %w", err)
	}
	var hello struct {
		Node string `json:"node"`
	}
	_ = json.Unmarshal(data, &hello)
	return conn, hello.Node, nil
}

func users(ctx context.Context, o Options, n int) ([]*client, error) {
	prefix := "b" + strings.ToLower(rand.Text()[:8])
	out := make([]*client, n)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := login(ctx, o.URL, prefix+"_"+strconv.Itoa(i), o.Password)
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			out[i] = c
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return nil, *p
	}
	return out, nil
}

type frame struct {
	Type        string `json:"type"`
	ClientMsgID string `json:"client_msg_id"`
	Message     struct {
		ClientMsgID string `json:"client_msg_id"`
	} `json:"message"`
}

// Run drives o.Pairs senders, each talking to its own recipient.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Pairs <= 0 {
		return Result{}, errors.New("bench: --pairs must be > 0")
	}
	cs, err := users(ctx, o, 2*o.Pairs)
	if err != nil {
		return Result{}, fmt.Errorf("bench: sign up: %w", err)
	}
	return run(ctx, o, cs)
}

// run is one load over signed-in users cs (2*o.Pairs), so that the
// steps of a curve reuse the same users.
func run(ctx context.Context, o Options, cs []*client) (Result, error) {
	var (
		mu        sync.Mutex
		sentAt    = map[string]time.Time{}
		res       Result
		sent      atomic.Int64
		acked     atomic.Int64
		delivered atomic.Int64
		errs      atomic.Int64
	)
	record := func(id string, ack bool) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		t, ok := sentAt[id]
		if !ok {
			return
		}
		if ack {
			res.Ack = append(res.Ack, now.Sub(t))
		} else {
			res.Delivery = append(res.Delivery, now.Sub(t))
		}
	}
	// Senders wait for go, closed once every connection is open, so the
	// measured window holds only sending.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	goCh := make(chan struct{})
	text := strings.Repeat("x", max(1, o.TextSize))
	// client_msg_id is the idempotency key: ids unique per run keep the
	// steps of a curve, which reuse users, from being taken as retries.
	runID := strings.ToLower(rand.Text()[:6]) + "-"
	var wg sync.WaitGroup
	for p := range o.Pairs {
		sender, recipient := cs[2*p], cs[2*p+1]
		// Every other pair dials its recipient first: behind a gateway
		// that balances by least connections over two replicas, the pairs'
		// two sockets alternate between them, and so the senders, whose
		// messages the replica they are on stores, land on both replicas
		// instead of all on the one the first dial takes.
		first, second := sender, recipient
		if p%2 == 1 {
			first, second = recipient, sender
		}
		c1, node1, err := first.dial(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("bench: dial: %w", err)
		}
		c2, node2, err := second.dial(ctx)
		if err != nil {
			c1.CloseNow()
			return Result{}, fmt.Errorf("bench: dial: %w", err)
		}
		sc, rc, senderNode, recipientNode := c1, c2, node1, node2
		if p%2 == 1 {
			sc, rc, senderNode, recipientNode = c2, c1, node2, node1
		}
		if senderNode != recipientNode {
			res.CrossPairs++
		}
		if res.SenderNodes == nil {
			res.SenderNodes = map[string]int{}
		}
		res.SenderNodes[senderNode]++
		defer sc.CloseNow()
		defer rc.CloseNow()
		window := make(chan struct{}, max(1, o.Window))
		// Recipient reader.
		wg.Go(func() {
			for {
				_, data, err := rc.Read(ctx)
				if err != nil {
					return
				}
				var f frame
				if json.Unmarshal(data, &f) == nil && f.Type == "message" {
					delivered.Add(1)
					record(f.Message.ClientMsgID, false)
				}
			}
		})
		// Sender reader: acks free window slots.
		wg.Go(func() {
			for {
				_, data, err := sc.Read(ctx)
				if err != nil {
					return
				}
				var f frame
				if json.Unmarshal(data, &f) != nil {
					continue
				}
				switch f.Type {
				case "ack":
					acked.Add(1)
					record(f.ClientMsgID, true)
					select {
					case <-window:
					default:
					}
				case "error":
					errs.Add(1)
					select {
					case <-window:
					default:
					}
				}
			}
		})
		// Sender writer.
		wg.Go(func() {
			<-goCh
			var tick <-chan time.Time
			if o.Rate > 0 {
				// Spread the senders' phases evenly over one interval, so
				// the total rate is steady instead of pairs-sized bursts.
				interval := time.Duration(float64(time.Second) * float64(o.Pairs) / o.Rate)
				select {
				case <-time.After(interval * time.Duration(p) / time.Duration(o.Pairs)):
				case <-runCtx.Done():
					return
				}
				t := time.NewTicker(interval)
				defer t.Stop()
				tick = t.C
			}
			for n := 0; ; n++ {
				if tick != nil {
					select {
					case <-tick:
					case <-runCtx.Done():
						return
					}
				} else {
					select {
					case window <- struct{}{}:
					case <-runCtx.Done():
						return
					}
				}
				id := fmt.Sprintf("%s%d-%d", runID, p, n)
				msg, _ := json.Marshal(map[string]string{"type": "send", "to": recipient.id, "text": text, "client_msg_id": id})
				mu.Lock()
				sentAt[id] = time.Now()
				mu.Unlock()
				if err := sc.Write(ctx, websocket.MessageText, msg); err != nil {
					errs.Add(1)
					return
				}
				sent.Add(1)
			}
		})
	}
	start := time.Now()
	close(goCh)
	stop := time.AfterFunc(o.Duration, cancel)
	defer stop.Stop()
	<-runCtx.Done()
	res.Elapsed = time.Since(start)
	// Let in-flight acks and deliveries land, then stop the readers.
	time.Sleep(time.Second)
	cancel() // the deferred CloseNow calls end the readers
	mu.Lock()
	res.Sent, res.Acked, res.Delivered, res.Errors = sent.Load(), acked.Load(), delivered.Load(), errs.Load()
	out := Result{Pairs: o.Pairs, CrossPairs: res.CrossPairs, SenderNodes: res.SenderNodes, Sent: res.Sent, Acked: res.Acked, Delivered: res.Delivered, Errors: res.Errors, Elapsed: res.Elapsed,
		Ack: slices.Clone(res.Ack), Delivery: slices.Clone(res.Delivery)}
	mu.Unlock()
	return out, nil
}

// IdleResult is what --idle measured: the /metrics of o.MetricsURL's
// process before and after the connections opened.
type IdleResult struct {
	Started       time.Time
	Conns         int
	AfterGC       bool // both readings followed the process's GC (--pprof-url)
	Before, After map[string]float64
}

// growth is the growth of metric k per connection, in KiB.
func (r IdleResult) growth(k string) float64 {
	return (r.After[k] - r.Before[k]) / float64(r.Conns) / 1024
}

func (r IdleResult) String() string {
	gc := "after a GC (--pprof-url)"
	if !r.AfterGC {
		gc = "without a GC first (no --pprof-url): garbage counts"
	}
	return fmt.Sprintf("idle connections=%d, measured %s\nserver RSS growth: %.1f KB/conn (%.1f MB -> %.1f MB)\n"+
		"server heap + stacks in use growth: %.1f KB/conn (heap %.1f, stacks %.1f)\nserver goroutines: %.0f -> %.0f",
		r.Conns, gc, r.growth("process_resident_memory_bytes"),
		r.Before["process_resident_memory_bytes"]/1e6, r.After["process_resident_memory_bytes"]/1e6,
		r.growth("go_memstats_heap_inuse_bytes")+r.growth("go_memstats_stack_inuse_bytes"),
		r.growth("go_memstats_heap_inuse_bytes"), r.growth("go_memstats_stack_inuse_bytes"),
		r.Before["go_goroutines"], r.After["go_goroutines"])
}

// Idle opens o.Idle connections (over 10 users) through o.URL, waits for
// the server to settle and reports the memory growth per connection of the
// process whose /metrics o.MetricsURL is (process_resident_memory_bytes,
// go_memstats_heap_inuse_bytes and _stack_inuse_bytes, go_goroutines),
// after that process's GC when o.PprofURL names its pprof. With --url a
// gateway, o.MetricsURL and o.PprofURL the gateway's, it measures the
// gateway's memory per proxied socket.
func Idle(ctx context.Context, o Options) (IdleResult, error) {
	res := IdleResult{Started: time.Now().UTC(), Conns: o.Idle, AfterGC: o.PprofURL != ""}
	cs, err := users(ctx, o, 10)
	if err != nil {
		return res, fmt.Errorf("bench: sign up: %w", err)
	}
	if res.Before, err = settledMemory(ctx, o); err != nil {
		return res, err
	}
	conns := make([]*websocket.Conn, 0, o.Idle)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	for i := range o.Idle {
		c, _, err := cs[i%len(cs)].dial(ctx)
		if err != nil {
			return res, fmt.Errorf("bench: connection %d: %w", i, err)
		}
		// Keep reading so pings are answered and presence frames drained.
		go func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()
		conns = append(conns, c)
	}
	time.Sleep(3 * time.Second)
	if res.After, err = settledMemory(ctx, o); err != nil {
		return res, err
	}
	return res, nil
}

// settledMemory is serverMemory after the server's GC, when o.PprofURL
// names its pprof handler (heap?gc=1 collects before it profiles).
func settledMemory(ctx context.Context, o Options) (map[string]float64, error) {
	if o.PprofURL != "" {
		for range 2 { // the second also returns what the first's finalizers freed
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(o.PprofURL, "/")+"/debug/pprof/heap?gc=1", nil)
			if err != nil {
				return nil, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, fmt.Errorf("bench: server GC through %s (--pprof-url): %w", o.PprofURL, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	return serverMemory(ctx, o.MetricsURL)
}

func serverMemory(ctx context.Context, metricsURL string) (map[string]float64, error) {
	all, err := scrapeMetrics(ctx, metricsURL)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, name := range []string{"process_resident_memory_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines"} {
		if v, ok := all[name]; ok {
			out[name] = v
		}
	}
	return out, nil
}

// scrapeMetrics reads metricsURL (a /metrics in the Prometheus text
// format) into a map from each series (the name with its labels, as
// written) to its value.
func scrapeMetrics(ctx context.Context, metricsURL string) (map[string]float64, error) {
	if metricsURL == "" {
		return nil, errors.New("bench: no --metrics-url")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: read %s (--metrics-url): %w", metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: read %s (--metrics-url): %s; /metrics is on the ops listener (http.ops_addr)", metricsURL, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		if f, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = f
		}
	}
	return out, sc.Err()
}
