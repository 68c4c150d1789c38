package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"
)

// recordNotifications replaces window.Notification, before the app's
// scripts run, with a subclass that records what the page shows
// (window.__notes) and still shows it, and lets the test hide the page:
// headless Chromium keeps every tab visible, so document.visibilityState
// reports "hidden" while window.__hidden is set (the test dispatches
// visibilitychange). This emulates the Page Visibility API only; the rest
// (permission, the service worker, Notification itself) is Chromium's own.
const recordNotifications = `(() => {
  const N = window.Notification;
  window.__notes = [];
  if (N) {
    class Recorded extends N {
      constructor(title, opts) {
        super(title, opts);
        window.__notes.push({ title, body: (opts && opts.body) || '', tag: (opts && opts.tag) || '' });
      }
    }
    Object.defineProperty(Recorded, 'permission', { get: () => N.permission });
    Recorded.requestPermission = (...a) => N.requestPermission(...a);
    window.Notification = Recorded;
  }
  window.__hidden = false;
  const vis = Object.getOwnPropertyDescriptor(Document.prototype, 'visibilityState');
  Object.defineProperty(document, 'visibilityState', { get: () => window.__hidden ? 'hidden' : vis.get.call(document) });
  Object.defineProperty(document, 'hidden', { get: () => document.visibilityState === 'hidden' });
})();`

// preparePush installs recordNotifications on p and, when grant is set,
// grants the notification permission to base in p's browser context
// through the DevTools protocol (what a user's "Allow" would do).
func preparePush(p *page, base string, grant bool) {
	p.t.Helper()
	p.do("record notifications", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: recordNotifications}); err != nil {
			return err
		}
		if !grant {
			return nil
		}
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted,
			Origin: base, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
		})
		return err
	}))
}

func (p *page) setHidden(hidden bool) {
	p.t.Helper()
	eval[bool](p, fmt.Sprintf(`(window.__hidden = %v, document.dispatchEvent(new Event('visibilitychange')), true)`, hidden))
}

// TestBrowserNotifications: the service worker registers at the root
// scope; a message arriving on the open socket of a hidden tab raises an
// in-page notification with the sender's name and the text, and puts the
// unread count on the favicon; a muted conversation raises none; the
// "Turn on notifications" prompt appears after the first send (not on
// load) and, dismissed, stays away, while the settings still offer them.
func TestBrowserNotifications(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	base := n.url()

	alice, bob := b.newPage("alice"), b.newPage("bob")
	preparePush(alice, base, false)
	preparePush(bob, base, true)
	alice.signUp(base, "alice", "Alice")
	bob.signUp(base, "bob", "Bob")
	eval[bool](bob, `(navigator.serviceWorker.ready.then(r => { window.__sw = r.active.scriptURL + ' ' + r.scope; }), true)`)
	bob.waitJS("service worker active", `window.__sw`)
	if got, want := eval[string](bob, `window.__sw`), base+"/sw.js "+base+"/"; got != want {
		t.Fatalf("service worker %q, want %q (the script at the root scope)", got, want)
	}

	if eval[bool](alice, `!!document.querySelector('[data-testid="notify-prompt"]')`) {
		t.Fatal("the notifications prompt shows before any send")
	}
	alice.openWith("bob")
	alice.send("hello bob")
	alice.waitBubble("hello bob")
	alice.waitSel("prompt after the first send", `[data-testid="notify-prompt"]`)
	alice.do("dismiss the prompt", chromedp.Click(tid("notify-dismiss")))
	alice.waitJS("prompt gone", `!document.querySelector('[data-testid="notify-prompt"]')`)
	alice.send("second")
	alice.waitBubble("second")
	if eval[bool](alice, `!!document.querySelector('[data-testid="notify-prompt"]') || localStorage.getItem('chatd.notify.prompt') !== 'dismissed'`) {
		t.Fatal("the dismissed prompt came back, or its dismissal is not remembered")
	}
	// Dismissed, notifications can still be turned on from the settings:
	// once the browser allows them (the user's "Allow", here through the
	// DevTools protocol) the settings say they are on.
	alice.do("open settings", chromedp.Click(tid("settings-button")), chromedp.WaitVisible(tid("settings")))
	alice.waitJS("settings offer notifications", `document.querySelector('[data-testid="settings-notify-state"]').textContent.startsWith('Off') && !document.querySelector('[data-testid="settings-notify-enable"]').hidden`)
	alice.do("allow notifications", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted,
			Origin: base, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
		})
		return err
	}), chromedp.Click(tid("settings-notify-enable")))
	alice.waitJS("settings say on", `document.querySelector('[data-testid="settings-notify-state"]').textContent.startsWith('On') && document.querySelector('[data-testid="settings-notify-enable"]').hidden`)
	alice.do("close settings", chromedp.Click(tid("settings-close")))

	// Bob's tab is hidden: alice's message raises a notification and a badge.
	bob.setHidden(true)
	alice.send("are you there?")
	bob.waitJS("in-page notification", `window.__notes.some(n => n.body === 'are you there?')`)
	note := eval[map[string]string](bob, `window.__notes.find(n => n.body === 'are you there?')`)
	if note["title"] != "Alice" {
		t.Fatalf("notification %v, want the title Alice", note)
	}
	bob.waitJS("unread badge on the favicon", `+document.documentElement.dataset.unreadBadge >= 1 && document.querySelector('link[rel="icon"]').href.startsWith('data:image/png')`)
	if got := eval[bool](bob, `document.title.startsWith('(')`); !got {
		t.Fatal("the tab title shows no unread count")
	}

	// Bob mutes the conversation for an hour: the next message raises nothing.
	bob.setHidden(false)
	bob.openWith("alice")
	bob.do("mute for 1 h",
		chromedp.Click(tid("mute-button")),
		chromedp.WaitVisible(tid("mute-menu")),
		chromedp.Click(chromedp.CSS(`[data-testid="mute-option"]`)),
	)
	bob.waitSel("muted", `[data-testid="mute-button"][aria-pressed="true"]`)
	notes := eval[int](bob, `window.__notes.length`)
	bob.setHidden(true)
	alice.send("muted now")
	// ingest decides on the notification before it counts the message unread.
	bob.waitJS("bob has the muted message, unread", `(() => { const c = window.chatd.store.conv(`+fmt.Sprintf("%q", alice.me())+`); return c && c.unread >= 1; })()`)
	if got := eval[int](bob, `window.__notes.length`); got != notes {
		t.Fatalf("%d notifications after a muted message, want %d", got, notes)
	}
	bob.setHidden(false)
	bob.do("unmute", chromedp.Click(tid("mute-button")))
	bob.waitSel("unmuted", `[data-testid="mute-button"][aria-pressed="false"]`)
}

