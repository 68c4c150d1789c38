//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatd/chatd/internal/apitest"
)

// The chaos load client. Each user is one client application with one
// WebSocket, written the way api.md asks clients to be written:
//
//   - It keeps, per conversation, the messages it holds keyed by seq and a
//     gap-free pointer (the highest seq up to which it holds every message):
//     a live message advances the pointer only when its seq is pointer+1.
//   - After every connect and reconnect, and on every `resync` frame, it runs
//     the catch-up rule: GET /api/conversations, then for each conversation
//     whose last_seq is above the pointer it pages `after=pointer` until
//     has_more is false, and moves the pointer to the last seq read.
//   - It never reads history for any other reason while the load runs, so a
//     gap that the server does not report stays a gap: the checks see it.
//
// Users come in pairs; one of each pair sends over its WebSocket (`send`),
// the other with POST /api/messages, each message with a fresh
// client_msg_id. A send that is not answered, or answered 503/429 (or 502/504
// by the gateway), is retried with the same client_msg_id after a pause,
// bounded in attempts and time.
//
// Counting (the CHAOS line and docs/reliability.md):
//   - sent: distinct client_msg_ids; acked: sends that got an ack or 2xx;
//     refused: sends whose last answer was an error code (by code);
//     unanswered: sends whose retries ran out without any answer.
//   - lost: acked sends that history does not hold exactly once with the
//     acked seq and id.
//   - unseen: acked sends whose recipient's client did not hold them when
//     the recovery wait ended.
//   - dup: messages a client would show twice: a (sender, client_msg_id)
//     held under two different seqs, or one seq delivered with two different
//     message ids. A seq delivered again with the same id (live and by
//     catch-up, say) is absorbed by keying by seq and is not shown twice; it
//     is counted as "redelivered", which is not a failure.
//   - phantom: sends the client was finally told were refused that history
//     nevertheless holds (the user sees "failed", the peer sees the message).
//   - recovery: from the end of the fault until the recipients held every
//     message acked up to the end of the fault; 0 when they held them all
//     before it ended; "-" when some acked message never reached its
//     recipient.

// loadConfig shapes one scenario's traffic.
type loadConfig struct {
	Pairs          int
	Rate           float64       // sends per second per user
	TextBytes      int           // message size
	AttemptTimeout time.Duration // one send attempt's wait for its answer
	RetryFor       time.Duration // retries stop this long after the first attempt
	MaxAttempts    int
	IPBase         int // users' loopback source addresses start at 127.0.<IPBase/254>.<…>
}

func defaultLoad() loadConfig {
	return loadConfig{Pairs: 20, Rate: 2, TextBytes: 64, AttemptTimeout: 15 * time.Second,
		RetryFor: 45 * time.Second, MaxAttempts: 60, IPBase: 2}
}

const chaosPassword = "tL9#vQ2-chaos-rig"

// sendRecord is one logical send (one client_msg_id) and its attempts.
type sendRecord struct {
	from, to *chaosUser
	cmid     string
	via      string // ws or rest
	first    time.Time
	attempts int
	errs     []string // the failure of each failed attempt

	mu      sync.Mutex
	acked   bool
	ackAt   time.Time
	msg     apitest.Message
	ackDiff bool   // a second answer named a different message
	final   string // acked, refused:<code>, unanswered
}

func (r *sendRecord) setAck(m apitest.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acked {
		if m.ID != r.msg.ID || m.Seq != r.msg.Seq {
			r.ackDiff = true
		}
		return
	}
	r.acked, r.ackAt, r.msg = true, time.Now(), m
	r.from.deliver(m, true) // the sender's client shows its own message from the ack
}

func (r *sendRecord) isAcked() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acked
}

// held is one message a client holds.
type held struct {
	id, from, cmid string
	at             time.Time // first delivery
	deliveries     int
	conflict       bool // the same seq came with another message id
}

type convState struct {
	pointer int64
	msgs    map[int64]*held
}

type wsReply struct {
	msg  *apitest.Message
	code string // error frame's code
}

