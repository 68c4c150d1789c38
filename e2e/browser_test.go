package e2e

// Browser tests: the embedded web UI (ui/README.md) driven in a real
// headless Chromium against chatd run as real processes. Each user is a
// separate, isolated browser context (its own cookies, storage and Web
// Locks) of one Chromium per test. Nothing here asserts a duration: every
// wait is for a DOM condition, with a generous deadline.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"

	"github.com/chatd/chatd/internal/apitest"
)

// waitLimit bounds every wait for a DOM condition. It is far above what
// any step needs; it only turns a hang into a failure with a screenshot.
const waitLimit = 30 * time.Second

// testPassword is the password of every account made in the browser.
const testPassword = "correct-horse-battery"

// chromiumPath finds Chromium, or skips (fails on CI) when it is missing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found: the browser tests need it on CI (run make testdeps)")
	}
	t.Skip("chromium not found: run make testdeps")
	return ""
}

// artifactDir is where screenshots go: $CHATD_TEST_ARTIFACTS, else
// <repo>/test-artifacts/screenshots (git-ignored).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CHATD_TEST_ARTIFACTS")
	if dir == "" {
		repo, err := filepath.Abs("..")
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(repo, "test-artifacts", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium for one test.
type browser struct {
	t   *testing.T
	ctx context.Context // the first tab: it owns the process
}

// startBrowser starts Chromium with a fresh profile; the test's cleanup
// closes it.
func startBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	path := chromiumPath(t)
	profile, err := os.MkdirTemp("", "chatd-chromium")
	if err != nil {
		t.Fatal(err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
	}, extra...)...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(cctx)
		cancelBrowser()
		cancelAlloc()
		_ = os.RemoveAll(profile)
	})
	// The first Run starts the process.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx}
}

// page is one user's tab in a browser context of its own.
type page struct {
	t      *testing.T
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	closed bool

	mu       sync.Mutex
	problems []string // uncaught JS errors, CSP violations: fail the test
	logs     []string // console and browser log, shown when the test fails
	nodes    []string // hello.node of every WebSocket connection, in order
	wsURLs   []string // the URL of every WebSocket the page opened, in order

	swRegs map[string]string // service worker scope URL → registration id (after ServiceWorker.enable); guarded by mu
}

// newPage opens a tab for name in a new, isolated browser context, with
// focus emulation on (so that a page counts as read while it is shown) and
// a desktop viewport.
func (b *browser) newPage(name string) *page {
	t := b.t
	t.Helper()
	p := &page{t: t, name: name}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(p.onEvent))
	p.ctx, p.cancel = ctx, cancel
	t.Cleanup(func() {
		p.close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, s := range p.problems {
			t.Errorf("[%s] %s", p.name, s)
		}
		if t.Failed() {
			for _, s := range p.logs {
				t.Logf("[%s] %s", p.name, s)
			}
		}
	})
	// The first Run must get p.ctx itself: the tab lives as long as the
	// context of its first Run.
	err := chromedp.Do(p.ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
			return err
		}),
		chromedp.EmulateViewport(1280, 800),
	)
	if err != nil {
		t.Fatalf("[%s] open tab: %v", name, err)
	}
	return p
}

// close closes the tab (and its browser context), as a user closing it.
func (p *page) close() {
	if p.closed {
		return
	}
	p.closed = true
	p.cancel()
}

