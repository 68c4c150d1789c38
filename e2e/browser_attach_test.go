package e2e

// Browser tests of issue 10's attachments (api.md 1.1): uploads by file
// picker, drag and drop and paste, the inline image in a box reserved
// before it loads, the full-size view, file chips, cancel and the limit.

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/chatd/chatd/internal/apitest"
)

// rowSel is the CSS selector of the stored message seq's row.
func rowSel(seq int64) string {
	return fmt.Sprintf(`[data-testid="message"][data-seq="%d"]`, seq)
}

// openChat opens the conversation with peer by its address and waits for the socket.
func (p *page) openChat(base, peer string) {
	p.t.Helper()
	p.do("open "+peer, chromedp.Navigate(base+"/c/"+peer), chromedp.WaitVisible(tid("composer")))
	p.waitOnline()
}

// storedMessage is a message as the API returns it, with api.md 1.1's fields.
type storedMessage struct {
	Seq         int64               `json:"seq"`
	Kind        string              `json:"kind"`
	From        string              `json:"from"`
	Text        string              `json:"text"`
	ReplyTo     int64               `json:"reply_to"`
	Target      int64               `json:"target"`
	EditedAt    string              `json:"edited_at"`
	Deleted     bool                `json:"deleted"`
	Reactions   map[string][]string `json:"reactions"`
	Attachments []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Type string `json:"type"`
		Size int64  `json:"size"`
	} `json:"attachments"`
}

// stored reads the newest page of u's conversation with peer and returns message seq.
func stored(t *testing.T, u *apitest.User, peer string, seq int64) storedMessage {
	t.Helper()
	r := u.Do("GET", "/api/conversations/"+peer+"/messages?limit=200", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("history: %d %s", r.Status, r.Body)
	}
	var page struct{ Messages []storedMessage }
	r.JSON(t, &page)
	for _, m := range page.Messages {
		if m.Seq == seq {
			return m
		}
	}
	t.Fatalf("seq %d not in the history", seq)
	return storedMessage{}
}

