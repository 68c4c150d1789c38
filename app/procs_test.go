package app

import (
	"os"
	"runtime"
	"testing"
)

// The SQLite writer's fsync holds a P, so a node with the SQLite store runs
// runtime.extra_procs more Ps than the runtime's default, and starting
// another App does not add them up.
func TestSQLiteNodeRunsExtraProcs(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set in the environment: chatd leaves it alone")
	}
	defer runtime.SetDefaultGOMAXPROCS()
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)

	startAll(t, t.TempDir())
	if got := runtime.GOMAXPROCS(0); got != def+1 {
		t.Fatalf("GOMAXPROCS with the SQLite store = %d, want the default %d + 1", got, def)
	}
	startAll(t, t.TempDir())
	if got := runtime.GOMAXPROCS(0); got != def+1 {
		t.Fatalf("GOMAXPROCS after a second App = %d, want %d (not added up)", got, def+1)
	}
	startApp(t, testConfig(t.TempDir()), func(c *Config) { c.Runtime.ExtraProcs = 0 })
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("GOMAXPROCS with runtime.extra_procs 0 = %d, want the default %d", got, def)
	}
}

// A GOMAXPROCS environment variable is its owner's choice.
func TestGOMAXPROCSEnvironmentWins(t *testing.T) {
	defer runtime.SetDefaultGOMAXPROCS()
	runtime.GOMAXPROCS(3)
	t.Setenv("GOMAXPROCS", "3")
	if def, set := setProcs(1); def != 3 || set != 3 {
		t.Fatalf("setProcs(1) with GOMAXPROCS=3 set = (%d, %d), want (3, 3)", def, set)
	}
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS = %d, want 3 as the environment says", got)
	}
}

func TestExtraProcsValidated(t *testing.T) {
	for _, n := range []int{-1, 65} {
		cfg := testConfig(t.TempDir())
		cfg.Runtime.ExtraProcs = n
		if err := cfg.Validate(); err == nil {
			t.Errorf("runtime.extra_procs %d: Validate accepted it", n)
		}
	}
}
