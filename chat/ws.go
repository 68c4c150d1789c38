package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/chatd/chatd/httpapi"
	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/trace"
)

// outItem is one queued frame; start (mono ns, 0 = none) times an ack.
type outItem struct {
	frame []byte
	start int64
	span  trace.Span // ws.write of a traced frame, ended once written (tracing.go)
}

// conn is one WebSocket connection. One goroutine reads; a writer
// goroutine, started when frames are queued and gone when the queue is
// empty, drains the bounded queue. Producers never block: enqueue only
// appends under a short lock, and a full queue closes the connection.
type conn struct {
	s         *Service
	id        uint64
	ws        *websocket.Conn
	userID    string
	sessionID string
	expires   time.Time
	topic     *topicEntry // its user's, held from hub.register to hub.unregister

	lastSeen atomic.Int64 // mono ns of the last frame, ping or pong received
	lastPing int64        // mono ns; guarded by registry.mu
	pinging  atomic.Bool

	// dropping: closing with a code that drops the queued frames; the
	// writer stops between two frames of a batch when it is set.
	dropping atomic.Bool

	mu      sync.Mutex
	queue   []outItem
	closing bool
	writing bool // a writer goroutine runs, or wrote the close
	code    websocket.StatusCode
	reason  string

	sc         *stallConn    // the socket under ws (its Hijack)
	writerDone chan struct{} // closed by the last writer

	pipeline *sendPipe // pipelined sends; made by the reader on its first send
}

// enqueue queues frame for writing; it reports false when the connection is
// closing. A full queue closes the connection with 1013.
func (c *conn) enqueue(frame []byte, start int64) bool { return c.enqueueSpan(frame, start, nil) }

// enqueueSpan is enqueue of a traced frame: the writer ends span once the
// frame is written. When it reports false the caller still owns span.
func (c *conn) enqueueSpan(frame []byte, start int64, span trace.Span) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.s.cfg.SendQueue {
		c.closing, c.code, c.reason = true, websocket.StatusTryAgainLater, "too slow"
		c.dropping.Store(true)
		c.startWriterUnlock()
		return false
	}
	c.queue = append(c.queue, outItem{frame: frame, start: start, span: span})
	c.startWriterUnlock()
	return true
}

// queueFirst queues frame without starting the writer: the connection is
// not yet reachable by anyone else (registry.add).
func (c *conn) queueFirst(frame []byte) {
	c.mu.Lock()
	c.queue = append(c.queue, outItem{frame: frame})
	c.mu.Unlock()
}

// startWriter starts the writer unless it runs (registry.add, after
// queueFirst).
func (c *conn) startWriter() {
	c.mu.Lock()
	c.startWriterUnlock()
}

// startWriterUnlock starts the writer unless it runs (or has written the
// close), then unlocks c.mu, which the caller holds.
func (c *conn) startWriterUnlock() {
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writer()
	}
}