// writePNG writes a w×h PNG with a gradient to path.
func writePNG(t *testing.T, path string, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(40 + 180*x/w), uint8(90 + 120*y/h), 200, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dropStmt is JS that drops files made in the page (JS expressions of
// File objects) on the conversation, as a drag and drop does.
func dropStmt(files ...string) string {
	return fmt.Sprintf(`{ const dt = new DataTransfer(); for (const f of [%s]) dt.items.add(f);
		const v = document.querySelector('[data-testid="conversation-view"]');
		for (const type of ['dragenter', 'dragover', 'drop']) v.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true})); }`, strings.Join(files, ", "))
}

// dropJS is dropStmt as an expression.
func dropJS(files ...string) string {
	return "(() => { " + dropStmt(files...) + " return true; })()"
}

// aliceAndBob starts Chromium and a --role=all node on which Alice
// Liddell and Bob Builder have signed up.
func aliceAndBob(t *testing.T) (b *browser, base string, alice, bob *apitest.User) {
	t.Helper()
	b = startBrowser(t)
	base = startAllInOne(t, "127.0.0.1:0").url()
	return b, base, apitest.SignUpAs(t, base, "alice", testPassword, "Alice Liddell"), apitest.SignUpAs(t, base, "bob", testPassword, "Bob Builder")
}

// dismissPrompt answers "Not now" to the notifications prompt that a
// first send shows where the browser can notify (it floats over the
// composer, where these tests click). The send shows it in the same task,
// so after send it is there or it will not come.
func (p *page) dismissPrompt() {
	p.t.Helper()
	if !eval[bool](p, `!!document.querySelector('[data-testid="notify-dismiss"]')`) {
		return
	}
	p.do("not now", chromedp.Click(tid("notify-dismiss")))
	p.waitJS("prompt gone", `!document.querySelector('[data-testid="notify-prompt"]')`)
}

// TestBrowserAttachments: Alice sends an image and a file from the file
// picker, then files by drag and drop and an image by paste; Bob sees the
// image inline in a box of fixed proportions, opens it full size and
// closes it with Escape, and downloads the file from its chip. An upload
// in flight shows its progress and can be cancelled; a file over the
// server's limit is refused before uploading; at most 10 per message.
func TestBrowserAttachments(t *testing.T) {
	b, base, aliceAPI, bobAPI := aliceAndBob(t)
	restSend(t, bobAPI, aliceAPI.ID, "Can you send me the photo and the notes?")
	restSend(t, aliceAPI, bobAPI.ID, "Sure, here they come")

	dir := t.TempDir()
	tall := filepath.Join(dir, "tower.png")
	writePNG(t, tall, 300, 900) // 1:3, unlike the 4:3 box it is shown in
	notes := filepath.Join(dir, "meeting notes.txt")
	notesText := strings.Repeat("Agenda: attachments, reactions, links.\n", 32)
	if err := os.WriteFile(notes, []byte(notesText), 0o600); err != nil {
		t.Fatal(err)
	}

	alice, bob := b.newPage("alice"), b.newPage("bob")
	alice.logIn(base, "alice")
	bob.logIn(base, "bob")
	alice.openChat(base, bobAPI.ID)
	bob.openChat(base, aliceAPI.ID)

	// The file picker: two files, uploaded at once, then sent with a text.
	alice.do("pick files", chromedp.SetUploadFiles(tid("file-input"), []string{tall, notes}))
	alice.waitJS("both uploaded", `document.querySelectorAll('[data-testid="upload"][data-status="done"]').length === 2`)
	alice.send("The photo and the notes")
	alice.dismissPrompt()
	sent := bob.waitBubble("The photo and the notes")
	alice.waitJS("tray empty", `document.querySelector('[data-testid="upload-tray"]').hidden`)
	m := stored(t, bobAPI, aliceAPI.ID, sent.Seq)
	if len(m.Attachments) != 2 || m.Attachments[0].Name != "tower.png" || m.Attachments[0].Type != "image/png" || m.Attachments[1].Name != "meeting notes.txt" || m.Attachments[1].Size != int64(len(notesText)) {
		t.Fatalf("stored attachments %+v", m.Attachments)
	}

	// The image: inline, loaded, in a 4:3 box whatever its own shape.
	img := rowSel(sent.Seq) + ` [data-testid="attachment-image"]`
	bob.waitJS("image loaded", fmt.Sprintf(`(() => { const i = document.querySelector('%s img'); return i && i.complete && i.naturalWidth === 300; })()`, img))
	box := eval[[]float64](bob, fmt.Sprintf(`(() => { const r = document.querySelector('%s').getBoundingClientRect(); return [r.width, r.height]; })()`, img))
	if box[0] < 100 || box[1] < box[0]*3/4-1.5 || box[1] > box[0]*3/4+1.5 {
		t.Errorf("image box %v×%v, want 4:3 (reserved before the image loads, not the image's 1:3)", box[0], box[1])
	}
	bob.do("open the image", chromedp.Click(chromedp.CSS(img)))
	bob.waitJS("full-size view", `document.querySelector('[data-testid="image-view"]').open && document.querySelector('[data-testid="image-full"]').complete && document.querySelector('[data-testid="image-full"]').naturalHeight === 900`)
	shot(t, bob, "image-view-desktop.png")
	bob.do("escape", chromedp.KeyEvent(kb.Escape))
	bob.waitJS("view closed", `!document.querySelector('[data-testid="image-view"]').open`)

	// The file: a chip with name, size and a download link that serves it to Bob.
	type chipT struct {
		Name     string `json:"name"`
		Size     string `json:"size"`
		Download string `json:"download"`
		Body     string `json:"body"`
	}
	chip := evalAsync[chipT](bob, fmt.Sprintf(`(async () => { const a = document.querySelector('%s [data-testid="attachment-file"]');
		const r = await fetch(a.href); return {name: a.querySelector('[data-testid="attachment-name"]').textContent,
		size: a.querySelector('[data-testid="attachment-size"]').textContent, download: a.getAttribute('download'), body: await r.text()}; })()`, rowSel(sent.Seq)))
	if chip.Name != "meeting notes.txt" || chip.Size != "1.2 KB" || chip.Download != "meeting notes.txt" || chip.Body != notesText {
		t.Errorf("file chip name %q size %q download %q, body %d bytes (want %d)", chip.Name, chip.Size, chip.Download, len(chip.Body), len(notesText))
	}

	// Drag and drop a file onto the conversation, paste an image, and send
	// without text.
	eval[bool](alice, dropJS(`new File(['dropped on the conversation'], 'dropped.txt', {type: 'text/plain'})`))
	alice.waitJS("dropped file uploaded", `document.querySelectorAll('[data-testid="upload"][data-status="done"]').length === 1`)
	evalAsync[bool](alice, `(async () => { const c = document.createElement('canvas'); c.width = 64; c.height = 48;
		const g = c.getContext('2d'); g.fillStyle = '#c33'; g.fillRect(0, 0, 64, 48);
		const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
		const dt = new DataTransfer(); dt.items.add(new File([blob], 'image.png', {type: 'image/png'}));
		document.querySelector('[data-testid="composer"]').dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
		return true; })()`)
	alice.waitJS("pasted image uploaded", `document.querySelectorAll('[data-testid="upload"][data-status="done"]').length === 2 && !document.querySelector('[data-testid="send-button"]').disabled`)
	if v := eval[string](alice, `document.querySelector('[data-testid="composer"]').value`); v != "" {
		t.Errorf("the paste put %q in the composer, want only the file", v)
	}
	alice.do("send the files alone", chromedp.Click(tid("send-button")))
	bob.waitJS("files without text", `[...document.querySelectorAll('[data-testid="message"][data-seq]')].some(r =>
		r.querySelector('[data-testid="attachment-file"] [data-testid="attachment-name"]')?.textContent === 'dropped.txt' && r.querySelector('[data-testid="attachment-image"] img[alt="image.png"]'))`)

	// Cancel: with the upload throttled (256 KiB/s), an upload in flight
	// shows its progress moving, and the cancel button stops it.
	alice.do("throttle uploads", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{URLPattern: base + "/api/attachments*", UploadThroughput: 256 << 10, DownloadThroughput: -1}},
		})
		return err
	}))
	eval[bool](alice, dropJS(`new File([new Uint8Array(4 << 20)], 'big.bin', {type: 'application/octet-stream'})`))
	progress := `document.querySelector('[data-testid="upload"][data-status="uploading"] [data-testid="upload-progress"]')`
	alice.waitJS("progress under way", progress+` && `+progress+`.value > 0`)
	half := eval[[]float64](alice, `[`+progress+`.value, `+progress+`.max]`)
	alice.waitJS("progress moves", fmt.Sprintf(`%s && %s.value > %v`, progress, progress, half[0]))
	if half[0] >= half[1] || half[1] != 4<<20 {
		t.Errorf("progress %v of %v, want part of %d", half[0], half[1], 4<<20)
	}
	shot(t, alice, "upload-progress-desktop.png")
	alice.do("cancel", chromedp.Click(chromedp.CSS(`[data-testid="upload"][data-status="uploading"] [data-testid="upload-cancel"]`)))
	alice.waitJS("cancelled", `!document.querySelector('[data-testid="upload"]') && document.querySelector('[data-testid="upload-tray"]').hidden && document.querySelector('[data-testid="send-button"]').disabled`)
	alice.do("unthrottle", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: []*network.Conditions{}})
		return err
	}))
	alice.noErrorToasts()
	bob.noErrorToasts()

	// At phone width the conversation with images does not widen the page.
	bob.do("phone", phone())
	bob.openChat(base, aliceAPI.ID)
	bob.waitJS("image loaded", fmt.Sprintf(`(() => { const i = document.querySelector('%s img'); return i && i.complete && i.naturalWidth === 300; })()`, img))
	if w := eval[float64](bob, `document.documentElement.scrollWidth`); w > phoneWidth {
		t.Errorf("conversation with attachments at %d px: scrollWidth %v", phoneWidth, w)
	}
	shot(t, bob, "attachments-phone.png")

	// Larger than the server's limit (hello's max_attachment_bytes, 25 MiB
	// by default): refused in words before anything is uploaded.
	eval[bool](alice, dropJS(`new File([new Uint8Array((25 << 20) + 1)], 'huge.bin', {type: 'application/octet-stream'})`))
	alice.waitJS("the huge file refused", `[...document.querySelectorAll('[data-testid="error-toast"]')].some(e => e.textContent.includes('huge.bin is too large: at most 26 MB'))`)
	if n := eval[int](alice, `document.querySelectorAll('[data-testid="upload"]').length`); n != 0 {
		t.Errorf("%d uploads in the tray after a file over the limit, want none", n)
	}

	// At most 10 per message: the eleventh is refused in words.
	files := make([]string, 11)
	for i := range files {
		files[i] = fmt.Sprintf(`new File(['file %d'], 'f%d.txt', {type: 'text/plain'})`, i, i)
	}
	eval[bool](alice, dropJS(files...))
	alice.waitJS("ten in the tray", `document.querySelectorAll('[data-testid="upload"]').length === 10`)
	alice.waitJS("the eleventh refused", `[...document.querySelectorAll('[data-testid="error-toast"]')].some(e => e.textContent.includes('At most 10 attachments'))`)
}
