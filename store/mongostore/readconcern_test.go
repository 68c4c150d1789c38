package mongostore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/mongostore"
)

// readConcerns records the read concern level of every find and count the
// store sends, by collection.
type readConcerns struct {
	mu     sync.Mutex
	levels map[string][]string // "find messages" -> levels ("" when none)
}

func (r *readConcerns) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		switch e.CommandName {
		case "find", "count", "aggregate":
		default:
			return
		}
		coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
		level := ""
		if rc, ok := e.Command.Lookup("readConcern").DocumentOK(); ok {
			level, _ = rc.Lookup("level").StringValueOK()
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.levels[e.CommandName+" "+coll] = append(r.levels[e.CommandName+" "+coll], level)
	}}
}

func (r *readConcerns) get(key string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.levels[key]...)
}

func (r *readConcerns) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.levels)
}

// With write concern majority, every read that shows messages to a client
// (history, catch-up, conversation views, the message a retried send gets
// back) uses read concern majority, so that nothing shown can be rolled back
// by a failover and its seq reassigned. With write concern 1 the reads keep
// the server's default (local). FerretDB accepts the read concern but has no
// replica set to tell the difference, so the test checks the commands sent.
func TestMessageReadsUseMajorityReadConcern(t *testing.T) {
	m := testserver.StartMongo(t)
	for _, tc := range []struct {
		writeConcern, want string
	}{{"majority", "majority"}, {"1", ""}} {
		t.Run("w="+tc.writeConcern, func(t *testing.T) {
			rec := &readConcerns{levels: map[string][]string{}}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			opts := mongostore.WithCommandMonitor(mongostore.Options{WriteConcern: tc.writeConcern}, rec.monitor())
			s, err := mongostore.Open(ctx, m.URI(), m.Database(), opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer func() { _ = s.Close() }()

			a, b := store.NewID(), store.NewID()
			first, _, err := s.AppendMessage(ctx, store.Message{From: a, To: b, Text: "one", ClientMsgID: "c1"})
			if err != nil {
				t.Fatalf("AppendMessage: %v", err)
			}
			rec.reset()
			// A retry of the same send gets the stored message back.
			again, created, err := s.AppendMessage(ctx, store.Message{From: a, To: b, Text: "one", ClientMsgID: "c1"})
			if err != nil || created || again.Seq != first.Seq {
				t.Fatalf("retry: %+v created=%v err=%v", again, created, err)
			}
			if _, _, err := s.MessagesAfter(ctx, first.ConversationID, 0, 10); err != nil {
				t.Fatalf("MessagesAfter: %v", err)
			}
			if _, _, err := s.MessagesBefore(ctx, first.ConversationID, 0, 10); err != nil {
				t.Fatalf("MessagesBefore: %v", err)
			}
			if _, err := s.Conversations(ctx, b); err != nil {
				t.Fatalf("Conversations: %v", err)
			}
			if _, err := s.Conversation(ctx, b, a); err != nil {
				t.Fatalf("Conversation: %v", err)
			}
			finds := rec.get("find messages")
			if len(finds) == 0 {
				t.Fatal("no find on messages was seen")
			}
			for _, got := range finds {
				if got != tc.want {
					t.Errorf("find on messages with read concern %q, want %q (all: %q)", got, tc.want, finds)
					break
				}
			}
			// Unread counts are counts over messages (count or aggregate).
			counts := append(rec.get("count messages"), rec.get("aggregate messages")...)
			for _, got := range counts {
				if got != tc.want {
					t.Errorf("count on messages with read concern %q, want %q (all: %q)", got, tc.want, counts)
					break
				}
			}
		})
	}
}
