package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/store"
)

// messagesTests: the Messages aggregate, appends (seq, idempotence,
// concurrency, refusals) and paging.
var messagesTests = []contractTest{
	{"Append", testAppend},
	{"Idempotent", testAppendIdempotent},
	{"SameClientIDOtherSender", testAppendClientIDOtherSender},
	{"ConcurrentAppend", testAppendConcurrent},
	{"ConcurrentDuplicates", testAppendConcurrentDuplicates},
	{"TextExact", testTextExact},
	{"CreatedAtPrecision", testCreatedAtPrecision},
	{"PagingBefore", testPagingBefore},
	{"PagingAfter", testPagingAfter},
	{"EmptyConversation", testEmptyConversation},
	{"Invalid", testAppendInvalid},
	{"EraseFrom", testEraseMessagesFrom},
}

// EraseMessagesFrom blanks every message of one sender, in every
// conversation, and keeps the rest (seqs, the peer's messages, counts).
func testEraseMessagesFrom(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	alice := newUser(t, s, "alice", "Alice")
	bob := newUser(t, s, "bob", "Bob")
	carol := newUser(t, s, "carol", "Carol")
	a1 := send(t, s, alice, bob, "hello bob", 1)
	b1 := send(t, s, bob, alice, "hi alice", 2)
	a2 := send(t, s, alice, bob, "bye", 3)
	c1 := send(t, s, alice, carol, "hello carol", 4)
	n, err := s.EraseMessagesFrom(ctx, alice.ID)
	if err != nil || n != 3 {
		t.Fatalf("EraseMessagesFrom = %d, %v; want 3", n, err)
	}
	msgs, _, err := s.MessagesAfter(ctx, a1.ConversationID, 0, 10)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("MessagesAfter: %v %v", msgs, err)
	}
	for i, want := range []store.Message{a1, b1, a2} {
		got := msgs[i]
		if got.ID != want.ID || got.Seq != want.Seq || got.From != want.From {
			t.Fatalf("message %d = %+v, want %+v", i, got, want)
		}
		if erased := want.From == alice.ID; got.Deleted != erased || (erased && got.Text != "") || (!erased && got.Text != want.Text) {
			t.Fatalf("message %d after the erase: %+v", i, got)
		}
	}
	before, _, err := s.MessagesBefore(ctx, c1.ConversationID, 0, 10)
	if err != nil || len(before) != 1 || !before[0].Deleted || before[0].Text != "" {
		t.Fatalf("the other conversation: %+v %v", before, err)
	}
	v := mustConversation(t, s, bob, alice)
	if v.LastMessage == nil || !v.LastMessage.Deleted || v.LastMessage.Text != "" || v.LastSeq != a2.Seq {
		t.Fatalf("bob's view after the erase: %+v (last %+v)", v, v.LastMessage)
	}
	if n, err := s.EraseMessagesFrom(ctx, alice.ID); err != nil || n != 0 {
		t.Fatalf("second EraseMessagesFrom = %d, %v; want 0", n, err)
	}
	fresh := send(t, s, bob, alice, "still there?", 5)
	if fresh.Deleted {
		t.Fatal("a new message is born deleted")
	}
}

