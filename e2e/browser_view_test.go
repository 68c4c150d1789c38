package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/chatd/chatd/internal/apitest"
)

// phoneWidth is the width of issue 10's phone-width findings.
const phoneWidth = 390

// phone emulates that phone.
func phone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(phoneWidth, 844, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
}

// logIn logs username in with the login form and waits for the socket.
func (p *page) logIn(base, username string) {
	p.t.Helper()
	p.do("log in "+username,
		chromedp.Navigate(base),
		chromedp.WaitVisible(tid("login-username")),
		chromedp.SendKeys(tid("login-username"), username),
		chromedp.SendKeys(tid("login-password"), testPassword),
		chromedp.Click(tid("login-submit")),
		chromedp.WaitVisible(tid("main-screen")),
	)
	p.waitOnline()
}

// viewFit is where the list's parts are at the current viewport.
type viewFit struct {
	ScrollWidth float64  `json:"scrollWidth"`
	Viewport    float64  `json:"viewport"`
	Outside     []string `json:"outside"` // parts not wholly inside the viewport
}

func (p *page) fit(item string) viewFit {
	p.t.Helper()
	return eval[viewFit](p, fmt.Sprintf(`(() => {
		const vw = window.innerWidth;
		const parts = {logout: '[data-testid="logout-button"]', search: '[data-testid="user-search"]',
			time: %[1]q + ' time', badge: %[1]q + ' [data-testid="unread-badge"]',
			name: %[1]q + ' [data-testid="conversation-name"]', username: %[1]q + ' [data-testid="conversation-username"]'};
		const outside = [];
		for (const [k, sel] of Object.entries(parts)) {
			const e = document.querySelector(sel);
			const r = e ? e.getBoundingClientRect() : null;
			if (!r || r.width === 0 || r.left < 0 || r.right > vw + 0.5) outside.push(k + (r ? ' ' + r.left + '..' + r.right : ' missing'));
		}
		return {scrollWidth: document.documentElement.scrollWidth, viewport: vw, outside};
	})()`, item))
}

