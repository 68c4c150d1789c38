package chat

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// freezer stands in for a frozen store process: while frozen, appends
// neither answer nor fail (an async append is held; a sync one blocks until
// the thaw or its context's end) and Ping fails. Thawing lets the held
// appends through in order, as a resumed writer would.
type freezer struct {
	mu      sync.Mutex
	frozen  bool
	thawed  chan struct{}
	held    []func()
	maxHeld int // most appends held at once
	blocked int // synchronous appends waiting for the thaw
	ended   int // synchronous appends that gave up (their context ended) while frozen
}

func (f *freezer) timedOut() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ended
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen, f.thawed = true, make(chan struct{})
}

func (f *freezer) thaw() {
	f.mu.Lock()
	if !f.frozen {
		f.mu.Unlock()
		return
	}
	held := f.held
	f.frozen, f.held = false, nil
	close(f.thawed)
	f.mu.Unlock()
	for _, fn := range held {
		fn()
	}
}

// hold runs fn now, or keeps it for the thaw; it reports whether it held.
func (f *freezer) hold(fn func()) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.frozen {
		return false
	}
	f.held = append(f.held, fn)
	f.maxHeld = max(f.maxHeld, len(f.held))
	return true
}

func (f *freezer) stats() (frozen bool, held, maxHeld int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frozen, len(f.held), f.maxHeld
}

type frozenStore struct {
	store.Store
	f *freezer
}

func (s frozenStore) AppendMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	s.f.mu.Lock()
	frozen, thawed := s.f.frozen, s.f.thawed
	if frozen {
		s.f.blocked++
		s.f.maxHeld = max(s.f.maxHeld, s.f.blocked)
	}
	s.f.mu.Unlock()
	if frozen {
		select {
		case <-thawed:
		case <-ctx.Done():
			s.f.mu.Lock()
			s.f.blocked--
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				s.f.ended++ // a REST client giving up is a cancellation, not this
			}
			s.f.mu.Unlock()
			return store.Message{}, false, ctx.Err()
		}
		s.f.mu.Lock()
		s.f.blocked--
		s.f.mu.Unlock()
	}
	return s.Store.AppendMessage(ctx, m)
}

func (s frozenStore) Ping(ctx context.Context) error {
	if frozen, _, _ := s.f.stats(); frozen {
		return errors.New("frozen")
	}
	return s.Store.Ping(ctx)
}

type frozenAsyncStore struct {
	frozenStore
	async store.AsyncAppender
}

func (s frozenAsyncStore) AppendMessageAsync(ctx context.Context, m store.Message, done func(store.Message, bool, error)) {
	if !s.f.hold(func() { s.async.AppendMessageAsync(ctx, m, done) }) {
		s.async.AppendMessageAsync(ctx, m, done)
	}
}

// A frozen store is failed fast: once appends stall, sends are refused at
// once with unavailable (REST: 503 with Retry-After) instead of queueing
// behind the frozen ones, so what the store holds stays bounded; when the
// store is back, sends succeed again without a restart. Both send paths:
// the pipelined one (sqlitestore) and the synchronous one (mongostore).
func TestFrozenStoreIsFailedFast(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			f := &freezer{}
			mod := func(c *Config) { c.StoreStallTimeout = 200 * time.Millisecond }
			e := newTestEnvWith(t, mod, func(e *testEnv) {
				e.syncStore = sync
				e.wrapStore = func(st store.Store) store.Store {
					fs := frozenStore{Store: st, f: f}
					if a, ok := st.(store.AsyncAppender); ok {
						return frozenAsyncStore{frozenStore: fs, async: a}
					}
					return fs
				}
			})
			bob := e.user("bob")
			const senders = 6
			var users []*testUser
			var clients []*wsClient
			for i := range senders {
				u := e.user(fmt.Sprintf("user%d", i))
				users = append(users, u)
				c := e.dial(u)
				clients = append(clients, c)
				c.sendOK(bob, "before", "before")
			}

			f.freeze()
			t.Cleanup(f.thaw) // a failed test must not leave the node stuck at shutdown
			// Group A keeps sending, on its sockets and by REST, while the
			// store is frozen, until a send is refused. The refusal must come
			// while no frozen append has ended: one that only follows an
			// append's timeout is not failing fast.
			groupA, groupB := clients[:senders/2], clients[senders/2:]
			sent := 0
			deadline := time.Now().Add(30 * time.Second)
			for round := 0; ; round++ {
				if time.Now().After(deadline) {
					t.Fatal("no send refused while the store is frozen")
				}
				if sent < 8 {
					for _, c := range groupA {
						c.send(bob, "while frozen", fmt.Sprintf("frozen-%d", sent))
					}
					sent++
				}
				// REST, with a client deadline, so that a send stuck behind
				// the frozen store does not hold the loop.
				body := fmt.Sprintf(`{"to":%q,"text":"rest while frozen","client_msg_id":"rest-%d"}`, bob.id, round)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/api/messages", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+users[0].token)
				resp, err := http.DefaultClient.Do(req)
				cancel()
				if err == nil {
					_ = resp.Body.Close()
					if resp.StatusCode == http.StatusServiceUnavailable {
						if f.timedOut() > 0 {
							t.Fatal("a REST send was refused only after a frozen append timed out")
						}
						if resp.Header.Get("Retry-After") == "" {
							t.Error("REST refusal without Retry-After")
						}
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Group B's sockets have nothing in flight: each send is refused
			// at once (group A's refusals wait behind their own held sends,
			// since a socket's answers keep their order).
			for _, c := range groupB {
				for k := range 10 {
					cmid := fmt.Sprintf("refused-%d", k)
					c.send(bob, "while frozen", cmid)
					fr, _ := c.nextOf("error")
					if fr.obj("error").str("code") != "unavailable" {
						t.Fatalf("send while frozen: %v, want unavailable", fr)
					}
					if f.timedOut() > 0 {
						t.Fatal("a send was refused only after a frozen append timed out")
					}
				}
			}
			frozen, held, maxHeld := f.stats()
			if !frozen {
				t.Fatal("the store thawed by itself")
			}
			// Bounded: at most one send window per connection reached the
			// store (one send each on the synchronous path), plus the REST
			// sends admitted before the breaker opened.
			limit := senders/2*DefaultConfig().SendWindow + 1
			if sync {
				limit = senders/2 + 1
			}
			if maxHeld > limit {
				t.Errorf("the frozen store was handed %d appends at once (held now %d), want at most %d", maxHeld, held, limit)
			}

			f.thaw()
			// Sends succeed again, without a restart, at full rate.
			for i, c := range clients {
				ok := false
				for try := 0; !ok; try++ {
					if time.Now().After(deadline) {
						t.Fatalf("%s: sends still refused after the store came back", users[i].name)
					}
					cmid := fmt.Sprintf("after-%d", try)
					c.send(bob, "after", cmid)
					for _, fr := range c.until(func(fr frame) bool {
						return (fr.typ() == "ack" && fr.str("client_msg_id") == cmid) || (fr.typ() == "error" && fr.str("ref") == cmid)
					}) {
						if fr.typ() == "ack" && fr.str("client_msg_id") == cmid {
							ok = true
						}
					}
					if !ok {
						time.Sleep(20 * time.Millisecond)
					}
				}
				for k := range 20 {
					c.sendOK(bob, "full rate", fmt.Sprintf("full-%d", k))
				}
			}
		})
	}
}