// chaosUser is one client application.
type chaosUser struct {
	l       *chaosLoad
	api     *apitest.User
	name    string
	id      string
	rest    bool // sends with POST /api/messages; else WebSocket send
	peer    *chaosUser
	catchup chan struct{}

	mu         sync.Mutex
	conv       map[string]*convState // by peer id
	ws         *websocket.Conn
	wsGen      int
	wsDown     chan struct{} // closed when the current connection ends
	waiting    map[string]chan wsReply
	connects   int
	resyncs    int
	catchups   int
	catchErrs  int
	catchErr   string // the last catch-up failure
	closeCodes map[string]int
}

// chaosLoad is the traffic of one scenario.
type chaosLoad struct {
	t     *testing.T
	cfg   loadConfig
	base  string
	users []*chaosUser

	ctx     context.Context // ends at cleanup: connections and catch-up
	cancel  context.CancelFunc
	sending atomic.Bool
	sendWG  sync.WaitGroup
	bgWG    sync.WaitGroup

	mu       sync.Mutex
	records  []*sendRecord
	faultAt  time.Time
	faultEnd time.Time
}

// newChaosLoad signs up cfg.Pairs pairs on base, connects every user and
// waits until each has its hello and first catch-up.
func newChaosLoad(t *testing.T, base string, cfg loadConfig) *chaosLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &chaosLoad{t: t, cfg: cfg, base: base, ctx: ctx, cancel: cancel}
	t.Cleanup(l.close)
	tag := fmt.Sprintf("%04x", rand.IntN(1<<16))
	for i := range cfg.Pairs {
		a := l.newUser(fmt.Sprintf("c%s%02da", tag, i), 2*i, false)
		b := l.newUser(fmt.Sprintf("c%s%02db", tag, i), 2*i+1, true)
		a.peer, b.peer = b, a
	}
	for _, u := range l.users {
		l.bgWG.Add(2)
		go u.connLoop()
		go u.catchupLoop()
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, u := range l.users {
		for u.connectCount() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not connect within 60s", u.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return l
}

func (l *chaosLoad) newUser(name string, n int, rest bool) *chaosUser {
	k := l.cfg.IPBase + n
	ip := fmt.Sprintf("127.0.%d.%d", 1+k/250, 2+k%250)
	api := apitest.SignUpFrom(l.t, l.base, name, chaosPassword, ip)
	api.HTTP.Timeout = 0 // every request has its own deadline
	u := &chaosUser{l: l, api: api, name: name, id: api.ID, rest: rest,
		catchup: make(chan struct{}, 1), conv: map[string]*convState{},
		waiting: map[string]chan wsReply{}, closeCodes: map[string]int{}}
	l.users = append(l.users, u)
	return u
}

func (l *chaosLoad) close() {
	l.sending.Store(false)
	l.cancel()
	l.bgWG.Wait()
}

// startSending starts every user's sender.
func (l *chaosLoad) startSending() {
	l.sending.Store(true)
	for _, u := range l.users {
		l.sendWG.Add(1)
		go u.sendLoop()
	}
}

// stopSending stops new sends and waits for those in flight to finish their
// retries (bounded by RetryFor).
func (l *chaosLoad) stopSending() {
	l.sending.Store(false)
	l.sendWG.Wait()
}

func (l *chaosLoad) markFault()    { l.mu.Lock(); l.faultAt = time.Now(); l.mu.Unlock() }
func (l *chaosLoad) markFaultEnd() { l.mu.Lock(); l.faultEnd = time.Now(); l.mu.Unlock() }

// --- connection, frames, catch-up ---

func (u *chaosUser) connectCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.connects
}

