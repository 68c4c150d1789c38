package mempubsub_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/pubsub/mempubsub"
)

// TestDisconnectUnknown: a node that holds no entry does not report an
// offline transition (it was reported already, or never happened).
func TestDisconnectUnknown(t *testing.T) {
	b := mempubsub.New()
	ctx := context.Background()
	if last, err := b.Disconnect(ctx, "u", "n1", testTime); err != nil || last {
		t.Fatalf("Disconnect of unknown user = %v, %v; want false", last, err)
	}
	if _, err := b.Connect(ctx, "u", "n1"); err != nil {
		t.Fatal(err)
	}
	if last, err := b.Disconnect(ctx, "u", "n2", testTime); err != nil || last {
		t.Fatalf("Disconnect of a node without entry = %v, %v; want false", last, err)
	}
	if st, _ := b.Lookup(ctx, []string{"u"}); !st["u"].Online {
		t.Fatalf("u: %+v, want online", st["u"])
	}
}

// BenchmarkPublish: one message to a topic with two subscribers, among
// 10k topics (one per user), from parallel publishers.
func BenchmarkPublish(b *testing.B) {
	br := mempubsub.New()
	defer br.Close()
	ctx := context.Background()
	var n atomic.Int64
	for i := range 10000 {
		for range 2 {
			if _, err := br.Subscribe(ctx, pubsub.UserTopic(strconv.Itoa(i)), func([]byte) { n.Add(1) }); err != nil {
				b.Fatal(err)
			}
		}
	}
	payload := []byte(`{"type":"message","message":{"id":"x","text":"hello"}}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if err := br.Publish(ctx, pubsub.UserTopic(strconv.Itoa(i%10000)), payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if n.Load() == 0 {
		b.Fatal("nothing delivered")
	}
}

// BenchmarkSubscribeUnsubscribe: a connection coming and going.
func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	br := mempubsub.New()
	defer br.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s, err := br.Subscribe(ctx, pubsub.UserTopic(strconv.Itoa(i%1000)), func([]byte) {})
		if err != nil {
			b.Fatal(err)
		}
		s.Unsubscribe()
	}
}
