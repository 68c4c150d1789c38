package app

import (
	"os"
	"runtime"
)

// setProcs gives the Go runtime extra Ps beyond its default (the CPUs of
// the affinity mask, or the cgroup CPU limit) and returns the default and
// the value set. It does nothing when the GOMAXPROCS environment variable
// is set: its owner chose.
//
// Why: the SQLite writer spends up to half of its time in fsync (one per
// group commit, synchronous=FULL). A goroutine in a blocking system call
// keeps its P until sysmon takes it back, and sysmon, which backs off to
// 10 ms sleeps when it has had nothing to take, often does not notice a
// sub-millisecond fsync at all. On one core (GOMAXPROCS=1) the node then
// ran nothing for 54 % of a trace at 3,000 msg/s while runnable goroutines
// waited (docs/performance.md, "The P held in fsync"). With one more P the
// rest of the node runs while the writer's thread sits in fsync, and the
// kernel shares the core between the two threads.
//
// It starts from the runtime's default every time, so that calling it again
// (several Apps in one test process) does not add up.
func setProcs(extra int) (def, set int) {
	if os.Getenv("GOMAXPROCS") != "" {
		n := runtime.GOMAXPROCS(0)
		return n, n
	}
	runtime.SetDefaultGOMAXPROCS()
	def = runtime.GOMAXPROCS(0)
	if extra <= 0 {
		return def, def
	}
	runtime.GOMAXPROCS(def + extra)
	return def, def + extra
}
