package e2e

// Browser tests of issue 10's message events (api.md 1.1): reply, edit,
// delete for everyone and reactions between two people in two browsers,
// links, keyboard access to the message menu, a catch-up after a reconnect
// that applies an edit made meanwhile, and a right-to-left conversation.

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/chatd/chatd/internal/apitest"
)

// action opens the menu of message seq with its button and picks item.
func (p *page) action(seq int64, item string) {
	p.t.Helper()
	p.do(fmt.Sprintf("%s on %d", item, seq),
		chromedp.Click(chromedp.CSS(rowSel(seq)+` [data-testid="message-actions"]`)),
		chromedp.WaitVisible(tid("message-menu")),
		chromedp.Click(chromedp.CSS(`[data-testid="message-menu"] [data-testid=`+fmt.Sprintf("%q", item)+`]`)),
	)
}

// edit edits the own message seq to text with the inline editor; save
// clicks Save (else Enter saves).
func (p *page) edit(seq int64, text string, save bool) {
	p.t.Helper()
	p.action(seq, "action-edit")
	p.waitSel("editor", `[data-testid="edit-input"]`)
	eval[bool](p, fmt.Sprintf(`(() => { const i = document.querySelector('[data-testid="edit-input"]'); i.value = %q; i.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`, text))
	if save {
		p.do("save the edit", chromedp.Click(tid("edit-save")))
	} else {
		p.do("save the edit", chromedp.SendKeys(tid("edit-input"), kb.Enter))
	}
}

