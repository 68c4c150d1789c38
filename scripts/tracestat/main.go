// Command tracestat reads a Go execution trace (runtime/trace, or
// /debug/pprof/trace of `chatd serve --pprof-addr`) and says where the Ps'
// time went: running goroutines, nothing running while a goroutine sat in
// a system call and others were runnable (a P held by a blocking syscall),
// or idle; and the states of the SQLite writer goroutine
// (sqlitestore.(*Store).writeLoop). `go tool trace` shows these one at a
// time; this adds them up for docs/performance.md.
//
//	cd scripts/tracestat && go run . /tmp/trace.out
//
// It is its own module so that chatd does not depend on golang.org/x/exp,
// the Go team's trace parser.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/exp/trace"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tracestat TRACE")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tracestat:", err)
		os.Exit(1)
	}
}

// writerFunc marks the SQLite writer goroutine by a frame of its stack.
const writerFunc = "sqlitestore.(*Store).writeLoop"

type goroutine struct {
	state  trace.GoState
	since  trace.Time
	writer bool
}

func run(path string, out io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return err
	}
	gs := map[trace.GoID]*goroutine{}
	writer := map[trace.GoState]int64{}
	var waits []int64 // the writer's runnable periods, ns
	var first, prev trace.Time
	var running, inSyscall, runnable int
	var busy, heldRunnable, heldIdle, idle int64
	for {
		ev, err := r.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		t := ev.Time()
		if first == 0 {
			first = t
		}
		if prev != 0 {
			d := int64(t - prev)
			switch {
			case running > 0:
				busy += d
			case inSyscall > 0 && runnable > 0:
				heldRunnable += d
			case inSyscall > 0:
				heldIdle += d
			default:
				idle += d
			}
		}
		prev = t
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		id := st.Resource.Goroutine()
		from, to := st.Goroutine()
		g := gs[id]
		if g == nil {
			g = &goroutine{state: from, since: t}
			gs[id] = g
		}
		if !g.writer && ev.Goroutine() == id {
			for fr := range ev.Stack().Frames() {
				if strings.Contains(fr.Func, writerFunc) {
					g.writer = true
				}
			}
		}
		running += count(to, from, trace.GoRunning)
		inSyscall += count(to, from, trace.GoSyscall)
		runnable += count(to, from, trace.GoRunnable)
		if g.writer {
			d := int64(t - g.since)
			writer[from] += d
			if from == trace.GoRunnable {
				waits = append(waits, d)
			}
		}
		g.state, g.since = to, t
	}
	total := float64(prev - first)
	if total <= 0 {
		return errors.New("empty trace")
	}
	pct := func(v int64) float64 { return 100 * float64(v) / total }
	fmt.Fprintf(out, "trace %.3f s\n", total/1e9)
	fmt.Fprintf(out, "some goroutine running:                            %5.1f %%\n", pct(busy))
	fmt.Fprintf(out, "none running, one in a syscall, others runnable:   %5.1f %%\n", pct(heldRunnable))
	fmt.Fprintf(out, "none running, one in a syscall, none runnable:     %5.1f %%\n", pct(heldIdle))
	fmt.Fprintf(out, "idle:                                              %5.1f %%\n", pct(idle))
	for _, s := range []trace.GoState{trace.GoRunning, trace.GoSyscall, trace.GoRunnable, trace.GoWaiting} {
		fmt.Fprintf(out, "SQLite writer %-9s %5.1f %%\n", s.String()+":", pct(writer[s]))
	}
	if n := len(waits); n > 0 {
		slices.Sort(waits)
		q := func(p float64) float64 { return float64(waits[int(p*float64(n-1))]) / 1e3 }
		fmt.Fprintf(out, "SQLite writer waits for a P: n=%d p50=%.0f µs p99=%.0f µs max=%.0f µs\n", n, q(0.5), q(0.99), q(1))
	}
	return nil
}

// count is +1 when a goroutine enters state s, -1 when it leaves it.
func count(to, from, s trace.GoState) int {
	n := 0
	if to == s {
		n++
	}
	if from == s {
		n--
	}
	return n
}
