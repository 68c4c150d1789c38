// Package gcfloor keeps the garbage collector's heap goal at least a floor
// above the live heap. With GOGC's default the goal is twice the live heap:
// a chat node lives on a few MB, so at a few thousand messages a second it
// collected every ~0.4 s, and on one core each mark phase (12–22 ms of wall
// time, docs/performance.md) slows everything that runs meanwhile. With a
// floor F the goal is max(GOGC's, live + F): the same live heap, a GC every
// F bytes allocated, and GOGC's rule again once the live heap is large.
// GOMEMLIMIT still caps the goal.
//
// After each GC (a finalizer on a sentinel object) it sets the GC percent
// that gives that goal for the live heap just measured.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

var (
	floor   atomic.Int64
	once    sync.Once
	base    = 100 // GOGC's default percent (Set does nothing when GOGC is set)
	current atomic.Int64
)

// maxPercent bounds the percent set for a tiny live heap.
const maxPercent = 100_000

// heapMinimum is the runtime's goal at GOGC=100 for a tiny heap
// (defaultHeapMinimum in runtime/mgcpacer.go); it scales with the percent.
const heapMinimum = 4 << 20

// Set keeps the heap goal at least bytes above the live heap; 0 goes back
// to GOGC's goal. It does nothing when the GOGC environment variable is
// set (its owner chose) or is "off".
func Set(bytes int64) {
	if env := os.Getenv("GOGC"); env != "" {
		return
	}
	floor.Store(max(bytes, 0))
	once.Do(func() {
		current.Store(int64(base))
		arm()
	})
	adjust()
}

// Percent is the GC percent in effect (for tests and logs).
func Percent() int { return int(current.Load()) }

// sentinel is allocated unreachable; its finalizer runs after the next GC.
type sentinel struct {
	_ *int
	_ [2]int64 // not a tiny allocation, whose finalizer could wait for its neighbours
}

func arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
		adjust()
		arm()
	})
}

var liveSample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}

var adjustMu sync.Mutex

func adjust() {
	adjustMu.Lock()
	defer adjustMu.Unlock()
	metrics.Read(liveSample)
	var live int64
	if liveSample[0].Value.Kind() == metrics.KindUint64 {
		live = int64(liveSample[0].Value.Uint64())
	}
	pct := int64(base)
	if f := floor.Load(); f > 0 {
		live = max(live, 1<<20) // before the first GC the live heap is unknown
		// The runtime's goal is max(live × (1 + pct/100), heapMinimum) with
		// heapMinimum = 4 MiB × pct/100, so below 4 MiB of live heap the
		// percent is capped to keep heapMinimum at live + F.
		want := min(f*100/live, (live+f)*100/heapMinimum)
		pct = max(pct, min(want, maxPercent))
	}
	if pct != current.Load() {
		current.Store(pct)
		debug.SetGCPercent(int(pct))
	}
}
