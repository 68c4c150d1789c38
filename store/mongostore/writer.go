package mongostore

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/store"
)

var _ store.AsyncAppender = (*Store)(nil)

// The append pipeline (store.AsyncAppender). AppendMessageAsync queues a
// message; one writer goroutine per Store takes what is queued (up to
// BatchMax) and stores it in as few round trips as the seq rule allows:
//
//   - First one find reads the blocks of the whole batch, and a message
//     whose recipient blocks its sender is answered store.ErrBlocked and
//     not stored (store.BlockCheckingAppender; refuseBlocked).
//   - A plain text message (no reply_to) of a conversation whose highest
//     seq this process knows (seqCache) needs no read before its insert.
//     Consecutive ones are inserted by one ordered insertMany, each with the
//     next seq of its conversation, with the write concern of every other
//     write. Ordered: the server stops at the first failing document, so
//     the inserted ones are a prefix and no seq gets a gap.
//   - A document that fails on a unique index (another replica took the
//     seq, a retried client_msg_id, a taken id) goes through AppendMessage's
//     own path (appendMessage), which reads what it must and retries; the
//     rest of the batch then continues from the seqs that path learnt.
//   - Events, replies and a conversation not in the cache take that path
//     too, in their place in the queue: they need reads before the insert.
//   - A retry of a message queued earlier in the same batch is answered
//     with that message (created=false), without a write of its own.
//
// The done calls follow, in queue order, once the whole batch is
// acknowledged: while one batch is on the wire the next one gathers, so
// the number of round trips per message falls as the rate rises (group
// commit).

// appendReq is one queued message.
type appendReq struct {
	ctx  context.Context
	m    store.Message // prepared
	done func(store.Message, bool, error)

	same *appendReq // an earlier request of the batch with the same (from, dedup)

	stored  store.Message
	created bool
	err     error
}

var errClosed = errors.New("store closed")

func (s *Store) startWriter() {
	s.w = startBatchQueue(s.opts.QueueSize, s.opts.BatchMax, 1, s.writeBatch)
}

// stopWriter answers what is queued and stops the writer; enqueues after
// it fail with errClosed.
func (s *Store) stopWriter() { s.w.close() }

// AppendMessageAsync queues m like AppendMessage and calls done once its
// batch is acknowledged (see store.AsyncAppender); done runs on the writer
// goroutine, in queue order.
func (s *Store) AppendMessageAsync(ctx context.Context, m store.Message, done func(store.Message, bool, error)) {
	fail := func(err error) { done(store.Message{}, false, fmt.Errorf("mongostore: append message: %w", err)) }
	m, err := store.PrepareMessage(m)
	if err != nil {
		fail(err)
		return
	}
	if err := ctx.Err(); err != nil {
		fail(err)
		return
	}
	if err := s.w.put(ctx, &appendReq{ctx: ctx, m: m, done: done}); err != nil {
		fail(err)
	}
}

// writeBatch stores the batch (see above) and answers it in order.
func (s *Store) writeBatch(batch []*appendReq) {
	if s.opts.batchHook != nil {
		s.opts.batchHook()
	}
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err // never sent: not stored
		}
	}
	s.refuseBlocked(batch)
	type key struct{ from, dedup string }
	seen := make(map[key]*appendReq, len(batch))
	var run []*appendReq // consecutive fast-path requests
	for _, r := range batch {
		if r.err != nil {
			continue // refused, or its caller has gone: not stored
		}
		k := key{r.m.From, dedupKey(r.m)}
		if first, ok := seen[k]; ok {
			r.same = first
			continue
		}
		seen[k] = r
		if r.m.IsText() && r.m.ReplyTo == 0 && s.seqs.get(r.m.ConversationID) > 0 {
			run = append(run, r)
			continue
		}
		s.insertRun(run)
		run = run[:0]
		s.appendOne(r)
	}
	s.insertRun(run)
	for _, r := range batch {
		switch {
		case r.same != nil && r.same.err == nil:
			r.done(r.same.stored, false, nil)
		case r.same != nil:
			r.done(store.Message{}, false, r.same.err)
		case r.err != nil:
			r.done(store.Message{}, false, r.err)
		default:
			r.done(r.stored, r.created, nil)
		}
	}
}

