package gcfloor

import (
	"os"
	"runtime"
	"runtime/metrics"
	"testing"
)

var sink []byte

// gcCycles returns the GC cycles run while f allocates.
func gcCycles(f func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	f()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

// churn allocates 256 MiB of short-lived garbage, 4 KiB at a time.
func churn() {
	for range 256 << 8 {
		sink = make([]byte, 4<<10)
	}
}

func TestFloorSpacesCollections(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set: Set does nothing")
	}
	runtime.GC()
	Set(0)
	if p := Percent(); p != 100 {
		t.Fatalf("percent without a floor = %d, want 100", p)
	}
	without := gcCycles(churn)

	Set(64 << 20)
	runtime.GC() // the floor follows the live heap measured by a GC
	if p := Percent(); p <= 100 {
		t.Fatalf("percent with a 64 MiB floor over a small heap = %d, want > 100", p)
	}
	with := gcCycles(churn)
	t.Logf("GC cycles for 256 MiB of garbage: %d without a floor, %d with 64 MiB", without, with)
	// 256 MiB over a goal 64 MiB above the live heap: about 4 cycles (1
	// would mean a goal of 256 MiB: the runtime's heap minimum, which
	// grows with the percent, not capped).
	if with < 2 || with > 8 || with*4 > without {
		t.Fatalf("%d GC cycles with the floor against %d without", with, without)
	}

	Set(0)
	runtime.GC()
	if p := Percent(); p != 100 {
		t.Fatalf("percent after Set(0) = %d, want 100", p)
	}
}
