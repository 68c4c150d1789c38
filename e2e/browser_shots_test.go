package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/chatd/chatd/internal/apitest"
)

// shotViewport is a screen size the screenshots are taken at.
type shotViewport struct {
	name          string
	width, height int64
	mobile        bool
}

var shotViewports = []shotViewport{
	{"desktop", 1280, 800, false},
	{"phone", 390, 844, true},
}

// docShots are the screenshots copied to docs/screenshots (for the README)
// when CHATD_UPDATE_SCREENSHOTS is set: artifact name → docs name.
var docShots = map[string]string{
	"login-light-desktop-card.png":   "login-light-desktop.png",
	"conversation-light-desktop.png": "conversation-light-desktop.png",
	"conversation-dark-desktop.png":  "conversation-dark-desktop.png",
	"conversation-light-phone.png":   "conversation-phone.png",
}

// maxDocShot keeps the committed PNGs small.
const maxDocShot = 150 << 10

// TestBrowserScreenshots renders the login page, the conversation list
// and a conversation in light and dark, at desktop and phone sizes, with
// real content from a real server, and saves them as test artifacts. It
// checks that each is what it should be (the right screen, no error
// toast, the content there) before it takes it.
func TestBrowserScreenshots(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	base := n.url()
	dir := artifactDir(t)

	// The people and what they said, oldest conversation first.
	alice := apitest.SignUpAs(t, base, "alice", testPassword, "Alice Liddell")
	bob := apitest.SignUpAs(t, base, "bob", testPassword, "Bob Martin")
	carol := apitest.SignUpAs(t, base, "carol", testPassword, "Carol Danvers")
	dave := apitest.SignUpAs(t, base, "dave", testPassword, "Dave Okafor")
	restSend(t, carol, alice.ID, "Did you get a chance to look at the design review notes?")
	restSend(t, alice, carol.ID, "Yes, they look great. Two small comments, I left them in the doc.")
	last := restSend(t, carol, alice.ID, "Perfect, thanks!")
	if r := alice.Do("POST", "/api/conversations/"+carol.ID+"/read", map[string]int64{"seq": last.Seq}); r.Status != http.StatusNoContent {
		t.Fatalf("read: %d %s", r.Status, r.Body)
	}
	restSend(t, dave, alice.ID, "Lunch tomorrow? The new ramen place opened on 5th.")
	restSend(t, dave, alice.ID, "My treat, I owe you one.")
	script := []struct {
		from *apitest.User
		text string
	}{
		{bob, "Hey Alice! Are you coming to the meetup tonight?"},
		{alice, "Hi Bob! Yes, I will be there around 7."},
		{bob, "Great. I am giving a short talk about how chatd never loses a message."},
		{alice, "Per-conversation seqs, idempotent client_msg_id and a catch-up after every reconnect?"},
		{bob, "Exactly that. Plus a demo: two browsers, and I restart the server in the middle of the conversation."},
		{alice, "Bold. Want me to bring the spare laptop, just in case?"},
		{bob, "Yes please!"},
		{alice, "Deal. See you at 7."},
	}
	for _, m := range script {
		to := alice.ID
		if m.from == alice {
			to = bob.ID
		}
		last = restSend(t, m.from, to, m.text)
	}
	// Both have read everything (Alice answered last), and Bob is online.
	if r := alice.Do("POST", "/api/conversations/"+bob.ID+"/read", map[string]int64{"seq": last.Seq}); r.Status != http.StatusNoContent {
		t.Fatalf("read: %d %s", r.Status, r.Body)
	}
	if r := bob.Do("POST", "/api/conversations/"+alice.ID+"/read", map[string]int64{"seq": last.Seq}); r.Status != http.StatusNoContent {
		t.Fatalf("read: %d %s", r.Status, r.Body)
	}
	bobConn := bob.Dial()
	defer bobConn.Close()

	p := b.newPage("alice")
	media := func(scheme string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{
				{Name: "prefers-color-scheme", Value: scheme},
				{Name: "prefers-reduced-motion", Value: "reduce"},
			}})
			return err
		})
	}
	viewport := func(v shotViewport) chromedp.Action[chromedp.Void] {
		if v.mobile {
			return chromedp.EmulateViewport(v.width, v.height, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
		}
		return chromedp.EmulateViewport(v.width, v.height)
	}
	// shootClip saves the viewport, or only the element around and a
	// margin of the page around it.
	shootClip := func(name, around string) {
		t.Helper()
		// Two frames, so that what the last change rendered is painted.
		p.do("settle "+name, chromedp.Evaluate[chromedp.Void](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))`, chromedp.EvalAwaitPromise))
		p.noErrorToasts()
		ctx, cancel := context.WithTimeout(p.ctx, waitLimit)
		defer cancel()
		var buf []byte
		var err error
		if around == "" {
			buf, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
		} else {
			// The element with a margin of the page around it.
			r := eval[[]float64](p, fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`, around))
			const margin = 48
			x, y := max(0, r[0]-margin), max(0, r[1]-margin)
			res, cerr := chromedp.Call(ctx, cdppage.CaptureScreenshot, cdppage.CaptureScreenshotParams{
				Clip: &cdppage.Viewport{X: x, Y: y, Width: r[2] + 2*margin, Height: r[3] + 2*margin, Scale: 1},
			})
			buf, err = res.Data, cerr
		}
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if _, err := png.Decode(bytes.NewReader(buf)); err != nil {
			t.Fatalf("screenshot %s: not a PNG: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d KB", name, len(buf)>>10)
	}
	shoot := func(name string) { shootClip(name, "") }
	themes := []string{"light", "dark"}

	// The login page.
	p.do("login page", chromedp.Navigate(base), chromedp.WaitVisible(tid("login-username")))
	for _, v := range shotViewports {
		for _, theme := range themes {
			p.do("emulate", viewport(v), media(theme))
			shoot(fmt.Sprintf("login-%s-%s.png", theme, v.name))
		}
	}
	p.do("emulate", viewport(shotViewports[0]), media("light"))
	shootClip("login-light-desktop-card.png", `[data-testid="auth-form"]`)

	// Log in as Alice.
	p.do("log in",
		chromedp.SendKeys(tid("login-username"), "alice"),
		chromedp.SendKeys(tid("login-password"), testPassword),
		chromedp.Click(tid("login-submit")),
		chromedp.WaitVisible(tid("main-screen")),
	)
	p.waitOnline()
	bobItem := fmt.Sprintf(`[data-testid="conversation-item"][data-peer=%q]`, bob.ID)
	for _, v := range shotViewports {
		for _, theme := range themes {
			p.do("emulate", viewport(v), media(theme))

			// The conversation list: three conversations, Dave's unread.
			p.do("list", chromedp.Navigate(base+"/"), chromedp.WaitVisible(tid("conversation-list")))
			p.waitOnline()
			p.waitJS("three conversations", `document.querySelectorAll('[data-testid="conversation-item"]').length === 3`)
			p.waitSel("dave unread", fmt.Sprintf(`[data-testid="conversation-item"][data-peer=%q][data-unread="2"]`, dave.ID))
			p.waitSel("bob read", bobItem+`[data-unread="0"]`)
			p.waitSel("bob online", bobItem+` [data-testid="presence-dot"][data-online="true"]`)
			p.waitJS("newest first", fmt.Sprintf(`document.querySelector('[data-testid="conversation-item"]').dataset.peer === %q`, bob.ID))
			shoot(fmt.Sprintf("list-%s-%s.png", theme, v.name))

			// The conversation with Bob, every own message read.
			p.do("conversation", chromedp.Navigate(base+"/c/"+bob.ID), chromedp.WaitVisible(tid("composer")))
			p.waitOnline()
			p.waitSel("last message read", fmt.Sprintf(`[data-testid="message"][data-seq="%d"][data-status="read"]`, last.Seq))
			p.waitPresence(true)
			p.waitJS("all messages", fmt.Sprintf(`document.querySelectorAll('[data-testid="message"][data-seq]').length === %d`, len(script)))
			p.waitJS("scrolled to the end", `(() => { const l = document.querySelector('[data-testid="message-list"]'); return l.scrollHeight - l.scrollTop - l.clientHeight < 2; })()`)
			shoot(fmt.Sprintf("conversation-%s-%s.png", theme, v.name))
		}
	}

	if os.Getenv("CHATD_UPDATE_SCREENSHOTS") == "" {
		t.Logf("screenshots in %s (set CHATD_UPDATE_SCREENSHOTS=1 to copy the README's ones to docs/screenshots)", dir)
		return
	}
	docs, err := filepath.Abs(filepath.Join("..", "docs", "screenshots"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(docs, 0o755); err != nil {
		t.Fatal(err)
	}
	for from, to := range docShots {
		buf, err := os.ReadFile(filepath.Join(dir, from))
		if err != nil {
			t.Fatal(err)
		}
		if len(buf) > maxDocShot {
			t.Errorf("%s is %d KB, more than %d KB for the docs", from, len(buf)>>10, maxDocShot>>10)
			continue
		}
		if err := os.WriteFile(filepath.Join(docs, to), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated docs/screenshots/%s", to)
	}
}
