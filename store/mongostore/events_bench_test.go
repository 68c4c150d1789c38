package mongostore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store"
)

// BenchmarkHistoryEvents measures a history page of 50 text messages as
// the events that target them grow: mongostore folds them into the page
// on every read (docs/architecture.md, "Message events").
//
//	go test -run xxx -bench HistoryEvents ./store/mongostore
func BenchmarkHistoryEvents(b *testing.B) {
	m := testserver.StartMongo(b)
	ctx := context.Background()
	for _, perMessage := range []int{0, 1, 10} {
		s := openOn(b, m, m.Database())
		alice, bob := "alice", "bob"
		conv := store.ConversationID(alice, bob)
		n := int64(0)
		at := func() time.Time { n++; return time.UnixMilli(1_800_000_000_000 + n) }
		var texts []int64
		for range 50 {
			t, _, err := s.AppendMessage(ctx, store.Message{From: alice, To: bob, Text: "hello", ClientMsgID: store.NewID(), CreatedAt: at()})
			if err != nil {
				b.Fatal(err)
			}
			texts = append(texts, t.Seq)
		}
		// The reactions come after the texts: a page of 50 reads back
		// past them, so the page holds events as well; ask for 50 texts' seqs.
		for _, seq := range texts {
			for i := range perMessage {
				if _, _, err := s.AppendMessage(ctx, store.Message{From: bob, To: alice, ClientMsgID: store.NewID(), CreatedAt: at(),
					Kind: store.KindReaction, Target: seq, Emoji: []string{"👍", "❤️"}[i%2]}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(fmt.Sprintf("events_per_message=%d", perMessage), func(b *testing.B) {
			for b.Loop() {
				msgs, _, err := s.MessagesAfter(ctx, conv, 0, 50)
				if err != nil || len(msgs) != 50 {
					b.Fatalf("MessagesAfter: %d, %v", len(msgs), err)
				}
			}
		})
	}
}
