// The left pane: the signed-in user, people search and the conversation
// list. List items are created once per conversation and updated in place;
// an item moves only when its position changes.

import { api } from '../api.js';
import { compareConvs } from '../store.js';
import { byId, displayName, el, fillAvatar, fmtFull, fmtListTime, fmtPresence } from '../util.js';
import { previewText } from '../events.js';

const PREVIEW_CHARS = 140;

export class Sidebar {
  /**
   * @param {import('../store.js').Store} store
   * @param {{open:(peer:string)=>void, openUser:(user:any, presence:any)=>void}} actions
   */
  constructor(store, actions) {
    this.store = store;
    this.actions = actions;
    this.list = byId('conv-list');
    this.empty = byId('conv-empty');
    this.search = byId('user-search');
    this.results = byId('search-results');
    this.items = new Map(); // peer → <li>
    this.active = null;
    this.searchTimer = 0;
    this.searchAbort = null;
    this.lastQuery = '';

    this.dirty = new Set();
    store.addEventListener('conv', (e) => this.queueUpdate(e.detail.peer));
    store.addEventListener('typing', (e) => this.queueUpdate(e.detail.peer));
    store.addEventListener('presence', (e) => this.updateResultPresence(e.detail.userId));
    store.addEventListener('reset', () => this.clear());

    this.list.addEventListener('click', (e) => {
      const b = e.target.closest('[data-peer]');
      if (b) this.actions.open(b.dataset.peer);
    });
    this.list.addEventListener('keydown', (e) => this.onListKey(e));
    this.search.addEventListener('input', () => this.onSearchInput());
    this.search.addEventListener('keydown', (e) => this.onSearchKey(e));
    this.results.addEventListener('keydown', (e) => this.onResultsKey(e));
    this.results.addEventListener('click', (e) => {
      const b = e.target.closest('[data-user-id]');
      if (b && b._user) this.pick(b._user, b._presence);
    });
  }

  clear() {
    this.dirty.clear();
    this.items.clear();
    this.list.replaceChildren();
    this.empty.hidden = false;
    this.active = null;
    this.search.value = '';
    this.hideResults();
  }

  setMe(user) {
    byId('me-name').textContent = displayName(user);
    byId('me-username').textContent = `@${user.username}`;
    fillAvatar(byId('me-avatar'), user);
  }

  setActive(peer) {
    if (this.active && this.items.has(this.active)) {
      const b = this.items.get(this.active).firstElementChild;
      b.classList.remove('active');
      b.removeAttribute('aria-current');
    }
    this.active = peer;
    if (peer && this.items.has(peer)) {
      const b = this.items.get(peer).firstElementChild;
      b.classList.add('active');
      b.setAttribute('aria-current', 'true');
    }
  }

  /** queueUpdate re-renders the conversation's item at the next frame (bursts coalesce). */
  queueUpdate(peer) {
    this.dirty.add(peer);
    if (this.dirty.size > 1) return;
    requestAnimationFrame(() => {
      const peers = [...this.dirty];
      this.dirty.clear();
      for (const p of peers) this.update(p);
    });
  }

  /** update renders one conversation's item and keeps the list order. */
  update(peer) {
    const c = this.store.conv(peer);
    if (!c) return;
    let li = this.items.get(peer);
    if (!li) {
      li = this.createItem(peer);
      this.items.set(peer, li);
    }
    this.fill(li, c);
    this.place(li, c);
    this.empty.hidden = this.items.size > 0;
  }

  createItem(peer) {
    const avatar = el('span', { class: 'avatar', 'aria-hidden': 'true' }, el('span', { class: 'dot', 'data-testid': 'presence-dot' }));
    const b = el(
      'button',
      { type: 'button', class: 'conv', 'data-testid': 'conversation-item', 'data-peer': peer },
      avatar,
      el(
        'span',
        { class: 'conv-body' },
        el(
          'span',
          { class: 'conv-top' },
          el('span', { class: 'conv-name', 'data-testid': 'conversation-name', dir: 'auto' }),
          el('span', { class: 'conv-username small muted', 'data-testid': 'conversation-username', dir: 'ltr' }),
          el('time', { class: 'conv-time small muted' }),
        ),
        el(
          'span',
          { class: 'conv-bottom' },
          el('span', { class: 'conv-preview small', 'data-testid': 'conversation-preview', dir: 'auto' }),
          el('span', { class: 'badge', 'data-testid': 'unread-badge', hidden: true }),
        ),
      ),
    );
    if (peer === this.active) {
      b.classList.add('active');
      b.setAttribute('aria-current', 'true');
    }
    return el('li', {}, b);
  }