// requestClose asks the writer to close the connection with code. 1001
// writes the frames queued so far first; other codes drop them. The first
// request wins. It never blocks.
func (c *conn) requestClose(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.code, c.reason = true, code, reason
	c.dropping.Store(code != websocket.StatusGoingAway)
	c.startWriterUnlock()
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

func (c *conn) touch() { c.lastSeen.Store(c.s.mono(time.Now())) }

// ping sends one ping; its pong (through the reader) marks the connection alive.
func (c *conn) ping(timeout time.Duration) {
	if !c.pinging.CompareAndSwap(false, true) {
		return
	}
	defer c.pinging.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if c.ws.Ping(ctx) == nil {
		c.touch()
	}
}

// writer drains the queue, then exits; enqueue and requestClose start it
// again (startWriter), so an idle connection has no writer goroutine and
// holds no batch buffer. The frames of one batch leave in one write
// (stallConn's cork). A write stuck for chat.write_timeout ends with 1013
// (stallConn); so does a full queue, and the writer then stops at the next
// frame boundary and writes the close. The writer that writes the close (or
// meets a failed write) is the last: it closes writerDone, and writing stays
// set so that none starts after it.
func (c *conn) writer() {
	ws := c.ws
	var spare []outItem
	for {
		c.mu.Lock()
		batch := c.queue
		if len(batch) == 0 && !c.closing {
			c.queue = nil // idle: let the buffers go
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.queue = spare[:0]
		closing, code, reason := c.closing, c.code, c.reason
		c.mu.Unlock()

		if closing && code != websocket.StatusGoingAway {
			endWrites(batch, "dropped: connection closing")
			batch = batch[:0] // dropping: a slow or revoked connection gets nothing more
		}
		if !c.writeBatch(batch) {
			c.requestClose(websocket.StatusInternalError, "write failed")
			_ = ws.CloseNow()
			close(c.writerDone)
			return
		}
		clear(batch)
		if cap(batch) <= 64 {
			spare = batch[:0]
		} else {
			spare = nil // let a burst's buffer go
		}
		if closing {
			_ = ws.Close(code, reason)
			close(c.writerDone)
			return
		}
	}
}

// writeBatch writes batch's frames, in one write to the socket when they
// fit stallConn's cork, and reports whether every write succeeded. It stops
// early (reporting true) when the connection starts dropping meanwhile.
func (c *conn) writeBatch(batch []outItem) bool {
	if len(batch) == 0 {
		return true
	}
	c.sc.cork()
	n := 0
	for ; n < len(batch); n++ {
		if c.dropping.Load() {
			break // closing meanwhile (too slow, revoked): the close goes next
		}
		if err := c.ws.Write(context.Background(), websocket.MessageText, batch[n].frame); err != nil {
			_ = c.sc.uncork()
			endWrites(batch, "write failed")
			return false
		}
	}
	if err := c.sc.uncork(); err != nil {
		endWrites(batch, "write failed")
		return false
	}
	now := c.s.mono(time.Now())
	for i, it := range batch[:n] {
		if it.start != 0 {
			c.s.m.sendLatency.Observe(float64(now-it.start) / 1e9)
		}
		if it.span != nil {
			endWrite(it.span, "")
			batch[i].span = nil
		}
	}
	endWrites(batch[n:], "dropped: connection closing")
	return true
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readLoop reads client frames until the connection ends.
func (c *conn) readLoop() {
	for {
		typ, rd, err := c.ws.Reader(context.Background())
		if err != nil {
			c.requestClose(websocket.StatusNormalClosure, "")
			return
		}
		buf := bufPool.Get().(*bytes.Buffer)
		buf.Reset()
		if _, err := buf.ReadFrom(rd); err != nil {
			bufPool.Put(buf)
			if errors.Is(err, websocket.ErrMessageTooBig) {
				c.requestClose(websocket.StatusMessageTooBig, "frame too big")
			} else {
				c.requestClose(websocket.StatusNormalClosure, "")
			}
			return
		}
		now := c.s.mono(time.Now())
		c.lastSeen.Store(now)
		if typ != websocket.MessageText {
			c.sendError(nil, errTextFrames)
		} else if !utf8.Valid(buf.Bytes()) {
			// RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection with 1007.
			bufPool.Put(buf)
			c.requestClose(websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8")
			return
		} else {
			c.s.handleFrame(c, buf.Bytes(), now)
		}
		if buf.Cap() <= 64<<10 {
			bufPool.Put(buf)
		}
	}
}

// sendError answers the frame being read with e, after the answers of the
// sends still in flight (reader goroutine).
func (c *conn) sendError(ref *string, e *httpapi.Error) {
	c.answerInOrder(errorFrameBytes(ref, e))
}

var (
	errTextFrames  = badRequest("frames must be text")
	errNotJSON     = badRequest("the frame is not a valid JSON object")
	errSeqRequired = badRequest("seq is required")
	errUnknownType = badRequest("unknown frame type")
	errToRequired  = badRequest("to is required")
	errTypingSelf  = httpapi.Errorf(http.StatusBadRequest, httpapi.CodeCannotMessageSelf, "you cannot type to yourself")
)

// handleWS serves GET /ws.
func (s *Service) handleWS(w http.ResponseWriter, r *http.Request) {
	if !s.beginConn() {
		httpapi.WriteError(w, httpapi.ErrUnavailable)
		return
	}
	if !s.upgrade(w, r) {
		s.conns.Done()
	}
}

// upgrade authenticates and upgrades the request and, when it reports true,
// has handed the connection to its reader and writer goroutines (which call
// s.conns.Done when done). The HTTP handler then returns, so that its deep
// stack and the request are not kept for the life of the connection.
func (s *Service) upgrade(w http.ResponseWriter, r *http.Request) bool {
	me, _, herr := s.authenticate(r)
	if herr != nil {
		httpapi.WriteError(w, herr)
		return false
	}
	if origin := r.Header.Get("Origin"); origin != "" && !httpapi.OriginAllowed(r, origin, s.cfg.PublicOrigins) {
		// Browsers always send Origin; a client without one is not a browser
		// and cannot be the victim of cross-site WebSocket hijacking.
		httpapi.WriteError(w, httpapi.ErrForbidden)
		return false
	}
	addr := s.clientKey(r)
	if by := s.sockets.acquire(me.UserID, addr); by != "" {
		s.refusedBy("sockets_per_"+by, "user", me.UserID, "addr", addr)
		httpapi.WriteError(w, errTooManySockets(by))
		return false
	}
	ok := false
	defer func() {
		if !ok {
			s.sockets.release(me.UserID, addr)
		}
	}()
	user, herr := s.lookupUser(r.Context(), me.UserID)
	if herr == errNoSuchUser {
		herr = httpapi.ErrUnauthenticated // a valid token of a user who does not exist
	}
	if herr != nil {
		httpapi.WriteError(w, herr)
		return false
	}
	hello, err := json.Marshal(helloFrame{
		Type: "hello", User: httpapi.NewUser(user.ID, user.Username, user.DisplayName), Node: s.node, HeartbeatS: int(s.cfg.Heartbeat / time.Second),
		MaxTextBytes: s.cfg.MaxTextBytes, MaxAttachmentBytes: s.cfg.MaxAttachmentBytes,
	})
	if err != nil {
		httpapi.WriteError(w, httpapi.ErrInternal)
		return false
	}

	c := &conn{
		s: s, id: rand.Uint64() | 1, userID: me.UserID, sessionID: me.SessionID, expires: me.ExpiresAt,
		writerDone: make(chan struct{}),
	}
	ws, err := websocket.Accept(hijackWriter{ResponseWriter: w, c: c, timeout: s.cfg.WriteTimeout}, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // Origin checked above
		OnPingReceived:     func(context.Context, []byte) bool { c.touch(); return true },
		OnPongReceived:     func(context.Context, []byte) { c.touch() },
	})
	if err != nil {
		return false // Accept answered the request
	}
	ws.SetReadLimit(s.cfg.FrameLimit)
	c.ws = ws
	c.touch()
	c.lastPing = s.mono(time.Now())

	ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	err = s.hub.register(ctx, c, hello)
	cancel()
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Error("register connection", "err", err)
		}
		_ = ws.Close(websocket.StatusInternalError, "internal error")
		return false
	}
	// A revocation that raced the session check is seen here.
	if st, ok := s.sessions.get(c.sessionID, time.Now()); ok && st.revoked {
		c.requestClose(4001, "session revoked")
	}
	ok = true // the socket's count is released when its handler ends
	go func() {
		defer s.conns.Done()
		defer s.sockets.release(me.UserID, addr)
		c.readLoop()
		s.hub.unregister(c)
		<-c.writerDone
	}()
	return true
}

// handleFrame dispatches one client frame.
func (s *Service) handleFrame(c *conn, data []byte, start int64) {
	if c.isClosing() {
		return // revoked, expired, too slow or shutting down: nothing more is done for it
	}
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		c.sendError(nil, errNotJSON)
		return
	}
	ref := f.ClientMsgID
	if ref != nil && *ref == "" {
		ref = nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	defer cancel()
	switch f.Type {
	case "send", "edit", "delete", "react":
		s.wsSend(ctx, c, frameRequest(c, f), ref, start)
	case "received", "read":
		if f.Seq == nil {
			c.sendError(ref, errSeqRequired)
			return
		}
		kind := "read"
		if f.Type == "received" {
			kind = "delivered"
		}
		if herr := s.markPointer(ctx, c.userID, f.Peer, *f.Seq, kind); herr != nil {
			c.sendError(ref, herr)
		}
	case "typing":
		s.wsTyping(ctx, c, f, ref)
	default:
		c.sendError(ref, errUnknownType)
	}
}

func (s *Service) wsTyping(ctx context.Context, c *conn, f clientFrame, ref *string) {
	switch f.To {
	case "":
		c.sendError(ref, errToRequired)
		return
	case c.userID:
		c.sendError(ref, errTypingSelf)
		return
	}
	if !s.hub.typing.allow(c.userID, f.To, time.Now()) {
		return // rate limited: dropped silently, typing is ephemeral
	}
	if _, herr := s.lookupUser(ctx, f.To); herr != nil {
		c.sendError(ref, herr)
		return
	}
	if !s.mayType(ctx, c.userID, f.To) {
		return // not a contact, or a block: dropped silently, as the peer must not learn of it
	}
	env, err := eventEnvelope(typingFrame{Type: "typing", From: c.userID})
	if err != nil {
		return
	}
	s.publishTo(ctx, f.To, env)
}
