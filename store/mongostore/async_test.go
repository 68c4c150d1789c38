package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/mongostore"
)

// commandCounter counts the commands a store sends, by "name collection".
type commandCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *commandCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.n[e.CommandName+" "+coll]++
	}}
}

func (c *commandCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

// asyncAnswers collects AppendMessageAsync answers.
type asyncAnswers struct {
	mu   sync.Mutex
	got  map[string]asyncGot // by ClientMsgID of the queued message
	wg   sync.WaitGroup
	tags []string // done order
}

type asyncGot struct {
	msg     store.Message
	created bool
	err     error
}

func newAsyncAnswers() *asyncAnswers { return &asyncAnswers{got: map[string]asyncGot{}} }

func (a *asyncAnswers) queue(ctx context.Context, s *mongostore.Store, tag string, m store.Message) {
	a.wg.Add(1)
	s.AppendMessageAsync(ctx, m, func(msg store.Message, created bool, err error) {
		a.mu.Lock()
		a.got[tag] = asyncGot{msg, created, err}
		a.tags = append(a.tags, tag)
		a.mu.Unlock()
		a.wg.Done()
	})
}

// Messages queued while the writer is busy are stored together: a batch of
// 6 conversations × 10 messages (and a retry among them) takes 10 insert
// commands, one per round, and one read, of the blocks of the whole batch
// (a message from a blocked sender among them is refused and not stored);
// AppendMessage takes 60 inserts and 60 reads.
func TestAppendAsyncBatchRoundTrips(t *testing.T) {
	m := testserver.StartMongo(t)
	cmds := &commandCounter{n: map[string]int{}}
	entered, hold := make(chan struct{}), make(chan struct{})
	var once sync.Once
	opts := mongostore.WithCommandMonitor(mongostore.Options{}, cmds.monitor())
	opts = mongostore.WithBatchHook(opts, func() { once.Do(func() { close(entered); <-hold }) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openStoreWith(t, m, opts)

	const convs, per = 6, 10
	alice := store.NewID()
	peers := make([]string, convs)
	for c := range peers {
		peers[c] = store.NewID()
		// The first message of a conversation takes AppendMessage's path.
		if _, _, err := s.AppendMessage(ctx, store.Message{From: alice, To: peers[c], Text: "first", ClientMsgID: fmt.Sprint("first", c)}); err != nil {
			t.Fatal(err)
		}
	}
	mallory := store.NewID()
	if err := s.Block(ctx, peers[0], mallory, time.Now()); err != nil {
		t.Fatal(err)
	}
	ans := newAsyncAnswers()
	ans.queue(ctx, s, "held", store.Message{From: peers[0], To: alice, Text: "held", ClientMsgID: "held"})
	<-entered // the writer holds the first batch: the rest forms the next
	cmds.take()
	var order []string
	for i := range per {
		for c := range convs {
			tag := fmt.Sprintf("m%d-%d", c, i)
			order = append(order, tag)
			ans.queue(ctx, s, tag, store.Message{From: alice, To: peers[c], Text: tag, ClientMsgID: tag})
			if c == 2 && i == 4 {
				order = append(order, "retry")
				ans.queue(ctx, s, "retry", store.Message{From: alice, To: peers[1], Text: "again", ClientMsgID: "m1-0"})
				order = append(order, "blocked")
				ans.queue(ctx, s, "blocked", store.Message{From: mallory, To: peers[0], Text: "let me in", ClientMsgID: "b"})
			}
		}
	}
	close(hold)
	ans.wg.Wait()

	got := cmds.take()
	if got["insert messages"] != 1+per || got["find blocks"] != 2 || len(got) != 2 {
		t.Errorf("commands %v, want %d inserts into messages, a find on blocks per batch (2) and nothing else", got, 1+per)
	}
	if g := ans.got["blocked"]; !errors.Is(g.err, store.ErrBlocked) {
		t.Errorf("a blocked sender's message: %+v, %v, want store.ErrBlocked", g.msg, g.err)
	}
	if msgs, _, err := s.MessagesAfter(ctx, store.ConversationID(mallory, peers[0]), 0, 10); err != nil || len(msgs) != 0 {
		t.Errorf("the blocked sender's conversation holds %v (%v), want nothing", msgs, err)
	}
	if want := append([]string{"held"}, order...); fmt.Sprint(ans.tags) != fmt.Sprint(want) {
		t.Errorf("answered in order %v, want %v", ans.tags, want)
	}
	for c := range convs {
		for i := range per {
			tag := fmt.Sprintf("m%d-%d", c, i)
			g := ans.got[tag]
			want := int64(2 + i)
			if c == 0 {
				want++ // after "held"
			}
			if g.err != nil || !g.created || g.msg.Seq != want || g.msg.Text != tag {
				t.Fatalf("%s: %+v created %v err %v, want seq %d", tag, g.msg, g.created, g.err, want)
			}
		}
	}
	if r, first := ans.got["retry"], ans.got["m1-0"]; r.err != nil || r.created || r.msg.ID != first.msg.ID || r.msg.Seq != first.msg.Seq {
		t.Errorf("retry: %+v created %v err %v, want the message of m1-0 (%s)", r.msg, r.created, r.err, first.msg.ID)
	}
	msgs, _, err := s.MessagesAfter(ctx, store.ConversationID(alice, peers[3]), 0, 100)
	if err != nil || len(msgs) != 1+per {
		t.Fatalf("read back %d messages, %v; want %d", len(msgs), err, 1+per)
	}
}

// Two stores (two replicas: two seq caches) queue into one conversation at
// once, each sure of its cached seq: the documents that lose a seq to the
// other store are retried, and the conversation ends with seqs 1..n without
// a gap, each message stored once with the seq it was answered with.
func TestAppendAsyncAcrossStores(t *testing.T) {
	m := testserver.StartMongo(t)
	db := m.Database()
	s1, s2 := openOn(t, m, db), openOn(t, m, db)
	ctx := testCtx(t)
	a, b := store.NewID(), store.NewID()
	conv := store.ConversationID(a, b)
	// Both caches learn the conversation.
	for i, s := range []*mongostore.Store{s1, s2} {
		if _, _, err := s.AppendMessage(ctx, store.Message{From: a, To: b, Text: "warm", ClientMsgID: fmt.Sprint("warm", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ans := newAsyncAnswers()
	const per = 150
	var wg sync.WaitGroup
	for w, s := range []*mongostore.Store{s1, s2} {
		wg.Go(func() {
			for i := range per {
				from, to := a, b
				if i%2 == 1 {
					from, to = b, a
				}
				tag := fmt.Sprintf("s%d-%d", w, i)
				ans.queue(ctx, s, tag, store.Message{From: from, To: to, Text: tag, ClientMsgID: tag})
			}
		})
	}
	wg.Wait()
	ans.wg.Wait()
	bySeq := map[int64]string{}
	for tag, g := range ans.got {
		if g.err != nil || !g.created {
			t.Fatalf("%s: created %v, err %v", tag, g.created, g.err)
		}
		if other, dup := bySeq[g.msg.Seq]; dup {
			t.Fatalf("%s and %s both answered with seq %d", tag, other, g.msg.Seq)
		}
		bySeq[g.msg.Seq] = tag
	}
	msgs, more, err := s1.MessagesAfter(ctx, conv, 0, 1000)
	if err != nil || more || len(msgs) != 2+2*per {
		t.Fatalf("read back %d messages (more %v), %v; want %d", len(msgs), more, err, 2+2*per)
	}
	for i, msg := range msgs {
		if msg.Seq != int64(i+1) {
			t.Fatalf("message %d has seq %d: a gap", i, msg.Seq)
		}
		if i >= 2 && bySeq[msg.Seq] != msg.ClientMsgID {
			t.Fatalf("seq %d holds %s, answered to %s", msg.Seq, msg.ClientMsgID, bySeq[msg.Seq])
		}
	}
}

// A receipt costs two round trips before its answer when this process
// knows the conversation's seqs (the member's pointers, the insert), and
// the highest seq is read only when the receipt names a seq beyond them:
// one another replica stored.
func TestMarkRoundTrips(t *testing.T) {
	m := testserver.StartMongo(t)
	db := m.Database()
	cmds := &commandCounter{n: map[string]int{}}
	ctx := testCtx(t)
	s, err := mongostore.Open(ctx, m.URI(), db, mongostore.WithCommandMonitor(mongostore.Options{}, cmds.monitor()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	other := openOn(t, m, db)
	a, b := store.NewID(), store.NewID()
	for i := range 2 {
		if _, _, err := s.AppendMessage(ctx, store.Message{From: a, To: b, Text: "hi", ClientMsgID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	cmds.take()
	if ptr, moved, err := s.MarkDelivered(ctx, b, a, 1); err != nil || !moved || ptr != 1 {
		t.Fatalf("MarkDelivered(1) = %d, %v, %v", ptr, moved, err)
	}
	if ptr, moved, err := s.MarkRead(ctx, b, a, 5); err != nil || !moved || ptr != 2 { // clamped
		t.Fatalf("MarkRead(5) = %d, %v, %v; want 2 (the last seq)", ptr, moved, err)
	}
	_ = s.Close() // waits for the background deletes
	got := cmds.take()
	want := map[string]int{"find pointers": 2, "insert pointers": 2, "delete pointers": 2, "find messages": 1}
	for _, k := range []string{"find pointers", "insert pointers", "delete pointers", "find messages"} {
		if got[k] != want[k] {
			t.Errorf("%s: %d commands, want %d (all: %v)", k, got[k], want[k], got)
		}
	}

	// other knows seq 2; seq 3 is then stored by s2 (another replica): a
	// receipt for it on other reads the highest seq instead of clamping to 2.
	if ptr, _, err := other.MarkDelivered(ctx, a, b, 2); err != nil || ptr != 2 {
		t.Fatalf("MarkDelivered(2) = %d, %v", ptr, err)
	}
	s2 := openOn(t, m, db)
	if _, _, err := s2.AppendMessage(ctx, store.Message{From: b, To: a, Text: "yo", ClientMsgID: "x"}); err != nil {
		t.Fatal(err)
	}
	if ptr, moved, err := other.MarkRead(ctx, a, b, 3); err != nil || !moved || ptr != 3 {
		t.Fatalf("MarkRead(3) after another store's append = %d, %v, %v; want 3", ptr, moved, err)
	}
}

// A one-sided conversation (alice wrote, bob never answered) is asked
// about on every contact check; that alice has sent is remembered, so a
// check after the first reads only whether bob has (one find on messages,
// not two). Once bob answers they are contacts and a check reads no
// message at all.
func TestContactIDsRemembersSenders(t *testing.T) {
	m := testserver.StartMongo(t)
	cmds := &commandCounter{n: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openStoreWith(t, m, mongostore.WithCommandMonitor(mongostore.Options{}, cmds.monitor()))
	alice, bob := store.NewID(), store.NewID()
	if _, _, err := s.AppendMessage(ctx, store.Message{From: alice, To: bob, Text: "hi", ClientMsgID: "a1"}); err != nil {
		t.Fatal(err)
	}
	check := func(want []string, finds int) {
		t.Helper()
		cmds.take()
		got, err := s.ContactIDs(ctx, alice)
		if err != nil {
			t.Fatalf("ContactIDs: %v", err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("ContactIDs = %v, want %v", got, want)
		}
		if n := cmds.take()["find messages"]; n != finds {
			t.Fatalf("ContactIDs read messages %d times, want %d", n, finds)
		}
	}
	check([]string{}, 2) // alice has sent (read), bob has not (read)
	check([]string{}, 1) // only bob's side is read again
	check([]string{}, 1)
	if _, _, err := s.AppendMessage(ctx, store.Message{From: bob, To: alice, Text: "hello", ClientMsgID: "b1"}); err != nil {
		t.Fatal(err)
	}
	check([]string{bob}, 1) // bob has sent now: contacts
	check([]string{bob}, 0)
}

// Concurrent IsBlocked calls share their finds: 64 lookups queued while
// the workers are held take at most two finds per worker (the held ones
// and one round after), not one each, and each answer is its own pair's.
func TestIsBlockedSharesFinds(t *testing.T) {
	m := testserver.StartMongo(t)
	cmds := &commandCounter{n: map[string]int{}}
	var (
		mu      sync.Mutex
		held    int // lookups in held finds
		release = make(chan struct{})
	)
	opts := mongostore.WithCommandMonitor(mongostore.Options{}, cmds.monitor())
	opts = mongostore.WithLookupHook(opts, func(n int) {
		mu.Lock()
		held += n
		mu.Unlock()
		<-release
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openStoreWith(t, m, opts)

	const n = 64
	users := make([]string, n+1)
	for i := range users {
		users[i] = store.NewID()
	}
	// users[0] blocks the even ones among the others.
	for i := 2; i <= n; i += 2 {
		if err := s.Block(ctx, users[0], users[i], time.Now()); err != nil {
			t.Fatalf("Block: %v", err)
		}
	}
	cmds.take()
	got := make([]bool, n+1)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Go(func() {
			b, err := s.IsBlocked(ctx, users[0], users[i])
			got[i] = b
			errs <- err
		})
	}
	// Every lookup is in a held find or queued behind them.
	for {
		mu.Lock()
		all := held+s.LookupsQueued() == n
		mu.Unlock()
		if all {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("lookups never queued")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("IsBlocked: %v", err)
		}
	}
	for i := 1; i <= n; i++ {
		if want := i%2 == 0; got[i] != want {
			t.Errorf("IsBlocked(users[0], users[%d]) = %v, want %v", i, got[i], want)
		}
	}
	if finds := cmds.take()["find blocks"]; finds > 2*mongostore.LookupWorkers {
		t.Fatalf("%d lookups took %d finds, want at most %d", n, finds, 2*mongostore.LookupWorkers)
	}

	// A caller that has gone gets its context's error, and the store
	// still answers the others.
	gone, stop := context.WithCancel(ctx)
	stop()
	if _, err := s.IsBlocked(gone, users[0], users[2]); !errors.Is(err, context.Canceled) {
		t.Fatalf("IsBlocked with a cancelled context: %v, want context.Canceled", err)
	}
	if b, err := s.IsBlocked(ctx, users[0], users[2]); err != nil || !b {
		t.Fatalf("IsBlocked after = %v, %v, want true", b, err)
	}
	// After Close, IsBlocked fails instead of waiting.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.IsBlocked(ctx, users[0], users[2]); err == nil {
		t.Fatal("IsBlocked after Close: no error")
	}
}

// The blocks of more ids than one find returns (a writer batch larger
// than the default) are all found: 600 blocks asked at once, each twice.
func TestBlockIDsInFindsAll(t *testing.T) {
	m := testserver.StartMongo(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openStoreWith(t, m, mongostore.Options{})
	alice := store.NewID()
	var ids []string
	for range 600 {
		other := store.NewID()
		if err := s.Block(ctx, alice, other, time.Now()); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, alice+"/"+other, alice+"/"+other)
	}
	ids = append(ids, alice+"/nobody")
	found, err := s.BlockIDsIn(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 600 || found[alice+"/nobody"] {
		t.Fatalf("found %d blocks, want the 600 that exist", len(found))
	}
}