  fill(li, c) {
    const b = li.firstElementChild;
    const me = this.store.me;
    const name = displayName(c.peer);
    const avatar = b.querySelector('.avatar');
    fillAvatar(avatar, c.peer);
    const dot = avatar.querySelector('.dot');
    dot.dataset.online = this.store.presenceKnown === false ? 'unknown' : String(!!(c.presence && c.presence.online));
    b.querySelector('.conv-name').textContent = name;
    const handle = c.peer.username ? `@${c.peer.username}` : '';
    b.querySelector('.conv-username').textContent = handle;
    const m = c.last_message;
    const t = b.querySelector('.conv-time');
    const when = m ? m._t || Date.parse(m.created_at) : 0;
    t.textContent = fmtListTime(when);
    t.dateTime = m ? m.created_at : '';
    t.title = fmtFull(when);
    const prev = b.querySelector('.conv-preview');
    const typing = c.typingUntil > Date.now();
    prev.classList.toggle('typing-preview', typing);
    let text;
    if (typing) text = 'typing…';
    else if (m) {
      const full = previewText(m); // deleted, attachments only (api.md 1.1)
      const body = full.length > PREVIEW_CHARS ? `${full.slice(0, PREVIEW_CHARS)}…` : full;
      text = (me && m.from === me.id ? 'You: ' : '') + body;
    } else text = 'No messages yet';
    prev.textContent = text;
    const badge = b.querySelector('.badge');
    const unread = c.unread || 0;
    badge.hidden = unread <= 0;
    badge.textContent = unread > 99 ? '99+' : String(unread);
    b.dataset.unread = String(unread);
    b.classList.toggle('unread', unread > 0);
    const parts = [handle ? `${name} (${handle})` : name, this.store.presenceKnown === false ? '' : fmtPresence(c.presence)];
    if (unread > 0) parts.push(`${unread} unread`);
    if (m && !typing) parts.push(text);
    b.setAttribute('aria-label', parts.filter(Boolean).join(', '));
  }

  /** place moves li to its sorted position if it is not already there. */
  place(li, c) {
    const prev = li.previousElementSibling;
    const next = li.nextElementSibling;
    const convOf = (node) => this.store.conv(node.firstElementChild.dataset.peer);
    const okPrev = !prev || compareConvs(convOf(prev), c) <= 0;
    const okNext = !next || compareConvs(c, convOf(next)) <= 0;
    if (li.parentNode === this.list && okPrev && okNext) return;
    const hadFocus = li.contains(document.activeElement);
    let before = null;
    for (const node of this.list.children) {
      if (node === li) continue;
      if (compareConvs(c, convOf(node)) < 0) {
        before = node;
        break;
      }
    }
    this.list.insertBefore(li, before);
    if (hadFocus) li.firstElementChild.focus({ preventScroll: true });
  }

  /** refreshTimes re-renders relative times and typing previews. */
  refreshAll() {
    for (const [peer, li] of this.items) {
      const c = this.store.conv(peer);
      if (c) this.fill(li, c);
    }
  }

  onListKey(e) {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const cur = e.target.closest('li');
    if (!cur) return;
    const to = e.key === 'ArrowDown' ? cur.nextElementSibling : cur.previousElementSibling;
    if (to) {
      e.preventDefault();
      to.firstElementChild.focus();
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      this.search.focus();
    }
  }

  // ---- people search ----

  onSearchInput() {
    clearTimeout(this.searchTimer);
    const q = this.search.value.trim();
    if (!q) {
      this.hideResults();
      return;
    }
    this.searchTimer = setTimeout(() => this.runSearch(q), 180);
  }