func testAppend(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	c := newUser(t, s, "carol", "Carol")

	in := store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "hello bob", ClientMsgID: "c-1",
		CreatedAt: at(1).Add(5 * time.Millisecond),
	}
	m1, created, err := s.AppendMessage(ctx, in)
	if err != nil || !created {
		t.Fatalf("AppendMessage = created %v, %v; want true, nil", created, err)
	}
	want := in
	want.ConversationID = store.ConversationID(a.ID, b.ID)
	want.Seq = m1.Seq
	checkMessage(t, "AppendMessage result", m1, want)
	if m1.Seq <= 0 {
		t.Fatalf("seq = %d, want > 0", m1.Seq)
	}
	if m1.ConversationID != store.ConversationID(b.ID, a.ID) {
		t.Fatalf("conversation id depends on the order of the members")
	}

	m2 := send(t, s, b, a, "hi alice", 2)
	m3 := send(t, s, a, b, "how are you?", 3)
	if m2.ConversationID != m1.ConversationID || m3.ConversationID != m1.ConversationID {
		t.Fatalf("conversation ids differ: %s %s %s", m1.ConversationID, m2.ConversationID, m3.ConversationID)
	}
	if m1.Seq >= m2.Seq || m2.Seq >= m3.Seq {
		t.Fatalf("seqs %d %d %d are not increasing", m1.Seq, m2.Seq, m3.Seq)
	}

	// Another conversation has its own sequence and id.
	other := send(t, s, a, c, "hello carol", 4)
	if other.ConversationID != store.ConversationID(a.ID, c.ID) || other.ConversationID == m1.ConversationID {
		t.Fatalf("conversation id %q, want %q", other.ConversationID, store.ConversationID(a.ID, c.ID))
	}
	if other.Seq <= 0 {
		t.Fatalf("seq = %d, want > 0", other.Seq)
	}

	msgs, more, err := s.MessagesAfter(ctx, m1.ConversationID, 0, 10)
	if err != nil || more {
		t.Fatalf("MessagesAfter = more %v, %v", more, err)
	}
	if len(msgs) != 3 {
		t.Fatalf("MessagesAfter = %d messages, want 3", len(msgs))
	}
	for i, want := range []store.Message{m1, m2, m3} {
		checkMessage(t, fmt.Sprintf("message %d", i), msgs[i], want)
	}
}

func testAppendIdempotent(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	first, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "once", ClientMsgID: "retry-me", CreatedAt: at(1),
	})
	if err != nil || !created {
		t.Fatalf("AppendMessage = %v, %v", created, err)
	}
	again, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "twice?", ClientMsgID: "retry-me", CreatedAt: at(2),
	})
	if err != nil {
		t.Fatalf("AppendMessage (retry): %v", err)
	}
	if created {
		t.Fatal("AppendMessage (retry): created=true, want false")
	}
	checkMessage(t, "retry", again, first)

	msgs, _, err := s.MessagesAfter(ctx, first.ConversationID, 0, 10)
	if err != nil {
		t.Fatalf("MessagesAfter: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("after a retry there are %d messages, want 1", len(msgs))
	}
	checkMessage(t, "stored", msgs[0], first)
	v := mustConversation(t, s, a, b)
	if v.LastSeq != first.Seq || !v.UpdatedAt.Equal(first.CreatedAt) {
		t.Fatalf("a retry changed the conversation: last seq %d updated %v", v.LastSeq, v.UpdatedAt)
	}

	// A new client_msg_id after the retry is a new message.
	next := send(t, s, a, b, "next", 3)
	if next.Seq <= first.Seq {
		t.Fatalf("next seq %d <= %d", next.Seq, first.Seq)
	}
}

func testAppendClientIDOtherSender(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	c := newUser(t, s, "carol", "Carol")
	ma, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "from alice", ClientMsgID: "same", CreatedAt: at(1),
	})
	if err != nil || !created {
		t.Fatalf("AppendMessage(alice) = %v, %v", created, err)
	}
	mb, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: b.ID, To: a.ID, Text: "from bob", ClientMsgID: "same", CreatedAt: at(2),
	})
	if err != nil || !created {
		t.Fatalf("AppendMessage(bob, same client_msg_id) = created %v, %v; want a new message", created, err)
	}
	if mb.ID == ma.ID || mb.Seq == ma.Seq || mb.Text != "from bob" {
		t.Fatalf("bob's message %+v collides with alice's %+v", mb, ma)
	}
	// The same sender and client_msg_id to another peer is still a retry.
	mc, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: c.ID, To: a.ID, Text: "from carol", ClientMsgID: "same", CreatedAt: at(3),
	})
	if err != nil || !created || mc.From != c.ID {
		t.Fatalf("AppendMessage(carol, same client_msg_id) = %+v, %v, %v", mc, created, err)
	}
	msgs, _, err := s.MessagesAfter(ctx, ma.ConversationID, 0, 10)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("MessagesAfter = %d messages, %v; want 2", len(msgs), err)
	}
}

