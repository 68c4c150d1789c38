package chat

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/httpapi"
	"github.com/chatd/chatd/store"
	"go.opentelemetry.io/otel/trace"
)

// WebSocket sends, one path for every store. The reader validates a send
// frame, takes one of the connection's SendWindow slots (waiting while all
// are taken: backpressure) and a ticket, and hands the message to the
// store's AppendMessageAsync. A store that is a store.AsyncAppender
// (sqlitestore) queues it and returns at once, so several sends of one
// connection are in flight; any other store is adapted (syncAppender): the
// append runs on the reader, which waits for each commit as a synchronous
// send would. Either way the store's callback only pushes the send on a
// completion queue. A few completion goroutines per node (not per message)
// answer: they encode the frames and put the answers of each connection in
// ticket order (a refused send is a ticket answered at once, so its error
// frame cannot overtake earlier acks); they publish the messages of the
// batch they took together (one round trip to Redis, delivery.go's
// pubBatch), then queue the answers, release the slots and end the
// in-flight counts.
//
// Guarantees: the ack is queued only after the store reported the message
// durable and the broker took it (a node killed in between answers
// nothing, so its sender sends again; see reply.send); a connection's
// answers come in the order its frames were read;
// the store commits in queue order, so one connection's messages to one peer
// get increasing seqs, and they are published in that order (a batch keeps
// its order, and one goroutine publishes a connection's batches). Shutdown waits
// for in-flight sends (each holds beginWork until answered); a connection
// closed meanwhile only loses its answers (enqueue refuses them), the
// messages stay stored.
//
// Memory: at most connections × SendWindow sends are pending in all, each
// holding its message, so the completion queues need no bound of their own,
// and the store's writer never waits for them.

// completionShards is the number of completion goroutines. A connection's
// sends always go to the same one (by connection id), which keeps their
// order; several let publishes to a remote broker overlap.
const completionShards = 4

// sendPipe is one connection's pipeline state, made on its first send.
type sendPipe struct {
	slots   chan struct{} // one token per ticket not yet answered
	issued  uint64        // next ticket; the reader's
	pending atomic.Int32  // tickets issued and not yet answered

	// The completion goroutine's (the connection's shard).
	next uint64    // next ticket to answer
	ring []*sendOp // ring[t % len] holds ticket t once completed
}

// sendOp is one ticket: a send in flight, or an answer that must wait for
// the earlier ones.
type sendOp struct {
	c      *conn
	p      *sendPipe
	ticket uint64
	start  int64 // mono ns the frame was read (send latency); 0 for none
	work   bool  // holds an in-flight count (beginWork)

	// A send's request and the store's answer (set by the store callback).
	req     sendRequest
	ref     *string
	msg     store.Message
	created bool
	err     error

	// frame, when set, is the whole answer (an error found before the store).
	frame []byte
}

// completionQueue hands completed tickets to one completion goroutine.
// push never blocks (it runs on the store's writer).
type completionQueue struct {
	mu     sync.Mutex
	ops    []*sendOp
	notify chan struct{} // capacity 1
}