// TestBrowserConversationView checks issue 10's conversation view
// findings in Chromium at phone width: long previews and names do not
// widen the page (Log out, times and badges stay on screen), Hebrew and
// Arabic run right to left, initials keep whole graphemes, @username is
// shown beside display names, "No messages yet" goes once there are
// messages, a "New messages" divider, the length counter in characters,
// drafts across a reload, and the landmarks and tab order.
func TestBrowserConversationView(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	base := n.url()

	alice := apitest.SignUpAs(t, base, "alice", testPassword, "Alice Liddell")
	const daveName = "داود 🚀 Dave Abdullah-Montgomery of the Long Names"
	dave := apitest.SignUpAs(t, base, "dave_abdullah_montgomery", testPassword, daveName)
	apitest.SignUpAs(t, base, "carol", testPassword, "Carol Danvers")
	hebrew := "שלום אליס! " + strings.Repeat("זו הודעה ארוכה מאוד שצריכה להיחתך ברשימה ", 6)
	restSend(t, alice, dave.ID, "Hi Dave, here is the link: https://example.com/"+strings.Repeat("averyveryverylongpathwithoutanyspaces", 8))
	restSend(t, dave, alice.ID, hebrew)
	restSend(t, dave, alice.ID, "مرحبا أليس، "+strings.Repeat("هذه رسالة طويلة جدا ", 10))

	p := b.newPage("alice")
	p.do("phone viewport", phone())
	p.logIn(base, "alice")
	item := fmt.Sprintf(`[data-testid="conversation-item"][data-peer=%q]`, dave.ID)
	p.waitSel("dave's conversation, unread", item+`[data-unread="2"]`)

	// 1. Nothing wider than the phone; everything that matters on screen.
	// Mobile emulation widens the layout viewport to the content, so the
	// page is measured against the phone's 390 px, not innerWidth alone.
	if f := p.fit(item); f.ScrollWidth > phoneWidth || f.Viewport > phoneWidth || len(f.Outside) > 0 {
		t.Errorf("list at 390 px: scrollWidth %v, viewport %v, outside the viewport: %v", f.ScrollWidth, f.Viewport, f.Outside)
	}
	shot(t, p, "list-phone.png")

	// 2, 3. Direction by content; initials by grapheme; @username.
	type itemT struct {
		Initials string `json:"initials"`
		NameDir  string `json:"nameDir"`
		PrevDir  string `json:"prevDir"`
		Username string `json:"username"`
		Label    string `json:"label"`
	}
	got := eval[itemT](p, fmt.Sprintf(`(() => { const b = document.querySelector(%q);
		const dir = (s) => getComputedStyle(b.querySelector(s)).direction;
		return {initials: b.querySelector('.avatar .initials').textContent, nameDir: dir('[data-testid="conversation-name"]'),
			prevDir: dir('[data-testid="conversation-preview"]'), username: b.querySelector('[data-testid="conversation-username"]').textContent,
			label: b.getAttribute('aria-label') || ''}; })()`, item))
	if got.Initials != "دD" {
		t.Errorf("initials of %q: %q, want %q", daveName, got.Initials, "دD")
	}
	if got.NameDir != "rtl" || got.PrevDir != "rtl" {
		t.Errorf("direction of the Arabic name %q and preview %q, want rtl", got.NameDir, got.PrevDir)
	}
	if got.Username != "@dave_abdullah_montgomery" || !strings.Contains(got.Label, "@dave_abdullah_montgomery") || !strings.Contains(got.Label, "2 unread") {
		t.Errorf("list item username %q, accessible name %q: want @username in both and the unread count", got.Username, got.Label)
	}

	// 10. A main landmark and a heading after login; search before Log out in tab order.
	if !eval[bool](p, `(() => {
		const main = document.querySelector('main:not([hidden])');
		const search = document.querySelector('[data-testid="user-search"]'), logout = document.querySelector('[data-testid="logout-button"]');
		return !!main && main.contains(search) && !!main.querySelector('h1') &&
			!!(search.compareDocumentPosition(logout) & Node.DOCUMENT_POSITION_FOLLOWING) && search.getAttribute('aria-expanded') === 'false';
	})()`) {
		t.Error("after login: want a visible main landmark with a heading, the search before Log out in the DOM, aria-expanded=false on the search")
	}

	// Search matches the start of any word of the display name: "Danv" finds Carol Danvers.
	p.do("search danv", chromedp.SendKeys(tid("user-search"), "Danv"))
	p.waitSel("carol found by her last name", `[data-testid="user-result"][data-username="carol"]`)
	eval[bool](p, `(() => { const i = document.querySelector('[data-testid="user-search"]'); i.value = ''; i.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`)

	// @username in search results; aria-expanded follows them.
	p.do("search carol", chromedp.SendKeys(tid("user-search"), "carol"))
	p.waitSel("carol found", `[data-testid="user-result"][data-username="carol"]`)
	if u := eval[string](p, `document.querySelector('[data-testid="user-result"][data-username="carol"] [data-testid="user-result-username"]').textContent`); u != "@carol" {
		t.Errorf("search result username %q, want @carol", u)
	}
	if e := eval[string](p, `document.querySelector('[data-testid="user-search"]').getAttribute('aria-expanded')`); e != "true" {
		t.Errorf("aria-expanded %q with results shown, want true", e)
	}

	// 4. "No messages yet" goes once a message is there.
	p.do("open carol", chromedp.Click(chromedp.CSS(`[data-testid="user-result"][data-username="carol"]`)), chromedp.WaitVisible(tid("composer")))
	p.waitSel("empty history", `[data-testid="history-status"][data-state="empty"]`)
	p.send("Hello Carol")
	p.waitBubble("Hello Carol")
	p.waitJS("no empty line", `!document.querySelector('[data-testid="history-status"]').textContent.includes('No messages yet')`)
	if f := p.fit(item); f.ScrollWidth > phoneWidth || f.Viewport > phoneWidth {
		t.Errorf("conversation at 390 px: scrollWidth %v > viewport %v", f.ScrollWidth, f.Viewport)
	}
	p.do("back", chromedp.Click(tid("back-button")), chromedp.WaitVisible(tid("conversation-list")))

	// 8. Opening Dave's: the divider above the first unread; messages RTL; header @username.
	p.do("open dave", chromedp.Click(chromedp.CSS(item)), chromedp.WaitVisible(tid("composer")))
	first := p.waitBubble(hebrew)
	if !eval[bool](p, fmt.Sprintf(`(() => { const r = document.querySelector('[data-testid="message"][data-seq="%d"]');
		return !!r.querySelector('[data-testid="new-messages-divider"]') && document.querySelectorAll('[data-testid="new-messages-divider"]').length === 1; })()`, first.Seq)) {
		t.Error("want one New messages divider, in the row of the first unread message")
	}
	if d := eval[string](p, fmt.Sprintf(`getComputedStyle(document.querySelector('[data-testid="message"][data-seq="%d"] [data-testid="message-text"]')).direction`, first.Seq)); d != "rtl" {
		t.Errorf("Hebrew message direction %q, want rtl", d)
	}
	if u := eval[string](p, `document.querySelector('[data-testid="conversation-header-username"]').textContent`); u != "@dave_abdullah_montgomery" {
		t.Errorf("header username %q", u)
	}
	if f := p.fit(item); f.ScrollWidth > phoneWidth || f.Viewport > phoneWidth {
		t.Errorf("conversation at 390 px: scrollWidth %v > viewport %v", f.ScrollWidth, f.Viewport)
	}
	shot(t, p, "conversation-rtl-phone.png")

	// 6. The counter counts characters and refuses by bytes, saying so.
	type counterT struct {
		Text     string `json:"text"`
		Disabled bool   `json:"disabled"`
	}
	c := eval[counterT](p, `(() => { const i = document.querySelector('[data-testid="composer"]');
		i.value = 'ش'.repeat(2100); i.dispatchEvent(new Event('input'));
		const c = document.querySelector('[data-testid="byte-counter"]');
		const r = {text: c.hidden ? '' : c.textContent, disabled: document.querySelector('[data-testid="send-button"]').disabled};
		i.value = ''; i.dispatchEvent(new Event('input')); return r; })()`)
	if !strings.Contains(c.Text, "2100 characters") || !strings.Contains(c.Text, "4096 bytes") || !c.Disabled {
		t.Errorf("2100 Arabic letters: counter %q, send disabled %v; want the characters, the byte limit, send disabled", c.Text, c.Disabled)
	}

	// 7. A draft survives a reload.
	const draft = "half-written reply, שלום"
	p.do("type a draft", chromedp.SendKeys(tid("composer"), draft))
	p.do("reload", chromedp.Reload(), chromedp.WaitVisible(tid("composer")))
	p.waitOnline()
	p.waitJS("draft back", fmt.Sprintf(`document.querySelector('[data-testid="composer"]').value === %q`, draft))
	// The other conversation has its own (empty) draft.
	p.do("back", chromedp.Click(tid("back-button")), chromedp.WaitVisible(tid("conversation-list")))
	p.do("open carol", chromedp.Click(chromedp.CSS(`[data-testid="conversation-item"]:not([data-peer=`+fmt.Sprintf("%q", dave.ID)+`])`)), chromedp.WaitVisible(tid("composer")))
	p.waitBubble("Hello Carol")
	if v := eval[string](p, `document.querySelector('[data-testid="composer"]').value`); v != "" {
		t.Errorf("carol's composer %q, want empty (drafts are per conversation)", v)
	}
}