// 200 concurrent appends into one conversation, from both members: distinct
// seqs, increasing in each sender's order of completion, all readable.
func testAppendConcurrent(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	const workers, perWorker = 20, 10 // 200 messages
	results := make([][]store.Message, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		from, to := a, b
		if w%2 == 1 {
			from, to = b, a
		}
		wg.Go(func() {
			for i := range perWorker {
				m, created, err := s.AppendMessage(ctx, store.Message{
					ID: store.NewID(), From: from.ID, To: to.ID,
					Text:        fmt.Sprintf("worker %d message %d", w, i),
					ClientMsgID: fmt.Sprintf("w%d-m%d", w, i),
					CreatedAt:   at(w*perWorker + i),
				})
				if err == nil && !created {
					err = errors.New("created=false for a fresh client_msg_id")
				}
				if err != nil {
					errs[w] = err
					return
				}
				results[w] = append(results[w], m)
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}
	byID := map[string]store.Message{}
	seen := map[int64]string{}
	for w, ms := range results {
		for i, m := range ms {
			if other, dup := seen[m.Seq]; dup {
				t.Fatalf("seq %d given to %s and %s", m.Seq, other, m.ID)
			}
			seen[m.Seq] = m.ID
			byID[m.ID] = m
			// Each worker appends one after the other: its commits are
			// ordered, so its seqs must be.
			if i > 0 && m.Seq <= ms[i-1].Seq {
				t.Fatalf("worker %d: seq %d after %d", w, m.Seq, ms[i-1].Seq)
			}
		}
	}
	convID := store.ConversationID(a.ID, b.ID)
	msgs, more, err := s.MessagesAfter(ctx, convID, 0, 500)
	if err != nil || more {
		t.Fatalf("MessagesAfter = more %v, %v", more, err)
	}
	if len(msgs) != workers*perWorker {
		t.Fatalf("read %d messages, want %d", len(msgs), workers*perWorker)
	}
	for i, m := range msgs {
		if i > 0 && m.Seq <= msgs[i-1].Seq {
			t.Fatalf("read seqs not ascending: %d after %d", m.Seq, msgs[i-1].Seq)
		}
		checkMessage(t, "read back", m, byID[m.ID])
	}
	v := mustConversation(t, s, a, b)
	if v.LastSeq != msgs[len(msgs)-1].Seq {
		t.Fatalf("LastSeq = %d, want %d", v.LastSeq, msgs[len(msgs)-1].Seq)
	}
}

// Concurrent retries of one client_msg_id create exactly one message.
func testAppendConcurrentDuplicates(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	const n = 24
	type result struct {
		m       store.Message
		created bool
		err     error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m, created, err := s.AppendMessage(ctx, store.Message{
				ID: store.NewID(), From: a.ID, To: b.ID, Text: "only once", ClientMsgID: "dup", CreatedAt: at(1),
			})
			results[i] = result{m, created, err}
		})
	}
	wg.Wait()
	var winner *store.Message
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("append %d: %v", i, r.err)
		}
		if r.created {
			if winner != nil {
				t.Fatalf("two appends of one client_msg_id created messages: %s and %s", winner.ID, r.m.ID)
			}
			winner = &results[i].m
		}
	}
	if winner == nil {
		t.Fatal("no append created the message")
	}
	for _, r := range results {
		checkMessage(t, "duplicate", r.m, *winner)
	}
	msgs, _, err := s.MessagesAfter(ctx, winner.ConversationID, 0, 100)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("MessagesAfter = %d messages, %v; want 1", len(msgs), err)
	}
}