// reactFrom picks emoji from the menu of message seq.
func (p *page) reactFrom(seq int64, emoji string) {
	p.t.Helper()
	p.do(fmt.Sprintf("react %s on %d", emoji, seq),
		chromedp.Click(chromedp.CSS(rowSel(seq)+` [data-testid="message-actions"]`)),
		chromedp.WaitVisible(tid("message-menu")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-testid="message-menu"] [data-testid="react-option"][data-emoji=%q]`, emoji))),
	)
}

// waitReaction waits until message seq shows emoji with count.
func (p *page) waitReaction(seq int64, emoji string, count int) {
	p.t.Helper()
	if count == 0 {
		p.waitJS("no "+emoji, fmt.Sprintf(`!document.querySelector('%s [data-testid="reaction"][data-emoji="%s"]')`, rowSel(seq), emoji))
		return
	}
	p.waitSel(fmt.Sprintf("%s × %d on %d", emoji, count, seq), fmt.Sprintf(`%s [data-testid="reaction"][data-emoji=%q][data-count="%d"]`, rowSel(seq), emoji, count))
}

// TestBrowserMessageEvents: Alice and Bob reply, edit, react and delete in
// two browsers; each change shows on both pages live, and on Bob's after a
// reconnect when it was made while his socket was down.
func TestBrowserMessageEvents(t *testing.T) {
	b, base, aliceAPI, bobAPI := aliceAndBob(t)
	first := restSend(t, bobAPI, aliceAPI.ID, "Hi Alice, the notes are at https://example.com/notes?v=2.")
	thanks := restSend(t, aliceAPI, bobAPI.ID, "Thanks Bob!")

	alice, bob := b.newPage("alice"), b.newPage("bob")
	alice.logIn(base, "alice")
	bob.logIn(base, "bob")
	alice.openChat(base, bobAPI.ID)
	bob.openChat(base, aliceAPI.ID)
	alice.waitBubble(thanks.Text)
	bob.waitBubble(thanks.Text)

	// Links: an <a> opening a new tab without opener or referrer; the
	// sentence's full stop is not part of it.
	type linkT struct {
		Href   string `json:"href"`
		Rel    string `json:"rel"`
		Target string `json:"target"`
		Text   string `json:"text"`
		Rest   string `json:"rest"`
	}
	link := eval[linkT](alice, fmt.Sprintf(`(() => { const r = document.querySelector('%s [data-testid="message-text"]'); const a = r.querySelector('a');
		return a ? {href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent, rest: r.lastChild.textContent} : {}; })()`, rowSel(first.Seq)))
	if link.Href != "https://example.com/notes?v=2" || link.Rel != "noopener noreferrer" || link.Target != "_blank" || link.Text != "https://example.com/notes?v=2" || link.Rest != "." {
		t.Errorf("link in %q: %+v", first.Text, link)
	}

	// Reply: Alice answers Bob's message; both show the quote.
	alice.action(first.Seq, "action-reply")
	alice.waitSel("reply bar", `[data-testid="reply-bar"]:not([hidden]) [data-testid="reply-quote"]`)
	alice.send("Got them, reading now")
	alice.dismissPrompt()
	reply := bob.waitBubble("Got them, reading now")
	alice.waitBubble("Got them, reading now")
	alice.waitJS("reply bar gone", `document.querySelector('[data-testid="reply-bar"]').hidden`)
	for _, p := range []*page{alice, bob} {
		q := eval[string](p, fmt.Sprintf(`(() => { const q = document.querySelector('%s [data-testid="reply-quote"]'); return q ? q.dataset.target + ' ' + q.textContent : ''; })()`, rowSel(reply.Seq)))
		if want := fmt.Sprintf("%d ", first.Seq); !strings.HasPrefix(q, want) || !strings.Contains(q, "Hi Alice, the notes") {
			t.Errorf("[%s] quote of the reply %q, want target %d and the original's text", p.name, q, first.Seq)
		}
	}
	if m := stored(t, aliceAPI, bobAPI.ID, reply.Seq); m.ReplyTo != first.Seq {
		t.Errorf("stored reply_to %d, want %d", m.ReplyTo, first.Seq)
	}
	// The quote jumps to the original (and focuses its row's menu button).
	bob.do("jump to the original", chromedp.Click(chromedp.CSS(rowSel(reply.Seq)+` [data-testid="reply-quote"]`)))
	bob.waitJS("original focused", fmt.Sprintf(`document.activeElement && document.activeElement.closest('%s')`, rowSel(first.Seq)))

	// Edit: only on Alice's own message; "edited" on both pages.
	alice.edit(thanks.Seq, "Thanks a lot, Bob!", false)
	for _, p := range []*page{alice, bob} {
		p.waitBubble("Thanks a lot, Bob!")
		p.waitSel("edited label", rowSel(thanks.Seq)+`[data-edited="true"] [data-testid="message-edited"]`)
	}
	if m := stored(t, aliceAPI, bobAPI.ID, thanks.Seq); m.Text != "Thanks a lot, Bob!" || m.EditedAt == "" {
		t.Errorf("stored after the edit: %+v", m)
	}
	// Bob's menu on Alice's message has no Edit or Delete.
	bob.do("bob's menu on alice's message", chromedp.Click(chromedp.CSS(rowSel(thanks.Seq)+` [data-testid="message-actions"]`)), chromedp.WaitVisible(tid("message-menu")))
	if eval[bool](bob, `!!document.querySelector('[data-testid="message-menu"] [data-testid="action-edit"], [data-testid="message-menu"] [data-testid="action-delete"]')`) {
		t.Error("Bob's menu on Alice's message offers Edit or Delete")
	}
	bob.do("close the menu", chromedp.KeyEvent(kb.Escape))
	bob.waitJS("menu closed", `document.querySelector('[data-testid="message-menu"]').hidden`)

	// Reactions: one per user, counts and who on both pages; toggling.
	bob.reactFrom(reply.Seq, "👍")
	alice.waitReaction(reply.Seq, "👍", 1)
	if title := eval[string](alice, fmt.Sprintf(`document.querySelector('%s [data-testid="reaction"]').title`, rowSel(reply.Seq))); !strings.Contains(title, "Bob Builder") {
		t.Errorf("reaction title %q, want who reacted", title)
	}
	alice.do("alice adds hers", chromedp.Click(chromedp.CSS(rowSel(reply.Seq)+` [data-testid="reaction"][data-emoji="👍"]`)))
	for _, p := range []*page{alice, bob} {
		p.waitReaction(reply.Seq, "👍", 2)
	}
	alice.waitSel("alice's own is pressed", rowSel(reply.Seq)+` [data-testid="reaction"][data-emoji="👍"][aria-pressed="true"]`)
	// Bob's reaction replaces his earlier one.
	bob.reactFrom(reply.Seq, "❤️")
	for _, p := range []*page{alice, bob} {
		p.waitReaction(reply.Seq, "👍", 1)
		p.waitReaction(reply.Seq, "❤️", 1)
	}
	// Alice takes hers back.
	alice.do("alice removes hers", chromedp.Click(chromedp.CSS(rowSel(reply.Seq)+` [data-testid="reaction"][data-emoji="👍"]`)))
	for _, p := range []*page{alice, bob} {
		p.waitReaction(reply.Seq, "👍", 0)
		p.waitReaction(reply.Seq, "❤️", 1)
	}
	if m := stored(t, aliceAPI, bobAPI.ID, reply.Seq); len(m.Reactions) != 1 || len(m.Reactions["❤️"]) != 1 || m.Reactions["❤️"][0] != bobAPI.ID {
		t.Errorf("stored reactions %v, want only Bob's ❤️", m.Reactions)
	}

	// The menu by keyboard: in the log, Enter picks the newest message
	// shown and the arrows move between messages (Tab still goes on to the
	// composer: the messages' controls are out of the Tab order but the
	// picked one's); Enter on a message's button opens its menu with the
	// focus inside, arrows move, Escape closes it and gives the focus back.
	focusedSeq := `(() => { const r = document.activeElement && document.activeElement.closest('[data-testid="message"][data-seq]'); return r && document.activeElement.dataset.testid === 'message-actions' ? +r.dataset.seq : 0; })()`
	alice.do("focus the log, Enter", chromedp.Focus(tid("message-list")), chromedp.KeyEvent(kb.Enter))
	newest := eval[int64](alice, focusedSeq)
	alice.do("ArrowUp", chromedp.KeyEvent(kb.ArrowUp))
	if up := eval[int64](alice, focusedSeq); newest == 0 || up == 0 || up >= newest {
		t.Errorf("Enter in the log focused the actions of seq %d, ArrowUp then of %d: want a message, then an earlier one", newest, up)
	}
	alice.do("Home, Enter", chromedp.KeyEvent(kb.Home))
	if s := eval[int64](alice, focusedSeq); s != first.Seq {
		t.Errorf("Home focused the actions of seq %d, want the first message %d", s, first.Seq)
	}
	alice.do("open the menu", chromedp.KeyEvent(kb.Enter))
	alice.waitJS("menu open, focus inside", `!document.querySelector('[data-testid="message-menu"]').hidden && document.querySelector('[data-testid="message-menu"]').contains(document.activeElement)`)
	first1 := eval[string](alice, `document.activeElement.getAttribute('aria-label') || document.activeElement.textContent`)
	alice.do("arrow", chromedp.KeyEvent(kb.ArrowRight))
	if next := eval[string](alice, `document.activeElement.getAttribute('aria-label') || document.activeElement.textContent`); next == first1 {
		t.Errorf("ArrowRight in the menu did not move the focus (still %q)", next)
	}
	alice.do("escape", chromedp.KeyEvent(kb.Escape))
	alice.waitJS("menu closed, focus back", fmt.Sprintf(`document.querySelector('[data-testid="message-menu"]').hidden && document.activeElement === document.querySelector('%s [data-testid="message-actions"]')`, rowSel(first.Seq)))

	// Delete for everyone, after a confirmation: a tombstone on both pages.
	alice.action(reply.Seq, "action-delete")
	alice.waitJS("confirmation", `document.querySelector('[data-testid="confirm-dialog"]').open`)
	alice.do("confirm", chromedp.Click(tid("confirm-delete")))
	for _, p := range []*page{alice, bob} {
		p.waitSel("tombstone", rowSel(reply.Seq)+`[data-deleted="true"] [data-testid="message-deleted"]`)
		if eval[bool](p, fmt.Sprintf(`!!document.querySelector('%[1]s [data-testid="reaction"], %[1]s [data-testid="message-actions"]')`, rowSel(reply.Seq))) {
			t.Errorf("[%s] a deleted message still shows reactions or actions", p.name)
		}
		if txt := eval[string](p, fmt.Sprintf(`document.querySelector('%s [data-testid="message-deleted"]').textContent`, rowSel(reply.Seq))); txt != "This message was deleted" {
			t.Errorf("[%s] tombstone %q", p.name, txt)
		}
	}

	// A right-to-left conversation: Bob writes Arabic, Alice replies in
	// Hebrew quoting it, Bob edits his; every part runs right to left.
	arabic := restSend(t, bobAPI, aliceAPI.ID, "مرحبا أليس، كيف حالك اليوم؟")
	alice.waitBubble(arabic.Text)
	alice.action(arabic.Seq, "action-reply")
	alice.send("שלום בוב, הכול טוב")
	hebrew := bob.waitBubble("שלום בוב, הכול טוב")
	bob.edit(arabic.Seq, "مرحبا أليس، كيف حالك؟", true)
	alice.waitBubble("مرحبا أليس، كيف حالك؟")
	alice.waitJS("quote follows the edit", fmt.Sprintf(`document.querySelector('%s [data-testid="reply-quote"]').textContent.includes('كيف حالك؟')`, rowSel(hebrew.Seq)))
	type dirT struct {
		Text  string `json:"text"`
		Quote string `json:"quote"`
		Reply string `json:"reply"`
	}
	d := eval[dirT](alice, fmt.Sprintf(`(() => { const dir = (s) => getComputedStyle(document.querySelector(s)).direction;
		return {text: dir('%s [data-testid="message-text"]'), quote: dir('%s [data-testid="reply-quote"] .quote-text'), reply: dir('%s [data-testid="message-text"]')}; })()`,
		rowSel(arabic.Seq), rowSel(hebrew.Seq), rowSel(hebrew.Seq)))
	if d.Text != "rtl" || d.Quote != "rtl" || d.Reply != "rtl" {
		t.Errorf("direction of the edited Arabic message %q, its quote %q, the Hebrew reply %q: want rtl", d.Text, d.Quote, d.Reply)
	}

	// A catch-up after a reconnect applies what changed while Bob's
	// socket was down: an edit and a reaction made meanwhile.
	eval[bool](bob, `window.chatd.socket.stop(), true`)
	if r := aliceAPI.Do("PATCH", fmt.Sprintf("/api/conversations/%s/messages/%d", bobAPI.ID, thanks.Seq), map[string]string{"text": "Thanks a lot, Bob! (edited while you were away)", "client_msg_id": "edit-away-1"}); r.Status != http.StatusOK {
		t.Fatalf("edit over REST: %d %s", r.Status, r.Body)
	}
	if r := aliceAPI.Do("PUT", fmt.Sprintf("/api/conversations/%s/messages/%d/reaction", bobAPI.ID, arabic.Seq), map[string]string{"emoji": "🎉", "client_msg_id": "react-away-1"}); r.Status != http.StatusOK {
		t.Fatalf("reaction over REST: %d %s", r.Status, r.Body)
	}
	if eval[string](bob, fmt.Sprintf(`document.querySelector('%s [data-testid="message-text"]').textContent`, rowSel(thanks.Seq))) != "Thanks a lot, Bob!" {
		t.Fatal("Bob's page changed while its socket was stopped: the catch-up is not what is tested")
	}
	eval[bool](bob, `window.chatd.socket.start(), true`)
	bob.waitOnline()
	bob.waitBubble("Thanks a lot, Bob! (edited while you were away)")
	bob.waitReaction(arabic.Seq, "🎉", 1)
	alice.waitBubble("Thanks a lot, Bob! (edited while you were away)")

	// A reload shows the same state from the history pages.
	bob.do("reload", chromedp.Reload(), chromedp.WaitVisible(tid("composer")))
	bob.waitOnline()
	bob.waitBubble("Thanks a lot, Bob! (edited while you were away)")
	bob.waitSel("tombstone after reload", rowSel(reply.Seq)+`[data-deleted="true"]`)
	bob.waitReaction(arabic.Seq, "🎉", 1)
	bob.waitSel("quote after reload", rowSel(hebrew.Seq)+` [data-testid="reply-quote"]`)

	alice.reactFrom(first.Seq, "😂")
	bob.waitReaction(first.Seq, "😂", 1)
	for _, p := range []*page{alice, bob} {
		p.noErrorToasts()
	}
	shot(t, alice, "conversation-events-desktop.png")

	// At phone width: quotes, reactions and the menu stay on screen.
	alice.do("phone", phone())
	alice.openChat(base, bobAPI.ID)
	alice.waitSel("quote", rowSel(hebrew.Seq)+` [data-testid="reply-quote"]`)
	alice.do("menu at phone width", chromedp.Click(chromedp.CSS(rowSel(hebrew.Seq)+` [data-testid="message-actions"]`)), chromedp.WaitVisible(tid("message-menu")))
	type fitT struct {
		ScrollWidth float64 `json:"scrollWidth"`
		MenuLeft    float64 `json:"menuLeft"`
		MenuRight   float64 `json:"menuRight"`
	}
	f := eval[fitT](alice, `(() => { const r = document.querySelector('[data-testid="message-menu"]').getBoundingClientRect();
		return {scrollWidth: document.documentElement.scrollWidth, menuLeft: r.left, menuRight: r.right}; })()`)
	if f.ScrollWidth > phoneWidth || f.MenuLeft < 0 || f.MenuRight > phoneWidth {
		t.Errorf("at %d px: scrollWidth %v, menu from %v to %v", phoneWidth, f.ScrollWidth, f.MenuLeft, f.MenuRight)
	}
}

// TestBrowserEventsThroughGateway: the same people reply with an image,
// react, edit and delete through the gateway in front of two chat replicas
// (Redis, the MongoDB-wire store), and a reload shows the state the store
// folded.
func TestBrowserEventsThroughGateway(t *testing.T) {
	chromiumPath(t)
	c := startCluster(t)
	b := startBrowser(t)
	base := c.gateway.url()
	aliceAPI := apitest.SignUpAs(t, base, "alice", testPassword, "Alice Liddell")
	bobAPI := apitest.SignUpAs(t, base, "bob", testPassword, "Bob Builder")
	question := restSend(t, bobAPI, aliceAPI.ID, "What does the new logo look like?")
	restSend(t, aliceAPI, bobAPI.ID, "One moment")
	photo := filepath.Join(t.TempDir(), "logo.png")
	writePNG(t, photo, 320, 240)

	alice, bob := b.newPage("alice"), b.newPage("bob")
	alice.logIn(base, "alice")
	bob.logIn(base, "bob")
	alice.openChat(base, bobAPI.ID)
	bob.openChat(base, aliceAPI.ID)
	bob.waitBubble("One moment")

	// A reply with an image.
	alice.action(question.Seq, "action-reply")
	alice.do("pick the image", chromedp.SetUploadFiles(tid("file-input"), []string{photo}))
	alice.waitJS("uploaded", `document.querySelectorAll('[data-testid="upload"][data-status="done"]').length === 1`)
	alice.send("Like this")
	alice.dismissPrompt()
	answer := bob.waitBubble("Like this")
	bob.waitJS("image and quote", fmt.Sprintf(`(() => { const r = document.querySelector('%s'); const i = r.querySelector('[data-testid="attachment-image"] img');
		return i && i.complete && i.naturalWidth === 320 && r.querySelector('[data-testid="reply-quote"]').dataset.target === '%d'; })()`, rowSel(answer.Seq), question.Seq))

	bob.reactFrom(answer.Seq, "🎉")
	alice.waitReaction(answer.Seq, "🎉", 1)
	alice.edit(answer.Seq, "Like this, in blue", true)
	bob.waitBubble("Like this, in blue")
	bob.waitSel("edited", rowSel(answer.Seq)+`[data-edited="true"]`)
	bob.action(question.Seq, "action-delete")
	bob.do("confirm", chromedp.Click(tid("confirm-delete")))
	alice.waitSel("tombstone", rowSel(question.Seq)+`[data-deleted="true"]`)
	alice.waitJS("quote of a deleted message", fmt.Sprintf(`document.querySelector('%s [data-testid="reply-quote"]').textContent.includes('This message was deleted')`, rowSel(answer.Seq)))

	for _, p := range []*page{alice, bob} {
		p.do("reload", chromedp.Reload(), chromedp.WaitVisible(tid("composer")))
		p.waitOnline()
		p.waitBubble("Like this, in blue")
		p.waitSel("state after reload", rowSel(question.Seq)+`[data-deleted="true"]`)
		p.waitReaction(answer.Seq, "🎉", 1)
		p.waitSel("image after reload", rowSel(answer.Seq)+` [data-testid="attachment-image"]`)
		p.noErrorToasts()
	}
}

// TestBrowserReplyJump: a reply to a message far back in the history
// (not on the newest page) quotes it as "Earlier message"; its quote
// jumps to the original, reading the older pages it needs, and once the
// original is held the quote shows its text.
func TestBrowserReplyJump(t *testing.T) {
	b, base, aliceAPI, bobAPI := aliceAndBob(t)
	original := restSend(t, aliceAPI, bobAPI.ID, "The very first message, long ago")
	for i := range 160 {
		restSend(t, bobAPI, aliceAPI.ID, fmt.Sprintf("filler %d", i))
	}
	r := bobAPI.Do("POST", "/api/messages", map[string]any{"to": aliceAPI.ID, "text": "Answering your first message", "client_msg_id": "reply-far-1", "reply_to": original.Seq})
	if r.Status != http.StatusCreated {
		t.Fatalf("reply: %d %s", r.Status, r.Body)
	}

	alice := b.newPage("alice")
	alice.logIn(base, "alice")
	alice.openChat(base, bobAPI.ID)
	reply := alice.waitBubble("Answering your first message")
	quote := rowSel(reply.Seq) + ` [data-testid="reply-quote"]`
	if q := eval[string](alice, fmt.Sprintf(`document.querySelector('%s').textContent`, quote)); q != "Earlier message" {
		t.Errorf("quote of an original not loaded yet %q, want Earlier message", q)
	}
	alice.do("jump to the original", chromedp.Click(chromedp.CSS(quote)))
	alice.waitJS("original shown and focused", fmt.Sprintf(`document.activeElement && document.activeElement.closest('%s')`, rowSel(original.Seq)))
	if q := eval[string](alice, fmt.Sprintf(`document.querySelector('%s [data-testid="message-text"]').textContent`, rowSel(original.Seq))); q != original.Text {
		t.Errorf("jumped to %q, want %q", q, original.Text)
	}
	alice.do("back to the latest", chromedp.Click(tid("jump-to-latest")))
	alice.waitJS("quote with the original's text", fmt.Sprintf(`document.querySelector('%s') && document.querySelector('%s').textContent.includes(%q)`, quote, quote, original.Text))

	// Scrolling up instead: the reply's row stays drawn while the older
	// pages come, and its quote fills in when the original arrives.
	alice.do("reload", chromedp.Reload(), chromedp.WaitVisible(tid("composer")))
	alice.waitOnline()
	alice.waitBubble("Answering your first message")
	for i := 0; !eval[bool](alice, `document.querySelector('[data-testid="history-status"]').dataset.state === 'start'`); i++ {
		if i == 100 {
			t.Fatal("scrolling up never reached the start of the conversation")
		}
		eval[bool](alice, `document.querySelector('[data-testid="message-list"]').scrollTop = 0, true`)
		time.Sleep(100 * time.Millisecond)
	}
	alice.waitJS("quote filled in", fmt.Sprintf(`document.querySelector('%s').textContent.includes(%q)`, quote, original.Text))
	alice.noErrorToasts()
}
