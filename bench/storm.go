package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The reconnect storm (--storm N --missed M, issue 13 point 6): N users
// each miss M messages while offline, then all reconnect at once and run
// api.md's catch-up rule (after hello: GET /api/conversations, then pages of
// GET /api/conversations/{peer}/messages?after= from their gap-free
// pointer until has_more is false). It reports when the last one held all
// of its messages, and checks that each got every seq from 1 to M exactly
// once. Tokens are taken before the storm, so argon2 is not part of it.

// defaultStormFanout is how many recipients one sender writes to, unless
// --storm-fanout says otherwise.
const defaultStormFanout = 100

// StormResult is what a storm measured.
type StormResult struct {
	Started         time.Time
	Clients, Missed int
	Fanout          int           // recipients per sender
	CaughtUp        int           // clients that got exactly seqs 1..Missed
	Duplicates      int           // messages a client got more than once
	Missing         int           // messages a client never got
	Failed          int           // clients whose dial or reads failed
	Retries503      int           // catch-up GETs answered 503 and retried after Retry-After
	FirstErr        string        // the first failure
	All             time.Duration // storm start to the last client caught up (of those that did)
	P50, P99        time.Duration // per-client time to caught up
	Setup           time.Duration // sign-ups, tokens and the missed messages
	ServerCPU       float64       // the server's CPU seconds during the storm (--server-pid or --serve)
	// ServerCPUByPID is ServerCPU per process, in --server-pid's order,
	// when there are several (a gateway, its replicas, Redis).
	ServerCPUByPID []float64
	ServerPIDs     []int    // the processes of ServerCPUByPID
	ClientCPU      float64  // bench's own CPU seconds during the storm
	Profiles       []string // the server's CPU profiles of the storm (--storm-profile)
	// StoreOps counts the chat service's timed store operations during the
	// storm, by op (chatd_store_latency_seconds_count on --metrics-url).
	StoreOps map[string]float64
}

func (r StormResult) String() string {
	s := fmt.Sprintf("storm: clients=%d missed=%d (fanout %d) caught_up=%d duplicates=%d missing=%d failed=%d retried_503=%d (setup %s)\n"+
		"all caught up after %s; per client p50=%s p99=%s",
		r.Clients, r.Missed, r.Fanout, r.CaughtUp, r.Duplicates, r.Missing, r.Failed, r.Retries503, r.Setup.Round(time.Millisecond),
		r.All.Round(time.Millisecond), r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond))
	if r.ServerCPU > 0 {
		s += fmt.Sprintf("\nserver: %.2f CPU s during the storm, %.0f µs per client", r.ServerCPU, 1e6*r.ServerCPU/float64(r.Clients))
		if len(r.ServerCPUByPID) > 1 && len(r.ServerPIDs) == len(r.ServerCPUByPID) {
			parts := make([]string, len(r.ServerPIDs))
			for i, pid := range r.ServerPIDs {
				parts[i] = fmt.Sprintf("pid %d %.2f s (%.0f µs per client)", pid, r.ServerCPUByPID[i], 1e6*r.ServerCPUByPID[i]/float64(r.Clients))
			}
			s += "; by process: " + strings.Join(parts, ", ")
		}
	}
	if r.ClientCPU > 0 {
		s += fmt.Sprintf("\nbench: %.2f CPU s during the storm, %.0f µs per client", r.ClientCPU, 1e6*r.ClientCPU/float64(r.Clients))
	}
	if len(r.StoreOps) > 0 {
		ops := slices.Sorted(maps.Keys(r.StoreOps))
		parts := make([]string, 0, len(ops))
		for _, op := range ops {
			parts = append(parts, fmt.Sprintf("%s %.2f", op, r.StoreOps[op]/float64(r.Clients)))
		}
		s += "\nstore operations per client (timed ones): " + strings.Join(parts, ", ")
	}
	if len(r.Profiles) > 0 {
		s += "\nserver CPU profiles of the storm: go tool pprof -top " + strings.Join(r.Profiles, " ")
	}
	if r.FirstErr != "" {
		s += "\nfirst error: " + r.FirstErr
	}
	return s
}

