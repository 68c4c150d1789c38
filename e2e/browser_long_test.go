package e2e

// The web UI on a long conversation: 10,000 messages, opened and paged
// back through in a real Chromium, and the composer driven by keyboard.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/chatd/chatd/internal/apitest"
)

const (
	longMessages   = 10000 // messages seeded between alice and bob
	longSeeders    = 8     // goroutines seeding them
	longOlderPages = 8     // older pages to load by scrolling up: 850 rows if none were dropped
	longMaxRows    = 600   // bound on message rows in the DOM (the UI keeps ~300)
	longMaxText    = 4096  // api.md's limit on a message's text, in UTF-8 bytes
	anchorSlack    = 150   // px the row at the top may move while a page loads
)

// TestBrowserLongConversation opens a conversation of 10,000 messages
// and proves what the issue asks of the UI: it is smooth with that many
// (only a window of rows is in the DOM, the newest shown at once), history
// loads older pages on scroll up (rows stay bounded, in seq order, none
// missing or repeated, and the scroll position is kept), date separators,
// keyboard use (the list and the composer reached and used by keys only),
// and the composer's Enter / Shift+Enter and byte counter with the 4096
// byte limit refused in the UI. Timings are logged, never asserted.
func TestBrowserLongConversation(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	base := n.url()

	alice := apitest.SignUpAs(t, base, "alice", testPassword, "Alice Liddell")
	bob := apitest.SignUpAs(t, base, "bob", testPassword, "Bob Builder")
	carol := apitest.SignUpAs(t, base, "carol", testPassword, "Carol Danvers")
	// A short conversation (older than the long one, so it is listed second).
	var carolMsgs []apitest.Message
	for _, m := range []struct {
		from, to *apitest.User
		text     string
	}{{carol, alice, "Are you around today?"}, {alice, carol, "Yes, all day."}, {carol, alice, "Great, talk later."}} {
		carolMsgs = append(carolMsgs, restSend(t, m.from, m.to.ID, m.text))
	}

	start := time.Now()
	stored := seedLong(t, alice, bob, longMessages)
	t.Logf("seeded %d messages over REST with %d goroutines in %s", len(stored), longSeeders, time.Since(start).Round(time.Millisecond))
	newest := stored[len(stored)-1]
	index := make(map[int64]int, len(stored)) // seq → position in stored
	for i, m := range stored {
		index[m.Seq] = i
	}

	// Alice logs in with the form and opens the conversation with the
	// keyboard: from the search box, arrow down the list, Enter.
	p := b.newPage("alice")
	p.logInWithForm(base, "alice")
	p.waitSel("conversation with bob listed", fmt.Sprintf(`[data-testid="conversation-item"][data-peer=%q]`, bob.ID))
	p.watchRows()
	p.focusByArrows(bob.ID)
	opened := eval[float64](p, `performance.now()`)
	p.do("open with Enter", chromedp.KeyEvent(kb.Enter))
	p.waitJS("newest message visible", fmt.Sprintf(`(() => {
		const r = document.querySelector('[data-testid="message"][data-seq="%d"]');
		if (!r || r.querySelector('[data-testid="message-text"]').textContent !== %q) return false;
		const l = document.querySelector('[data-testid="message-list"]').getBoundingClientRect(), b = r.getBoundingClientRect();
		return b.bottom > l.top && b.top < l.bottom && b.height > 0;
	})()`, newest.Seq, newest.Text))
	t.Logf("opening the conversation: %.0f ms from Enter to the newest rows inserted", p.rowsAddedSince(opened))
	if path := eval[string](p, `location.pathname`); path != "/c/"+bob.ID {
		t.Errorf("path %q after opening, want /c/%s", path, bob.ID)
	}

	st := p.longState(bob.ID, 0)
	t.Logf("after opening: %d rows in the DOM, %d messages held", st.Rows, st.Held)
	checkWindow(t, "after opening", st, stored, index)
	if last := st.Seqs[len(st.Seqs)-1]; last != newest.Seq {
		t.Errorf("last row seq %d after opening, want the newest %d", last, newest.Seq)
	}
	if st.ScrollMax-st.ScrollTop > 48 {
		t.Errorf("log not at the bottom after opening: scrollTop %v of %v", st.ScrollTop, st.ScrollMax)
	}

	// Scroll to the top again and again: rows from memory, then older
	// pages from the server.
	pages := 0
	for step := 1; pages < longOlderPages; step++ {
		if step > 6*longOlderPages {
			t.Fatalf("only %d older pages loaded after %d scrolls to the top", pages, step-1)
		}
		// Scroll to the top and, in the same task (before the UI's scroll
		// handler runs), note the row at the top and where it is.
		before := eval[longStateT](p, `(() => {
			document.querySelector('[data-testid="message-list"]').scrollTop = 0;
			return `+longStateJS(bob.ID, 0)+`;
		})()`)
		p.waitJS(fmt.Sprintf("scroll %d: earlier rows", step), fmt.Sprintf(
			`(() => { const r = document.querySelector('[data-testid="message"][data-seq]'); return r && +r.dataset.seq < %d; })()`, before.TopSeq))
		took := p.rowsAddedSince(before.Now)
		after := p.longState(bob.ID, before.TopSeq)
		what := "rendered from memory"
		if after.Held > before.Held {
			pages++
			what = fmt.Sprintf("older page %d fetched (%d messages)", pages, after.Held-before.Held)
		}
		t.Logf("scroll %d to the top: %s, rows inserted %.0f ms after the scroll; rows %d, first seq %d, %d held, the top row moved %.1f px",
			step, what, took, after.Rows, after.Seqs[0], after.Held, after.AnchorY-before.TopY)
		label := fmt.Sprintf("scroll %d", step)
		checkWindow(t, label, after, stored, index)
		if !after.AnchorIn {
			t.Fatalf("%s: the row that was at the top (seq %d) left the DOM", label, before.TopSeq)
		}
		if d := after.AnchorY - before.TopY; d > anchorSlack || d < -anchorSlack {
			t.Fatalf("%s: the row that was at the top (seq %d) moved %.0f px (from %.0f to %.0f): scroll position not kept",
				label, before.TopSeq, d, before.TopY, after.AnchorY)
		}
		if after.ScrollTop <= 0 || after.ScrollMax-after.ScrollTop <= 48 {
			t.Fatalf("%s: scrollTop %v of %v: the view jumped to an edge", label, after.ScrollTop, after.ScrollMax)
		}
		if after.History != "more" {
			t.Errorf("%s: history-status %q, want more", label, after.History)
		}
	}
	// Paged back past the window: the way back to the newest is offered.
	p.waitJS("jump-to-latest shown", `!document.querySelector('[data-testid="jump-to-latest"]').hidden`)
	checkSeparators(t, p, bob.ID, stored[0].Seq)

	// The composer, by keyboard only: Tab from the message log reaches it
	// (past the jump-to-latest button).
	eval[bool](p, `document.querySelector('[data-testid="message-list"]').focus(), true`)
	for i := 0; !eval[bool](p, `document.activeElement === document.querySelector('[data-testid="composer"]')`); i++ {
		if i == 4 {
			t.Fatalf("Tab from the message log did not reach the composer (focus on %s)",
				eval[string](p, `document.activeElement.outerHTML.slice(0, 120)`))
		}
		p.do("Tab", chromedp.KeyEvent(kb.Tab))
	}
	p.do("type line one, Shift+Enter",
		chromedp.KeyEvent("line one"),
		chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierShift)))
	if v := p.composerValue(); v != "line one\n" {
		t.Fatalf("composer %q after Shift+Enter, want %q", v, "line one\n")
	}
	if c := p.counterState(); !c.Hidden {
		t.Errorf("byte counter shown for a short text: %+v", c)
	}
	p.do("type line two, Enter", chromedp.KeyEvent("line two"), chromedp.KeyEvent(kb.Enter))
	const twoLines = "line one\nline two"
	sent := p.waitBubble(twoLines)
	if sent.From != alice.ID {
		t.Errorf("two-line message from %q, want alice %q", sent.From, alice.ID)
	}
	if v := p.composerValue(); v != "" {
		t.Errorf("composer %q after Enter, want it cleared", v)
	}
	if got := newestMessages(t, bob, alice.ID, 1); len(got) != 1 || got[0].Text != twoLines || got[0].From != alice.ID || got[0].Seq != sent.Seq {
		t.Errorf("bob's newest message %+v, want %q from alice at seq %d", got, twoLines, sent.Seq)
	}
	// Sending jumped back to the newest messages, with bounded rows.
	st = p.longState(bob.ID, 0)
	if st.Rows > longMaxRows || st.Seqs[len(st.Seqs)-1] != sent.Seq {
		t.Errorf("after sending: %d rows, last seq %d (want ≤ %d rows, last %d)", st.Rows, st.Seqs[len(st.Seqs)-1], longMaxRows, sent.Seq)
	}

	// The byte counter: exactly at the limit it shows and allows sending;
	// past it, it shows "over" and the send is refused.
	insert := func(text string) {
		t.Helper()
		p.do("insert text", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: text})
			return err
		}))
	}
	insert(strings.Repeat("é", longMaxText/2)) // 2 bytes each
	p.waitSel("counter at the limit", fmt.Sprintf(`[data-testid="byte-counter"][data-bytes="%d"]`, longMaxText))
	if c := p.counterState(); c.Hidden || c.Over || c.SendDisabled || c.Invalid {
		t.Errorf("counter at exactly %d bytes: %+v, want shown, not over, send enabled", longMaxText, c)
	}
	insert("éé")
	long := strings.Repeat("é", longMaxText/2+2)
	p.waitSel("counter over the limit", fmt.Sprintf(`[data-testid="byte-counter"][data-bytes="%d"]`, len(long)))
	c := p.counterState()
	t.Logf("byte counter over the limit: %q, %+v", c.Text, c)
	if c.Hidden || !c.Over || !c.SendDisabled || !c.Invalid {
		t.Errorf("counter at %d bytes: %+v, want shown with class over, send disabled, composer aria-invalid", len(long), c)
	}
	p.do("Enter on the long text", chromedp.KeyEvent(kb.Enter))
	p.do("settle", chromedp.Evaluate[chromedp.Void](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))`, chromedp.EvalAwaitPromise))
	if v := p.composerValue(); v != long {
		t.Errorf("composer holds %d bytes after Enter on the over-long text, want it kept (%d)", len(v), len(long))
	}
	if n := eval[int](p, `document.querySelectorAll('[data-testid="message"]:not([data-seq])').length`); n != 0 {
		t.Errorf("%d pending rows after Enter on the over-long text, want none", n)
	}
	// Clear it with the keyboard and send another: it must come right
	// after the two-line one, so the over-long text never reached the server.
	p.do("select all, delete", chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)), chromedp.KeyEvent(kb.Backspace))
	if v := p.composerValue(); v != "" {
		t.Fatalf("composer holds %d bytes after Ctrl+A, Backspace", len(v))
	}
	if c := p.counterState(); !c.Hidden || c.Over || c.Invalid {
		t.Errorf("counter after clearing: %+v, want hidden", c)
	}
	p.do("type and send", chromedp.KeyEvent("after the long one"), chromedp.KeyEvent(kb.Enter))
	next := p.waitBubble("after the long one")
	got := newestMessages(t, bob, alice.ID, 2)
	if len(got) != 2 || got[0].Seq != sent.Seq || got[1].Seq != next.Seq || got[1].Text != "after the long one" {
		t.Errorf("bob's newest messages %+v, want seq %d %q then seq %d %q (nothing between)", got, sent.Seq, twoLines, next.Seq, "after the long one")
	}
	for _, m := range newestMessages(t, bob, alice.ID, 10) {
		if len(m.Text) > longMaxText {
			t.Errorf("a %d-byte message was stored (seq %d)", len(m.Text), m.Seq)
		}
	}

	// The log itself scrolls by keyboard: focused, PageUp moves it up.
	bottom := p.longState(bob.ID, 0)
	eval[bool](p, `document.querySelector('[data-testid="message-list"]').focus(), true`)
	p.do("PageUp", chromedp.KeyEvent(kb.PageUp))
	p.waitJS("log scrolled up by PageUp", fmt.Sprintf(`document.querySelector('[data-testid="message-list"]').scrollTop < %f`, bottom.ScrollTop-100))
	p.noErrorToasts()

	// Date separators: the short conversation (all of it today) starts
	// with one; opened by keyboard too.
	p.focusByArrows(carol.ID)
	p.do("open carol with Enter", chromedp.KeyEvent(kb.Enter))
	p.waitJS("carol's messages", fmt.Sprintf(`document.querySelector('[data-testid="conversation-view"]').dataset.peer === %q
		&& document.querySelectorAll('[data-testid="message"][data-seq]').length === %d`, carol.ID, len(carolMsgs)))
	p.waitSel("beginning of the conversation", `[data-testid="history-status"][data-state="start"]`)
	type sep struct {
		Seq   int64  `json:"seq"`
		Text  string `json:"text"`
		Today bool   `json:"today"`
	}
	seps := eval[[]sep](p, `[...document.querySelectorAll('[data-testid="message-list"] [data-testid="date-separator"]')].map(s => {
		const r = s.closest('[data-testid="message"]');
		const t = new Date(r.querySelector('time').getAttribute('datetime'));
		return {seq: +r.dataset.seq, text: s.textContent, today: t.toDateString() === new Date().toDateString()};
	})`)
	t.Logf("date separators in the short conversation: %+v", seps)
	if len(seps) == 0 {
		t.Fatalf("no date separator in a conversation of %d messages", len(carolMsgs))
	}
	if seps[0].Seq != carolMsgs[0].Seq {
		t.Errorf("first date separator on seq %d, want on the first message %d", seps[0].Seq, carolMsgs[0].Seq)
	}
	if seps[0].Today && seps[0].Text != "Today" {
		t.Errorf("date separator of today's messages reads %q, want Today", seps[0].Text)
	}
	checkSeparators(t, p, carol.ID, carolMsgs[0].Seq)
	p.noErrorToasts()
}

// seedLong stores count messages between a and b over REST, alternating
// senders, from longSeeders goroutines, and returns them sorted by seq.
func seedLong(t *testing.T, a, b *apitest.User, count int) []apitest.Message {
	t.Helper()
	out := make([]apitest.Message, count)
	jobs := make(chan int)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	// One keep-alive connection per goroutine for each user (the default
	// transport keeps only two idle, and 10,000 fresh connections would
	// leave as many sockets in TIME_WAIT).
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * longSeeders}
	defer tr.CloseIdleConnections()
	clients := map[*apitest.User]*http.Client{
		a: {Jar: a.HTTP.Jar, Transport: tr, Timeout: 30 * time.Second},
		b: {Jar: b.HTTP.Jar, Transport: tr, Timeout: 30 * time.Second},
	}
	for range longSeeders {
		wg.Go(func() {
			for i := range jobs {
				from, to := a, b
				if i%2 == 1 {
					from, to = b, a
				}
				m, err := postMessage(clients[from], from.Base, to.ID, fmt.Sprintf("message %05d from %s", i, from.Username), fmt.Sprintf("long-%05d", i))
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("message %d: %v", i, err))
				}
				mu.Unlock()
				out[i] = m
			}
		})
	}
	for i := range count {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d sends failed, first: %s", len(errs), count, errs[0])
	}
	slices.SortFunc(out, func(x, y apitest.Message) int { return int(x.Seq - y.Seq) })
	for i := 1; i < len(out); i++ {
		if out[i].Seq == out[i-1].Seq {
			t.Fatalf("seq %d given to two messages", out[i].Seq)
		}
	}
	return out
}

// postMessage is POST /api/messages with c (a user's cookie jar), safe to
// call from any goroutine: it returns what a test would fail on.
func postMessage(c *http.Client, base, to, text, cid string) (apitest.Message, error) {
	body, err := json.Marshal(map[string]string{"to": to, "text": text, "client_msg_id": cid})
	if err != nil {
		return apitest.Message{}, err
	}
	req, err := http.NewRequest("POST", base+"/api/messages", bytes.NewReader(body))
	if err != nil {
		return apitest.Message{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	if err != nil {
		return apitest.Message{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return apitest.Message{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return apitest.Message{}, fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	var out struct {
		Message apitest.Message `json:"message"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return apitest.Message{}, fmt.Errorf("decode %s: %w", data, err)
	}
	if out.Message.Text != text || out.Message.ClientMsgID != cid || out.Message.Seq <= 0 {
		return apitest.Message{}, fmt.Errorf("stored %+v for %q", out.Message, cid)
	}
	return out.Message, nil
}

