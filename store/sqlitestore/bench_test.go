package sqlitestore

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/chatd/chatd/store"
)

// BenchmarkAppendMessage measures stored messages per second through group
// commit, for synchronous FULL and NORMAL:
//   - many: 128 senders as fast as they can, over 1000 conversations;
//   - hot: 128 senders as fast as they can, all in one conversation;
//   - serial: one sender, so every message pays a whole commit;
//   - paced: 2000 msgs/s spread over 128 senders and 1000 conversations,
//     for the latency at a steady load (p50/p99 are the figures to read).
//
// Besides msgs/s it reports the latency percentiles of AppendMessage, the
// mean batch size, and the CPU time of the whole process per message
// (steadier than msgs/s on a shared machine).
//
//	go test -run xxx -bench AppendMessage -benchtime 20000x ./store/sqlitestore
func BenchmarkAppendMessage(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, c := range []struct {
			name          string
			conversations int
			senders       int
			rate          float64 // messages per second, 0 = as fast as possible
		}{
			{"many", 1000, 128, 0},
			{"hot", 1, 128, 0},
			{"serial", 1, 1, 0},
			{"paced", 1000, 128, 2000},
		} {
			b.Run(fmt.Sprintf("sync=%s/%s", sync, c.name), func(b *testing.B) {
				benchAppend(b, Options{Synchronous: sync}, c.conversations, c.senders, c.rate, 0)
			})
		}
	}
}

// BenchmarkAppendSyncCall compares the system call that commits a
// transaction (synchronous FULL): fsync(2), this driver's default, against
// fdatasync(2), which SQLite's own Linux builds use and modernc.org/sqlite
// offers process-wide (sqlite.Fdatasync). Run it with the data directory on
// a real disk (-count runs each variant that many times in a row):
//
//	TMPDIR=/var/tmp go test -run xxx -bench AppendSyncCall -benchtime 5000x -count 3 ./store/sqlitestore
func BenchmarkAppendSyncCall(b *testing.B) {
	for _, c := range []struct {
		name                   string
		conversations, senders int
		rate                   float64
	}{{"serial", 1, 1, 0}, {"paced2000", 1000, 128, 2000}} {
		for _, call := range []string{"fsync", "fdatasync"} {
			b.Run(c.name+"/"+call, func(b *testing.B) {
				prev, err := sqlite.Fdatasync(call == "fdatasync")
				if err != nil {
					b.Skip(err)
				}
				defer func() { _, _ = sqlite.Fdatasync(prev) }()
				benchAppend(b, Options{}, c.conversations, c.senders, c.rate, 0)
			})
		}
	}
}

// BenchmarkAppendLinger compares the writer's BatchWait linger (0 = off)
// at steady loads, synchronous FULL: commits/msg is fsyncs per message
// (one WAL fsync per commit). Compare the variants in the same minute,
// interleaved, on a busy machine:
//
//	go test -run xxx -bench AppendLinger -benchtime 6000x -count 3 ./store/sqlitestore
func BenchmarkAppendLinger(b *testing.B) {
	for _, c := range []struct {
		name string
		rate float64
	}{{"paced2000", 2000}, {"paced4000", 4000}, {"many", 0}} {
		for _, w := range []time.Duration{0, 250 * time.Microsecond, 500 * time.Microsecond} {
			b.Run(fmt.Sprintf("%s/wait=%s", c.name, w), func(b *testing.B) {
				benchAppend(b, Options{BatchWait: w}, 1000, 128, c.rate, 0)
			})
		}
	}
}

// BenchmarkAppendRetries measures what retried sends cost the writer: a
// batch's first run skips the lookup for retries (appendMessage), so a
// batch holding one runs twice, the second time with savepoints. A share
// of the sends (0, 1 %, 5 %, 20 %) repeats the sender's previous message
// with its client_msg_id; cpu-µs/msg is the figure to compare.
//
//	go test -run xxx -bench AppendRetries -benchtime 20000x ./store/sqlitestore
func BenchmarkAppendRetries(b *testing.B) {
	for _, share := range []float64{0, 0.01, 0.05, 0.2} {
		b.Run(fmt.Sprintf("retries=%g%%", share*100), func(b *testing.B) {
			benchAppend(b, Options{}, 1000, 128, 0, share)
		})
	}
}