// Storm runs the reconnect storm against o.URL.
func Storm(ctx context.Context, o Options) (StormResult, error) {
	res := StormResult{Started: time.Now().UTC(), Clients: o.Storm, Missed: o.Missed}
	t0 := time.Now()
	fanout := cmp.Or(max(o.StormFanout, 0), defaultStormFanout)
	res.Fanout = fanout
	senders := (o.Storm + fanout - 1) / fanout
	cs, err := users(ctx, o, o.Storm+senders)
	if err != nil {
		return res, fmt.Errorf("bench: sign up: %w", err)
	}
	recipients, from := cs[:o.Storm], cs[o.Storm:]
	// Every recipient misses o.Missed messages from its sender.
	var wg sync.WaitGroup
	var sendErr atomic.Pointer[error]
	for si, s := range from {
		lo, hi := si*fanout, min((si+1)*fanout, o.Storm)
		wg.Go(func() {
			if err := sendMissed(ctx, s, recipients[lo:hi], o.Missed); err != nil {
				sendErr.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	if p := sendErr.Load(); p != nil {
		return res, fmt.Errorf("bench: send the missed messages: %w", *p)
	}
	res.Setup = time.Since(t0)

	// The storm: every recipient at once.
	start := make(chan struct{})
	took := make([]time.Duration, o.Storm)
	var (
		mu   sync.Mutex
		last time.Time
		s0   time.Time
	)
	retriesBefore := 0
	defer keepAlive(recipients).CloseIdleConnections()
	for _, c := range recipients {
		retriesBefore += c.retries503
	}
	for i, c := range recipients {
		wg.Go(func() {
			<-start
			t := time.Now()
			dup, miss, err := c.catchUp(ctx, o.Missed)
			d := time.Since(t)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.Failed++
				if res.FirstErr == "" {
					res.FirstErr = err.Error()
				}
			case dup == 0 && miss == 0:
				res.CaughtUp++
				took[i] = d
				if now := time.Now(); now.After(last) {
					last = now
				}
			}
			res.Duplicates += dup
			res.Missing += miss
		})
	}
	var before []procStats
	if len(o.ServerPIDs) > 0 {
		before, _ = readEach(o.ServerPIDs)
	}
	self, _ := readProc(os.Getpid())
	ops0, opsErr := storeOps(ctx, o.MetricsURL)
	profiled := make(chan []string, 1)
	stormDone := make(chan struct{})
	if o.StormProfile != "" {
		go func() { profiled <- profileStorm(ctx, o.PprofURL, o.StormProfile, stormDone) }()
	} else {
		profiled <- nil
	}
	s0 = time.Now()
	close(start)
	wg.Wait()
	if len(o.ServerPIDs) > 0 {
		if after, err := readEach(o.ServerPIDs); err == nil && len(before) == len(after) {
			by := make([]float64, len(after))
			for i := range after {
				by[i] = after[i].CPUSeconds - before[i].CPUSeconds
				res.ServerCPU += by[i]
			}
			if len(by) > 1 {
				res.ServerCPUByPID, res.ServerPIDs = by, o.ServerPIDs
			}
		}
	}
	for _, c := range recipients {
		res.Retries503 += c.retries503
	}
	res.Retries503 -= retriesBefore
	if after, err := readProc(os.Getpid()); err == nil && self.CPUSeconds > 0 {
		res.ClientCPU = after.CPUSeconds - self.CPUSeconds
	}
	close(stormDone)
	res.Profiles = <-profiled
	if ops1, err := storeOps(ctx, o.MetricsURL); err == nil && opsErr == nil {
		res.StoreOps = map[string]float64{}
		for op, n := range ops1 {
			if d := n - ops0[op]; d > 0 {
				res.StoreOps[op] = d
			}
		}
	}
	got := slices.DeleteFunc(took, func(d time.Duration) bool { return d == 0 })
	slices.Sort(got)
	if len(got) > 0 {
		res.All = last.Sub(s0)
		res.P50 = got[len(got)/2]
		res.P99 = got[min(len(got)-1, len(got)*99/100)]
	}
	return res, nil
}

// storeOps reads chatd_store_latency_seconds_count by op from the
// server's /metrics.
func storeOps(ctx context.Context, metricsURL string) (map[string]float64, error) {
	all, err := scrapeMetrics(ctx, metricsURL)
	if err != nil {
		return nil, err
	}
	const prefix = `chatd_store_latency_seconds_count{op="`
	out := map[string]float64{}
	for series, v := range all {
		if rest, ok := strings.CutPrefix(series, prefix); ok {
			if op, ok := strings.CutSuffix(rest, `"}`); ok {
				out[op] = v
			}
		}
	}
	return out, nil
}

// profileStorm takes the server's CPU profile (pprofURL's
// /debug/pprof/profile) in consecutive one-second pieces, written to
// prefix.1, prefix.2, …, until done is closed; go tool pprof merges the
// files it is given. It returns the files written.
func profileStorm(ctx context.Context, pprofURL, prefix string, done <-chan struct{}) []string {
	var files []string
	for i := 1; ; i++ {
		select {
		case <-done:
			return files
		default:
		}
		name := prefix + "." + strconv.Itoa(i)
		if err := fetchTo(ctx, strings.TrimSuffix(pprofURL, "/")+"/debug/pprof/profile?seconds=1", name); err != nil {
			fmt.Fprintf(os.Stderr, "bench: storm profile: %v\n", err)
			return files
		}
		files = append(files, name)
	}
}

// fetchTo writes the body of GET u to the file name.
func fetchTo(ctx context.Context, u, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(name, data, 0o644)
}

// sendMissed sends n messages from s to each of tos over one WebSocket,
// a window of them in flight, and waits for every ack. A send refused for
// now (unavailable: the replica's store breaker is open; rate_limited) is
// sent again, with its client_msg_id, after the retry_after_ms it names:
// these messages are the storm's setup, not what it measures.
func sendMissed(ctx context.Context, s *client, tos []*client, n int) error {
	conn, _, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	total := n * len(tos)
	window := make(chan struct{}, 64)
	errc := make(chan error, 1)
	var sent sync.Map // client_msg_id -> the frame, for a resend
	go func() {
		for acked := 0; acked < total; {
			_, data, err := conn.Read(ctx)
			if err != nil {
				errc <- err
				return
			}
			var f struct {
				frame
				Ref   string `json:"ref"`
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
				RetryAfterMS int `json:"retry_after_ms"`
			}
			if json.Unmarshal(data, &f) != nil {
				continue
			}
			switch f.Type {
			case "ack":
				acked++
				select {
				case <-window:
				default: // a resent message acked twice
				}
			case "error":
				msg, ok := sent.Load(f.Ref)
				if !ok || (f.Error.Code != "unavailable" && f.Error.Code != "rate_limited") {
					errc <- fmt.Errorf("send refused: %s", data)
					return
				}
				// The refused send keeps its window slot until its ack.
				time.AfterFunc(time.Duration(max(f.RetryAfterMS, 100))*time.Millisecond, func() {
					_ = conn.Write(ctx, websocket.MessageText, msg.([]byte))
				})
			}
		}
		errc <- nil
	}()
	for k := range n {
		for _, to := range tos {
			select {
			case window <- struct{}{}:
			case err := <-errc:
				return fmt.Errorf("before every send was written: %v", err)
			}
			id := "storm-" + to.id + "-" + strconv.Itoa(k)
			msg, _ := json.Marshal(map[string]string{"type": "send", "to": to.id, "text": "missed " + strconv.Itoa(k+1),
				"client_msg_id": id})
			sent.Store(id, msg)
			if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
				return err
			}
		}
	}
	return <-errc
}

// catchUp reconnects c and runs the catch-up rule from a gap-free pointer
// of 0; it returns how many messages came twice and how many of seqs
// 1..want never came.
func (c *client) catchUp(ctx context.Context, want int) (dup, missing int, err error) {
	conn, _, err := c.dial(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("reconnect: %w", err)
	}
	defer conn.CloseNow()
	go func() { // drain live frames (presence) so the socket is never too slow
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	}()
	var list struct {
		Conversations []struct {
			Peer struct {
				ID string `json:"id"`
			} `json:"peer"`
			LastSeq int64 `json:"last_seq"`
		} `json:"conversations"`
	}
	if err := c.get(ctx, "/api/conversations", &list); err != nil {
		return 0, 0, err
	}
	seen := map[int64]int{}
	for _, conv := range list.Conversations {
		for ptr := int64(0); conv.LastSeq > ptr; {
			var page struct {
				Messages []struct {
					Seq int64 `json:"seq"`
				} `json:"messages"`
				HasMore bool `json:"has_more"`
			}
			if err := c.get(ctx, "/api/conversations/"+conv.Peer.ID+"/messages?limit=200&after="+strconv.FormatInt(ptr, 10), &page); err != nil {
				return 0, 0, err
			}
			for _, m := range page.Messages {
				seen[m.Seq]++
				ptr = max(ptr, m.Seq)
			}
			if !page.HasMore {
				break
			}
		}
	}
	for seq := int64(1); seq <= int64(want); seq++ {
		switch n := seen[seq]; {
		case n == 0:
			missing++
		case n > 1:
			dup += n - 1
		}
	}
	for seq, n := range seen {
		if seq > int64(want) {
			dup += n // more messages than were sent
		}
	}
	return dup, missing, nil
}

// get reads path (with its query) into out.
func (c *client) get(ctx context.Context, path string, out any) error {
	p, q, _ := strings.Cut(path, "?")
	u := c.base.JoinPath(p)
	u.RawQuery = q
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable && c.retries503 < max503Retries {
		// api.md: 503 unavailable comes with Retry-After; a client retries.
		c.retries503++
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		select {
		case <-time.After(time.Duration(max(secs, 1)) * time.Second):
			return c.get(ctx, path, out)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", p, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	return json.Unmarshal(data, out)
}

// keepAlive gives the storm's clients one HTTP transport on which each
// keeps its connection alive from one request to the next, as a browser
// does toward its one origin; none has a connection open before the storm
// (they were all offline). With http.DefaultTransport, which keeps 2 idle
// connections per host for the whole process, nearly every GET of
// thousands of clients dialed anew and was closed after its answer: a
// connect, an accept and a close per request at bench, the gateway and the
// node that no browser makes (TestStormClientsKeepAlive).
func keepAlive(cs []*client) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0 // no limit over all hosts
	tr.MaxIdleConnsPerHost = max(len(cs), 2)
	for _, c := range cs {
		c.http = &http.Client{Timeout: c.http.Timeout, Transport: tr}
	}
	return tr
}
