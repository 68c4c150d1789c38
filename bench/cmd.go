package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"
)

// runCommand is `chatd bench`: a single run, a curve, or --idle, against
// --url or a server bench starts itself.
func runCommand(ctx context.Context, out io.Writer, o Options) error {
	if o.ClientCPUs != "" {
		if err := PinSelf(o.ClientCPUs); err != nil {
			return err
		}
	}
	pids := o.ServerPIDs
	if o.Serve || o.ServerCPUs != "" {
		args := o.ServerArgs
		if (o.Idle > 0 || o.StormProfile != "") && o.PprofURL == "" {
			// --idle runs the server's GC before it measures (pprof's
			// heap?gc=1); --storm-profile profiles the server.
			port, err := freePort()
			if err != nil {
				return err
			}
			addr := "127.0.0.1:" + strconv.Itoa(port)
			args = append(args[:len(args):len(args)], "--pprof-addr="+addr)
			o.PprofURL = "http://" + addr
		}
		if o.Storm > 0 {
			// Thousands of sign-ups: a cheap password hash for this
			// throwaway server (the storm itself reuses tokens).
			for k, v := range map[string]string{"CHATD_AUTH_ARGON2_MEMORY_KIB": "1024", "CHATD_AUTH_ARGON2_TIME": "1"} {
				if os.Getenv(k) == "" {
					_ = os.Setenv(k, v)
				}
			}
		}
		srv, err := StartServer(ctx, o.ServerCPUs, o.ServerLog, args...)
		if err != nil {
			return err
		}
		defer srv.Stop()
		o.URL, o.MetricsURL, pids = srv.URL, srv.MetricsURL, []int{srv.PID}
		fmt.Fprintf(out, "server: %s pid %d cpus %q\n", srv.URL, srv.PID, o.ServerCPUs)
	}
	if o.Storm > 0 {
		o.ServerPIDs = pids
		r, err := Storm(ctx, o)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, r)
		return writeReport(o.JSON, r.report(o))
	}
	if o.Idle > 0 {
		r, err := Idle(ctx, o)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, r)
		return writeReport(o.JSON, r.report(o))
	}
	if o.Pairs <= 0 {
		return errors.New("bench: --pairs must be > 0")
	}
	rep := Report{Started: time.Now().UTC(), URL: o.URL, ServerCPUs: o.ServerCPUs, ClientCPUs: o.ClientCPUs, ServerPIDs: pids,
		GoMaxProcs: runtime.GOMAXPROCS(0), TextSize: o.TextSize}
	rates := []float64{o.Rate}
	if o.Curve != "" {
		start, end, step, err := parseCurve(o.Curve)
		if err != nil {
			return err
		}
		rates = rates[:0]
		for r := start; r <= end; r += step {
			rates = append(rates, r)
		}
		rep.P99MaxMS = ms(o.P99Max)
	}
	if rates[0] == 0 {
		rep.Window = o.Window
	}
	cs, err := users(ctx, o, 2*o.Pairs)
	if err != nil {
		return fmt.Errorf("bench: sign up: %w", err)
	}
	if o.Warmup > 0 {
		// A run's first seconds are not its steady state: each
		// conversation's first send reads what later ones find cached (a
		// networked store's seq and contact reads), and every one of them
		// comes at once. The independent client that measures chatd
		// counts only after a warm-up too.
		w := o
		w.Rate, w.Duration = rates[0], o.Warmup
		r, err := run(ctx, w, cs)
		if err != nil {
			return err
		}
		s := newStep(w, r, nil, nil)
		rep.Warmup = &s
		fmt.Fprintf(out, "warm-up (not counted): %s at %s msg/s, %d sent, %d delivered, delivery p99 %.2f ms\n",
			o.Warmup, strconv.FormatFloat(w.Rate, 'f', -1, 64), s.Sent, s.Delivered, s.Delivery.P99)
	}
	if o.Curve != "" {
		fmt.Fprintln(out, tableHeader)
	}
	for _, rate := range rates {
		o.Rate = rate
		var before, after *procStats
		if len(pids) > 0 {
			if st, err := readProcs(pids); err == nil {
				before = &st
			}
		}
		commits0, writes0, commitsErr := writerStats(ctx, o.MetricsURL)
		r, err := run(ctx, o, cs)
		if err != nil {
			return err
		}
		if before != nil {
			// run's elapsed time is the sending window; the CPU read here
			// also covers the second it waits for the last acks, so
			// server_cpu_cores slightly overstates.
			if st, err := readProcs(pids); err == nil {
				after = &st
			}
		}
		s := newStep(o, r, before, after)
		if commits1, writes1, err := writerStats(ctx, o.MetricsURL); err == nil && commitsErr == nil {
			s.StoreCommits, s.StoreWrites = int64(commits1-commits0), int64(writes1-writes0)
		}
		rep.Steps = append(rep.Steps, s)
		if o.Curve == "" {
			fmt.Fprintln(out, r)
			if after != nil {
				fmt.Fprintf(out, "server: %.2f CPU s (%.0f %% of a core), RSS %.1f MB (peak %.1f MB)\n",
					s.ServerCPU, 100*s.ServerCores, float64(s.ServerRSS)/1e6, float64(s.ServerMaxRSS)/1e6)
			}
			if s.StoreCommits > 0 {
				fmt.Fprintf(out, "store: %d commits carrying %d writes (%.1f a commit)\n", s.StoreCommits, s.StoreWrites, float64(s.StoreWrites)/float64(s.StoreCommits))
			}
			continue
		}
		fmt.Fprintln(out, s.row())
		// A step that left more than 1 % undelivered after the drain
		// second is past the bound too: those latencies are not counted.
		if s.Delivery.P99 > rep.P99MaxMS || float64(s.Delivered) < 0.99*float64(s.Sent) {
			break
		}
		rep.MaxRateWithinBound = rate
	}
	if o.Curve != "" {
		fmt.Fprintf(out, "\nhighest rate with delivery p99 <= %s: %.0f msg/s\n", o.P99Max, rep.MaxRateWithinBound)
	}
	return writeReport(o.JSON, rep)
}

// writeReport writes v to path (--json), when set.
func writeReport(path string, v any) error {
	if path == "" {
		return nil
	}
	if err := writeJSON(path, v); err != nil {
		return fmt.Errorf("bench: --json: %w", err)
	}
	return nil
}

// writerStats reads the SQLite writer's group commits and the write
// requests they carried from the server's /metrics; an error when the
// server has no such store (mongostore, a gateway).
func writerStats(ctx context.Context, metricsURL string) (commits, writes float64, err error) {
	all, err := scrapeMetrics(ctx, metricsURL)
	if err != nil {
		return 0, 0, err
	}
	commits, ok1 := all["chatd_store_write_batches_total"]
	writes, ok2 := all["chatd_store_write_requests_total"]
	if !ok1 || !ok2 {
		return 0, 0, errors.New("bench: no SQLite writer metrics")
	}
	return commits, writes, nil
}