func (u *chaosUser) connLoop() {
	defer u.l.bgWG.Done()
	backoff := 100 * time.Millisecond
	for u.l.ctx.Err() == nil {
		if err := u.connectOnce(); err != nil {
			select {
			case <-u.l.ctx.Done():
				return
			case <-time.After(backoff + time.Duration(rand.Int64N(int64(backoff)))):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// connectOnce dials, serves one connection until it ends, and returns nil,
// or the dial's error.
func (u *chaosUser) connectOnce() error {
	h := http.Header{"Origin": {u.api.Base}}
	dctx, cancel := context.WithTimeout(u.l.ctx, 10*time.Second)
	ws, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(u.api.Base, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: h, HTTPClient: u.api.HTTP})
	cancel()
	if err != nil {
		return err
	}
	ws.SetReadLimit(1 << 20)
	defer ws.CloseNow()
	// The first frame is hello: from then on the connection gets every event.
	hctx, cancel := context.WithTimeout(u.l.ctx, 10*time.Second)
	_, data, err := ws.Read(hctx)
	cancel()
	var f struct {
		Type string `json:"type"`
	}
	if err != nil || json.Unmarshal(data, &f) != nil || f.Type != "hello" {
		return fmt.Errorf("no hello: %v", err)
	}
	down := make(chan struct{})
	u.mu.Lock()
	u.ws, u.wsDown = ws, down
	u.wsGen++
	u.connects++
	u.mu.Unlock()
	u.requestCatchup()
	err = u.readLoop(ws)
	u.mu.Lock()
	code := websocket.CloseStatus(err)
	u.closeCodes[fmt.Sprint(code)]++
	u.ws = nil
	close(down)
	u.mu.Unlock()
	return nil
}

func (u *chaosUser) readLoop(ws *websocket.Conn) error {
	for {
		_, data, err := ws.Read(u.l.ctx)
		if err != nil {
			return err
		}
		var f struct {
			Type        string          `json:"type"`
			ClientMsgID string          `json:"client_msg_id"`
			Message     apitest.Message `json:"message"`
			Ref         *string         `json:"ref"`
			Error       struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			continue
		}
		switch f.Type {
		case "message":
			u.deliver(f.Message, true)
		case "ack":
			m := f.Message
			u.reply(f.ClientMsgID, wsReply{msg: &m})
		case "error":
			if f.Ref != nil {
				u.reply(*f.Ref, wsReply{code: f.Error.Code})
			}
		case "resync":
			u.mu.Lock()
			u.resyncs++
			u.mu.Unlock()
			u.requestCatchup()
		}
	}
}

func (u *chaosUser) reply(cmid string, r wsReply) {
	u.mu.Lock()
	ch := u.waiting[cmid]
	u.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
}

func (u *chaosUser) requestCatchup() {
	select {
	case u.catchup <- struct{}{}:
	default:
	}
}

func (u *chaosUser) catchupLoop() {
	defer u.l.bgWG.Done()
	for {
		select {
		case <-u.l.ctx.Done():
			return
		case <-u.catchup:
		}
		// Retried until it succeeds: a client keeps trying to close its gap.
		for u.l.ctx.Err() == nil {
			err := u.catchUp()
			if err == nil {
				break
			}
			u.mu.Lock()
			u.catchErrs++
			u.catchErr = err.Error()[:min(len(err.Error()), 200)]
			u.mu.Unlock()
			select {
			case <-u.l.ctx.Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
}

// catchUp is api.md's catch-up rule.
func (u *chaosUser) catchUp() error {
	var list struct {
		Conversations []struct {
			Peer struct {
				ID string `json:"id"`
			} `json:"peer"`
			LastSeq int64 `json:"last_seq"`
		} `json:"conversations"`
	}
	if err := u.getJSON("/api/conversations", &list); err != nil {
		return err
	}
	for _, c := range list.Conversations {
		u.mu.Lock()
		from := u.convOf(c.Peer.ID).pointer
		u.mu.Unlock()
		if c.LastSeq <= from {
			continue
		}
		after := from
		for range 10000 {
			var page struct {
				Messages []apitest.Message `json:"messages"`
				HasMore  bool              `json:"has_more"`
			}
			path := fmt.Sprintf("/api/conversations/%s/messages?after=%d&limit=200", url.PathEscape(c.Peer.ID), after)
			if err := u.getJSON(path, &page); err != nil {
				return err
			}
			for _, m := range page.Messages {
				u.deliver(m, false)
				after = max(after, m.Seq)
			}
			if !page.HasMore || len(page.Messages) == 0 {
				break
			}
		}
		u.mu.Lock()
		cs := u.convOf(c.Peer.ID)
		cs.pointer = max(cs.pointer, after)
		cs.advance()
		u.mu.Unlock()
	}
	u.mu.Lock()
	u.catchups++
	u.mu.Unlock()
	return nil
}

func (u *chaosUser) getJSON(path string, v any) error {
	ctx, cancel := context.WithTimeout(u.l.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u.api.Base+path, nil)
	if err != nil {
		return err
	}
	resp, err := u.api.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

func (u *chaosUser) convOf(peer string) *convState {
	c := u.conv[peer]
	if c == nil {
		c = &convState{msgs: map[int64]*held{}}
		u.conv[peer] = c
	}
	return c
}

func (c *convState) advance() {
	for c.msgs[c.pointer+1] != nil {
		c.pointer++
	}
}

// deliver is the client taking in one message, live or by catch-up.
func (u *chaosUser) deliver(m apitest.Message, live bool) {
	peer := m.From
	if peer == u.id {
		peer = m.To
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.convOf(peer)
	if h := c.msgs[m.Seq]; h != nil {
		h.deliveries++
		if h.id != m.ID {
			h.conflict = true
		}
		return
	}
	c.msgs[m.Seq] = &held{id: m.ID, from: m.From, cmid: m.ClientMsgID, at: time.Now(), deliveries: 1}
	if live && m.Seq == c.pointer+1 {
		c.advance()
	}
}

// holds reports when u's client first held seq of its conversation with
// peer under message id.
func (u *chaosUser) holds(peer string, seq int64, id string) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.conv[peer]
	if c == nil {
		return time.Time{}, false
	}
	h := c.msgs[seq]
	if h == nil || h.id != id {
		return time.Time{}, false
	}
	return h.at, true
}

// state describes u's client for a failure message.
func (u *chaosUser) state(peer string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.convOf(peer)
	var top int64
	for s := range c.msgs {
		top = max(top, s)
	}
	return fmt.Sprintf("connects %d, resyncs %d, catch-ups %d (failed %d, last %q), pointer %d, holds %d up to seq %d",
		u.connects, u.resyncs, u.catchups, u.catchErrs, u.catchErr, c.pointer, len(c.msgs), top)
}

// --- sending ---

func (u *chaosUser) sendLoop() {
	defer u.l.sendWG.Done()
	period := time.Duration(float64(time.Second) / u.l.cfg.Rate)
	next := time.Now().Add(time.Duration(rand.Int64N(int64(period))))
	for n := 0; ; n++ {
		time.Sleep(time.Until(next))
		if !u.l.sending.Load() {
			return
		}
		u.sendOne(fmt.Sprintf("%s-%d", u.name, n))
		next = next.Add(period)
		if now := time.Now(); next.Before(now) {
			next = now // a slow send does not make a burst afterwards
		}
	}
}

func (u *chaosUser) sendOne(cmid string) {
	text := fmt.Sprintf("%s %s", cmid, strings.Repeat("x", max(0, u.l.cfg.TextBytes-len(cmid)-1)))
	r := &sendRecord{from: u, to: u.peer, cmid: cmid, via: "ws", first: time.Now()}
	if u.rest {
		r.via = "rest"
	}
	u.l.mu.Lock()
	u.l.records = append(u.l.records, r)
	u.l.mu.Unlock()
	var ch chan wsReply
	if !u.rest {
		ch = make(chan wsReply, 4)
		u.mu.Lock()
		u.waiting[cmid] = ch
		u.mu.Unlock()
		defer func() {
			u.mu.Lock()
			delete(u.waiting, cmid)
			u.mu.Unlock()
		}()
	}
	pause := 200 * time.Millisecond
	lastCode := ""
	for r.attempts < u.l.cfg.MaxAttempts && time.Since(r.first) < u.l.cfg.RetryFor && u.l.ctx.Err() == nil {
		r.attempts++
		var code string
		var retry bool
		if u.rest {
			code, retry = u.restAttempt(r, text)
		} else {
			code, retry = u.wsAttempt(r, ch, text)
		}
		if code == "" {
			r.final = "acked"
			return
		}
		r.errs = append(r.errs, code)
		if !strings.HasPrefix(code, "no_answer") {
			lastCode = code
		}
		if !retry {
			r.final = "refused:" + code
			return
		}
		time.Sleep(pause + time.Duration(rand.Int64N(int64(pause))))
		pause = min(2*pause, 2*time.Second)
	}
	if lastCode != "" {
		r.final = "refused:" + lastCode
	} else {
		r.final = "unanswered"
	}
}

// retryable reports whether api.md lets a client try the same send again.
func retryable(code string) bool {
	switch code {
	case "unavailable", "rate_limited", "internal", "http_502", "http_504":
		return true
	}
	return strings.HasPrefix(code, "no_answer")
}

// restAttempt returns "" on success, or the failure and whether to retry.
func (u *chaosUser) restAttempt(r *sendRecord, text string) (string, bool) {
	body, _ := json.Marshal(map[string]string{"to": r.to.id, "text": text, "client_msg_id": r.cmid})
	ctx, cancel := context.WithTimeout(u.l.ctx, u.l.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", u.api.Base+"/api/messages", bytes.NewReader(body))
	if err != nil {
		return "no_answer:" + err.Error(), true
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", u.api.Base)
	resp, err := u.api.HTTP.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "no_answer:timeout", true
		}
		return "no_answer:conn", true
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return "no_answer:body", true
	}
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
		var out struct {
			Message apitest.Message `json:"message"`
		}
		if err := json.Unmarshal(data, &out); err != nil || out.Message.Seq == 0 {
			return fmt.Sprintf("bad_answer_%d", resp.StatusCode), false
		}
		r.setAck(out.Message)
		return "", false
	}
	code := (apitest.Response{Body: data}).ErrorCode()
	if code == "" {
		code = fmt.Sprintf("http_%d", resp.StatusCode)
	}
	return code, retryable(code)
}

// wsAttempt writes the send on the current connection and waits for its
// ack or error; a connection that ends first counts as no answer.
func (u *chaosUser) wsAttempt(r *sendRecord, ch chan wsReply, text string) (string, bool) {
	deadline := time.Now().Add(u.l.cfg.AttemptTimeout)
	var ws *websocket.Conn
	var down chan struct{}
	for {
		u.mu.Lock()
		ws, down = u.ws, u.wsDown
		u.mu.Unlock()
		if ws != nil {
			break
		}
		if time.Now().After(deadline) || u.l.ctx.Err() != nil {
			return "no_answer:disconnected", true
		}
		time.Sleep(50 * time.Millisecond)
	}
	frame, _ := json.Marshal(map[string]string{"type": "send", "to": r.to.id, "text": text, "client_msg_id": r.cmid})
	ctx, cancel := context.WithDeadline(u.l.ctx, deadline)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
		return "no_answer:write", true
	}
	select {
	case rep := <-ch:
		if rep.msg != nil {
			r.setAck(*rep.msg)
			return "", false
		}
		return rep.code, retryable(rep.code)
	case <-down:
		// An answer may still have been read just before the end.
		select {
		case rep := <-ch:
			if rep.msg != nil {
				r.setAck(*rep.msg)
				return "", false
			}
			return rep.code, retryable(rep.code)
		default:
		}
		return "no_answer:closed", true
	case <-ctx.Done():
		return "no_answer:timeout", true
	}
}

// --- results ---

// chaosResult is what one scenario measured.
type chaosResult struct {
	Scenario    string
	Sent        int
	Acked       int
	Refused     map[string]int // final code → sends
	Unanswered  int
	Lost        int // acked, not stored exactly once as acked
	Unseen      int // acked, stored, never held by the recipient's client
	Dup         int
	Phantom     int
	AckDiff     int // a retry acked with a different message
	Redelivered int
	Retries     int            // attempts beyond the first
	AttemptErrs map[string]int // failures of attempts, by kind
	Connects    int
	Resyncs     int
	CloseCodes  map[string]int
	Recovery    time.Duration // -1: never
	LatP50      time.Duration // first attempt → held by the recipient, acked sends
	LatP99      time.Duration
	HistoryBad  []string // order or uniqueness problems in history
	Details     []string // the first few failures, for the test log
}

func (r *chaosResult) errors() int {
	n := r.Unanswered
	for _, v := range r.Refused {
		n += v
	}
	return n
}

func (r *chaosResult) line() string {
	rec := "-"
	if r.Recovery >= 0 {
		rec = r.Recovery.Round(10 * time.Millisecond).String()
	}
	return fmt.Sprintf("CHAOS scenario=%s sent=%d acked=%d lost=%d unseen=%d dup=%d errors=%d phantom=%d recovery=%s lat_p50=%s lat_p99=%s retries=%d connects=%d resyncs=%d refused=%s attempt_errors=%s closes=%s",
		r.Scenario, r.Sent, r.Acked, r.Lost, r.Unseen, r.Dup, r.errors(), r.Phantom, rec, r.LatP50.Round(time.Millisecond), r.LatP99.Round(time.Millisecond), r.Retries, r.Connects, r.Resyncs,
		countStr(r.Refused, r.Unanswered), countStr(r.AttemptErrs, 0), countStr(r.CloseCodes, 0))
}

func countStr(m map[string]int, unanswered int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v))
	}
	if unanswered > 0 {
		parts = append(parts, fmt.Sprintf("unanswered:%d", unanswered))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// finish stops sending, waits up to recoverWithin for every acked message
// to reach its recipient, reads history and returns the figures. It logs
// the CHAOS line.
func (l *chaosLoad) finish(name string, recoverWithin time.Duration) *chaosResult {
	l.t.Helper()
	l.stopSending()
	l.mu.Lock()
	records := slices.Clone(l.records)
	faultAt, faultEnd := l.faultAt, l.faultEnd
	l.mu.Unlock()
	if faultEnd.IsZero() {
		faultEnd = time.Now()
	}

	// The recovery wait: only the clients' own live delivery and catch-up.
	deadline := time.Now().Add(recoverWithin)
	for {
		missing := 0
		for _, r := range records {
			if r.isAcked() {
				if _, ok := r.to.holds(r.from.id, r.msg.Seq, r.msg.ID); !ok {
					missing++
				}
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	res := &chaosResult{Scenario: name, Refused: map[string]int{}, AttemptErrs: map[string]int{}, CloseCodes: map[string]int{}}
	detail := func(format string, a ...any) {
		if len(res.Details) < 10 {
			res.Details = append(res.Details, fmt.Sprintf(format, a...))
		}
	}
	recovered := faultEnd
	neverRecovered := false
	var lats []time.Duration
	for _, r := range records {
		res.Sent++
		res.Retries += r.attempts - 1
		for _, e := range r.errs {
			k, _, _ := strings.Cut(e, ":")
			if k == "no_answer" {
				k = e
			}
			res.AttemptErrs[strings.ReplaceAll(k, ":", "_")]++
		}
		if r.ackDiff {
			res.AckDiff++
			detail("%s: two answers named different messages", r.cmid)
		}
		switch r.final {
		case "acked":
			res.Acked++
			at, ok := r.to.holds(r.from.id, r.msg.Seq, r.msg.ID)
			if !ok {
				res.Unseen++
				detail("%s via %s (seq %d, first attempt at fault%+.2fs, acked at fault%+.2fs after %d attempts %v) never reached %s (%s)",
					r.cmid, r.via, r.msg.Seq, r.first.Sub(faultAt).Seconds(), r.ackAt.Sub(faultAt).Seconds(), r.attempts, r.errs, r.to.name, r.to.state(r.from.id))
				if !r.ackAt.After(faultEnd) {
					neverRecovered = true
				}
			} else {
				lats = append(lats, at.Sub(r.first))
				if !r.ackAt.After(faultEnd) && at.After(recovered) {
					recovered = at
				}
			}
		case "unanswered":
			res.Unanswered++
		default:
			res.Refused[strings.TrimPrefix(r.final, "refused:")]++
		}
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		res.LatP50, res.LatP99 = lats[len(lats)/2], lats[len(lats)*99/100]
	}
	res.Recovery = recovered.Sub(faultEnd)
	if neverRecovered || res.Unseen > 0 {
		res.Recovery = -1
	}

	// History: every acked send stored exactly once, as acked, in seq order.
	byConv := map[*chaosUser][]*sendRecord{}
	for _, r := range records {
		a := r.from
		if a.rest {
			a = a.peer // the pair's WebSocket user reads the pair's history
		}
		byConv[a] = append(byConv[a], r)
	}
	for _, u := range l.users {
		if u.rest {
			continue
		}
		hist, err := l.history(u)
		if err != nil {
			res.HistoryBad = append(res.HistoryBad, fmt.Sprintf("%s: %v", u.name, err))
			continue
		}
		stored := map[string][]apitest.Message{}
		ids := map[string]bool{}
		for i, m := range hist {
			if ids[m.ID] {
				res.HistoryBad = append(res.HistoryBad, fmt.Sprintf("%s: message %s twice", u.name, m.ID))
			}
			ids[m.ID] = true
			if i > 0 && m.Seq <= hist[i-1].Seq {
				res.HistoryBad = append(res.HistoryBad, fmt.Sprintf("%s: seq %d after %d", u.name, m.Seq, hist[i-1].Seq))
			}
			stored[m.From+"/"+m.ClientMsgID] = append(stored[m.From+"/"+m.ClientMsgID], m)
		}
		for _, r := range byConv[u] {
			got := stored[r.from.id+"/"+r.cmid]
			switch {
			case r.final == "acked":
				if len(got) != 1 || got[0].ID != r.msg.ID || got[0].Seq != r.msg.Seq {
					res.Lost++
					detail("%s acked as seq %d, stored %d times", r.cmid, r.msg.Seq, len(got))
				}
			case strings.HasPrefix(r.final, "refused:") && len(got) > 0:
				res.Phantom++
				detail("%s refused (%s) but stored as seq %d", r.cmid, r.final, got[0].Seq)
			}
			if len(got) > 1 {
				res.Dup += len(got) - 1
				detail("%s stored %d times", r.cmid, len(got))
			}
		}
	}

	// What the clients hold: nothing shown twice.
	for _, u := range l.users {
		u.mu.Lock()
		res.Connects += u.connects
		res.Resyncs += u.resyncs
		for k, v := range u.closeCodes {
			res.CloseCodes[k] += v
		}
		for _, c := range u.conv {
			seqsOf := map[string]int{}
			for _, h := range c.msgs {
				res.Redelivered += h.deliveries - 1
				if h.conflict {
					res.Dup++
				}
				seqsOf[h.from+"/"+h.cmid]++
			}
			for k, n := range seqsOf {
				if n > 1 {
					res.Dup += n - 1
					if len(res.Details) < 10 {
						res.Details = append(res.Details, fmt.Sprintf("%s holds %s under %d seqs", u.name, k, n))
					}
				}
			}
		}
		u.mu.Unlock()
	}
	l.t.Log(res.line())
	for _, d := range res.Details {
		l.t.Log("  " + d)
	}
	return res
}

// history reads u's whole conversation with its peer, retrying briefly.
func (l *chaosLoad) history(u *chaosUser) ([]apitest.Message, error) {
	var err error
	for range 20 {
		var all []apitest.Message
		after := int64(0)
		for range 10000 {
			var page struct {
				Messages []apitest.Message `json:"messages"`
				HasMore  bool              `json:"has_more"`
			}
			if err = u.getJSON(fmt.Sprintf("/api/conversations/%s/messages?after=%d&limit=200", url.PathEscape(u.peer.id), after), &page); err != nil {
				break
			}
			all = append(all, page.Messages...)
			if !page.HasMore || len(page.Messages) == 0 {
				return all, nil
			}
			after = page.Messages[len(page.Messages)-1].Seq
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil, err
}

// expect holds what a scenario requires beyond the common checks.
type expect struct {
	noErrors bool // every send acked: not one final refusal
}

// check fails the test on any broken promise: lost, unseen, duplicated,
// phantom, a send finally unanswered or refused without a clear code.
func (r *chaosResult) check(t *testing.T, e expect) {
	t.Helper()
	if r.Acked == 0 {
		t.Errorf("%s: nothing was acked", r.Scenario)
	}
	if r.Lost > 0 || r.Dup > 0 || r.AckDiff > 0 || r.Phantom > 0 || len(r.HistoryBad) > 0 {
		t.Errorf("%s: lost %d, duplicated %d, acked differently %d, refused but stored %d, history %v",
			r.Scenario, r.Lost, r.Dup, r.AckDiff, r.Phantom, r.HistoryBad)
	}
	if r.Unseen > 0 {
		t.Errorf("%s: %d acked messages never reached their recipient", r.Scenario, r.Unseen)
	}
	if r.Unanswered > 0 {
		t.Errorf("%s: %d sends were never answered within their retries", r.Scenario, r.Unanswered)
	}
	for code, n := range r.Refused {
		if code != "unavailable" && code != "rate_limited" {
			t.Errorf("%s: %d sends refused with %q, not a documented temporary refusal", r.Scenario, n, code)
		}
	}
	if e.noErrors && r.errors() > 0 {
		t.Errorf("%s: %d sends failed, want none", r.Scenario, r.errors())
	}
}