// newestMessages is u's newest page of limit messages with peer.
func newestMessages(t *testing.T, u *apitest.User, peer string, limit int) []apitest.Message {
	t.Helper()
	r := u.Do("GET", fmt.Sprintf("/api/conversations/%s/messages?limit=%d", peer, limit), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("newest messages: %d %s", r.Status, r.Body)
	}
	var page struct {
		Messages []apitest.Message `json:"messages"`
	}
	r.JSON(t, &page)
	return page.Messages
}

// logInWithForm logs username in with the login form, submitted with
// Enter, and waits until the socket is online.
func (p *page) logInWithForm(base, username string) {
	p.t.Helper()
	p.do("log in "+username,
		chromedp.Navigate(base),
		chromedp.WaitVisible(tid("login-username")),
		chromedp.SendKeys(tid("login-username"), username),
		chromedp.SendKeys(tid("login-password"), testPassword+kb.Enter),
		chromedp.WaitVisible(tid("main-screen")),
	)
	p.waitOnline()
}

// focusByArrows moves the focus from the search box down the
// conversation list with ArrowDown until peer's item has it.
func (p *page) focusByArrows(peer string) {
	p.t.Helper()
	p.do("focus search", chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="user-search"]').focus()`))
	item := fmt.Sprintf(`document.activeElement && document.activeElement.matches('[data-testid="conversation-item"][data-peer=%q]')`, peer)
	for i := 0; !eval[bool](p, item); i++ {
		if i == 10 {
			p.failShot("arrow to " + peer)
			p.t.Fatalf("[%s] ArrowDown from the search box never focused the conversation with %s", p.name, peer)
		}
		p.do("ArrowDown", chromedp.KeyEvent(kb.ArrowDown))
	}
}