func testTextExact(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	texts := []string{
		"  leading and trailing spaces  ",
		"line one\nline two\r\nline three\n",
		"\ttab\t",
		"héllo wörld — «quotes» 你好 😀👍🏽 \u200b zero width",
		`quotes ' " \ backslash; DROP TABLE messages; -- $where {"$gt": ""}`,
		strings.Repeat("é", 2048), // 4096 bytes
	}
	var sent []store.Message
	for i, text := range texts {
		m := send(t, s, a, b, text, i)
		if m.Text != text {
			t.Fatalf("AppendMessage returned text %q, want %q", m.Text, text)
		}
		sent = append(sent, m)
	}
	msgs, _, err := s.MessagesAfter(ctx, sent[0].ConversationID, 0, 100)
	if err != nil || len(msgs) != len(texts) {
		t.Fatalf("MessagesAfter = %d messages, %v", len(msgs), err)
	}
	for i, m := range msgs {
		if m.Text != texts[i] {
			t.Errorf("text %d = %q, want %q", i, m.Text, texts[i])
		}
	}
	v := mustConversation(t, s, b, a)
	if v.LastMessage == nil || v.LastMessage.Text != texts[len(texts)-1] {
		t.Errorf("LastMessage text differs")
	}
}

func testCreatedAtPrecision(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	in := time.Date(2026, 11, 27, 15, 30, 1, 123_456_789, zone)
	want := in.Truncate(time.Millisecond).UTC()
	m, _, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "t", ClientMsgID: "t", CreatedAt: in,
	})
	if err != nil {
		t.Fatalf("AppendMessage: %v", err)
	}
	check := func(what string, got time.Time) {
		t.Helper()
		if !got.Equal(want) {
			t.Errorf("%s: CreatedAt %v, want %v (milliseconds)", what, got, want)
		}
		if got.Location() != time.UTC {
			t.Errorf("%s: CreatedAt in %v, want UTC", what, got.Location())
		}
	}
	check("AppendMessage", m.CreatedAt)
	msgs, _, err := s.MessagesAfter(ctx, m.ConversationID, 0, 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("MessagesAfter = %d, %v", len(msgs), err)
	}
	check("MessagesAfter", msgs[0].CreatedAt)
	msgs, _, err = s.MessagesBefore(ctx, m.ConversationID, 0, 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("MessagesBefore = %d, %v", len(msgs), err)
	}
	check("MessagesBefore", msgs[0].CreatedAt)
	v := mustConversation(t, s, a, b)
	check("Conversation.UpdatedAt", v.UpdatedAt)
	if v.LastMessage == nil {
		t.Fatal("LastMessage is nil")
	}
	check("Conversation.LastMessage", v.LastMessage.CreatedAt)
	// A retry returns the stored time.
	again, created, err := s.AppendMessage(ctx, store.Message{
		ID: store.NewID(), From: a.ID, To: b.ID, Text: "t", ClientMsgID: "t", CreatedAt: in.Add(time.Hour),
	})
	if err != nil || created {
		t.Fatalf("retry = %v, %v", created, err)
	}
	check("retry", again.CreatedAt)
}

// pagingFixture stores 7 messages between a and b (and one elsewhere) and
// returns them in order.
func pagingFixture(t *testing.T, s store.Store) []store.Message {
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	c := newUser(t, s, "carol", "Carol")
	var msgs []store.Message
	for i := range 7 {
		from, to := a, b
		if i%3 == 1 {
			from, to = b, a
		}
		msgs = append(msgs, send(t, s, from, to, fmt.Sprintf("m%d", i), i))
		if i == 3 {
			send(t, s, a, c, "elsewhere", 100)
		}
	}
	return msgs
}

func checkPage(t *testing.T, what string, got []store.Message, more bool, err error, want []store.Message, wantMore bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !slices.Equal(seqs(got), seqs(want)) || more != wantMore {
		t.Fatalf("%s = seqs %v more %v, want %v more %v", what, seqs(got), more, seqs(want), wantMore)
	}
	for i := range got {
		checkMessage(t, what, got[i], want[i])
	}
}