// TestBrowserRateLimitWords: a 429 is said in words with the wait in
// minutes (a real limit: one signup per address per hour).
func TestBrowserRateLimitWords(t *testing.T) {
	b := startBrowser(t)
	n := startNode(t, "all", append(append([]string{}, lowArgon...), "CHATD_AUTH_SIGNUP_LIMIT=1"),
		"--role=all", "--http-addr=127.0.0.1:0", "--data-dir="+t.TempDir())
	base := n.url()
	waitReady(t, base)
	apitest.SignUpAs(t, base, "first", testPassword, "")

	p := b.newPage("second")
	p.do("sign up refused",
		chromedp.Navigate(base),
		chromedp.WaitVisible(tid("login-username")),
		chromedp.Click(tid("signup-toggle")),
		chromedp.WaitVisible(tid("signup-display-name")),
		chromedp.SendKeys(tid("login-username"), "second"),
		chromedp.SendKeys(tid("login-password"), testPassword),
		chromedp.Click(tid("login-submit")),
	)
	p.waitSel("error shown", `[data-testid="auth-error"]:not([hidden])`)
	msg := eval[string](p, `document.querySelector('[data-testid="auth-error"]').textContent`)
	if !regexp.MustCompile(`^Too many attempts\. Try again in \d+ (minutes|hours)\.$`).MatchString(msg) {
		t.Errorf("429 shown as %q, want \"Too many attempts. Try again in N minutes.\"", msg)
	}
	t.Logf("429 shown as %q", msg)
}