// onEvent runs on chromedp's reader goroutine: it only records.
func (p *page) onEvent(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.logs) > 300 { // keep the end, which is what a failure needs
		p.logs = append(p.logs[:0], p.logs[len(p.logs)-200:]...)
	}
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		p.problems = append(p.problems, fmt.Sprintf("uncaught JS error at %s:%d: %s", d.URL, d.LineNumber, msg))
	case *cdplog.EventEntryAdded:
		p.logs = append(p.logs, fmt.Sprintf("browser %s: %s %s", e.Entry.Level, e.Entry.Text, e.Entry.URL))
		if strings.Contains(e.Entry.Text, "Content Security Policy") {
			p.problems = append(p.problems, "CSP violation: "+e.Entry.Text)
		}
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range e.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		p.logs = append(p.logs, fmt.Sprintf("console.%s %s", e.Type, strings.Join(parts, " ")))
	case *serviceworker.EventWorkerRegistrationUpdated:
		if p.swRegs == nil {
			p.swRegs = map[string]string{}
		}
		for _, r := range e.Registrations {
			if !r.IsDeleted {
				p.swRegs[r.ScopeURL] = string(r.RegistrationID)
			}
		}
	case *network.EventWebSocketClosed:
		p.logs = append(p.logs, "ws closed "+string(e.RequestID))
	case *network.EventWebSocketCreated:
		p.logs = append(p.logs, "ws created "+string(e.RequestID)+" "+e.URL)
		p.wsURLs = append(p.wsURLs, e.URL)
	case *network.EventWebSocketFrameReceived:
		if e.Response == nil || e.Response.Opcode != 1 {
			return
		}
		var f struct {
			Type string `json:"type"`
			Node string `json:"node"`
		}
		p.logs = append(p.logs, "ws frame: "+string(e.Response.PayloadData))
		if json.Unmarshal(e.Response.PayloadData, &f) == nil && f.Type == "hello" {
			p.nodes = append(p.nodes, f.Node)
		}
	}
}

// helloNodes returns the node of every hello the page received so far.
func (p *page) helloNodes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.nodes)
}

// waitHello waits until the page has received n hello frames.
func (p *page) waitHello(n int) {
	p.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for len(p.helloNodes()) < n {
		if time.Now().After(deadline) {
			p.failShot("hello")
			p.t.Fatalf("[%s] no hello number %d within %s", p.name, n, waitLimit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do runs actions; on an error it saves a screenshot and fails the test.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitLimit)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.failShot(what)
		p.t.Fatalf("[%s] %s: %v", p.name, what, err)
	}
}

// eval evaluates js in the page and decodes its value.
func eval[T any](p *page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitLimit)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.failShot("eval")
		p.t.Fatalf("[%s] eval %s: %v", p.name, js, err)
	}
	return v
}

// waitJS waits until the JavaScript expression cond is true.
func (p *page) waitJS(what, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitLimit)
	defer cancel()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		if err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			p.failShot(what)
			p.t.Fatalf("[%s] %s: not true within %s: %s (last error: %v)", p.name, what, waitLimit, cond, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitSel waits until a node matches the CSS selector sel.
func (p *page) waitSel(what, sel string) {
	p.t.Helper()
	p.waitJS(what, fmt.Sprintf("document.querySelector(%s)", strconv.Quote(sel)))
}

// failShot saves what the page shows, for the failure report.
func (p *page) failShot(what string) {
	if p.closed {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return
	}
	name := fmt.Sprintf("FAIL-%s-%s-%s.png", p.t.Name(), p.name, what)
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, name)
	path := filepath.Join(artifactDir(p.t), name)
	if os.WriteFile(path, buf, 0o644) == nil {
		p.t.Logf("[%s] screenshot of the failure: %s", p.name, path)
	}
}

// tid is the CSS selector of a data-testid hook.
func tid(id string) chromedp.CSS { return chromedp.CSS(fmt.Sprintf(`[data-testid=%q]`, id)) }

// signUp creates username's account with the sign-up form and waits until
// the signed-in layout is shown and the socket is online.
func (p *page) signUp(base, username, display string) {
	p.t.Helper()
	p.do("sign up "+username,
		chromedp.Navigate(base),
		chromedp.WaitVisible(tid("login-username")),
		chromedp.Click(tid("signup-toggle")),
		chromedp.WaitVisible(tid("signup-display-name")),
		chromedp.SendKeys(tid("login-username"), username),
		chromedp.SendKeys(tid("signup-display-name"), display),
		chromedp.SendKeys(tid("login-password"), testPassword),
		chromedp.Click(tid("login-submit")),
		chromedp.WaitVisible(tid("main-screen")),
	)
	p.waitOnline()
	if got := eval[string](p, `document.querySelector('[data-testid="current-user"]').textContent`); got != display {
		p.t.Fatalf("[%s] current-user %q after sign-up, want %q", p.name, got, display)
	}
}

