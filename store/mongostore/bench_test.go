package mongostore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/mongostore"
)

// BenchmarkAppendMessage measures stored messages per second: one sender
// after the other in one conversation, and parallel senders each in its own
// conversation. Against FerretDB (the default) it measures FerretDB's SQLite
// backend as much as this package; set CHATD_TEST_MONGO_URI for MongoDB.
func BenchmarkAppendMessage(b *testing.B) {
	m := testserver.StartMongo(b)
	ctx := context.Background()
	msg := func(from, to string, i int64) store.Message {
		return store.Message{
			ID: store.NewID(), From: from, To: to, Text: "hello, this is a benchmark message",
			ClientMsgID: store.NewID(), CreatedAt: time.UnixMilli(1_800_000_000_000 + i),
		}
	}

	b.Run("OneConversation", func(b *testing.B) {
		s := openOn(b, m, m.Database())
		alice, bob := store.NewID(), store.NewID()
		var i int64
		for b.Loop() {
			i++
			if _, _, err := s.AppendMessage(ctx, msg(alice, bob, i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("ParallelConversations", func(b *testing.B) {
		s := openOn(b, m, m.Database())
		var worker, n atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			w := worker.Add(1)
			alice, bob := fmt.Sprintf("a%d", w), fmt.Sprintf("b%d", w)
			for pb.Next() {
				if _, _, err := s.AppendMessage(ctx, msg(alice, bob, n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("ContendedConversation", func(b *testing.B) {
		// Every goroutine appends to the same conversation: seq collisions.
		s := openOn(b, m, m.Database())
		alice, bob := store.NewID(), store.NewID()
		var n atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := s.AppendMessage(ctx, msg(alice, bob, n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkAppendAsync queues messages of 100 conversations (the 100 pairs
// of chatd bench) through AppendMessageAsync, at most window in flight per
// conversation as chat's SendWindow allows, and reports the stored
// messages per second and the commands per message (round trips) next to
// the same load through AppendMessage (one goroutine per conversation).
func BenchmarkAppendAsync(b *testing.B) {
	m := testserver.StartMongo(b)
	const pairs = 100
	for _, mode := range []string{"sync", "async"} {
		b.Run(mode, func(b *testing.B) {
			cmds := &commandCounter{n: map[string]int{}}
			ctx := context.Background()
			s, err := mongostore.Open(ctx, m.URI(), m.Database(), mongostore.WithCommandMonitor(mongostore.Options{}, cmds.monitor()))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			from, to := make([]string, pairs), make([]string, pairs)
			for p := range pairs {
				from[p], to[p] = store.NewID(), store.NewID()
				if _, _, err := s.AppendMessage(ctx, store.Message{From: from[p], To: to[p], Text: "first", ClientMsgID: store.NewID()}); err != nil {
					b.Fatal(err)
				}
			}
			cmds.take()
			var n atomic.Int64
			msg := func(p int) store.Message {
				return store.Message{
					ID: store.NewID(), From: from[p], To: to[p], Text: "hello, this is a benchmark message",
					ClientMsgID: store.NewID(), CreatedAt: time.UnixMilli(1_800_000_000_000 + n.Add(1)),
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			var failed atomic.Int64
			if mode == "sync" {
				for p := range pairs {
					wg.Go(func() {
						for i := p; i < b.N; i += pairs {
							if _, _, err := s.AppendMessage(ctx, msg(p)); err != nil {
								failed.Add(1)
							}
						}
					})
				}
			} else {
				const window = 4 // in flight per conversation
				slots := make(chan struct{}, pairs*window)
				for i := range b.N {
					slots <- struct{}{}
					wg.Add(1)
					s.AppendMessageAsync(ctx, msg(i%pairs), func(_ store.Message, _ bool, err error) {
						if err != nil {
							failed.Add(1)
						}
						<-slots
						wg.Done()
					})
				}
			}
			wg.Wait()
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d appends failed", f)
			}
			total := 0
			for _, c := range cmds.take() {
				total += c
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(total)/float64(b.N), "cmds/msg")
		})
	}
}
