package sqlitestore

import (
	"database/sql"
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// A list read before a block changed is not kept, so the next question
// reads the database again.
func TestUserCacheDropsRacedFill(t *testing.T) {
	var c userCache[[]string]
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

// PushSubscriptions follows every change of subscriptions once it answers
// from memory: adds, an endpoint moving to another user, deletes by user
// and endpoint, removals by endpoint alone, and account deletion.
func TestPushSubscriptionsFollowChanges(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := t.Context()
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, store.User{ID: u, Username: u, DisplayName: u, PasswordHash: "x", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	sub := func(user, endpoint string) store.PushSubscription {
		return store.PushSubscription{UserID: user, Endpoint: endpoint, P256dh: "k", Auth: "a", CreatedAt: time.UnixMilli(1)}
	}
	endpoints := func(user string) []string {
		t.Helper()
		var first []string
		for i := range 2 { // the second answer is the cached one
			subs, err := s.PushSubscriptions(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			if subs == nil {
				t.Fatal("PushSubscriptions returned nil, want an empty list")
			}
			var eps []string
			for _, sb := range subs {
				eps = append(eps, sb.Endpoint)
			}
			if i == 1 && !slices.Equal(eps, first) {
				t.Fatalf("%s: cached answer %v differs from the first %v", user, eps, first)
			}
			first = eps
			if len(subs) > 0 {
				subs[0].Endpoint = "changed by the caller" // must not reach the cache
			}
		}
		return first
	}
	check := func(step, user string, want ...string) {
		t.Helper()
		if got := endpoints(user); !slices.Equal(got, want) {
			t.Fatalf("%s: %s's endpoints = %v, want %v", step, user, got, want)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check("start", "alice")
	must(s.AddPushSubscription(ctx, sub("alice", "https://push.example/1")))
	check("add", "alice", "https://push.example/1")
	check("add", "bob")
	must(s.AddPushSubscription(ctx, sub("bob", "https://push.example/1")))
	check("endpoint moved", "alice")
	check("endpoint moved", "bob", "https://push.example/1")
	must(s.DeletePushSubscription(ctx, "bob", "https://push.example/1"))
	check("delete", "bob")
	must(s.AddPushSubscription(ctx, sub("alice", "https://push.example/2")))
	check("add again", "alice", "https://push.example/2")
	must(s.RemovePushSubscription(ctx, "https://push.example/2"))
	check("remove by endpoint", "alice")
	must(s.AddPushSubscription(ctx, sub("alice", "https://push.example/3")))
	check("add third", "alice", "https://push.example/3")
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	check("account deleted", "alice")
}