// watchRows records, in the page, when message rows are inserted in the
// log (for the timings logged; nothing asserts them).
func (p *page) watchRows() {
	p.t.Helper()
	eval[bool](p, `(() => {
		window.chatdTestAdds = [];
		new MutationObserver((ms) => {
			for (const m of ms) for (const n of m.addedNodes) {
				if (n.nodeType === 1 && n.matches('[data-testid="message"]')) return void window.chatdTestAdds.push(performance.now());
			}
		}).observe(document.querySelector('[data-testid="message-list"]'), {childList: true, subtree: true});
		return true;
	})()`)
}

// rowsAddedSince is how long after t0 (a performance.now() of the page)
// the first rows were inserted, in ms; -1 if none were.
func (p *page) rowsAddedSince(t0 float64) float64 {
	p.t.Helper()
	return eval[float64](p, fmt.Sprintf(`(() => { const t = window.chatdTestAdds.find((x) => x >= %f); return t === undefined ? -1 : t - %f; })()`, t0, t0))
}

func (p *page) composerValue() string {
	p.t.Helper()
	return eval[string](p, `document.querySelector('[data-testid="composer"]').value`)
}

// counter is what the composer's byte counter shows.
type counter struct {
	Hidden       bool   `json:"hidden"`
	Over         bool   `json:"over"`
	Bytes        string `json:"bytes"`
	Text         string `json:"text"`
	SendDisabled bool   `json:"sendDisabled"`
	Invalid      bool   `json:"invalid"`
}

