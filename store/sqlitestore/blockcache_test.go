package sqlitestore

import (
	"database/sql"
	"errors"
	"syscall"
	"testing"
	"time"
)

// A list read before a block changed is not kept, so the next question
// reads the database again.
func TestBlockCacheDropsRacedFill(t *testing.T) {
	var c blockCache
	_, gen, ok := c.lookup("alice")
	if ok {
		t.Fatal("empty cache answered")
	}
	c.forget("alice") // a Block committed while the list was being read
	c.fill("alice", nil, gen)
	if _, _, ok := c.lookup("alice"); ok {
		t.Fatal("a list read before a change was kept")
	}
	_, gen, _ = c.lookup("alice")
	c.fill("alice", []string{"bob"}, gen)
	if ids, _, ok := c.lookup("alice"); !ok || !hasID(ids, "bob") {
		t.Fatalf("lookup after fill = %v, %v", ids, ok)
	}
}

// IsBlocked follows Block and Unblock once it answers from memory.
func TestIsBlockedFollowsChanges(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := t.Context()
	for i, want := range []bool{false, true, false, true} {
		switch i {
		case 1, 3:
			if err := s.Block(ctx, "alice", "bob", time.UnixMilli(int64(i))); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := s.Unblock(ctx, "alice", "bob"); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 { // the second answer is the cached one
			if got, err := s.IsBlocked(ctx, "alice", "bob"); err != nil || got != want {
				t.Fatalf("step %d: IsBlocked = %v, %v, want %v", i, got, err, want)
			}
		}
	}
}

// BenchmarkIsBlocked compares IsBlocked (from memory after the first call)
// with the query every send used to run on the read pool. cpu_ns/op is the
// process's CPU time per call, steadier than ns/op on a busy machine.
//
//	go test -run xxx -bench IsBlocked ./store/sqlitestore
func BenchmarkIsBlocked(b *testing.B) {
	s, _ := openTemp(b, Options{})
	ctx := b.Context()
	if err := s.Block(ctx, "carol", "alice", time.UnixMilli(1)); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, f func() (bool, error)) {
		var before, after syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		b.ReportAllocs()
		for b.Loop() {
			if blocked, err := f(); err != nil || blocked {
				b.Fatal(blocked, err)
			}
		}
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu_ns/op")
	}
	b.Run("cached", func(b *testing.B) {
		run(b, func() (bool, error) { return s.IsBlocked(ctx, "carol", "bob") })
	})
	b.Run("query", func(b *testing.B) {
		run(b, func() (bool, error) {
			var one int
			err := s.rdb.QueryRowContext(ctx, `SELECT 1 FROM blocks WHERE user_id = ? AND blocked_id = ?`, "carol", "bob").Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return false, nil
			}
			return err == nil, err
		})
	})
}