func testPagingBefore(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	m := pagingFixture(t, s)
	conv := m[0].ConversationID

	got, more, err := s.MessagesBefore(ctx, conv, 0, 3)
	checkPage(t, "newest page", got, more, err, m[4:7], true)
	got, more, err = s.MessagesBefore(ctx, conv, m[4].Seq, 3)
	checkPage(t, "second page", got, more, err, m[1:4], true)
	got, more, err = s.MessagesBefore(ctx, conv, m[1].Seq, 3)
	checkPage(t, "last page", got, more, err, m[0:1], false)
	got, more, err = s.MessagesBefore(ctx, conv, m[0].Seq, 3)
	checkPage(t, "before the first", got, more, err, nil, false)

	// A page that ends exactly at the first message has no more.
	got, more, err = s.MessagesBefore(ctx, conv, m[3].Seq, 3)
	checkPage(t, "exact page", got, more, err, m[0:3], false)
	got, more, err = s.MessagesBefore(ctx, conv, 0, 7)
	checkPage(t, "everything", got, more, err, m, false)
	got, more, err = s.MessagesBefore(ctx, conv, 0, 100)
	checkPage(t, "large limit", got, more, err, m, false)
	got, more, err = s.MessagesBefore(ctx, conv, m[6].Seq+1000, 2)
	checkPage(t, "before beyond the last", got, more, err, m[5:7], true)
	got, more, err = s.MessagesBefore(ctx, conv, 0, 1)
	checkPage(t, "limit 1", got, more, err, m[6:7], true)
}

func testPagingAfter(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	m := pagingFixture(t, s)
	conv := m[0].ConversationID

	got, more, err := s.MessagesAfter(ctx, conv, 0, 3)
	checkPage(t, "first page", got, more, err, m[0:3], true)
	got, more, err = s.MessagesAfter(ctx, conv, m[2].Seq, 3)
	checkPage(t, "second page", got, more, err, m[3:6], true)
	got, more, err = s.MessagesAfter(ctx, conv, m[5].Seq, 3)
	checkPage(t, "last page", got, more, err, m[6:7], false)
	got, more, err = s.MessagesAfter(ctx, conv, m[6].Seq, 3)
	checkPage(t, "after the last", got, more, err, nil, false)

	got, more, err = s.MessagesAfter(ctx, conv, m[3].Seq, 3)
	checkPage(t, "exact page", got, more, err, m[4:7], false)
	got, more, err = s.MessagesAfter(ctx, conv, 0, 7)
	checkPage(t, "everything", got, more, err, m, false)
	got, more, err = s.MessagesAfter(ctx, conv, m[6].Seq+1000, 3)
	checkPage(t, "after beyond the last", got, more, err, nil, false)
	got, more, err = s.MessagesAfter(ctx, conv, m[4].Seq, 1)
	checkPage(t, "limit 1", got, more, err, m[5:6], true)
}

func testEmptyConversation(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	conv := store.ConversationID(a.ID, b.ID)
	got, more, err := s.MessagesBefore(ctx, conv, 0, 50)
	if err != nil || more || len(got) != 0 {
		t.Fatalf("MessagesBefore(empty) = %d, %v, %v; want none, false, nil", len(got), more, err)
	}
	got, more, err = s.MessagesAfter(ctx, conv, 0, 50)
	if err != nil || more || len(got) != 0 {
		t.Fatalf("MessagesAfter(empty) = %d, %v, %v; want none, false, nil", len(got), more, err)
	}
}

// A message without a sender or a recipient, or to its own sender, is
// refused with ErrInvalid and leaves no trace.
func testAppendInvalid(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := newUser(t, s, "alice", "Alice")
	b := newUser(t, s, "bob", "Bob")
	for _, tc := range []struct {
		what     string
		from, to string
	}{
		{"to its sender", a.ID, a.ID},
		{"without a recipient", a.ID, ""},
		{"without a sender", "", b.ID},
	} {
		_, _, err := s.AppendMessage(ctx, store.Message{
			ID: store.NewID(), From: tc.from, To: tc.to, Text: "x", ClientMsgID: store.NewID(), CreatedAt: at(1),
		})
		wantErr(t, "AppendMessage "+tc.what, err, store.ErrInvalid)
	}
	for _, u := range []store.User{a, b} {
		if convs, err := s.Conversations(ctx, u.ID); err != nil || len(convs) != 0 {
			t.Fatalf("Conversations(%s) after refused appends = %d, %v; want none", u.Username, len(convs), err)
		}
	}
	if _, err := s.Conversation(ctx, a.ID, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Conversation(alice, alice) = %v, want ErrNotFound", err)
	}
	send(t, s, a, b, "valid", 2)
}
