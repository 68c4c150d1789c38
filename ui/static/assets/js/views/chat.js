// The conversation pane: header (name, presence), the message log and the
// composer.
//
// The log renders a window of the conversation's messages: at most MAX_DOM
// rows are in the DOM. Scrolling near the top renders earlier messages from
// memory (or fetches an older page), near the bottom later ones; the far
// side is trimmed, and the scroll position is kept by hand (overflow-anchor
// is off). New messages are inserted as single rows, never by re-rendering
// the list, and the log sticks to the bottom only if it was at the bottom.

import { byId, charCount, dayKey, displayName, el, fillAvatar, fmtDay, fmtFull, fmtPresence, fmtTime, limits, lowerBound, utf8Length } from '../util.js';
import { statusOf } from '../store.js';
import { isEdited, previewText } from '../events.js';
import { MAX_ATTACHMENTS, Uploads } from '../attachments.js';
import { attachmentNodes, editedNode, quoteNode, reactionsNode, textNode } from './message.js';
import { MessageMenu, confirmDelete, viewImage } from './actions.js';
import { toastError } from './toast.js';

const INITIAL = 60; // rows rendered when a conversation opens
const CHUNK = 50; // rows added per extension
const MAX_DOM = 250; // rows kept in the DOM
const EDGE = 600; // px from an edge that triggers an extension
const BOTTOM_SLACK = 48; // px from the bottom that still counts as "at the bottom"
const COUNTER_MARGIN = 512; // bytes below the limit at which the byte counter shows

const DRAFT_KEY = 'chatd.draft'; // localStorage: `${DRAFT_KEY}.${me}.${peer}` → text
const DRAFT_SAVE_DELAY = 300; // ms of quiet typing before a draft is written

/** draftKey is the localStorage key of the draft for peer of the signed-in user me. */
function draftKey(me, peer) {
  return `${DRAFT_KEY}.${me}.${peer}`;
}

function storageGet(key) {
  try {
    return localStorage.getItem(key) || '';
  } catch {
    return ''; // storage disabled (private mode, policy): drafts live in memory only
  }
}

function storageSet(key, value) {
  try {
    if (value) localStorage.setItem(key, value);
    else localStorage.removeItem(key);
  } catch {
    // Full or disabled: the in-memory draft still holds.
  }
}

/** clearDrafts removes the stored drafts of user me (on log out: a shared computer keeps no text). */
export function clearDrafts(me) {
  try {
    const prefix = `${DRAFT_KEY}.${me}.`;
    for (let i = localStorage.length - 1; i >= 0; i--) {
      const k = localStorage.key(i);
      if (k && k.startsWith(prefix)) localStorage.removeItem(k);
    }
  } catch {
    // Storage disabled: nothing stored.
  }
}

/** strokePath adds a rounded line path d to svg. */
function strokePath(svg, d) {
  const p = document.createElementNS(svg.namespaceURI, 'path');
  p.setAttribute('d', d);
  p.setAttribute('fill', 'none');
  p.setAttribute('stroke', 'currentColor');
  p.setAttribute('stroke-width', '1.8');
  p.setAttribute('stroke-linecap', 'round');
  p.setAttribute('stroke-linejoin', 'round');
  svg.append(p);
}

function svgIcon(d) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '20');
  svg.setAttribute('height', '20');
  svg.setAttribute('aria-hidden', 'true');
  strokePath(svg, d);
  return svg;
}

const TICK_LABEL = { pending: 'Sending', sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Not sent' };

function tickIcon(status) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 20 12');
  svg.setAttribute('aria-hidden', 'true');
  const path = (d) => strokePath(svg, d);
  if (status === 'pending') {
    svg.setAttribute('viewBox', '0 0 12 12');
    path('M6 1.5a4.5 4.5 0 1 0 0 9a4.5 4.5 0 1 0 0-9M6 3.5V6l1.8 1.2');
  } else if (status === 'failed') {
    svg.setAttribute('viewBox', '0 0 12 12');
    path('M6 2v5M6 9.5v.3');
  } else {
    path('M1.5 6.5l3 3 6-7');
    if (status !== 'sent') path('M8.5 9.5l.3.3 6-7.3');
  }
  return svg;
}