// benchAppend: retries is the share of sends that repeat the sender's
// previous message (same client_msg_id).
func benchAppend(b *testing.B, opts Options, conversations, senders int, rate, retries float64) {
	s, path := openTemp(b, opts)
	users := make([]store.User, 2*conversations)
	err := s.write(b.Context(), func(bt *batch) error {
		for i := range users {
			users[i] = store.User{ID: store.NewID(), Username: fmt.Sprintf("user%05d", i)}
			if _, err := bt.exec(wInsertUser, users[i].ID, users[i].Username, "", "", "h", 1, "", ""); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("x", 100)
	var failed atomic.Pointer[error]
	lat := make([]time.Duration, b.N) // latency of each append, by ticket
	var tickets atomic.Int64
	batches, writes := s.batches.Load(), s.writes.Load()
	truncs0, _, stall0 := s.WALStats()
	walMax, stopWAL := sampleWAL(path + "-wal")
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()

	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			var prev store.Message // this sender's last send
			for {
				i := tickets.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if rate > 0 { // open loop: message i is due at i/rate
					if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
						time.Sleep(d)
					}
				}
				c := 0
				if conversations > 1 {
					c = r.IntN(conversations)
				}
				from, to := users[2*c], users[2*c+1]
				if r.IntN(2) == 1 {
					from, to = to, from
				}
				t := time.Now()
				m := store.Message{ID: store.NewID(), From: from.ID, To: to.ID, Text: text, ClientMsgID: store.NewID(), CreatedAt: t}
				if prev.ClientMsgID != "" && r.Float64() < retries {
					m = prev
				}
				prev = m
				_, _, err := s.AppendMessage(b.Context(), m)
				lat[i] = time.Since(t)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	stopWAL()
	truncs, _, stall := s.WALStats()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	if n := s.batches.Load() - batches; n > 0 {
		b.ReportMetric(float64(s.writes.Load()-writes)/float64(n), "msgs/batch")
		b.ReportMetric(float64(n)/float64(b.N), "commits/msg")
	}
	// The writer's own log truncations (wal.go): 0 while the background
	// checkpointer keeps the log restarting; and the largest log seen.
	b.ReportMetric(float64(truncs-truncs0), "wal-truncs")
	b.ReportMetric(float64((stall-stall0).Microseconds())/1000, "wal-stall-ms")
	b.ReportMetric(float64(*walMax)/(1<<20), "wal-max-MiB")
}

// sampleWAL records the largest size of the file at path, checked every
// 5 ms, until stop is called.
func sampleWAL(path string) (largest *int64, stop func()) {
	largest = new(int64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	check := func() {
		if fi, err := os.Stat(path); err == nil && fi.Size() > *largest {
			*largest = fi.Size()
		}
	}
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				check()
				return
			case <-t.C:
				check()
			}
		}
	})
	return largest, func() { close(done); wg.Wait() }
}