func (p *page) counterState() counter {
	p.t.Helper()
	return eval[counter](p, `(() => {
		const c = document.querySelector('[data-testid="byte-counter"]');
		return {hidden: c.hidden || c.offsetParent === null, over: c.classList.contains('over'), bytes: c.dataset.bytes || '',
			text: c.textContent, sendDisabled: document.querySelector('[data-testid="send-button"]').disabled,
			invalid: document.querySelector('[data-testid="composer"]').getAttribute('aria-invalid') === 'true'};
	})()`)
}

// longStateT is the message log as the page shows it.
type longStateT struct {
	Seqs      []int64 `json:"seqs"`      // stored rows, top to bottom
	Rows      int     `json:"rows"`      // every message row, pending ones too
	ScrollTop float64 `json:"scrollTop"` // of the log
	ScrollMax float64 `json:"scrollMax"` // scrollHeight - clientHeight
	Held      int     `json:"held"`      // messages the page holds in memory
	TopSeq    int64   `json:"topSeq"`    // the first stored row
	TopY      float64 `json:"topY"`      // its top, relative to the log's
	AnchorIn  bool    `json:"anchorIn"`  // the anchor row is in the DOM
	AnchorY   float64 `json:"anchorY"`   // its top, relative to the log's
	History   string  `json:"history"`   // history-status data-state
	Now       float64 `json:"now"`       // performance.now() when taken
}