// refuseBlocked answers ErrBlocked to the requests of the batch whose
// recipient blocks their sender (store.BlockCheckingAppender), reading the
// blocks of the whole batch with one find; when that find fails, every
// request fails with it (nothing was stored).
func (s *Store) refuseBlocked(batch []*appendReq) {
	ids := make([]string, 0, len(batch))
	for _, r := range batch {
		if r.err == nil {
			ids = append(ids, blockID(r.m.To, r.m.From))
		}
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	blocked, err := s.blockIDsIn(ctx, ids)
	for _, r := range batch {
		switch {
		case r.err != nil:
		case err != nil:
			r.err = fmt.Errorf("mongostore: append message: blocks: %w", err)
		case blocked[blockID(r.m.To, r.m.From)]:
			r.err = fmt.Errorf("mongostore: append message: %w", store.ErrBlocked)
		}
	}
}

// appendOne stores r through AppendMessage's path.
func (s *Store) appendOne(r *appendReq) {
	ctx, cancel := context.WithTimeout(r.ctx, s.opts.Timeout)
	defer cancel()
	stored, created, err := s.appendMessage(ctx, r.m)
	if err != nil {
		r.err = fmt.Errorf("mongostore: append message: %w", err)
		return
	}
	// A document reported failed that is stored after all with this very
	// id was inserted by this call: created.
	r.stored, r.created = stored, created || stored.ID == r.m.ID
}

// insertRun stores run, plain text messages of cached conversations, in
// rounds: round r holds the r-th message of each conversation of the run
// and is one unordered insertMany, sent only once round r-1 is
// acknowledged and its failed documents retried. A conversation's seq n+1
// is thus only tried once seq n was seen stored, as in AppendMessage, and
// no failed document can leave a gap behind a stored one. (Not one ordered
// insertMany for the whole run: FerretDB goes on inserting a few documents
// past the one that failed.)
func (s *Store) insertRun(run []*appendReq) {
	if len(run) == 0 {
		return
	}
	round := make(map[string]int, len(run)) // next round per conversation
	rounds := [][]*appendReq{}
	for _, r := range run {
		i := round[r.m.ConversationID]
		round[r.m.ConversationID] = i + 1
		if i == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[i] = append(rounds[i], r)
	}
	docs := make([]any, 0, len(rounds[0]))
	for _, rs := range rounds {
		docs = docs[:0]
		for _, r := range rs {
			r.stored = r.m
			r.stored.Seq = s.seqs.get(r.m.ConversationID) + 1
			docs = append(docs, newMessageDoc(r.stored))
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		_, err := s.messages.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		cancel()
		failed := make([]bool, len(rs))
		if err != nil {
			var bwe mongo.BulkWriteException
			if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
				// Unknown which were stored: each answer says so, like a
				// failed AppendMessage; the later rounds are not tried.
				for _, r := range run {
					if !r.created {
						r.stored, r.err = store.Message{}, fmt.Errorf("mongostore: append message: %w", err)
					}
				}
				return
			}
			for _, we := range bwe.WriteErrors {
				if we.Index < 0 || we.Index >= len(rs) {
					continue
				}
				failed[we.Index] = true
				r := rs[we.Index]
				r.stored = store.Message{}
				if !isDuplicate(we) {
					r.err = fmt.Errorf("mongostore: append message: %w", we)
				}
			}
		}
		for i, r := range rs {
			if !failed[i] {
				r.created = true
				s.seqs.put(r.m.ConversationID, r.stored.Seq)
			}
		}
		for i, r := range rs {
			if failed[i] && r.err == nil {
				s.appendOne(r) // reads which key it hit, and retries
			}
		}
	}
}