  async runSearch(q) {
    if (this.searchAbort) this.searchAbort.abort();
    const ctl = new AbortController();
    this.searchAbort = ctl;
    this.lastQuery = q;
    this.results.setAttribute('aria-busy', 'true');
    try {
      const res = await api.searchUsers(q, ctl.signal);
      if (ctl.signal.aborted || this.search.value.trim() !== q) return;
      this.showResults((res && res.users) || []);
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      if (this.search.value.trim() !== q) return;
      this.showResults([], `Search failed: ${e.message}`);
    } finally {
      if (this.searchAbort === ctl) {
        this.searchAbort = null;
        this.results.removeAttribute('aria-busy');
      }
    }
  }

  showResults(users, error) {
    const items = [];
    for (const u of users) {
      const presence = u.presence || { online: false, last_seen: null };
      this.store.presence.set(u.id, presence);
      const avatar = el('span', { class: 'avatar', 'aria-hidden': 'true' }, el('span', { class: 'dot', 'data-online': String(!!presence.online) }));
      fillAvatar(avatar, u);
      const b = el(
        'button',
        {
          type: 'button',
          class: 'result',
          'data-testid': 'user-result',
          'data-user-id': u.id,
          'data-username': u.username,
          'aria-label': `Chat with ${displayName(u)} (@${u.username}), ${fmtPresence(presence)}`,
        },
        avatar,
        el('span', { class: 'result-body' }, el('span', { class: 'result-name', dir: 'auto', text: displayName(u) }), el('span', { class: 'result-username small muted', 'data-testid': 'user-result-username', dir: 'ltr', text: `@${u.username}` })),
      );
      b._user = { id: u.id, username: u.username, display_name: u.display_name };
      b._presence = presence;
      items.push(b);
    }
    if (error) items.push(el('p', { class: 'results-note error-text', role: 'alert', 'data-testid': 'user-search-error', text: error }));
    else if (!users.length) items.push(el('p', { class: 'results-note muted', 'data-testid': 'user-search-empty', text: 'No one found by that name.' }));
    this.results.replaceChildren(...items);
    this.results.hidden = false;
    this.search.setAttribute('aria-expanded', 'true');
  }

  updateResultPresence(userId) {
    if (this.results.hidden) return;
    const b = this.results.querySelector(`[data-user-id="${CSS.escape(userId)}"]`);
    const p = this.store.presence.get(userId);
    if (b && p) {
      b._presence = p;
      b.querySelector('.dot').dataset.online = String(!!p.online);
    }
  }

  hideResults() {
    clearTimeout(this.searchTimer);
    if (this.searchAbort) this.searchAbort.abort();
    this.results.hidden = true;
    this.results.replaceChildren();
    this.search.setAttribute('aria-expanded', 'false');
  }

  pick(user, presence) {
    this.search.value = '';
    this.hideResults();
    this.actions.openUser(user, presence);
  }

  onSearchKey(e) {
    if (e.key === 'Escape') {
      this.search.value = '';
      this.hideResults();
    } else if (e.key === 'ArrowDown') {
      const first = this.results.querySelector('button');
      if (first && !this.results.hidden) {
        e.preventDefault();
        first.focus();
      } else if (this.list.firstElementChild) {
        e.preventDefault();
        this.list.firstElementChild.firstElementChild.focus();
      }
    } else if (e.key === 'Enter') {
      e.preventDefault();
      clearTimeout(this.searchTimer);
      const first = this.results.querySelector('button');
      const q = this.search.value.trim();
      if (first && !this.results.hidden && q === this.lastQuery) this.pick(first._user, first._presence);
      else if (q) this.runSearch(q);
    }
  }

  onResultsKey(e) {
    const buttons = [...this.results.querySelectorAll('button')];
    const i = buttons.indexOf(document.activeElement);
    if (e.key === 'ArrowDown' && i >= 0 && i < buttons.length - 1) {
      e.preventDefault();
      buttons[i + 1].focus();
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      if (i > 0) buttons[i - 1].focus();
      else this.search.focus();
    } else if (e.key === 'Escape') {
      this.search.value = '';
      this.hideResults();
      this.search.focus();
    }
  }
}