// waitOnline waits for the socket's hello (banner state online).
func (p *page) waitOnline() {
	p.t.Helper()
	p.waitSel("socket online", `[data-testid="connection-banner"][data-state="online"]`)
}

// me is the signed-in user's id.
func (p *page) me() string {
	p.t.Helper()
	return eval[string](p, `window.chatd.store.me.id`)
}

// openWith opens the conversation with username through people search.
func (p *page) openWith(username string) {
	p.t.Helper()
	result := fmt.Sprintf(`[data-testid="user-result"][data-username=%q]`, username)
	p.do("search "+username,
		chromedp.SendKeys(tid("user-search"), username),
		chromedp.WaitVisible(chromedp.CSS(result)),
		chromedp.Click(chromedp.CSS(result)),
		chromedp.WaitVisible(tid("conversation-view")),
		chromedp.WaitVisible(tid("composer")),
	)
}

// send types text in the composer and presses Enter.
func (p *page) send(text string) {
	p.t.Helper()
	p.do("send "+text, chromedp.SendKeys(tid("composer"), text+"\n"))
}

// bubble is one stored message row as the page shows it.
type bubble struct {
	Seq    int64  `json:"seq"`
	From   string `json:"from"`
	Text   string `json:"text"`
	Status string `json:"status"`
}

// bubbles lists the stored message rows of the open conversation in DOM
// order (pending rows, which have no seq, are left out).
func (p *page) bubbles() []bubble {
	p.t.Helper()
	return eval[[]bubble](p, `[...document.querySelectorAll('[data-testid="message"][data-seq]')].map(r => ({
		seq: +r.dataset.seq, from: r.dataset.from || '', status: r.dataset.status || '',
		text: r.querySelector('[data-testid="message-text"]').textContent}))`)
}

// waitBubble waits for the row of the message with text and returns it.
func (p *page) waitBubble(text string) bubble {
	p.t.Helper()
	js := fmt.Sprintf(`[...document.querySelectorAll('[data-testid="message"][data-seq]')].some(r => r.querySelector('[data-testid="message-text"]').textContent === %s)`, strconv.Quote(text))
	p.waitJS("message "+text, js)
	for _, b := range p.bubbles() {
		if b.Text == text {
			return b
		}
	}
	p.t.Fatalf("[%s] message %q vanished", p.name, text)
	return bubble{}
}

// waitStatus waits until the own message seq shows status.
func (p *page) waitStatus(seq int64, status string) {
	p.t.Helper()
	p.waitSel(fmt.Sprintf("seq %d %s", seq, status), fmt.Sprintf(`[data-testid="message"][data-seq="%d"][data-status=%q]`, seq, status))
}

// waitPresence waits until the open conversation's header shows the peer
// online or not.
func (p *page) waitPresence(online bool) {
	p.t.Helper()
	p.waitSel(fmt.Sprintf("presence online=%v", online), fmt.Sprintf(`[data-testid="presence-indicator"][data-online="%v"]`, online))
}

// noErrorToasts fails the test if the page shows an error toast.
func (p *page) noErrorToasts() {
	p.t.Helper()
	if msgs := eval[[]string](p, `[...document.querySelectorAll('[data-testid="error-toast"]')].map(e => e.textContent)`); len(msgs) > 0 {
		p.failShot("error toast")
		p.t.Errorf("[%s] error toasts shown: %q", p.name, msgs)
	}
}