export class ChatView {
  /**
   * @param {import('../store.js').Store} store
   * @param {object} actions send(peer,text), retry(cid), discard(cid), typing(peer),
   *   loadOlder(peer) → Promise, loadNewest(peer), markRead(peer), back()
   */
  constructor(store, actions) {
    this.store = store;
    this.actions = actions;
    this.view = byId('chat-view');
    this.empty = byId('chat-empty');
    this.log = byId('log');
    this.top = byId('log-top');
    this.msgs = byId('msgs');
    this.pendingBox = byId('pending');
    this.typing = byId('typing');
    this.typingText = byId('typing-text');
    this.jump = byId('jump');
    this.jumpCount = byId('jump-count');
    this.name = byId('peer-name');
    this.presence = byId('peer-presence');
    this.username = byId('peer-username');
    this.blockBtn = byId('block-toggle');
    this.avatar = byId('peer-avatar');
    this.form = byId('composer-form');
    this.input = byId('composer');
    this.counter = byId('byte-counter');
    this.sendBtn = byId('send');

    this.peer = null;
    this.rows = new Map(); // seq → row element (rendered window)
    this.pendingRows = new Map(); // client_msg_id → row element
    this.loSeq = 0;
    this.hiSeq = 0;
    this.atEnd = true; // the window includes the newest message held
    this.stuck = true; // the log is scrolled to the bottom
    this.unseen = 0;
    this.drafts = new Map();
    this.draftTimer = 0;
    this.readAtOpen = -1; // the conversation's read pointer when it opened (-1: none)
    this.dividerSeq = 0; // the first unread message at opening: the "new messages" divider goes above it
    this.typingTimer = 0;
    this.scrollQueued = false;
    this.extending = false;
    this.swallowBreak = false; // a plain Enter sent the message: drop its line break
    this.queue = []; // inserted messages waiting for the next frame
    this.flushQueued = false;
    this.headerKey = '';

    store.addEventListener('messages', (e) => e.detail.peer === this.peer && this.onMessages(e.detail.added));
    store.addEventListener('loaded', (e) => e.detail.peer === this.peer && this.renderBottom());
    store.addEventListener('receipts', (e) => e.detail.peer === this.peer && this.refreshTicks());
    store.addEventListener('conv', (e) => e.detail.peer === this.peer && this.renderHeader());
    store.addEventListener('typing', (e) => e.detail.peer === this.peer && this.renderTyping());
    store.addEventListener('pending', (e) => e.detail.peer === this.peer && this.onPending(e.detail));

    this.log.addEventListener('scroll', () => this.queueScroll(), { passive: true });
    new ResizeObserver(() => {
      if (this.stuck) this.scrollToBottom();
    }).observe(this.log);
    this.jump.addEventListener('click', () => this.jumpToLatest());
    byId('back').addEventListener('click', () => this.actions.back());
    this.blockBtn.addEventListener('click', () => this.peer && this.actions.toggleBlock(this.peer));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener('keydown', (e) => {
      this.swallowBreak = false;
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        this.swallowBreak = true;
        this.submit();
      } else if (e.key === 'Escape' && this.replyTo) {
        e.preventDefault();
        this.setReply(0);
      } else if (e.key === 'Escape' && window.matchMedia('(max-width: 767px)').matches) {
        this.actions.back();
      }
    });
    // Some input paths (synthetic key events, a few IMEs) deliver the
    // Enter's line break separately from its keydown: drop that one.
    this.input.addEventListener('keyup', (e) => {
      if (e.key === 'Enter') this.swallowBreak = false;
    });
    this.input.addEventListener('keypress', (e) => {
      if (e.key === 'Enter' && this.swallowBreak) e.preventDefault();
    });
    this.input.addEventListener('beforeinput', (e) => {
      const lineBreak = e.inputType === 'insertLineBreak' || e.inputType === 'insertParagraph' || (e.inputType === 'insertText' && (e.data === '\n' || e.data === '\r'));
      if (lineBreak && this.swallowBreak) {
        e.preventDefault();
        this.swallowBreak = false;
      }
    });
    this.input.addEventListener('input', () => {
      this.onInput();
      this.queueDraftSave();
      if (this.input.value.trim()) this.actions.typing(this.peer);
    });
    this.msgs.addEventListener('click', (e) => this.onRowClick(e));
    this.pendingBox.addEventListener('click', (e) => this.onRowClick(e));
    store.addEventListener('update', (e) => e.detail.peer === this.peer && this.onUpdate(e.detail.seqs));
    this.setupExtras();
  }

  // ---- reply, edit, delete, react, attachments (api.md 1.1) ----

  setupExtras() {
    this.replyTo = 0; // seq the next message replies to
    this.editing = null; // {seq, value}: the message being edited inline
    this.menu = new MessageMenu({
      reply: (seq) => this.startReply(seq),
      edit: (seq) => this.startEdit(seq),
      remove: (seq) => this.remove(seq),
      react: (seq, emoji) => this.peer && this.actions.react(this.peer, seq, emoji),
    });
    // Above the composer: what the next message replies to, and its attachments.
    this.replyBar = el('div', { class: 'reply-bar', 'data-testid': 'reply-bar', hidden: true });
    this.tray = el('ul', { class: 'upload-tray', 'data-testid': 'upload-tray', 'aria-label': 'Attachments', hidden: true });
    this.form.before(this.replyBar, this.tray);
    this.uploads = new Uploads(this.tray, () => this.onInput(), (msg) => toastError(msg));
    this.fileInput = el('input', { type: 'file', multiple: true, hidden: true, 'data-testid': 'file-input', tabindex: '-1', 'aria-hidden': 'true' });
    const attach = el('button', { type: 'button', class: 'btn icon attach', 'data-testid': 'attach-button', 'aria-label': 'Attach files', title: `Attach files (up to ${MAX_ATTACHMENTS})` });
    attach.append(svgIcon('M16.5 6.5l-7.8 7.8a2 2 0 0 0 2.8 2.8l8-8a4 4 0 0 0-5.6-5.6l-8.2 8.2a6 6 0 0 0 8.5 8.5l7.3-7.3'));
    this.input.before(attach, this.fileInput);
    attach.addEventListener('click', () => this.fileInput.click());
    this.fileInput.addEventListener('change', () => {
      this.uploads.add([...this.fileInput.files]);
      this.fileInput.value = '';
    });
    this.replyBar.addEventListener('click', (e) => {
      if (e.target.closest('[data-action="cancel-reply"]')) this.setReply(0);
      else if (e.target.closest('[data-action="jump"]')) this.jumpTo(this.replyTo);
    });
    // Drop files anywhere on the conversation; paste images into the composer.
    let depth = 0;
    const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
    this.view.addEventListener('dragenter', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth++;
      this.view.classList.add('dropping');
    });
    this.view.addEventListener('dragover', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    });
    this.view.addEventListener('dragleave', (e) => {
      if (!hasFiles(e)) return;
      if (--depth <= 0) {
        depth = 0;
        this.view.classList.remove('dropping');
      }
    });
    this.view.addEventListener('drop', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      this.view.classList.remove('dropping');
      if (this.peer) this.uploads.add([...e.dataTransfer.files]);
    });
    this.input.addEventListener('paste', (e) => {
      const files = e.clipboardData ? [...e.clipboardData.files] : [];
      // Text copied from an office document comes with a picture of itself: paste the text.
      if (!files.length || e.clipboardData.types.includes('text/plain')) return;
      e.preventDefault(); // the files, not their names as text
      this.uploads.add(files);
    });
    // The inline editor: Enter saves, Shift+Enter is a new line, Escape cancels.
    this.msgs.addEventListener('keydown', (e) => {
      if (!e.target.matches('[data-testid="edit-input"]')) return;
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.saveEdit();
      } else if (e.key === 'Escape') {
        e.preventDefault();
        this.cancelEdit();
      }
    });
    this.msgs.addEventListener('input', (e) => {
      if (this.editing && e.target.matches('[data-testid="edit-input"]')) this.editing.value = e.target.value;
    });
    this.msgs.addEventListener('submit', (e) => {
      if (!e.target.matches('.edit-form')) return;
      e.preventDefault();
      this.saveEdit();
    });
    this.setupRoving();
    // The menu follows its message when the log scrolls, and goes with it.
    this.log.addEventListener('scroll', () => {
      const b = this.menu.opener;
      if (!this.menu.open) return;
      const r = b && b.isConnected ? b.getBoundingClientRect() : null;
      const l = this.log.getBoundingClientRect();
      if (!r || r.bottom < l.top || r.top > l.bottom) this.menu.close(false);
      else this.menu.place(b);
    }, { passive: true });
  }

  /**
   * setupRoving keeps the controls inside messages (menu button, quote,
   * reactions, links, attachments) out of the Tab order but those of one
   * message, so that Tab goes from the log to the composer: in the log,
   * Enter picks the newest message shown, the arrow keys (Home, End) move
   * between messages, Escape goes back to the log.
   */
  setupRoving() {
    this.activeSeq = 0;
    const help = el('span', { id: 'log-help', class: 'sr-only', text: 'Press Enter to choose a message, then the up and down arrows to move between messages and Enter to open its actions. Escape returns here.' });
    this.log.after(help);
    this.log.setAttribute('aria-describedby', 'log-help');
    this.msgs.addEventListener('focusin', (e) => {
      const row = e.target.closest('[data-seq]');
      if (row) this.activate(Number(row.dataset.seq));
    });
    this.log.addEventListener('keydown', (e) => {
      if (e.target.closest('textarea, .edit-form') || e.altKey || e.ctrlKey || e.metaKey) return;
      const row = e.target === this.log ? null : e.target.closest('#msgs [data-seq]');
      const pick = (r) => {
        if (!r) return;
        e.preventDefault();
        const b = r.querySelector('[data-testid="message-actions"]') || r.querySelector('a, button');
        if (b) b.focus();
        r.scrollIntoView({ block: 'nearest' });
      };
      const rows = () => [...this.msgs.children].filter((r) => r.querySelector('a, button'));
      if (!row) {
        if (e.key === 'Enter' && e.target === this.log) {
          // The newest message whose top is on screen.
          const bottom = this.log.getBoundingClientRect().bottom;
          pick(rows().filter((r) => r.getBoundingClientRect().top < bottom).pop());
          // This Enter only picks: its keypress, when delivered on its
          // own (synthetic input does), must not press the button.
          this.enterPicked = true;
        }
        return;
      }
      const list = rows();
      const i = list.indexOf(row);
      if (e.key === 'ArrowUp') pick(list[i - 1]);
      else if (e.key === 'ArrowDown') pick(list[i + 1]);
      else if (e.key === 'Home') pick(list[0]);
      else if (e.key === 'End') pick(list[list.length - 1]);
      else if (e.key === 'Escape' && !this.menu.open) {
        e.preventDefault();
        this.log.focus();
      }
    });
    this.log.addEventListener('keypress', (e) => {
      if (e.key === 'Enter' && this.enterPicked) e.preventDefault();
      this.enterPicked = false;
    });
    this.log.addEventListener('keyup', () => {
      this.enterPicked = false;
    });
  }

  /** activate puts the controls of message seq in the Tab order, and takes the previous one's out. */
  activate(seq) {
    if (seq === this.activeSeq) return;
    const old = this.rows.get(this.activeSeq);
    if (old) for (const n of old.querySelectorAll('a, button')) n.tabIndex = -1;
    this.activeSeq = seq;
    const row = this.rows.get(seq);
    if (row) for (const n of row.querySelectorAll('a, button')) n.tabIndex = 0;
  }

  /** nameOf is how a member is named in quotes and reactions. */
  nameOf(id) {
    const me = this.store.me;
    if (me && id === me.id) return 'You';
    const c = this.store.conv(this.peer);
    return c && c.peer.id === id ? displayName(c.peer) : '…';
  }

  heldMessage(seq) {
    const c = this.store.conv(this.peer);
    if (!c) return undefined;
    const i = lowerBound(c.msgs, seq);
    return c.msgs[i] && c.msgs[i].seq === seq ? c.msgs[i] : undefined;
  }

  startReply(seq) {
    this.setReply(seq);
    this.input.focus();
  }

  setReply(seq) {
    this.replyTo = seq;
    const m = seq ? this.heldMessage(seq) : undefined;
    if (!m) {
      this.replyTo = 0;
      this.replyBar.hidden = true;
      this.replyBar.replaceChildren();
      return;
    }
    this.replyBar.replaceChildren(
      el('span', { class: 'reply-label small', text: 'Replying to' }),
      quoteNode(seq, m, (id) => this.nameOf(id)),
      el('button', { type: 'button', class: 'btn icon small', 'data-action': 'cancel-reply', 'data-testid': 'reply-cancel', 'aria-label': 'Cancel reply', title: 'Cancel reply', text: '×' }),
    );
    this.replyBar.hidden = false;
  }

  startEdit(seq) {
    const m = this.heldMessage(seq);
    if (!m || m.deleted) return;
    if (this.editing) this.cancelEdit();
    this.editing = { seq, value: m.text };
    this.rerender(seq);
    const input = this.msgs.querySelector('[data-testid="edit-input"]');
    if (input) {
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
    }
  }

  saveEdit() {
    const ed = this.editing;
    if (!ed) return;
    const m = this.heldMessage(ed.seq);
    const text = ed.value;
    if (!text.trim()) {
      toastError('A message cannot be empty: delete it instead.');
      return;
    }
    if (utf8Length(text) > limits.maxTextBytes) {
      toastError(`Too long: a message has at most ${limits.maxTextBytes} bytes (UTF-8).`);
      return;
    }
    this.editing = null;
    if (m && text !== m.text) this.actions.edit(this.peer, ed.seq, text);
    this.rerender(ed.seq, true);
  }

  cancelEdit() {
    const ed = this.editing;
    if (!ed) return;
    this.editing = null;
    this.rerender(ed.seq, true);
  }

  async remove(seq) {
    const peer = this.peer;
    if (!(await confirmDelete())) return;
    if (this.peer === peer) this.actions.remove(peer, seq);
  }

  /** rerender replaces the row of seq (when rendered); focus goes back to its menu button if asked. */
  rerender(seq, focusMenu = false) {
    const c = this.store.conv(this.peer);
    const old = this.rows.get(seq);
    if (!c || !old) return;
    const i = lowerBound(c.msgs, seq);
    if (!c.msgs[i] || c.msgs[i].seq !== seq) return;
    const row = this.makeRow(c, i);
    old.replaceWith(row);
    this.rows.set(seq, row);
    if (focusMenu) {
      const b = row.querySelector('[data-testid="message-actions"]');
      if (b) b.focus({ preventScroll: true });
    }
  }

  /** onUpdate re-renders held messages whose state changed, and the quotes of them. */
  onUpdate(seqs) {
    const wasStuck = this.isAtBottom();
    for (const seq of seqs) {
      if (this.editing && this.editing.seq === seq) {
        const m = this.heldMessage(seq);
        if (m && m.deleted) this.editing = null;
      }
      this.rerender(seq);
      for (const r of this.msgs.querySelectorAll(`[data-reply-to="${seq}"]`)) this.rerender(Number(r.dataset.seq));
      if (this.replyTo === seq) this.setReply(seq);
      if (this.menu.open && this.menu.seq === seq) this.menu.close(false);
    }
    if (wasStuck && this.atEnd) this.scrollToBottom();
  }

  /**
   * jumpTo shows the message seq (the original of a reply): in the window
   * if rendered, else from memory, else after fetching older pages.
   */
  async jumpTo(seq) {
    const peer = this.peer;
    const c = this.store.conv(peer);
    if (!c || !seq) return;
    for (let pages = 0; !this.heldMessage(seq) && c.hasMoreBefore && pages < 50; pages++) {
      if (!c.msgs.length || c.msgs[0].seq < seq) break;
      try {
        await this.actions.loadOlder(peer);
      } catch {
        return;
      }
      if (this.peer !== peer) return;
    }
    if (!this.heldMessage(seq)) {
      toastError('The original message is not available.');
      return;
    }
    if (!this.rows.has(seq)) this.renderAround(c, lowerBound(c.msgs, seq));
    const row = this.rows.get(seq);
    if (!row) return;
    row.scrollIntoView({ block: 'center' });
    row.classList.remove('flash');
    void row.offsetWidth; // restart the highlight
    row.classList.add('flash');
    const b = row.querySelector('[data-testid="message-actions"]');
    if (b) b.focus({ preventScroll: true });
  }

  /** renderAround renders a window of rows around index idx (not at the end). */
  renderAround(c, idx) {
    this.quietly(() => {
      this.queue = [];
      this.rows.clear();
      const n = c.msgs.length;
      const from = Math.max(0, idx - CHUNK);
      const to = Math.min(n, idx + CHUNK);
      this.msgs.replaceChildren(this.fragment(c, from, to));
      this.loSeq = c.msgs[from].seq;
      this.hiSeq = c.msgs[to - 1].seq;
      this.atEnd = to >= n;
      if (this.atEnd) this.renderPending();
      else {
        this.pendingRows.clear();
        this.pendingBox.replaceChildren();
      }
      this.stuck = false;
      this.updateTop();
      this.jump.hidden = this.atEnd;
    });
  }

  // ---- opening and closing ----

  open(peer) {
    if (this.peer === peer) return;
    this.close();
    const c = this.store.conv(peer);
    if (!c) return;
    this.peer = peer;
    this.view.hidden = false;
    this.empty.hidden = true;
    this.view.dataset.peer = peer;
    this.renderHeader();
    this.renderTyping();
    this.readAtOpen = c.read_seq || 0;
    this.dividerSeq = 0;
    this.input.value = this.drafts.has(peer) ? this.drafts.get(peer) : this.loadDraft(peer);
    this.onInput();
    if (c.loaded) this.renderBottom();
    else {
      this.clearRows();
      this.setTop('loading');
      this.actions.loadNewest(peer);
    }
    if (window.matchMedia('(min-width: 768px)').matches) this.input.focus({ preventScroll: true });
  }

  close() {
    if (this.peer) {
      this.drafts.set(this.peer, this.input.value);
      this.saveDraft();
    }
    if (this.menu) {
      this.menu.close(false);
      this.setReply(0);
      this.uploads.clear();
      this.editing = null;
    }
    this.peer = null;
    this.readAtOpen = -1;
    this.dividerSeq = 0;
    this.clearRows();
    this.view.hidden = true;
    this.empty.hidden = false;
    delete this.view.dataset.peer;
    this.typing.hidden = true;
    clearTimeout(this.typingTimer);
  }

  reset() {
    this.close();
    this.drafts.clear();
    this.input.value = '';
  }

  // ---- drafts (one per conversation, kept across reloads) ----

  loadDraft(peer) {
    const me = this.store.me;
    return me ? storageGet(draftKey(me.id, peer)) : '';
  }

  queueDraftSave() {
    clearTimeout(this.draftTimer);
    this.draftTimer = setTimeout(() => this.saveDraft(), DRAFT_SAVE_DELAY);
  }

  /** saveDraft writes the open conversation's draft now (also on pagehide, so a reload keeps it). */
  saveDraft() {
    clearTimeout(this.draftTimer);
    const me = this.store.me;
    if (!me || !this.peer) return;
    storageSet(draftKey(me.id, this.peer), this.input.value);
  }

  clearRows() {
    this.queue = [];
    this.rows.clear();
    this.pendingRows.clear();
    this.msgs.replaceChildren();
    this.pendingBox.replaceChildren();
    this.loSeq = this.hiSeq = 0;
    this.atEnd = true;
    this.stuck = true;
    this.setUnseen(0);
    this.jump.hidden = true;
  }

  /** isReading reports whether the user can see the newest messages now. */
  isReading() {
    return !!this.peer && this.atEnd && this.stuck;
  }

  // ---- header, typing ----

  renderHeader() {
    const c = this.store.conv(this.peer);
    if (!c) return;
    const key = `${c.peer.id}\n${c.peer.username}\n${c.peer.display_name}`;
    if (key !== this.headerKey) {
      this.headerKey = key;
      this.name.textContent = displayName(c.peer);
      this.name.title = `@${c.peer.username}`;
      this.username.textContent = c.peer.username ? `@${c.peer.username}` : '';
      fillAvatar(this.avatar, c.peer);
    }
    // Disconnected, presence is not known: the peer may have left meanwhile.
    const known = this.store.presenceKnown !== false;
    const online = known ? String(!!(c.presence && c.presence.online)) : 'unknown';
    // Block / Unblock: shown once the server's block list is known (store.blocked).
    const blocked = this.store.blocked;
    this.blockBtn.hidden = !blocked;
    if (blocked) {
      const on = blocked.has(c.peer.id);
      this.blockBtn.textContent = on ? 'Unblock' : 'Block';
      this.blockBtn.setAttribute('aria-pressed', String(on));
      this.blockBtn.setAttribute('aria-label', `${on ? 'Unblock' : 'Block'} ${displayName(c.peer)} (@${c.peer.username})`);
    }
    this.avatar.querySelector('.dot').dataset.online = online;
    this.presence.dataset.online = online;
    const text = c.typingUntil > Date.now() ? 'typing…' : known ? fmtPresence(c.presence) : 'waiting for network…';
    if (this.presence.textContent !== text) this.presence.textContent = text;
  }

  renderTyping() {
    const c = this.store.conv(this.peer);
    clearTimeout(this.typingTimer);
    const left = c ? c.typingUntil - Date.now() : 0;
    const on = left > 0;
    if (on) {
      this.typingText.textContent = `${displayName(c.peer)} is typing…`;
      this.typingTimer = setTimeout(() => this.renderTyping(), left + 20);
    }
    this.typing.hidden = !on;
    this.renderHeader();
  }

  // ---- rows ----

  makeRow(c, i) {
    const m = c.msgs[i];
    const me = this.store.me;
    const own = !!me && m.from === me.id;
    const row = el('div', {
      class: own ? 'row own' : 'row peer',
      'data-testid': 'message',
      'data-seq': m.seq,
      'data-from': m.from,
    });
    if (m.client_msg_id) row.dataset.clientMsgId = m.client_msg_id;
    if (this.needsSeparator(c, i)) row.append(this.separator(m._t));
    if (m.seq === this.dividerSeq) row.append(el('div', { class: 'new-sep', role: 'separator', 'data-testid': 'new-messages-divider' }, el('span', { text: 'New messages' })));
    const meta = el('span', { class: 'meta' }, el('time', { datetime: m.created_at, title: fmtFull(m._t), text: fmtTime(m._t) }));
    if (own) {
      const status = statusOf(c, m);
      row.dataset.status = status;
      meta.append(el('span', { class: 'tick', role: 'img', 'data-testid': 'message-status', 'aria-label': TICK_LABEL[status] }, tickIcon(status)));
    }
    if (m.deleted) row.dataset.deleted = 'true';
    if (isEdited(m)) {
      row.dataset.edited = 'true';
      meta.prepend(editedNode(m));
    }
    if (m.reply_to) row.dataset.replyTo = String(m.reply_to);
    const nameOf = (id) => this.nameOf(id);
    const editing = this.editing && this.editing.seq === m.seq;
    const body = editing ? [this.editor(this.editing.value)] : textNode(m);
    const bubble = el(
      'div',
      { class: m.deleted ? 'bubble deleted' : (m.reply_to || m.attachments.length) && !editing ? 'bubble stack' : 'bubble' },
      m.reply_to && !m.deleted ? quoteNode(m.reply_to, this.heldMessage(m.reply_to), nameOf) : null,
      m.deleted ? null : attachmentNodes(m.attachments),
      ...body,
      meta,
    );
    const line = el('div', { class: 'bubble-line' }, bubble);
    if (!m.deleted) {
      const who = own ? 'your message' : `message from ${displayName(c.peer)}`;
      const preview = previewText(m);
      line.append(el('button', {
        type: 'button', class: 'btn icon msg-actions', 'data-action': 'menu', 'data-testid': 'message-actions', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
        'aria-label': `Actions for ${who}: ${preview.length > 60 ? `${preview.slice(0, 60)}…` : preview}`, title: 'Reply, react, edit or delete', text: '⋯',
      }));
    }
    row.append(line);
    const reactions = reactionsNode(m, me ? me.id : '', nameOf);
    if (reactions) row.append(reactions);
    // Out of the Tab order unless it is the message picked (setupRoving).
    const tab = m.seq === this.activeSeq ? 0 : -1;
    for (const n of row.querySelectorAll('a, button')) n.tabIndex = tab;
    return row;
  }

  editor(value) {
    const input = el('textarea', { class: 'edit-input', 'data-testid': 'edit-input', rows: 2, dir: 'auto', 'aria-label': 'Edit message' });
    input.value = value;
    return el('form', { class: 'edit-form', 'data-testid': 'edit-form' },
      input,
      el('div', { class: 'edit-actions' },
        el('button', { type: 'button', class: 'btn ghost small', 'data-action': 'cancel-edit', 'data-testid': 'edit-cancel', text: 'Cancel' }),
        el('button', { type: 'submit', class: 'btn primary small', 'data-testid': 'edit-save', text: 'Save' })));
  }

  separator(t) {
    return el('div', { class: 'day-sep', role: 'separator', 'data-testid': 'date-separator' }, el('span', { text: fmtDay(t) }));
  }

  needsSeparator(c, i) {
    if (i === 0) return !c.hasMoreBefore;
    return dayKey(c.msgs[i - 1]._t) !== dayKey(c.msgs[i]._t);
  }

  /** fixSeparator re-evaluates the date separator of the row at index i. */
  fixSeparator(c, i) {
    const m = c.msgs[i];
    const row = m && this.rows.get(m.seq);
    if (!row) return;
    const has = row.firstElementChild && row.firstElementChild.classList.contains('day-sep');
    const want = this.needsSeparator(c, i);
    if (has && !want) row.firstElementChild.remove();
    else if (!has && want) row.prepend(this.separator(m._t));
  }

  fragment(c, from, to) {
    const f = document.createDocumentFragment();
    for (let i = from; i < to; i++) {
      const row = this.makeRow(c, i);
      this.rows.set(c.msgs[i].seq, row);
      f.append(row);
    }
    return f;
  }

  /**
   * quietly marks the log busy while fn renders many rows at once, so that
   * screen readers announce live messages, not history coming into view.
   */
  quietly(fn) {
    this.log.setAttribute('aria-busy', 'true');
    try {
      fn();
    } finally {
      clearTimeout(this.busyTimer);
      this.busyTimer = setTimeout(() => this.log.setAttribute('aria-busy', 'false'), 100);
    }
  }

  /** renderBottom renders the newest messages and scrolls to the bottom. */
  renderBottom() {
    this.quietly(() => this.renderBottomNow());
  }

  renderBottomNow() {
    const c = this.store.conv(this.peer);
    if (!c) return;
    this.queue = []; // everything held is rendered from the store below
    this.rows.clear();
    const n = c.msgs.length;
    if (!this.dividerSeq && this.readAtOpen >= 0) {
      const me = this.store.me;
      const first = c.msgs.find((m) => m.seq > this.readAtOpen && (!me || m.from !== me.id));
      if (first) this.dividerSeq = first.seq;
    }
    const from = Math.max(0, n - INITIAL);
    this.msgs.replaceChildren(this.fragment(c, from, n));
    this.loSeq = n ? c.msgs[from].seq : 0;
    this.hiSeq = n ? c.msgs[n - 1].seq : 0;
    this.atEnd = true;
    this.renderPending();
    this.setUnseen(0);
    this.updateTop();
    this.stuck = true;
    this.scrollToBottom();
    this.jump.hidden = true;
    // A short conversation may not fill the log: fetch more at once.
    requestAnimationFrame(() => this.onScroll());
    this.actions.markRead(this.peer);
  }

  /**
   * onMessages queues inserted messages; they are rendered once per frame,
   * so a burst of events costs one layout, not one per message.
   */
  onMessages(added) {
    const c = this.store.conv(this.peer);
    if (!c || !c.loaded) return;
    for (const m of added) this.queue.push(m);
    if (this.flushQueued) return;
    this.flushQueued = true;
    requestAnimationFrame(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  flush() {
    const added = this.queue;
    this.queue = [];
    const c = this.store.conv(this.peer);
    if (!added.length || !c || !c.loaded) return;
    if (added.length > 1) added.sort((a, b) => a.seq - b.seq);
    const wasStuck = this.isAtBottom();
    const me = this.store.me;
    let incoming = 0;
    for (const m of added) {
      if (this.rows.has(m.seq)) continue; // rendered meanwhile (window moved)
      const i = lowerBound(c.msgs, m.seq);
      if (c.msgs[i] !== m) continue; // no longer held
      if (!this.rows.size) {
        if (!this.atEnd) continue;
        this.msgs.append(this.makeRowAt(c, i));
        this.loSeq = this.hiSeq = m.seq;
      } else if (m.seq < this.loSeq) {
        continue; // above the window: rendered when scrolled to
      } else if (m.seq > this.hiSeq) {
        if (!this.atEnd) {
          if (!me || m.from !== me.id) incoming++;
          continue;
        }
        this.msgs.append(this.makeRowAt(c, i));
        this.hiSeq = m.seq;
      } else {
        // Inside the window: before the next rendered row.
        let next = null;
        for (let j = i + 1; j < c.msgs.length && !next; j++) next = this.rows.get(c.msgs[j].seq) || null;
        this.msgs.insertBefore(this.makeRowAt(c, i), next);
      }
      this.fixSeparator(c, i + 1);
      if ((!me || m.from !== me.id) && !wasStuck) incoming++;
    }
    // Quotes shown as "Earlier message" until their original arrived (an older page).
    const seqs = new Set(added.map((m) => m.seq));
    for (const r of this.msgs.querySelectorAll('[data-reply-to]')) if (seqs.has(Number(r.dataset.replyTo))) this.rerender(Number(r.dataset.seq));
    if (incoming) this.setUnseen(this.unseen + incoming);
    if (this.top.dataset.state === 'empty') this.updateTop();
    if (wasStuck && this.atEnd) {
      // Trim in chunks (not a row per message), and without keeping the
      // position: the log goes to the bottom anyway.
      if (this.rows.size > MAX_DOM + CHUNK) this.trimTop(c, false);
      this.scrollToBottom();
    } else if (incoming) this.jump.hidden = false;
  }

  makeRowAt(c, i) {
    const row = this.makeRow(c, i);
    this.rows.set(c.msgs[i].seq, row);
    return row;
  }

  refreshTicks() {
    const c = this.store.conv(this.peer);
    if (!c) return;
    const me = this.store.me;
    if (!me) return;
    // Only rows within the window can change; at most MAX_DOM of them.
    for (const [seq, row] of this.rows) {
      if (row.dataset.from !== me.id) continue;
      const status = seq <= c.peer_read_seq ? 'read' : seq <= c.peer_delivered_seq ? 'delivered' : 'sent';
      if (row.dataset.status === status) continue;
      row.dataset.status = status;
      const tick = row.querySelector('.tick');
      tick.setAttribute('aria-label', TICK_LABEL[status]);
      tick.replaceChildren(tickIcon(status));
    }
  }

  // ---- pending sends ----

  renderPending() {
    this.pendingRows.clear();
    const rows = this.store.pendingFor(this.peer).map((p) => this.makePendingRow(p));
    this.pendingBox.replaceChildren(...rows);
  }

  makePendingRow(p) {
    const row = el('div', { class: 'row own', 'data-testid': 'message', 'data-client-msg-id': p.cid, 'data-from': p.from });
    this.pendingRows.set(p.cid, row);
    this.fillPendingRow(row, p);
    return row;
  }

  fillPendingRow(row, p) {
    row.dataset.status = p.status;
    const meta = el(
      'span',
      { class: 'meta' },
      el('time', { text: fmtTime(p.createdAt) }),
      el('span', { class: 'tick', role: 'img', 'data-testid': 'message-status', 'aria-label': TICK_LABEL[p.status] }, tickIcon(p.status)),
    );
    const bubble = el(
      'div',
      { class: p.replyTo || p.attachments.length ? 'bubble stack' : 'bubble' },
      p.replyTo ? quoteNode(p.replyTo, this.heldMessage(p.replyTo), (id) => this.nameOf(id)) : null,
      attachmentNodes(p.attachments),
      ...textNode({ text: p.text }),
      meta,
    );
    const parts = [bubble];
    if (p.status === 'failed') {
      parts.push(
        el(
          'div',
          { class: 'failed-bar', role: 'alert' },
          el('span', { class: 'error-text small', 'data-testid': 'message-error', text: p.error || 'Not sent.' }),
          el('button', { type: 'button', class: 'btn link small', 'data-action': 'retry', 'data-testid': 'retry-button', text: 'Retry' }),
          el('button', { type: 'button', class: 'btn link small', 'data-action': 'discard', 'data-testid': 'discard-button', text: 'Discard' }),
        ),
      );
    }
    row.replaceChildren(...parts);
  }

  onPending({ cid, op }) {
    const wasStuck = this.isAtBottom();
    const p = this.store.pending.get(cid);
    const row = this.pendingRows.get(cid);
    if (op === 'remove') {
      if (row) row.remove();
      this.pendingRows.delete(cid);
      return;
    }
    if (!p) return;
    if (this.top.dataset.state === 'empty') this.updateTop();
    if (row) this.fillPendingRow(row, p);
    else {
      if (!this.atEnd) this.renderBottom(); // renders the pending rows too
      if (!this.pendingRows.has(cid)) this.pendingBox.append(this.makePendingRow(p));
      this.stuck = true;
      this.scrollToBottom();
      return;
    }
    if (wasStuck) this.scrollToBottom();
  }

  onRowClick(e) {
    const b = e.target.closest('button[data-action]');
    if (!b) return;
    const seqRow = b.closest('[data-seq]');
    const m = seqRow ? this.heldMessage(Number(seqRow.dataset.seq)) : undefined;
    switch (b.dataset.action) {
      case 'menu':
        if (m && this.store.me) this.menu.show(b, m, this.store.me.id);
        return;
      case 'react':
        if (m && this.peer) this.actions.react(this.peer, m.seq, b.getAttribute('aria-pressed') === 'true' ? '' : b.dataset.emoji);
        return;
      case 'jump':
        this.jumpTo(Number(b.dataset.target));
        return;
      case 'view-image': {
        const list = m ? m.attachments : (this.store.pending.get((b.closest('[data-client-msg-id]') || {}).dataset?.clientMsgId) || {}).attachments;
        const a = (list || []).find((x) => x.id === b.dataset.attachmentId);
        if (a) viewImage(a);
        return;
      }
      case 'cancel-edit':
        this.cancelEdit();
        return;
      default:
        break;
    }
    const row = b.closest('[data-client-msg-id]');
    if (!row) return;
    const cid = row.dataset.clientMsgId;
    if (b.dataset.action === 'retry') this.actions.retry(cid);
    else if (b.dataset.action === 'discard') this.actions.discard(cid);
  }

  // ---- scrolling and windowing ----

  isAtBottom() {
    const l = this.log;
    return l.scrollHeight - l.scrollTop - l.clientHeight <= BOTTOM_SLACK;
  }

  scrollToBottom() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  queueScroll() {
    if (this.scrollQueued) return;
    this.scrollQueued = true;
    requestAnimationFrame(() => {
      this.scrollQueued = false;
      this.onScroll();
    });
  }

  onScroll() {
    if (!this.peer) return;
    const c = this.store.conv(this.peer);
    if (!c || !c.loaded) return;
    this.stuck = this.isAtBottom();
    const l = this.log;
    if (l.scrollTop < EDGE) this.extendUp(c);
    else if (l.scrollHeight - l.scrollTop - l.clientHeight < EDGE && !this.atEnd) this.extendDown(c);
    this.jump.hidden = this.atEnd && this.stuck;
    if (this.atEnd && this.stuck) {
      this.setUnseen(0);
      this.actions.markRead(this.peer);
    }
  }

  extendUp(c) {
    if (this.extending) return;
    const idx = this.rows.size ? lowerBound(c.msgs, this.loSeq) : c.msgs.length;
    if (idx > 0) {
      this.log.setAttribute('aria-busy', 'true');
      clearTimeout(this.busyTimer);
      this.busyTimer = setTimeout(() => this.log.setAttribute('aria-busy', 'false'), 100);
      const from = Math.max(0, idx - CHUNK);
      const l = this.log;
      const h = l.scrollHeight;
      const top = l.scrollTop;
      this.msgs.prepend(this.fragment(c, from, idx));
      this.fixSeparator(c, idx);
      this.loSeq = c.msgs[from].seq;
      if (!this.hiSeq) this.hiSeq = c.msgs[idx - 1].seq;
      l.scrollTop = top + (l.scrollHeight - h);
      this.trimBottom(c);
      this.updateTop();
      return;
    }
    if (!c.hasMoreBefore || c.loadingOlder) return;
    this.extending = true;
    this.setTop('loading');
    const peer = this.peer;
    this.actions
      .loadOlder(peer)
      .then(() => {
        this.extending = false;
        if (this.peer !== peer) return;
        // The first row may now need (or lose) its date separator.
        const i = lowerBound(c.msgs, this.loSeq);
        this.fixSeparator(c, i);
        this.updateTop();
        if (this.log.scrollTop < EDGE) this.extendUp(c);
      })
      .catch((e) => {
        this.extending = false;
        if (this.peer === peer) this.setTop('error', e.message);
      });
  }

  extendDown(c) {
    const idx = lowerBound(c.msgs, this.hiSeq) + 1;
    const to = Math.min(c.msgs.length, idx + CHUNK);
    if (idx < to) {
      this.msgs.append(this.fragment(c, idx, to));
      this.fixSeparator(c, idx);
      this.hiSeq = c.msgs[to - 1].seq;
    }
    this.atEnd = to >= c.msgs.length;
    this.trimTop(c);
    if (this.atEnd) this.setUnseen(0);
  }

  /** trimTop drops rows above the window, keeping what is on screen still (if keep). */
  trimTop(c, keep = true) {
    const extra = this.rows.size - MAX_DOM;
    if (extra <= 0) return;
    const l = this.log;
    const h = keep ? l.scrollHeight : 0;
    const top = keep ? l.scrollTop : 0;
    let i = lowerBound(c.msgs, this.loSeq);
    for (let k = 0; k < extra; k++, i++) {
      const seq = c.msgs[i].seq;
      const row = this.rows.get(seq);
      if (row) row.remove();
      this.rows.delete(seq);
    }
    this.loSeq = c.msgs[i].seq;
    if (keep) l.scrollTop = top - (h - l.scrollHeight);
    this.updateTop();
  }

  /** trimBottom drops rows below the window. */
  trimBottom(c) {
    const extra = this.rows.size - MAX_DOM;
    if (extra <= 0) return;
    let i = lowerBound(c.msgs, this.hiSeq);
    for (let k = 0; k < extra; k++, i--) {
      const seq = c.msgs[i].seq;
      const row = this.rows.get(seq);
      if (row) row.remove();
      this.rows.delete(seq);
    }
    this.hiSeq = c.msgs[i].seq;
    this.atEnd = false;
    this.jump.hidden = false;
  }

  jumpToLatest() {
    if (this.atEnd) {
      this.log.scrollTo({ top: this.log.scrollHeight, behavior: 'smooth' });
    } else this.renderBottom();
    this.setUnseen(0);
    this.input.focus({ preventScroll: true });
  }

  setUnseen(n) {
    this.unseen = n;
    this.jumpCount.hidden = n <= 0;
    this.jumpCount.textContent = n > 99 ? '99+' : String(n);
    if (n > 0) this.jump.hidden = false;
  }

  updateTop() {
    const c = this.store.conv(this.peer);
    if (!c) return;
    const first = this.rows.size ? lowerBound(c.msgs, this.loSeq) : 0;
    if (first > 0 || c.hasMoreBefore) this.setTop('more');
    else this.setTop(c.msgs.length || this.store.pendingFor(this.peer).length ? 'start' : 'empty');
  }

  setTop(state, message) {
    this.top.dataset.state = state;
    const c = this.store.conv(this.peer);
    const name = c ? displayName(c.peer) : '';
    let content = [];
    if (state === 'loading') content = [el('span', { class: 'spinner small', 'aria-hidden': 'true' }), el('span', { text: 'Loading messages…' })];
    else if (state === 'start') content = [el('span', { text: `This is the beginning of your conversation with ${name}.` })];
    else if (state === 'empty') content = [el('span', { text: `No messages yet. Say hello to ${name}!` })];
    else if (state === 'error') {
      const retry = el('button', { type: 'button', class: 'btn link', 'data-testid': 'history-retry', text: 'Try again' });
      retry.addEventListener('click', () => {
        const cc = this.store.conv(this.peer);
        if (!cc) return;
        if (cc.loaded) this.extendUp(cc);
        else {
          this.setTop('loading');
          this.actions.loadNewest(this.peer);
        }
      });
      content = [el('span', { class: 'error-text', role: 'alert', text: `Could not load messages: ${message}` }), retry];
    }
    this.top.replaceChildren(...content);
  }

  /** loadFailed shows a failed first load. */
  loadFailed(peer, message) {
    if (peer === this.peer) this.setTop('error', message);
  }

  // ---- composer ----

  onInput() {
    const input = this.input;
    // Grow with the text up to 180 px (border-box: add the borders back).
    input.style.height = 'auto';
    const full = input.scrollHeight + input.offsetHeight - input.clientHeight;
    input.style.height = `${Math.min(full, 180)}px`;
    input.classList.toggle('scrolls', full > 180);
    const text = input.value;
    const bytes = utf8Length(text);
    const max = limits.maxTextBytes;
    const over = bytes > max;
    // Shown in characters (what the writer counts); the limit is in UTF-8
    // bytes, so Arabic letters take 2 and most emoji 4: say so when refused.
    this.counter.hidden = bytes < max - COUNTER_MARGIN;
    if (!this.counter.hidden) {
      const chars = charCount(text);
      this.counter.textContent = over
        ? `Too long: ${chars} characters take ${bytes} bytes, the limit is ${max} bytes (letters like é or ش take 2, emoji 4).`
        : `${chars} characters · ${max - bytes} bytes left`;
      this.counter.dataset.chars = String(chars);
    }
    this.counter.classList.toggle('over', over);
    this.counter.dataset.bytes = String(bytes);
    this.counter.removeAttribute('aria-label');
    if (over) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
    const uploads = this.uploads;
    const files = uploads ? uploads.ready.length : 0;
    this.sendBtn.disabled = over || (!text.trim() && !files) || (!!uploads && uploads.busy);
  }

  submit() {
    const text = this.input.value;
    const attachments = this.uploads.ready;
    if (!this.peer || (!text.trim() && !attachments.length) || utf8Length(text) > limits.maxTextBytes) return;
    if (this.uploads.busy) {
      toastError('Wait until the files are uploaded, or cancel them.');
      return;
    }
    this.actions.send(this.peer, attachments.length && !text.trim() ? '' : text, { replyTo: this.replyTo, attachments });
    this.setReply(0);
    this.uploads.clear();
    this.input.value = '';
    this.drafts.delete(this.peer);
    this.saveDraft();
    this.onInput();
    this.input.focus();
  }
}
