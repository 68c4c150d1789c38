package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// evalAsync evaluates js, a promise, in the page and decodes what it resolves to.
func evalAsync[T any](p *page, js string) T {
	p.t.Helper()
	return evalAsyncWithin[T](p, waitLimit, js)
}

// evalAsyncWithin is evalAsync for a script that may run longer than
// waitLimit: a bound on a hung page, not a timing assertion.
func evalAsyncWithin[T any](p *page, limit time.Duration, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, limit)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.failShot("eval")
		p.t.Fatalf("[%s] eval %s: %v", p.name, js, err)
	}
	return v
}

// TestBrowserEventOrder checks the client's rule for message events
// (ui/README.md): whatever the order in which live copies, page copies
// and events of a conversation reach the store, and however often, it
// ends in the same state, the one the server holds. It runs the UI's own
// store module in Chromium on every order of a set of arrivals.
func TestBrowserEventOrder(t *testing.T) {
	b := startBrowser(t)
	n := startAllInOne(t, "127.0.0.1:0")
	p := b.newPage("store")
	p.do("load the page", chromedp.Navigate(n.url()), chromedp.WaitVisible(tid("login-username")))
	type resultT struct {
		Orders   int      `json:"orders"`
		Problems []string `json:"problems"`
	}
	// 40,320 orders of CPU-bound JavaScript: at load 18 they overran the
	// 30 s that bounds a hung page.
	r := evalAsyncWithin[resultT](p, 5*time.Minute, `(async () => {
		const { Store } = await import('/assets/js/store.js');
		const { reactionsOf } = await import('/assets/js/events.js');
		const A = 'a', B = 'b', C = 'c1';
		const msg = (seq, o) => ({ conversation_id: C, seq, from: A, to: B, created_at: '2026-12-02T10:00:00.000Z', text: '', ...o });
		// What the server stored: 1 text by A, 2 reaction by B (👍), 3 edit by A,
		// 4 text by B replying to 1, 5 reaction by B (❤️, replacing 👍),
		// 6 reaction by A on 4, 7 edit by A of 1, 8 removal of A's reaction on 4,
		// 9 delete of 4 by B, 10 edit of 4 by B refused (never stored).
		const live = {
			1: msg(1, { text: 'one' }),
			2: msg(2, { kind: 'reaction', from: B, to: A, target: 1, emoji: '👍' }),
			3: msg(3, { kind: 'edit', target: 1, text: 'one, edited' }),
			4: msg(4, { from: B, to: A, text: 'four', reply_to: 1 }),
			5: msg(5, { kind: 'reaction', from: B, to: A, target: 1, emoji: '❤️' }),
			6: msg(6, { kind: 'reaction', target: 4, emoji: '😂' }),
			7: msg(7, { kind: 'edit', target: 1, text: 'one, edited twice' }),
			8: msg(8, { kind: 'reaction', target: 4, emoji: '' }),
			9: msg(9, { kind: 'delete', from: B, to: A, target: 4 }),
		};
		// A page read after seq 5 was stored: message 1 as of then.
		const page5 = [msg(1, { text: 'one, edited', edited_at: '2026-12-02T10:00:01.000Z', reactions: { '❤️': [B] } }), live[2], live[3],
			msg(4, { from: B, to: A, text: 'four', reply_to: 1 }), live[5]];
		// A catch-up page after 5, read at the end.
		const after5 = [live[6], live[7], live[8], live[9]];
		const arrivals = [
			() => [[live[1]], 0], () => [[live[2]], 0], () => [[live[3]], 0], () => [[live[4]], 0],
			() => [page5, 5], () => [[live[7]], 0], () => [[live[9]], 0], () => [[live[6]], 0],
		];
		const copy = (list) => list.map((m) => JSON.parse(JSON.stringify(m)));
		const state = (s) => {
			const c = s.conv(B);
			return c.msgs.map((m) => [m.seq, m.deleted ? 'deleted' : m.text, JSON.stringify(reactionsOf(m))].join(' ')).join(' | ') + ' synced ' + c.synced;
		};
		const want = '1 one, edited twice [{"emoji":"❤️","users":["b"]}] | 4 deleted [] synced 9';
		const problems = [];
		let orders = 0;
		const perms = (xs) => xs.length <= 1 ? [xs] : xs.flatMap((x, i) => perms([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
		for (const order of perms(arrivals.map((_, i) => i))) {
			const s = new Store();
			s.me = { id: A };
			const c = s.ensureConv({ id: B, username: 'b', display_name: 'B' });
			c.loaded = true;
			for (const i of order) {
				const [list, page] = arrivals[i]();
				s.addMessages(B, copy(list), false, page);
			}
			// Then the catch-up, twice (a repeat changes nothing).
			s.addMessages(B, copy(after5), false, 9);
			s.addMessages(B, copy(after5), false, 9);
			orders++;
			const got = state(s);
			if (got !== want && problems.length < 5) problems.push('order ' + order.join(',') + ': ' + got);
		}
		return { orders, problems };
	})()`)
	if r.Orders != 40320 {
		t.Errorf("%d orders tried, want 8! = 40320", r.Orders)
	}
	for _, p := range r.Problems {
		t.Errorf("want 1 one, edited twice [❤️ by b] | 4 deleted, synced 9; %s", p)
	}
}