// swRegistration waits for the service worker registration of scope
// (reported once ServiceWorker.enable ran) and returns its id.
func (p *page) swRegistration(scope string) string {
	p.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		p.mu.Lock()
		id := p.swRegs[scope]
		p.mu.Unlock()
		if id != "" {
			return id
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("[%s] no service worker registration for %s", p.name, scope)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shownNotifications lists the notifications the service worker shows.
func (p *page) shownNotifications() []map[string]string {
	p.t.Helper()
	eval[bool](p, `(window.__shown = null, navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => { window.__shown = ns.map(n => ({title: n.title, body: n.body, tag: n.tag})); }), true)`)
	p.waitJS("notifications listed", `window.__shown`)
	return eval[[]map[string]string](p, `window.__shown`)
}

// TestBrowserServiceWorkerPush hands the service worker a push the way a
// push service would deliver one (DevTools' ServiceWorker.deliverPushMessage:
// the vendors' services are not reachable from here, and headless
// Chromium's browser contexts have no Push API subscription to receive
// them): the worker shows a notification titled with the sender's display
// name, which it fetches with the session cookie, the text as its body and
// one tag per conversation; a later push of that conversation without text
// replaces it with a generic body.
func TestBrowserServiceWorkerPush(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	base := n.url()
	alice, bob := b.newPage("alice"), b.newPage("bob")
	preparePush(bob, base, true)
	alice.signUp(base, "alice", "Alice Liddell")
	bob.signUp(base, "bob", "Bob")
	bob.do("service worker events", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, serviceworker.Enable, struct{}{})
		return err
	}))
	reg := bob.swRegistration(base + "/")
	// Deliver only to an active worker (an installing one may drop it).
	eval[bool](bob, `(navigator.serviceWorker.ready.then(r => { window.__swReady = !!r.active; }), true)`)
	bob.waitJS("service worker active", `window.__swReady`)
	aliceID, bobID := alice.me(), bob.me()
	conv := aliceID + "." + bobID
	if bobID < aliceID {
		conv = bobID + "." + aliceID
	}
	deliver := func(payload map[string]any) {
		data, _ := json.Marshal(payload)
		bob.do("deliver a push", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{
				Origin: base, RegistrationID: serviceworker.RegistrationID(reg), Data: string(data),
			})
			return err
		}))
	}
	// pushShown delivers payload until the notifications satisfy ok: a
	// delivery while the browser is busy may be lost, and the same tag
	// makes a second one replace the first rather than add to it.
	pushShown := func(what string, payload map[string]any, ok func([]map[string]string) bool) []map[string]string {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for {
			deliver(payload)
			for retry := time.Now().Add(5 * time.Second); time.Now().Before(retry); time.Sleep(100 * time.Millisecond) {
				if got := bob.shownNotifications(); ok(got) {
					return got
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: notifications %v", what, bob.shownNotifications())
			}
		}
	}
	got := pushShown("a push with text", map[string]any{"conversation_id": conv, "from": aliceID, "seq": 1, "text": "tea at four?"},
		func(ns []map[string]string) bool { return len(ns) > 0 })
	if len(got) != 1 || got[0]["title"] != "Alice Liddell" || got[0]["body"] != "tea at four?" || got[0]["tag"] != "chatd-"+conv {
		t.Fatalf("notifications %v, want one titled Alice Liddell, body tea at four?, tag chatd-%s", got, conv)
	}
	pushShown("a push without text, same conversation", map[string]any{"conversation_id": conv, "from": aliceID, "seq": 2}, func(ns []map[string]string) bool {
		return len(ns) == 1 && ns[0]["body"] == "sent you a message" && ns[0]["title"] == "Alice Liddell"
	})
}
