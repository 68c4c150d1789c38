package mongostore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store"
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
