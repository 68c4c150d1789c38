package auth

import (
	"strconv"
	"testing"
	"time"
)

func TestFailLimiterSlidingWindow(t *testing.T) {
	l := newFailLimiter(3, time.Minute, 100)
	t0 := time.Unix(1_000_000, 0)
	for i := range 3 {
		if ok, _ := l.begin("a", t0.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	ok, wait := l.begin("a", t0.Add(10*time.Second))
	if ok || wait != 50*time.Second {
		t.Fatalf("4th attempt: ok=%v wait=%v, want refused for 50s", ok, wait)
	}
	if ok, _ := l.begin("b", t0); !ok {
		t.Fatal("another account is limited too")
	}
	// Once the oldest failure leaves the window, one more attempt is allowed.
	if ok, _ := l.begin("a", t0.Add(time.Minute+500*time.Millisecond)); !ok {
		t.Fatal("attempt after the window refused")
	}
	if ok, _ := l.begin("a", t0.Add(time.Minute+500*time.Millisecond)); ok {
		t.Fatal("limit not enforced within the new window")
	}
	l.succeed("a")
	if ok, _ := l.begin("a", t0.Add(time.Minute+500*time.Millisecond)); !ok {
		t.Fatal("success did not reset")
	}
	l.undo("a")
	if _, ok := l.entries["a"]; ok {
		t.Fatal("undo of the only attempt left an entry")
	}
}

func TestFailLimiterBounded(t *testing.T) {
	const maxKeys = 1000
	l := newFailLimiter(10, time.Minute, maxKeys)
	now := time.Unix(1_000_000, 0)
	for i := range 10 * maxKeys {
		l.begin("user"+strconv.Itoa(i), now)
		if len(l.entries) > maxKeys {
			t.Fatalf("%d entries, bound is %d", len(l.entries), maxKeys)
		}
	}
	// Expired entries go first: after the window, a full map empties.
	l.begin("late", now.Add(2*time.Minute))
	for range maxKeys {
		l.begin("late", now.Add(2*time.Minute))
	}
	if len(l.entries) != 1 {
		t.Fatalf("%d entries after the window, want 1", len(l.entries))
	}
}
