package mongostore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store"
)

// BenchmarkReads measures the reads behind GET /api/conversations and a
// history page, with the conversation read from among many, at two
// collection sizes: on a server whose indexes serve the queries the time
// per read does not grow with the other conversations' messages. Like
// BenchmarkAppendMessage it measures the server as much as this package
// (FerretDB's backend: CHATD_TEST_FERRETDB_BACKEND; docs/performance.md).
func BenchmarkReads(b *testing.B) {
	m := testserver.StartMongo(b)
	ctx := context.Background()
	for _, total := range []int{1_000, 10_000} {
		const perConversation = 100
		s := openOn(b, m, m.Database())
		alice := "alice"
		var i int64
		// alice has ten conversations; the rest belong to others.
		for c := range total / perConversation {
			from, to := fmt.Sprintf("u%d", c), fmt.Sprintf("v%d", c)
			if c < 10 {
				from = alice
			}
			for range perConversation {
				i++
				_, _, err := s.AppendMessage(ctx, store.Message{
					ID: store.NewID(), From: from, To: to, Text: "hello, this is a benchmark message",
					ClientMsgID: store.NewID(), CreatedAt: time.UnixMilli(1_800_000_000_000 + i),
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		conv := store.ConversationID(alice, "v0")
		b.Run(fmt.Sprintf("Conversations/docs=%d", total), func(b *testing.B) {
			for b.Loop() {
				views, err := s.Conversations(ctx, alice)
				if err != nil || len(views) != 10 {
					b.Fatalf("Conversations: %d views, %v", len(views), err)
				}
			}
		})
		b.Run(fmt.Sprintf("History/docs=%d", total), func(b *testing.B) {
			for b.Loop() {
				msgs, _, err := s.MessagesBefore(ctx, conv, 0, 50)
				if err != nil || len(msgs) != 50 {
					b.Fatalf("MessagesBefore: %d messages, %v", len(msgs), err)
				}
			}
		})
	}
}