// BenchmarkWALTruncate measures the stall of the writer's own log
// truncation (wal.go) in the worst case: the background checkpointer is
// held off (one checkpoint at the start, then an hour's pause), so each
// truncation copies a whole WALLimit of log into the database file and
// syncs it, synchronous FULL, on the test's temporary directory. One
// iteration is one truncation; stall-ms is the time the writer stood still
// for it.
//
//	go test -run xxx -bench WALTruncate -benchtime 5x ./store/sqlitestore
func BenchmarkWALTruncate(b *testing.B) {
	for _, limit := range []int64{4 << 20, 16 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("limit=%dMiB", limit>>20), func(b *testing.B) {
			s, _ := openTemp(b, Options{WALLimit: limit, CheckpointInterval: time.Hour})
			a := store.User{ID: store.NewID(), Username: "a"}
			c := store.User{ID: store.NewID(), Username: "c"}
			err := s.write(b.Context(), func(bt *batch) error {
				for _, u := range []store.User{a, c} {
					if _, err := bt.exec(wInsertUser, u.ID, u.Username, "", "", "h", 1, "", ""); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			text := strings.Repeat("x", 1000)
			var n atomic.Int64
			_, _, stall0 := s.WALStats()
			b.ResetTimer()
			for range b.N {
				want, _, _ := s.WALStats()
				want++
				var wg sync.WaitGroup
				for range 32 {
					wg.Go(func() {
						for {
							if t, _, _ := s.WALStats(); t >= want {
								return
							}
							if _, _, err := s.AppendMessage(b.Context(), store.Message{
								ID: store.NewID(), From: a.ID, To: c.ID, Text: text, ClientMsgID: fmt.Sprint(n.Add(1)), CreatedAt: time.Now(),
							}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			b.StopTimer()
			truncs, failed, stall := s.WALStats()
			b.ReportMetric(float64((stall-stall0).Microseconds())/1000/float64(b.N), "stall-ms")
			b.ReportMetric(float64(failed), "failed")
			b.ReportMetric(float64(truncs), "truncs")
		})
	}
}

// cpuTime is the user+system CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReads measures the read paths a client's (re)connect takes: the
// conversation list of a user with 50 conversations, and a page of 50
// messages.
func BenchmarkReads(b *testing.B) {
	s, _ := openTemp(b, Options{})
	ctx := b.Context()
	var users []store.User
	err := s.write(ctx, func(bt *batch) error {
		for i := range 51 {
			u := store.User{ID: store.NewID(), Username: fmt.Sprintf("user%02d", i)}
			if _, err := bt.exec(wInsertUser, u.ID, u.Username, "", "", "h", 1, "", ""); err != nil {
				return err
			}
			users = append(users, u)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	me := users[0]
	var wg sync.WaitGroup
	for i, peer := range users[1:] {
		wg.Go(func() {
			for k := range 40 {
				from, to := me, peer
				if k%2 == 1 {
					from, to = peer, me
				}
				if _, _, err := s.AppendMessage(ctx, store.Message{
					ID: store.NewID(), From: from.ID, To: to.ID, Text: strings.Repeat("y", 80),
					ClientMsgID: fmt.Sprintf("%d-%d", i, k), CreatedAt: time.Now(),
				}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	convID := store.ConversationID(me.ID, users[1].ID)
	b.Run("Conversations50", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if v, err := s.Conversations(ctx, me.ID); err != nil || len(v) != 50 {
					b.Errorf("Conversations = %d, %v", len(v), err)
					return
				}
			}
		})
	})
	b.Run("MessagesBefore50", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if m, _, err := s.MessagesBefore(ctx, convID, 0, 50); err != nil || len(m) != 40 {
					b.Errorf("MessagesBefore = %d, %v", len(m), err)
					return
				}
			}
		})
	})
	b.Run("Conversation", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Conversation(ctx, me.ID, users[1].ID); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkReconnectReads measures the store reads one client of bench's
// reconnect storm (issue 13 point 6) costs the server, in the order chat
// makes them: on the WebSocket connect its presence audience (ContactIDs,
// then BlockedEither when it has contacts), then GET /api/conversations
// (Conversations, UsersByIDs of the peers, ContactIDs and BlockedEither for
// their presence, Mutes), then one page of GET …/messages?after=0&limit=200.
// 1,000 users each missed 10 messages from one of 10 senders, who each
// wrote to 100 of them (the storm's shape); an iteration is the next user.
// Besides ns/op it reports the CPU time of the whole process per client.
//
//	go test -run xxx -bench ReconnectReads -benchtime 2000x ./store/sqlitestore
func BenchmarkReconnectReads(b *testing.B) {
	s, _ := openTemp(b, Options{Synchronous: "NORMAL"})
	ctx := b.Context()
	const recipients, fanout, missed = 1000, 100, 10
	newUsers := func(n int, prefix string) []store.User {
		us := make([]store.User, n)
		err := s.write(ctx, func(bt *batch) error {
			for i := range us {
				us[i] = store.User{ID: store.NewID(), Username: fmt.Sprintf("%s%04d", prefix, i)}
				if _, err := bt.exec(wInsertUser, us[i].ID, us[i].Username, "", "", "h", 1, "", ""); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return us
	}
	to := newUsers(recipients, "r")
	from := newUsers(recipients/fanout, "s")
	var wg sync.WaitGroup
	for si, sender := range from {
		wg.Go(func() {
			for k := range missed {
				for _, r := range to[si*fanout : (si+1)*fanout] {
					if _, _, err := s.AppendMessage(ctx, store.Message{
						ID: store.NewID(), From: sender.ID, To: r.ID, Text: "missed " + fmt.Sprint(k+1),
						ClientMsgID: fmt.Sprintf("storm-%s-%d", r.ID, k), CreatedAt: time.Now(),
					}); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	client := func(u store.User) error {
		if contacts, err := s.ContactIDs(ctx, u.ID); err != nil {
			return err
		} else if len(contacts) > 0 {
			if _, err := s.BlockedEither(ctx, u.ID); err != nil {
				return err
			}
		}
		convs, err := s.Conversations(ctx, u.ID)
		if err != nil || len(convs) != 1 {
			return fmt.Errorf("conversations: %d, %v", len(convs), err)
		}
		if _, err := s.UsersByIDs(ctx, []string{convs[0].PeerID}); err != nil {
			return err
		}
		if _, err := s.ContactIDs(ctx, u.ID); err != nil {
			return err
		}
		if _, err := s.BlockedEither(ctx, u.ID); err != nil {
			return err
		}
		if _, err := s.Mutes(ctx, u.ID); err != nil {
			return err
		}
		msgs, _, err := s.MessagesAfter(ctx, convs[0].ID, 0, 200)
		if err != nil || len(msgs) != missed {
			return fmt.Errorf("messages after: %d, %v", len(msgs), err)
		}
		return nil
	}
	var next atomic.Int64
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := client(to[int(next.Add(1))%recipients]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/client")
}