func (q *completionQueue) push(op *sendOp) {
	q.mu.Lock()
	q.ops = append(q.ops, op)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// newCompletionQueues makes the queues of the completion goroutines.
func newCompletionQueues() []*completionQueue {
	qs := make([]*completionQueue, completionShards)
	for i := range qs {
		qs[i] = &completionQueue{notify: make(chan struct{}, 1)}
	}
	return qs
}

// completer answers the tickets pushed on q until the service's context
// ends (Shutdown, after every connection is gone), then answers what is left.
func (s *Service) completer(q *completionQueue) {
	defer s.completers.Done()
	var spare []*sendOp
	var pubs pubBatch
	var replies []reply
	for {
		stop := false
		select {
		case <-q.notify:
		case <-s.ctx.Done():
			stop = true
		}
		q.mu.Lock()
		ops := q.ops
		q.ops = spare[:0]
		q.mu.Unlock()
		for _, op := range ops {
			s.complete(op, &pubs, &replies)
		}
		if len(pubs.ps) > 0 {
			ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
			s.flush(ctx, &pubs)
			cancel()
		}
		for _, r := range replies {
			r.send(s)
		}
		clear(replies)
		clear(ops)
		if cap(ops) <= 1024 {
			spare, replies = ops[:0], replies[:0]
		} else {
			spare, replies = nil, nil // let a burst's buffers go
		}
		if stop {
			return
		}
	}
}

// pipe returns c's pipeline, making it on first use (reader goroutine).
func (c *conn) pipe() *sendPipe {
	if c.pipeline == nil {
		w := c.s.cfg.SendWindow
		c.pipeline = &sendPipe{slots: make(chan struct{}, w), ring: make([]*sendOp, w)}
	}
	return c.pipeline
}

// ticket takes a slot (waiting while the window is full) and the next
// ticket of c (reader goroutine).
func (c *conn) ticket(start int64) *sendOp {
	p := c.pipe()
	p.slots <- struct{}{}
	op := &sendOp{c: c, p: p, ticket: p.issued, start: start}
	p.issued++
	p.pending.Add(1)
	return op
}

// answerInOrder queues frame on c after every answer still pending on c
// (reader goroutine); with none pending it is queued at once.
func (c *conn) answerInOrder(frame []byte) {
	if p := c.pipeline; p == nil || p.pending.Load() == 0 {
		// Every earlier answer was queued already (pending drops after it).
		c.enqueue(frame, 0)
		return
	}
	op := c.ticket(0)
	op.frame = frame
	c.s.pushCompletion(op)
}

func (s *Service) pushCompletion(op *sendOp) {
	s.completions[(op.c.id>>1)%completionShards].push(op) // ids are odd: skip bit 0
}

// wsSend is a `send`, `edit`, `delete` or `react` frame (reader
// goroutine), made into req by frameRequest. ctx bounds the validation
// only; the append lives as long as the service (with opTimeout for a
// synchronous store).
func (s *Service) wsSend(ctx context.Context, c *conn, req sendRequest, ref *string, start int64) {
	op := c.ticket(start)
	op.ref = ref
	req.tr = s.traceSend(context.Background(), "websocket") // nil when tracing is off
	if !s.beginWork() {
		req.tr.end(nil, httpapi.ErrUnavailable)
		op.frame = errorFrameBytes(ref, httpapi.ErrUnavailable)
		s.pushCompletion(op)
		return
	}
	op.work = true
	vs := req.tr.start("chat.validate", trace.SpanKindInternal)
	herr := s.prepareSend(ctx, &req)
	finishSpan(vs, herr)
	if herr != nil {
		req.tr.end(nil, herr)
		op.frame = errorFrameBytes(ref, herr)
		s.pushCompletion(op)
		return
	}
	op.req = req
	req.tr.startAppend()
	s.store.AppendMessageAsync(s.ctx, newMessage(req, time.Now()), op.stored)
}

// syncAppender adapts a store without store.AsyncAppender: the append runs
// on the caller's goroutine, within opTimeout, and done is called before
// AppendMessageAsync returns. The caller (a connection's reader) thus waits
// for each send's commit, and the order of commits is the order of calls.
type syncAppender struct{ st store.Messages }

func (a syncAppender) AppendMessageAsync(ctx context.Context, m store.Message, done func(store.Message, bool, error)) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	done(a.st.AppendMessage(ctx, m))
}

// stored is the store's callback: it runs on the store's writer and only
// hands the outcome over.
func (op *sendOp) stored(msg store.Message, created bool, err error) {
	op.msg, op.created, op.err = msg, created, err
	op.req.tr.endAppend(msg, created, err)
	op.c.s.pushCompletion(op)
}

// complete files op in its connection's ring and answers every ticket that
// is next in line (completion goroutine): their publications are gathered
// in pubs and their answers in replies, queued once pubs is published.
func (s *Service) complete(op *sendOp, pubs *pubBatch, replies *[]reply) {
	p := op.p
	w := uint64(len(p.ring))
	p.ring[op.ticket%w] = op
	for {
		i := p.next % w
		op := p.ring[i]
		if op == nil || op.ticket != p.next {
			return
		}
		p.ring[i] = nil
		p.next++
		*replies = append(*replies, s.answer(op, pubs))
	}
}

// reply is a ticket's answer, held until its batch is published.
type reply struct {
	op    *sendOp
	frame []byte
	start int64      // mono ns the frame was read (send latency); 0 for none
	span  trace.Span // the ws.write span of a traced ack, or nil
}

// answer makes op's answer and, for a stored message, gathers its
// publications in pubs (a traced send is published at once, in its span).
func (s *Service) answer(op *sendOp, pubs *pubBatch) reply {
	if op.frame != nil {
		return reply{op: op, frame: op.frame}
	}
	ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	defer cancel()
	res, herr := s.sendResultOf(op.req, op.msg, op.created, op.err)
	switch {
	case herr != nil:
		op.req.tr.end(nil, herr)
		return reply{op: op, frame: errorFrameBytes(op.ref, herr)}
	case res.tr == nil:
		s.fanOutInto(ctx, res, pubs)
		return reply{op: op, frame: res.ack, start: op.start}
	default:
		s.fanOut(ctx, res)
		ws := res.tr.start("ws.write", trace.SpanKindInternal)
		res.tr.end(&res, nil)
		return reply{op: op, frame: res.ack, start: op.start, span: ws}
	}
}

// send queues r's answer on its connection, then frees its slot and ends
// its in-flight count. It runs after the answer's publications: an ack
// never reaches a sender before the broker took its message, so a node
// killed between the two leaves no gap that nobody reports (the sender,
// without its ack, sends again: stored once, published again).
func (r reply) send(s *Service) {
	op := r.op
	c := op.c
	if r.span == nil {
		c.enqueue(r.frame, r.start)
	} else if !c.enqueueSpan(r.frame, r.start, r.span) {
		endWrite(r.span, "connection closing")
	}
	p := op.p
	p.pending.Add(-1) // after the enqueue: see answerInOrder
	<-p.slots
	if op.work {
		s.endWork() // after the publications: Shutdown closes the broker then
	}
}