// longStateJS is a JS expression for the log's state, with the row of
// seq anchor located.
func longStateJS(peer string, anchor int64) string {
	return fmt.Sprintf(`(() => {
		const l = document.querySelector('[data-testid="message-list"]');
		const lt = l.getBoundingClientRect().top;
		const rows = [...l.querySelectorAll('[data-testid="message"][data-seq]')];
		const a = l.querySelector('[data-testid="message"][data-seq="%d"]');
		const c = window.chatd.store.conv(%q);
		return {
			seqs: rows.map(r => +r.dataset.seq), rows: l.querySelectorAll('[data-testid="message"]').length,
			scrollTop: l.scrollTop, scrollMax: l.scrollHeight - l.clientHeight, held: c ? c.msgs.length : 0,
			topSeq: rows.length ? +rows[0].dataset.seq : 0, topY: rows.length ? rows[0].getBoundingClientRect().top - lt : 0,
			anchorIn: !!a, anchorY: a ? a.getBoundingClientRect().top - lt : 0,
			history: document.querySelector('[data-testid="history-status"]').dataset.state || '',
			now: performance.now(),
		};
	})()`, anchor, peer)
}

func (p *page) longState(peer string, anchor int64) longStateT {
	p.t.Helper()
	return eval[longStateT](p, longStateJS(peer, anchor))
}