// assertOnce checks that the page shows every message of want exactly
// once, in seq order, with the right sender and text, and nothing else.
func assertOnce(t *testing.T, p *page, want []apitest.Message) {
	t.Helper()
	got := p.bubbles()
	count := map[int64]int{}
	for i, b := range got {
		count[b.Seq]++
		if i > 0 && b.Seq <= got[i-1].Seq {
			t.Errorf("[%s] rows out of seq order at %d: %d after %d", p.name, i, b.Seq, got[i-1].Seq)
		}
	}
	for seq, n := range count {
		if n != 1 {
			t.Errorf("[%s] seq %d shown %d times", p.name, seq, n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("[%s] %d rows shown, %d messages stored", p.name, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].Seq != want[i].Seq || got[i].Text != want[i].Text || got[i].From != want[i].From {
			t.Errorf("[%s] row %d = %+v, stored %+v", p.name, i, got[i], want[i])
		}
	}
	if n := eval[int](p, `document.querySelectorAll('[data-testid="message"]:not([data-seq])').length`); n != 0 {
		t.Errorf("[%s] %d pending or failed rows left", p.name, n)
	}
}

// restSend stores a message from u to peer over REST.
func restSend(t *testing.T, u *apitest.User, peer, text string) apitest.Message {
	t.Helper()
	r := u.Do("POST", "/api/messages", map[string]string{"to": peer, "text": text, "client_msg_id": fmt.Sprintf("rest-%d", time.Now().UnixNano())})
	if r.Status != http.StatusCreated {
		t.Fatalf("REST send %q: %d %s", text, r.Status, r.Body)
	}
	var out struct{ Message apitest.Message }
	r.JSON(t, &out)
	return out.Message
}

// startAllInOne runs `chatd serve --role=all` on a new data directory.
func startAllInOne(t *testing.T, addr string) *node {
	t.Helper()
	return startNode(t, "all", append(slices.Clone(lowArgon), "CHATD_CHAT_OFFLINE_GRACE=500ms"),
		"--role=all", "--http-addr="+addr, "--data-dir="+t.TempDir())
}

// TestBrowserChatAllInOne: two people chat in two browsers through one
// `--role=all` process.
func TestBrowserChatAllInOne(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	chatLive(t, b, n.url(), false)
}

// TestBrowserChatThroughGateway: the same conversation through the
// gateway in front of two chat replicas over Redis and the MongoDB-wire
// server: the two browsers' sockets land on different replicas.
func TestBrowserChatThroughGateway(t *testing.T) {
	chromiumPath(t)
	c := startCluster(t)
	b := startBrowser(t)
	chatLive(t, b, c.gateway.url(), true)
}

// chatLive is the live conversation of two users, each in a browser
// context of their own, against base: messages both ways without a
// reload, ticks sent → delivered → read on the sender's bubble, typing
// shown then hidden, presence following a page that leaves, comes back
// and closes. With crossReplica, the two sockets must be on different
// chat replicas (by the hello frames' node).
func chatLive(t *testing.T, b *browser, base string, crossReplica bool) {
	alice, bob := b.newPage("alice"), b.newPage("bob")
	alice.signUp(base, "alice", "Alice Liddell")
	bob.signUp(base, "bob", "Bob Builder")
	aliceID, bobID := alice.me(), bob.me()
	lastNode := func(p *page) string {
		nodes := p.helloNodes()
		if len(nodes) == 0 {
			t.Fatalf("[%s] no hello frame seen", p.name)
		}
		return nodes[len(nodes)-1]
	}
	for i := 0; crossReplica && lastNode(alice) == lastNode(bob); i++ {
		// The gateway balances by least connections, so this is rare:
		// reconnect Bob until he lands on the other replica.
		if i == 8 {
			t.Fatalf("both sockets stay on %s", lastNode(bob))
		}
		seen := len(bob.helloNodes())
		eval[bool](bob, `window.chatd.socket.ws.close(), true`)
		bob.waitHello(seen + 1)
	}
	t.Logf("alice's socket on %q, bob's on %q", lastNode(alice), lastNode(bob))

	alice.openWith("bob")
	alice.waitSel("empty history", `[data-testid="history-status"][data-state="empty"]`)
	// Bob is online, but not Alice's contact yet (api.md 1.1 Privacy:
	// presence reaches only users who both sent in a shared conversation),
	// so his presence is hidden from her.
	alice.waitPresence(false)
	if got := eval[string](alice, `document.querySelector('[data-testid="conversation-title"]').textContent`); got != "Bob Builder" {
		t.Errorf("conversation title %q, want Bob Builder", got)
	}

	// Bob's page goes away; Alice's first message stays "sent" (stored,
	// not delivered). (No presence event yet: presence goes to people who
	// share a conversation, and there is none before this message.)
	bob.do("leave", chromedp.Navigate("about:blank"))
	alice.send("Hello Bob")
	hello := alice.waitBubble("Hello Bob")
	alice.waitStatus(hello.Seq, "sent")
	if hello.From != aliceID {
		t.Errorf("own message from %q, want %q", hello.From, aliceID)
	}

	// Bob comes back (the session cookie still holds): the conversation
	// list shows the unread message, and Alice's tick turns "delivered".
	bob.do("come back", chromedp.Navigate(base), chromedp.WaitVisible(tid("main-screen")))
	bob.waitOnline()
	item := fmt.Sprintf(`[data-testid="conversation-item"][data-peer=%q]`, aliceID)
	bob.waitSel("unread badge", item+`[data-unread="1"]`)
	bob.waitJS("preview", fmt.Sprintf(`document.querySelector('%s [data-testid="conversation-preview"]').textContent.includes('Hello Bob')`, item))
	alice.waitStatus(hello.Seq, "delivered")
	// Only Alice has sent: Bob's coming back is still hidden from her.
	alice.waitPresence(false)

	// Bob opens it: Alice's tick turns "read".
	bob.do("open conversation", chromedp.Click(chromedp.CSS(item)), chromedp.WaitVisible(tid("composer")))
	if got := bob.waitBubble("Hello Bob"); got.Seq != hello.Seq || got.From != aliceID {
		t.Errorf("bob sees %+v, alice sent %+v", got, hello)
	}
	alice.waitStatus(hello.Seq, "read")
	bob.waitSel("badge cleared", item+`[data-unread="0"]`)

	// Bob answers. Now both have sent, so they are contacts (api.md 1.1
	// Privacy) and Bob's typing reaches Alice; before, it was dropped.
	bob.do("reply", chromedp.SendKeys(tid("composer"), "Hi Alice!\n"))
	reply := alice.waitBubble("Hi Alice!")
	if reply.From != bobID || reply.Seq <= hello.Seq {
		t.Errorf("reply %+v", reply)
	}
	bob.waitStatus(reply.Seq, "read")
	if v := eval[string](bob, `document.querySelector('[data-testid="composer"]').value`); v != "" {
		t.Errorf("composer not cleared after send: %q", v)
	}
	// Bob's reply made them contacts: each gets the other's presence live
	// (no reload), on the same replica or across two.
	alice.waitPresence(true)
	bob.waitPresence(true)

	// Bob types: Alice sees it, then it goes away by itself. Typing is
	// limited to one event per 2 s, so the first keys may fall in the
	// slot of the reply's own typing event: type until it shows.
	typingShown := `!document.querySelector('[data-testid="typing-indicator"]').hidden`
	for i := 0; !eval[bool](alice, typingShown); i++ {
		if i == 20 {
			t.Fatalf("[alice] typing never shown")
		}
		bob.do("type", chromedp.SendKeys(tid("composer"), "."))
		time.Sleep(300 * time.Millisecond)
	}
	alice.waitJS("typing in header", `document.querySelector('[data-testid="presence-indicator"]').textContent === 'typing…'`)
	alice.waitJS("typing hidden", `document.querySelector('[data-testid="typing-indicator"]').hidden`)

	// Bob types more and sends: the message hides the typing at once.
	for i := 0; !eval[bool](alice, typingShown); i++ {
		if i == 20 {
			t.Fatalf("[alice] typing never shown again")
		}
		bob.do("type more", chromedp.SendKeys(tid("composer"), "."))
		time.Sleep(300 * time.Millisecond)
	}
	bob.do("clear", chromedp.SetValue(tid("composer"), "Still there?"))
	bob.do("send", chromedp.SendKeys(tid("composer"), "\n"))
	still := alice.waitBubble("Still there?")
	if still.From != bobID || still.Seq <= reply.Seq {
		t.Errorf("second reply %+v", still)
	}
	alice.waitJS("typing hidden by the message", `document.querySelector('[data-testid="typing-indicator"]').hidden`)
	bob.waitStatus(still.Seq, "read")

	// A few more both ways, each seen live by the other page.
	for i := range 3 {
		from, to := alice, bob
		if i%2 == 1 {
			from, to = bob, alice
		}
		text := fmt.Sprintf("message %d from %s", i, from.name)
		from.send(text)
		sent := from.waitBubble(text)
		to.waitBubble(text)
		from.waitStatus(sent.Seq, "read")
	}
	for _, p := range []*page{alice, bob} {
		got := p.bubbles()
		texts := make([]string, len(got))
		for i, b := range got {
			texts[i] = b.Text
		}
		want := []string{"Hello Bob", "Hi Alice!", "Still there?", "message 0 from alice", "message 1 from bob", "message 2 from alice"}
		if !slices.Equal(texts, want) {
			t.Errorf("[%s] shows %q, want %q", p.name, texts, want)
		}
		p.noErrorToasts()
	}

	// Bob's page goes away and comes back: Alice sees him go offline and
	// online again, in the header and in the list.
	dot := fmt.Sprintf(`[data-testid="conversation-item"][data-peer=%q] [data-testid="presence-dot"]`, bobID)
	eval[bool](bob, `window.chatdTestMark = true`)
	bob.do("leave again", chromedp.Navigate("about:blank"))
	alice.waitPresence(false)
	alice.waitSel("list dot offline", dot+`[data-online="false"]`)
	// Back: the page comes out of the back/forward cache (or loads again).
	// history.back() runs after the evaluation returned: navigating inside
	// the evaluated script races with its result ("Inspected target
	// navigated or closed").
	bob.do("come back again", chromedp.Evaluate[chromedp.Void](`setTimeout(() => history.back(), 0)`))
	bob.waitJS("back on the conversation", `location.pathname === '/c/`+aliceID+`' && document.querySelector('[data-testid="composer"]')`)
	bob.waitOnline()
	t.Logf("bob's page restored from the back/forward cache: %v", eval[bool](bob, `!!window.chatdTestMark`))
	alice.waitPresence(true)
	alice.waitSel("list dot online", dot+`[data-online="true"]`)
	if got := bob.bubbles(); len(got) != 6 {
		t.Errorf("bob sees %d messages after coming back, want 6", len(got))
	}

	// Bob closes his tab: Alice sees him offline ("last seen …").
	bob.close()
	alice.waitPresence(false)
	if txt := eval[string](alice, `document.querySelector('[data-testid="presence-indicator"]').textContent`); !strings.HasPrefix(txt, "last seen") {
		t.Errorf("presence text %q after bob left, want last seen …", txt)
	}
	alice.waitSel("list dot offline", dot+`[data-online="false"]`)
}

// TestBrowserReloadAndLogout: a reload keeps the session and the
// conversation; logging out returns to the login page and revokes the
// session, so replaying its old cookies gets 401.
func TestBrowserReloadAndLogout(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	base := n.url()
	alice := b.newPage("alice")
	alice.signUp(base, "alice", "Alice Liddell")
	bob := apitest.SignUp(t, base, "bob")

	alice.openWith("bob")
	alice.send("first")
	alice.waitBubble("first")
	restSend(t, bob, alice.me(), "a reply over REST")
	alice.waitBubble("a reply over REST")
	alice.send("second")
	alice.waitBubble("second")
	before := alice.bubbles()

	alice.do("reload", chromedp.Reload(), chromedp.WaitVisible(tid("conversation-view")))
	alice.waitOnline()
	alice.waitBubble("second")
	if path := eval[string](alice, `location.pathname`); path != "/c/"+bob.ID {
		t.Errorf("path after reload %q", path)
	}
	if got := eval[string](alice, `document.querySelector('[data-testid="current-user"]').textContent`); got != "Alice Liddell" {
		t.Errorf("current user after reload %q", got)
	}
	after := alice.bubbles()
	if !slices.Equal(before, after) {
		t.Errorf("history changed across the reload:\n before %+v\n after  %+v", before, after)
	}
	alice.noErrorToasts()

	// The session's cookies, as the browser holds them.
	cookies, err := chromedp.Call(alice.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base, base + "/auth/refresh"}})
	if err != nil {
		t.Fatal(err)
	}
	var jar []*http.Cookie
	names := map[string]bool{}
	for _, c := range cookies.Cookies {
		jar = append(jar, &http.Cookie{Name: c.Name, Value: c.Value})
		names[c.Name] = true
		if c.Name == "__Host-chatd_session" && (!c.HTTPOnly || !c.Secure) {
			t.Errorf("__Host-chatd_session cookie: HttpOnly=%v Secure=%v", c.HTTPOnly, c.Secure)
		}
	}
	// Secure cookies (the default): the access cookie has the __Host- prefix (api.md 1.1).
	if !names["__Host-chatd_session"] || !names["chatd_refresh"] {
		t.Fatalf("browser cookies %v: want __Host-chatd_session and a refresh cookie", names)
	}
	replay := func(method, path string) int {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", base)
		for _, c := range jar {
			req.AddCookie(c)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The replay works while the session is live, so a 401 later means revoked.
	if s := replay("GET", "/auth/me"); s != http.StatusOK {
		t.Fatalf("replayed cookies before logout: /auth/me %d", s)
	}

	alice.do("log out", chromedp.Click(tid("logout-button")), chromedp.WaitVisible(tid("login-username")))
	if path := eval[string](alice, `location.pathname`); path != "/" {
		t.Errorf("path after logout %q, want /", path)
	}
	alice.waitSel("socket idle", `[data-testid="connection-banner"][data-state="idle"]`)
	if n := eval[int](alice, `document.querySelectorAll('[data-testid="message"]').length`); n != 0 {
		t.Errorf("%d messages still in the DOM after logout", n)
	}
	left, err := chromedp.Call(alice.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base, base + "/auth/refresh"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range left.Cookies {
		t.Errorf("cookie %s still set after logout", c.Name)
	}
	for _, r := range [][2]string{{"GET", "/auth/me"}, {"GET", "/api/conversations"}, {"POST", "/auth/refresh"}} {
		if s := replay(r[0], r[1]); s != http.StatusUnauthorized {
			t.Errorf("old session cookies after logout: %s %s = %d, want 401", r[0], r[1], s)
		}
	}
	alice.do("reload after logout", chromedp.Reload(), chromedp.WaitVisible(tid("login-username")))

	// Logging in again works and shows the same history.
	alice.do("log in",
		chromedp.SendKeys(tid("login-username"), "alice"),
		chromedp.SendKeys(tid("login-password"), testPassword),
		chromedp.Click(tid("login-submit")),
		chromedp.WaitVisible(tid("main-screen")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-testid="conversation-item"][data-peer=%q]`, bob.ID))),
	)
	alice.waitBubble("second")
	if again := alice.bubbles(); !slices.Equal(before, again) {
		t.Errorf("history after logging in again %+v, want %+v", again, before)
	}
	alice.noErrorToasts()
}

// freeAddr picks a loopback port that is free now, for a node that must
// come back on the same address. It picks below the kernel's ephemeral
// range (from 10000 up), where no bind to port 0 (another test's server, a
// node's own ops listener) can take it between now and the node's bind
// (TestFreeAddrOutsideEphemeralRange); only where that range leaves no
// room below it does it take a port from the kernel.
func freeAddr(t *testing.T) string {
	t.Helper()
	const floor = 10000
	if lo, ok := ephemeralLow(); ok && lo > floor+1000 {
		for range 1000 {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(floor+rand.IntN(lo-floor)))
			if l, err := net.Listen("tcp", addr); err == nil {
				l.Close()
				return addr
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestBrowserServerRestart stops the --role=all server with SIGTERM while
// both pages are open and starts it again on the same data directory and
// address: both pages show that they are reconnecting, then catch up with
// everything sent just before the stop, during the downtime (a send from
// the composer, retried by itself) and just after the start, and show
// every message exactly once.
func TestBrowserServerRestart(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, freeAddr(t))
	base := n.url()
	alice, bob := b.newPage("alice"), b.newPage("bob")
	alice.signUp(base, "alice", "Alice Liddell")
	bob.signUp(base, "bob", "Bob Builder")
	aliceID, bobID := alice.me(), bob.me()
	alice.openWith("bob")
	bob.do("open", chromedp.Navigate(base+"/c/"+aliceID), chromedp.WaitVisible(tid("composer")))
	bob.waitOnline()

	alice.send("before the restart")
	bob.waitBubble("before the restart")
	bob.send("me too")
	alice.waitBubble("me too")

	// Sent over REST (another device) right before the stop: the pages
	// may or may not get them live before the server goes.
	aliceAPI, bobAPI := apitest.Login(t, base, "alice", testPassword), apitest.Login(t, base, "bob", testPassword)
	for i := range 3 {
		restSend(t, aliceAPI, bobID, fmt.Sprintf("just before the stop %d", i))
	}
	n.stop()
	for _, p := range []*page{alice, bob} {
		p.waitSel("banner reconnecting", `[data-testid="connection-banner"][data-state="reconnecting"]`)
		p.waitJS("banner shown", `!document.querySelector('[data-testid="connection-banner"]').hidden`)
	}
	// Bob sends from the composer while the server is down: it fails for
	// a transient reason and must go out by itself after the reconnect.
	bob.send("sent while the server was down")
	bob.waitSel("failed send", `[data-testid="message"][data-status="failed"] [data-testid="retry-button"]`)

	n.start()
	if n.url() != base {
		t.Fatalf("node came back on %s, not %s", n.url(), base)
	}
	// Sent right after the start, before or while the pages reconnect.
	restSend(t, bobAPI, aliceID, "right after the start")
	restSend(t, aliceAPI, bobID, "welcome back")

	for _, p := range []*page{alice, bob} {
		p.waitOnline()
		p.waitJS("banner hidden", `document.querySelector('[data-testid="connection-banner"]').hidden`)
	}
	want := aliceAPI.History(bobID)
	for _, p := range []*page{alice, bob} {
		p.waitJS("caught up", fmt.Sprintf(`document.querySelectorAll('[data-testid="message"][data-seq]').length >= %d && !document.querySelector('[data-testid="message"]:not([data-seq])')`, len(want)))
	}
	// The composer's send went out exactly once after the reconnect.
	want = aliceAPI.History(bobID)
	if len(want) != 2+3+1+2 {
		t.Fatalf("%d messages stored, want 8: %+v", len(want), want)
	}
	for _, p := range []*page{alice, bob} {
		p.waitJS("all shown", fmt.Sprintf(`document.querySelectorAll('[data-testid="message"][data-seq]').length >= %d`, len(want)))
		p.waitJS("catch-up done", `!window.chatd.catching`)
		assertOnce(t, p, want)
	}

	// Still live after the restart, both ways.
	alice.send("all good?")
	bob.waitBubble("all good?")
	bob.send("all good.")
	alice.waitBubble("all good.")
	want = aliceAPI.History(bobID)
	for _, p := range []*page{alice, bob} {
		p.waitJS("all shown", fmt.Sprintf(`document.querySelectorAll('[data-testid="message"][data-seq]').length >= %d`, len(want)))
		assertOnce(t, p, want)
	}
	for _, p := range []*page{alice, bob} {
		p.noErrorToasts()
	}
}