// shot saves what p shows into the test's artifacts, and into
// docs/screenshots when CHATD_UPDATE_SCREENSHOTS is set.
func shot(t *testing.T, p *page, name string) {
	t.Helper()
	p.do("settle "+name,
		chromedp.Evaluate[chromedp.Void](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))`, chromedp.EvalAwaitPromise),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{
				{Name: "prefers-reduced-motion", Value: "reduce"},
			}})
			return err
		}),
	)
	ctx, cancel := context.WithTimeout(p.ctx, waitLimit)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(artifactDir(t), name), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CHATD_UPDATE_SCREENSHOTS") == "" {
		return
	}
	if len(buf) > maxDocShot {
		t.Errorf("%s is %d KB, more than %d KB for the docs", name, len(buf)>>10, maxDocShot>>10)
		return
	}
	if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", name), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("updated docs/screenshots/%s (%d KB)", name, len(buf)>>10)
}

// TestBrowserSettings: the settings screen against the account endpoints
// of api.md 1.1: the session list and logging one out, a password change
// (a wrong current password refused in words), log out everywhere, and
// deleting the account with the password.
func TestBrowserSettings(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	base := n.url()
	other := apitest.SignUpAs(t, base, "alice", testPassword, "Alice Liddell") // a second session, elsewhere

	p := b.newPage("alice")
	p.logIn(base, "alice")
	p.do("open settings", chromedp.Click(tid("settings-button")), chromedp.WaitVisible(tid("settings")))
	p.waitJS("two sessions", `document.querySelectorAll('[data-testid="session"]').length === 2`)
	if !eval[bool](p, `document.querySelectorAll('[data-testid="session"][data-current="true"]').length === 1`) {
		t.Error("want exactly one session marked as this device")
	}
	p.do("log out the other session", chromedp.Click(chromedp.CSS(`[data-testid="session"][data-current="false"] [data-testid="session-logout"]`)))
	p.waitJS("one session left", `document.querySelectorAll('[data-testid="session"]').length === 1`)
	shot(t, p, "settings-desktop.png")
	if r := other.Do("GET", "/auth/me", nil); r.Status != 401 {
		t.Errorf("the logged-out session: /auth/me %d, want 401", r.Status)
	}

	// Display name: saved, and the sidebar follows.
	eval[bool](p, `(() => { const i = document.querySelector('[data-testid="settings-display-name"]'); i.value = ''; return true; })()`)
	p.do("rename", chromedp.SendKeys(tid("settings-display-name"), "Alice L."), chromedp.Click(tid("settings-name-save")))
	p.waitJS("saved", `document.querySelector('[data-testid="settings-name-status"]').textContent === 'Display name saved.'`)
	p.waitJS("sidebar renamed", `document.querySelector('[data-testid="current-user"]').textContent === 'Alice L.'`)

	// Export: the document is fetched and handed to the browser as a file.
	p.do("export", chromedp.Click(tid("export-button")))
	p.waitJS("exported", `[...document.querySelectorAll('[data-testid="info-toast"]')].some(t => t.textContent.includes('Your data was exported.'))`)
	p.noErrorToasts()

	// Password: a wrong current one is refused in words, then the change.
	const newPassword = "a-much-longer-passphrase-42"
	p.do("wrong current password",
		chromedp.SendKeys(tid("settings-current-password"), "not-my-password-at-all"),
		chromedp.SendKeys(tid("settings-new-password"), newPassword),
		chromedp.Click(tid("settings-password-save")),
	)
	p.waitJS("refused", `document.querySelector('[data-testid="settings-password-status"]').textContent === 'That password is not right.'`)
	eval[bool](p, `document.querySelector('[data-testid="settings-password-form"]').reset(), true`)
	p.do("right current password",
		chromedp.SendKeys(tid("settings-current-password"), testPassword),
		chromedp.SendKeys(tid("settings-new-password"), newPassword),
		chromedp.Click(tid("settings-password-save")),
	)
	p.waitJS("changed", `document.querySelector('[data-testid="settings-password-status"]').textContent.startsWith('Password changed')`)
	apitest.Login(t, base, "alice", newPassword) // a third session, to be logged out everywhere

	// Log out everywhere: back to the login form; no session of alice's works.
	p.do("log out everywhere", chromedp.Click(tid("logout-everywhere")), chromedp.WaitVisible(tid("login-username")))
	p.waitJS("told", `document.querySelector('[data-testid="auth-error"]').textContent === 'You logged out everywhere.'`)

	// Delete the account with the password.
	p.do("log in again",
		chromedp.SendKeys(tid("login-username"), "alice"),
		chromedp.SendKeys(tid("login-password"), newPassword),
		chromedp.Click(tid("login-submit")),
		chromedp.WaitVisible(tid("main-screen")),
	)
	p.waitOnline()
	p.do("delete account",
		chromedp.Click(tid("settings-button")), chromedp.WaitVisible(tid("settings")),
		chromedp.SendKeys(tid("delete-password"), newPassword),
		chromedp.Click(tid("delete-account")),
		chromedp.WaitVisible(tid("login-username")),
	)
	p.waitJS("told", `document.querySelector('[data-testid="auth-error"]').textContent === 'Your account was deleted.'`)
	p.do("log in as the deleted user",
		chromedp.SendKeys(tid("login-username"), "alice"),
		chromedp.SendKeys(tid("login-password"), newPassword),
		chromedp.Click(tid("login-submit")),
	)
	p.waitJS("refused", `document.querySelector('[data-testid="auth-error"]').textContent === 'Wrong username or password.'`)
}

// TestBrowserBlock: Block from the conversation header, the blocked user
// listed in settings and unblocked there; a blocked user's send is refused.
func TestBrowserBlock(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	base := n.url()
	alice := apitest.SignUpAs(t, base, "alice", testPassword, "Alice Liddell")
	bob := apitest.SignUpAs(t, base, "bob", testPassword, "Bob Builder")
	restSend(t, bob, alice.ID, "Hi Alice")

	p := b.newPage("alice")
	p.logIn(base, "alice")
	p.do("open bob", chromedp.Navigate(base+"/c/"+bob.ID), chromedp.WaitVisible(tid("composer")))
	p.waitOnline()
	p.waitBubble("Hi Alice")
	p.waitSel("block shown", `[data-testid="block-button"]:not([hidden])[aria-pressed="false"]`)
	p.do("block bob", chromedp.Click(tid("block-button")))
	p.waitSel("blocked", `[data-testid="block-button"][aria-pressed="true"]`)
	if r := bob.Do("POST", "/api/messages", map[string]string{"to": alice.ID, "text": "still there?", "client_msg_id": "0b5a8f9e-3f57-4c43-9b8e-4c1d7f1a2b3c"}); r.Status != 403 {
		t.Errorf("bob's send to the blocker: %d %s, want 403", r.Status, r.Body)
	}

	p.do("open settings", chromedp.Click(tid("settings-button")), chromedp.WaitVisible(tid("settings")))
	p.waitSel("bob listed", fmt.Sprintf(`[data-testid="blocked-user"][data-user-id=%q]`, bob.ID))
	p.do("unblock bob", chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-testid="blocked-user"][data-user-id=%q] [data-testid="unblock-button"]`, bob.ID))))
	p.waitJS("list empty", `!document.querySelector('[data-testid="blocked-user"]')`)
	p.do("close settings", chromedp.Click(tid("settings-close")))
	p.waitSel("header follows", `[data-testid="block-button"][aria-pressed="false"]`)
	if r := bob.Do("POST", "/api/messages", map[string]string{"to": alice.ID, "text": "hello again", "client_msg_id": "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"}); r.Status != 201 && r.Status != 200 {
		t.Errorf("bob's send after the unblock: %d %s", r.Status, r.Body)
	}
}