// checkWindow checks that the rows are bounded and are a run of stored
// messages: strictly increasing seqs, none repeated, none skipped.
func checkWindow(t *testing.T, when string, st longStateT, stored []apitest.Message, index map[int64]int) {
	t.Helper()
	if len(st.Seqs) == 0 {
		t.Fatalf("%s: no message rows", when)
	}
	if st.Rows > longMaxRows {
		t.Errorf("%s: %d message rows in the DOM, want ≤ %d", when, st.Rows, longMaxRows)
	}
	first, ok := index[st.Seqs[0]]
	if !ok {
		t.Fatalf("%s: row seq %d was never stored", when, st.Seqs[0])
	}
	for i, seq := range st.Seqs {
		if i > 0 && seq <= st.Seqs[i-1] {
			t.Fatalf("%s: rows out of order or repeated at %d: seq %d after %d", when, i, seq, st.Seqs[i-1])
		}
		if first+i >= len(stored) || stored[first+i].Seq != seq {
			t.Fatalf("%s: row %d has seq %d, want the stored message after seq %d", when, i, seq, st.Seqs[max(i-1, 0)])
		}
	}
}

// checkSeparators checks the date separators of the rows shown: one
// exactly on the conversation's first message (seq firstSeq) and on every
// row whose message is on another day than the one before it, none else.
func checkSeparators(t *testing.T, p *page, peer string, firstSeq int64) {
	t.Helper()
	type row struct {
		Seq  int64 `json:"seq"`
		Sep  bool  `json:"sep"`
		Want bool  `json:"want"`
	}
	rows := eval[[]row](p, fmt.Sprintf(`(() => {
		const c = window.chatd.store.conv(%q);
		const day = (iso) => new Date(iso).toDateString();
		const seqs = c.msgs.map(m => m.seq);
		return [...document.querySelectorAll('[data-testid="message-list"] [data-testid="message"][data-seq]')].map(r => {
			const seq = +r.dataset.seq, i = seqs.indexOf(seq);
			const want = seq === %d || (i > 0 && day(c.msgs[i-1].created_at) !== day(c.msgs[i].created_at));
			return {seq, sep: !!r.querySelector('[data-testid="date-separator"]'), want};
		});
	})()`, peer, firstSeq))
	for _, r := range rows {
		if r.Sep != r.Want {
			t.Errorf("row seq %d: date separator %v, want %v", r.Seq, r.Sep, r.Want)
		}
	}
}
