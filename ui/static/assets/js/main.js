// chatd web client: wires the API, the WebSocket, the store and the views.
//
// Delivery rules (docs/api.md): messages are keyed by seq per conversation
// and pending sends by client_msg_id, so nothing is shown twice; after every
// (re)connect the client reads the conversation list and pages `after=` for
// every conversation whose last_seq is above what it holds.

import { ApiError, api, onUnauthenticated, refreshSession } from './api.js';
import { Socket } from './ws.js';
import { Store } from './store.js';
import { AuthView } from './views/auth.js';
import { ChatView, clearDrafts } from './views/chat.js';
import { SettingsView } from './views/settings.js';
import { Sidebar } from './views/sidebar.js';
import { toastError, toastInfo } from './views/toast.js';
import { byId, displayName, limits, setLimits, tooMany, uuid } from './util.js';
import { isEvent } from './events.js';
import { attachmentLimit } from './attachments.js';
import { Notify } from './notify.js';

const SEND_TIMEOUT = 10000; // ms without an ack before a send shows as failed
const TYPING_SHOW = 3000; // ms a typing event is shown
const TYPING_EVERY = 2000; // ms between our own typing frames
const PAGE = 50; // newest page when a conversation opens
const OLDER = 100; // page size when scrolling up
const CATCHUP = 200; // page size of the catch-up read

const BANNER = {
  connecting: 'Connecting…',
  reconnecting: 'Connection lost. Reconnecting…',
  offline: 'You are offline. Waiting for the network…',
};

// Friendlier words for the error codes a send can meet (api.md).
const SEND_ERRORS = {
  text_empty: 'An empty message cannot be sent.',
  cannot_message_self: 'You cannot send messages to yourself.',
  not_found: 'That user does not exist any more.',
  forbidden: 'You are not allowed to send this message.',
  rate_limited: 'You are sending too fast. Try again in a moment.',
  unavailable: 'The server is busy. Try again shortly.',
  too_large: 'Too large to send.',
  deleted: 'That message was deleted.',
};

// What an edit, delete or reaction was, for its error toast.
const OP_WORDS = { edit: 'edit the message', delete: 'delete the message', react: 'react' };

function sendError(code, message, retryAfterSec) {
  if (code === 'text_too_long') return `Too long: a message has at most ${limits.maxTextBytes} bytes (UTF-8).`;
  if (code === 'rate_limited' && retryAfterSec) return tooMany(retryAfterSec);
  return SEND_ERRORS[code] || message || 'Not sent.';
}

/** pageEnd is the highest seq of a history page: its text messages are current as of at least it. */
function pageEnd(msgs) {
  let n = 0;
  for (const m of msgs) if (m.seq > n) n = m.seq;
  return n;
}

function pathFor(peer) {
  return `/c/${encodeURIComponent(peer)}`;
}

class App {
  constructor() {
    this.store = new Store();
    this.session = 0; // bumps on every log in / log out; stale async work checks it
    this.catching = false;
    this.catchAgain = false;
    this.catchTimer = 0;
    this.typingSent = new Map();
    this.typingTimers = new Map();
    this.ackDirty = new Set();
    this.ackTimer = 0;
    this.focused = document.hasFocus();
    this.bannerTimer = 0;
    this.main = byId('main-screen');

    this.auth = new AuthView({
      login: async (username, password) => this.enter((await api.login(username, password)).user),
      signup: async (username, password, name) => this.enter((await api.signup(username, password, name)).user),
    });
    this.sidebar = new Sidebar(this.store, {
      open: (peer) => this.openConversation(peer),
      openUser: (user, presence) => this.openUser(user, presence),
    });
    this.ops = new Map(); // client_msg_id → edit/delete/react in flight
    this.chat = new ChatView(this.store, {
      send: (peer, text, extra) => this.send(peer, text, extra),
      edit: (peer, seq, text) => this.op('edit', peer, { seq, text }),
      remove: (peer, seq) => this.op('delete', peer, { seq }),
      react: (peer, seq, emoji) => this.op('react', peer, { seq, emoji }),
      retry: (cid) => this.retry(cid),
      discard: (cid) => this.store.removePending(cid),
      typing: (peer) => this.sendTyping(peer),
      loadNewest: (peer) => this.loadNewest(peer),
      loadOlder: (peer) => this.loadOlder(peer),
      markRead: (peer) => this.markRead(peer),
      back: () => this.back(),
      toggleBlock: (peer) => this.toggleBlock(peer),
    });

    this.settings = new SettingsView(this.store, {
      leave: (message) => {
        if (this.store.me) clearDrafts(this.store.me.id);
        this.leave(message, true);
      },
      expectEnd: (message) => {
        this.endMessage = message;
      },
      renamed: (user) => this.sidebar.setMe(user),
      enableNotifications: () => this.notify.enable(),
      unblocked: (id) => {
        if (this.store.blocked) this.store.blocked.delete(id);
        this.chat.renderHeader();
      },
    });

    this.notify = new Notify(this.store, { open: (peer) => this.openConversation(peer) });

    this.socket = new Socket({
      refresh: refreshSession,
      checkAuth: async () => {
        try {
          await api.me({ quiet401: true });
          return true;
        } catch (e) {
          return !(e instanceof ApiError && e.status === 401);
        }
      },
    });
    this.socket.addEventListener('state', (e) => {
      this.setBanner(e.detail.state);
      this.setPresenceKnown(e.detail.state === 'online' || e.detail.state === 'idle');
    });
    this.socket.addEventListener('hello', (e) => this.onHello(e.detail));
    this.socket.addEventListener('frame', (e) => this.onFrame(e.detail));
    this.socket.addEventListener('down', () => this.onDown());
    this.socket.addEventListener('unauthenticated', () => this.leave('Your session has ended. Please log in again.'));
    onUnauthenticated(() => this.leave('Your session has ended. Please log in again.'));

    byId('conn-retry').addEventListener('click', () => this.socket.connectNow());
    byId('logout').addEventListener('click', () => this.logout());
    window.addEventListener('popstate', () => this.store.me && this.route());
    window.addEventListener('focus', () => {
      this.focused = true;
      this.onAttention();
    });
    window.addEventListener('blur', () => {
      this.focused = false;
    });
    // Any interaction means the page has the user's attention.
    for (const type of ['pointerdown', 'keydown']) {
      document.addEventListener(type, () => {
        if (!this.focused) {
          this.focused = true;
          this.onAttention();
        }
      }, { capture: true, passive: true });
    }
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState !== 'visible') return;
      this.onAttention();
      if (this.store.me) this.socket.connectNow();
    });
    // Leaving the page (another site, or the tab going away): close the
    // socket. A page kept in the back/forward cache otherwise keeps it open
    // (Chromium does), so the user would stay "online" and the server would
    // deliver to a page nobody sees. A page restored from that cache
    // connects again, and the hello runs the catch-up.
    window.addEventListener('pagehide', () => {
      this.chat.saveDraft();
      if (this.store.me) this.socket.stop();
    });
    window.addEventListener('pageshow', (e) => {
      if (e.persisted && this.store.me) this.socket.start();
    });
    this.store.addEventListener('conv', () => this.queueTitle());
    setInterval(() => {
      if (!this.store.me) return;
      this.sidebar.refreshAll();
      this.chat.renderHeader();
    }, 30000);
  }

  /** queueTitle puts the total unread count in the tab title (once per frame). */
  queueTitle() {
    if (this.titleQueued) return;
    this.titleQueued = true;
    // Not requestAnimationFrame: it does not run in a background tab, which
    // is when the count matters.
    setTimeout(() => {
      this.titleQueued = false;
      this.updateTitle();
    }, 0);
  }

  updateTitle() {
    let unread = 0;
    for (const c of this.store.convs.values()) unread += c.unread || 0;
    const c = this.chat.peer && this.store.conv(this.chat.peer);
    const base = c ? `${displayName(c.peer)} · chatd` : 'chatd';
    document.title = unread > 0 ? `(${unread}) ${base}` : base;
  }

  // ---- session ----

  async boot() {
    let delay = 1000;
    for (;;) {
      try {
        const r = await api.me({ quiet401: true });
        this.enter(r.user);
        return;
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) {
          this.showAuth('');
          return;
        }
        if (delay === 1000) toastError(`Cannot start: ${e.message}`);
        this.setBanner(navigator.onLine === false ? 'offline' : 'reconnecting');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 15000);
      }
    }
  }

  showAuth(message) {
    byId('boot').hidden = true;
    this.main.hidden = true;
    this.setBanner('idle');
    document.title = 'chatd';
    this.auth.show(message);
  }

  /** clearSession forgets everything of the current session (timers included). */
  clearSession() {
    this.session++;
    this.catching = false;
    clearTimeout(this.catchTimer);
    for (const p of this.store.pending.values()) clearTimeout(p.timer);
    for (const o of this.ops.values()) clearTimeout(o.timer);
    this.ops.clear();
    for (const t of this.typingTimers.values()) clearTimeout(t);
    this.typingTimers.clear();
    this.typingSent.clear();
    clearTimeout(this.ackTimer);
    this.ackTimer = 0;
    this.ackDirty.clear();
    this.chat.reset();
    this.store.reset();
    this.store.blocked = null; // the block list (a Set of user ids) once read
  }

  enter(user) {
    this.clearSession();
    this.store.me = user;
    this.sidebar.setMe(user);
    byId('boot').hidden = true;
    this.auth.hide();
    this.main.hidden = false;
    this.socket.start();
    this.catchUp();
    this.loadBlocks();
    this.notify.start();
    this.route();
  }

  /** loadBlocks reads whom the user blocked; without it (an older server) Block stays hidden. */
  async loadBlocks() {
    const s = this.session;
    try {
      const r = await api.blocks();
      if (s !== this.session) return;
      this.store.blocked = new Set(((r && r.users) || []).map((u) => u.id));
    } catch {
      if (s !== this.session) return;
      this.store.blocked = null;
    }
    this.chat.renderHeader();
  }

  async toggleBlock(peer) {
    const blocked = this.store.blocked;
    const c = this.store.conv(peer);
    if (!blocked || !c) return;
    const on = blocked.has(peer);
    const s = this.session;
    try {
      if (on) await api.unblock(peer);
      else await api.block(peer);
    } catch (e) {
      if (s === this.session) toastError(`Could not ${on ? 'unblock' : 'block'} ${displayName(c.peer)}: ${e.message}`);
      return;
    }
    if (s !== this.session) return;
    if (on) blocked.delete(peer);
    else blocked.add(peer);
    this.chat.renderHeader();
    toastInfo(on ? `${displayName(c.peer)} is unblocked.` : `${displayName(c.peer)} is blocked: they cannot message you or see when you are online.`);
  }

  /** leave drops the session's state and shows the login screen. */
  leave(message, resetPath = false) {
    if (!this.store.me) return;
    // The user ended this session themselves (settings): the socket's 4001
    // may arrive before the request's answer; say what they did, not "ended".
    if (this.endMessage) {
      message = this.endMessage;
      this.endMessage = '';
      clearDrafts(this.store.me.id);
      resetPath = true;
    }
    this.settings.close();
    this.socket.stop();
    this.notify.stop();
    this.clearSession();
    if (resetPath) history.replaceState(null, '', '/');
    this.showAuth(message);
  }

  async logout() {
    const me = this.store.me;
    const btn = byId('logout');
    btn.disabled = true;
    await this.notify.forget(); // no pushes for this account to this browser once logged out
    try {
      await api.logout();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        toastError(`Could not log out: ${e.message}`);
        return;
      }
    } finally {
      btn.disabled = false;
    }
    if (me) clearDrafts(me.id);
    this.leave('', true);
  }

  // ---- connection ----

  /**
   * setPresenceKnown marks presence as unknown while the socket is down:
   * no presence event can arrive, so "online" would be a guess. The views
   * show a neutral state until the next hello.
   */
  setPresenceKnown(known) {
    if (this.store.presenceKnown === known) return;
    this.store.presenceKnown = known;
    if (!this.store.me) return;
    this.sidebar.refreshAll();
    this.chat.renderHeader();
  }

  setBanner(state) {
    const b = byId('conn-banner');
    b.dataset.state = state;
    clearTimeout(this.bannerTimer);
    if (state === 'online' || state === 'idle') {
      b.hidden = true;
      return;
    }
    byId('conn-banner-text').textContent = BANNER[state] || state;
    byId('conn-retry').hidden = state === 'connecting';
    // A first connection usually takes a few ms: do not flash the banner.
    if (state === 'connecting') this.bannerTimer = setTimeout(() => (b.hidden = false), 600);
    else b.hidden = false;
  }

  onHello(f) {
    setLimits(f);
    if (Number.isInteger(f.max_attachment_bytes) && f.max_attachment_bytes > 0) attachmentLimit.bytes = f.max_attachment_bytes;
    const me = this.store.me;
    if (f.user && me && f.user.id !== me.id) {
      // Another tab logged in as someone else: the shared cookies now
      // belong to that user, so this tab follows.
      toastInfo(`You are now signed in as @${f.user.username}.`);
      this.enter(f.user);
      return;
    }
    if (f.user && me) {
      this.store.me = f.user;
      this.sidebar.setMe(f.user);
    }
    // Sends that failed only because we were offline go out again.
    for (const p of this.store.pending.values()) {
      if (p.status === 'failed' && p.transient) this.dispatchSend(p);
    }
    this.catchUp();
  }

  onDown() {
    // Sends in flight on the lost connection: go over REST (same
    // client_msg_id, so the server never stores one twice).
    for (const p of this.store.pending.values()) {
      if (p.status === 'pending' && p.via === 'ws') this.dispatchSend(p);
    }
    for (const o of this.ops.values()) if (o.via === 'ws') this.dispatchOp(o);
  }

  onFrame(f) {
    switch (f.type) {
      case 'message':
        if (f.message) this.ingest([f.message], true);
        break;
      case 'ack':
        if (f.client_msg_id) {
          this.store.removePending(f.client_msg_id);
          this.finishOp(f.client_msg_id);
        }
        if (f.message) this.ingest([f.message], true);
        break;
      case 'receipt':
        this.store.receipt(f);
        break;
      case 'typing':
        this.onTyping(f.from);
        break;
      case 'presence':
        if (f.user_id && f.presence) this.store.setPresence(f.user_id, f.presence);
        break;
      case 'resync':
        // Live delivery had a gap (api.md 1.1): catch up on this connection.
        this.catchUp();
        break;
      case 'error':
        this.onErrorFrame(f);
        break;
      default:
        break; // unknown frame types are ignored (forward compatible)
    }
  }

  onErrorFrame(f) {
    const err = f.error || {};
    const p = f.ref ? this.store.pending.get(f.ref) : undefined;
    const o = f.ref ? this.ops.get(f.ref) : undefined;
    if (o) {
      this.finishOp(o.cid);
      toastError(`Could not ${OP_WORDS[o.type]}: ${sendError(err.code, err.message, (f.retry_after_ms || err.retry_after_ms || 0) / 1000)}`);
      return;
    }
    if (p) {
      const transient = err.code === 'rate_limited' || err.code === 'unavailable' || err.code === 'internal';
      this.failPending(p, sendError(err.code, err.message, (f.retry_after_ms || err.retry_after_ms || 0) / 1000), transient);
      return;
    }
    toastError(err.message || 'The server refused a request.');
  }

  onTyping(peer) {
    const c = peer && this.store.conv(peer);
    if (!c) return;
    this.store.setTyping(peer, TYPING_SHOW);
    clearTimeout(this.typingTimers.get(peer));
    this.typingTimers.set(
      peer,
      setTimeout(() => {
        this.typingTimers.delete(peer);
        this.store.emit('typing', { peer }); // expired: views hide it
      }, TYPING_SHOW + 50),
    );
  }

  // ---- messages in ----

  /**
   * ingest stores messages from any source (live event, ack, REST answer,
   * history, catch-up), resolves the pending sends they answer, and
   * acknowledges delivery and reading. live counts new incoming messages
   * as unread.
   */
  ingest(list, live, page = 0) {
    const me = this.store.me;
    if (!me || !list.length) return;
    const byPeer = new Map();
    for (const m of list) {
      const own = m.from === me.id;
      if (own && m.client_msg_id) this.store.removePending(m.client_msg_id);
      const peer = own ? m.to : m.from;
      if (!byPeer.has(peer)) byPeer.set(peer, []);
      byPeer.get(peer).push(m);
    }
    for (const [peer, msgs] of byPeer) {
      let c = this.store.conv(peer);
      if (!c) {
        c = this.store.ensureConv({ id: peer, username: '', display_name: '' });
        c.placeholder = false;
        this.fetchPeer(peer);
      }
      const added = this.store.addMessages(peer, msgs, false, page);
      const incoming = added.filter((m) => m.from === peer);
      if (!incoming.length) continue;
      // A message (not an edit or a reaction) ends the peer's typing.
      if (live && c.typingUntil > Date.now() && incoming.some((m) => !isEvent(m))) this.store.setTyping(peer, 0);
      this.markReceived(c, incoming[incoming.length - 1].seq);
      if (live) this.notify.incoming(peer, incoming);
      if (this.canRead(peer)) this.markRead(peer);
      else if (live) {
        // Only text messages count as unread (api.md 1.1).
        c.unread += incoming.filter((m) => !isEvent(m) && m.seq > c.read_seq).length;
        this.store.emit('conv', { peer });
      }
    }
  }

  /**
   * markReceived acknowledges delivery of the peer's messages up to seq,
   * never beyond the gap-free pointer (api.md's catch-up rule): a message
   * held after a gap does not make the sender see earlier ones delivered.
   */
  markReceived(c, seq) {
    seq = Math.min(seq, Store.gapFree(c));
    if (seq <= c.sentReceived || seq <= (c.ackReceived || 0)) return;
    c.ackReceived = seq;
    this.queueAck(c.peer.id);
  }

  /**
   * queueAck sends the conversation's pending received/read pointers after
   * a short delay, so that a burst of messages costs one frame each, not
   * one per message.
   */
  queueAck(peer) {
    this.ackDirty.add(peer);
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => this.flushAcks(), 50);
  }

  flushAcks() {
    this.ackTimer = 0;
    const peers = [...this.ackDirty];
    this.ackDirty.clear();
    const s = this.session;
    for (const peer of peers) {
      const c = this.store.conv(peer);
      if (!c) continue;
      const received = c.ackReceived || 0;
      c.ackReceived = 0;
      // Without a connection it is sent again by the catch-up after the next hello.
      if (received > c.sentReceived && this.socket.send({ type: 'received', peer, seq: received })) c.sentReceived = received;
      const read = c.ackRead || 0;
      c.ackRead = 0;
      if (read && !this.socket.send({ type: 'read', peer, seq: read })) {
        api.read(peer, read).catch((e) => {
          if (s === this.session && e.status !== 0) toastError(`Could not mark messages as read: ${e.message}`);
        });
      }
    }
  }

  /** canRead reports whether the user is looking at the conversation with peer. */
  canRead(peer) {
    return this.chat.peer === peer && document.visibilityState === 'visible' && this.focused;
  }

  onAttention() {
    if (this.chat.peer) this.markRead(this.chat.peer);
  }

  markRead(peer) {
    if (!this.canRead(peer)) return;
    const c = this.store.conv(peer);
    if (!c || !c.loaded) return;
    // Read only up to the gap-free pointer, like received.
    const seq = Math.min(Store.maxSeq(c), Store.gapFree(c));
    if (seq <= c.read_seq) {
      if (c.unread) {
        c.unread = 0;
        this.store.emit('conv', { peer });
      }
      return;
    }
    c.read_seq = seq;
    c.unread = 0;
    this.store.emit('conv', { peer });
    c.ackRead = Math.max(c.ackRead || 0, seq);
    this.queueAck(peer);
  }

  async fetchPeer(peer) {
    const s = this.session;
    try {
      const r = await api.user(peer);
      if (s !== this.session || !r || !r.user) return false;
      const c = this.store.ensureConv(r.user, r.presence);
      c.peer = r.user;
      if (r.presence) c.presence = r.presence;
      this.store.emit('conv', { peer });
      return true;
    } catch (e) {
      if (s === this.session) toastError(e.status === 404 ? 'That user does not exist.' : `Could not load user: ${e.message}`);
      return false;
    }
  }

  async loadNewest(peer) {
    const c = this.store.conv(peer);
    if (!c || c.loading) return;
    c.loading = true;
    const s = this.session;
    try {
      const r = await api.messagesBefore(peer, 0, PAGE);
      if (s !== this.session) return;
      const msgs = (r && r.messages) || [];
      this.store.setNewestPage(peer, msgs, !!(r && r.has_more));
      const incoming = msgs.filter((m) => m.from === peer);
      if (incoming.length) this.markReceived(c, incoming[incoming.length - 1].seq);
      this.markRead(peer);
    } catch (e) {
      c.loading = false;
      if (s !== this.session) return;
      this.chat.loadFailed(peer, e.message);
      toastError(`Could not load the conversation: ${e.message}`);
    }
  }

  async loadOlder(peer) {
    const c = this.store.conv(peer);
    if (!c || c.loadingOlder || !c.hasMoreBefore) return;
    c.loadingOlder = true;
    const s = this.session;
    try {
      // Below everything a history read returned (events included), so
      // that a page of events alone still moves the paging on.
      const before = c.floor || (c.msgs.length ? c.msgs[0].seq : 0);
      const r = await api.messagesBefore(peer, before, OLDER);
      if (s !== this.session) return;
      const msgs = (r && r.messages) || [];
      c.hasMoreBefore = !!(r && r.has_more) && msgs.length > 0;
      for (const m of msgs) if (m.seq < c.floor || !c.floor) c.floor = m.seq;
      this.store.addMessages(peer, msgs, false, pageEnd(msgs));
    } catch (e) {
      if (s === this.session) toastError(`Could not load earlier messages: ${e.message}`);
      throw e;
    } finally {
      c.loadingOlder = false;
    }
  }

  /** catchUp applies api.md's catch-up rule; concurrent calls coalesce. */
  async catchUp() {
    if (this.catching) {
      this.catchAgain = true;
      return;
    }
    clearTimeout(this.catchTimer);
    const s = this.session;
    this.catching = true;
    try {
      do {
        this.catchAgain = false;
        const r = await api.conversations();
        if (s !== this.session) return;
        const list = (r && r.conversations) || [];
        this.store.mergeConversations(list);
        for (const sc of list) {
          const c = this.store.conv(sc.peer.id);
          // A conversation never opened holds nothing: its newest page is
          // read when it opens, so only held histories are paged forward.
          // Paged from the synced pointer, not the highest seq held: see Store.advanceSynced.
          if (c.loaded && (sc.last_seq || 0) > c.synced) await this.pageAfter(c, s);
          if (s !== this.session) return;
          const lm = c.last_message;
          if (lm && lm.from === c.peer.id) this.markReceived(c, lm.seq);
        }
        if (this.chat.peer) this.markRead(this.chat.peer);
      } while (this.catchAgain && s === this.session);
    } catch (e) {
      if (s !== this.session) return;
      if (e.status !== 0) toastError(`Could not sync conversations: ${e.message}`);
      // Try again while connected; a reconnect runs it anyway.
      const wait = Math.max(3, e.retryAfter || 0) * 1000;
      this.catchTimer = setTimeout(() => this.socket.ready && this.catchUp(), wait);
    } finally {
      if (s === this.session) this.catching = false;
    }
  }

  async pageAfter(c, s) {
    const peer = c.peer.id;
    for (;;) {
      const r = await api.messagesAfter(peer, c.synced, CATCHUP);
      if (s !== this.session) return;
      const msgs = (r && r.messages) || [];
      this.ingest(msgs, false, pageEnd(msgs));
      // An after= page is complete: everything up to its last message is held.
      if (msgs.length) {
        this.store.markSynced(c, msgs[msgs.length - 1].seq);
        // The pointer moved over this page: acknowledge what it now covers.
        const incoming = msgs.filter((m) => m.from === peer);
        if (incoming.length) this.markReceived(c, incoming[incoming.length - 1].seq);
      }
      if (!r || !r.has_more || !msgs.length) return;
    }
  }

  // ---- messages out ----

  /** send sends text to peer; extra: {replyTo (seq), attachments ([Attachment])}. */
  send(peer, text, extra = {}) {
    const me = this.store.me;
    if (!me) return;
    const p = {
      cid: uuid(), to: peer, from: me.id, text, status: 'pending', createdAt: Date.now(), via: '', error: '', transient: false, timer: 0, attempt: 0,
      replyTo: extra.replyTo || 0, attachments: extra.attachments || [],
    };
    this.store.addPending(p);
    this.dispatchSend(p);
    this.typingSent.delete(peer);
    this.notify.sent();
  }

  retry(cid) {
    const p = this.store.pending.get(cid);
    if (p) this.dispatchSend(p);
  }

  dispatchSend(p) {
    clearTimeout(p.timer);
    p.status = 'pending';
    p.error = '';
    p.transient = false;
    const attempt = ++p.attempt;
    this.store.updatePending(p);
    // reply_to and attachments only when used: a server before 1.1 ignores neither.
    const extra = {};
    if (p.replyTo) extra.reply_to = p.replyTo;
    if (p.attachments.length) extra.attachments = p.attachments.map((a) => a.id);
    if (this.socket.send({ type: 'send', to: p.to, text: p.text, client_msg_id: p.cid, ...extra })) {
      p.via = 'ws';
      p.timer = setTimeout(() => {
        if (p.attempt === attempt) this.failPending(p, 'Not confirmed by the server in time. It is sent again once reconnected.', true);
      }, SEND_TIMEOUT);
      return;
    }
    p.via = 'rest';
    const s = this.session;
    api
      .send(p.to, p.text, p.cid, extra)
      .then((r) => {
        if (s !== this.session) return;
        this.store.removePending(p.cid);
        if (r && r.message) this.ingest([r.message], false);
      })
      .catch((e) => {
        if (s !== this.session || p.attempt !== attempt) return;
        this.failPending(p, e.status === 0 ? 'Not sent: cannot reach the server. It is sent again once reconnected.' : sendError(e.code, e.message, e.retryAfter), e.transient);
      });
  }

  failPending(p, message, transient) {
    if (this.store.pending.get(p.cid) !== p) return;
    clearTimeout(p.timer);
    p.status = 'failed';
    p.error = message;
    p.transient = !!transient;
    this.store.updatePending(p);
  }

  // ---- edit, delete, react ----

  /**
   * op sends an edit, delete or reaction (api.md 1.1): over the socket
   * when connected, else over REST; either way with one client_msg_id, so
   * a retry never makes a second event. Nothing changes on screen until
   * the event comes back (ack or REST answer), then it applies like any
   * event; a refusal is a toast.
   */
  op(type, peer, fields) {
    if (!this.store.me) return;
    const o = { cid: uuid(), type, peer, fields, via: '', timer: 0, attempt: 0 };
    this.ops.set(o.cid, o);
    this.dispatchOp(o);
  }

  dispatchOp(o) {
    clearTimeout(o.timer);
    const attempt = ++o.attempt;
    const { seq, text, emoji } = o.fields;
    const frame = { type: o.type, peer: o.peer, seq, client_msg_id: o.cid };
    if (o.type === 'edit') frame.text = text;
    if (o.type === 'react') frame.emoji = emoji;
    if (attempt === 1 && this.socket.send(frame)) {
      o.via = 'ws';
      // No ack in time: the same event over REST (the server keeps one).
      o.timer = setTimeout(() => this.ops.get(o.cid) === o && o.attempt === attempt && this.dispatchOp(o), SEND_TIMEOUT);
      return;
    }
    o.via = 'rest';
    const s = this.session;
    const call =
      o.type === 'edit' ? api.editMessage(o.peer, seq, text, o.cid) : o.type === 'delete' ? api.deleteMessage(o.peer, seq, o.cid) : api.react(o.peer, seq, emoji, o.cid);
    call
      .then((r) => {
        if (s !== this.session) return;
        this.finishOp(o.cid);
        if (r && r.message) this.ingest([r.message], false);
      })
      .catch((e) => {
        if (s !== this.session || o.attempt !== attempt) return;
        this.finishOp(o.cid);
        toastError(`Could not ${OP_WORDS[o.type]}: ${e.status === 0 ? 'cannot reach the server.' : sendError(e.code, e.message, e.retryAfter)}`);
      });
  }

  finishOp(cid) {
    const o = this.ops.get(cid);
    if (!o) return;
    clearTimeout(o.timer);
    this.ops.delete(cid);
  }

  sendTyping(peer) {
    const now = Date.now();
    if (now - (this.typingSent.get(peer) || 0) < TYPING_EVERY) return;
    if (this.socket.send({ type: 'typing', to: peer })) this.typingSent.set(peer, now);
  }

  // ---- navigation ----

  route() {
    const m = location.pathname.match(/^\/c\/([^/]+)\/?$/);
    if (m) {
      let peer;
      try {
        peer = decodeURIComponent(m[1]);
      } catch {
        peer = '';
      }
      if (peer) {
        this.openConversation(peer, 'none');
        return;
      }
    }
    this.closeConversation();
  }

  /** openConversation shows the conversation with peer; nav: push | replace | none. */
  async openConversation(peer, nav = 'push') {
    if (!this.store.conv(peer)) {
      const ok = await this.fetchPeer(peer);
      if (!ok || !this.store.conv(peer)) {
        if (location.pathname !== '/') history.replaceState(null, '', '/');
        this.closeConversation();
        return;
      }
    }
    const c = this.store.conv(peer);
    if (nav !== 'none' && location.pathname !== pathFor(peer)) {
      // One conversation entry above the list: Back always returns to it.
      if (nav === 'push' && !this.chat.peer) history.pushState({ peer, fromList: true }, '', pathFor(peer));
      else history.replaceState({ peer, fromList: !!(history.state && history.state.fromList) }, '', pathFor(peer));
    }
    this.main.dataset.screen = 'chat';
    this.sidebar.update(peer);
    this.sidebar.setActive(peer);
    this.chat.open(peer);
    this.notify.setPeer(peer);
    this.markRead(peer);
    this.updateTitle();
  }

  openUser(user, presence) {
    this.store.ensureConv(user, presence);
    this.openConversation(user.id);
  }

  closeConversation() {
    this.chat.close();
    this.notify.setPeer(null);
    this.sidebar.setActive(null);
    this.main.dataset.screen = 'list';
    this.updateTitle();
  }

  back() {
    const peer = this.chat.peer;
    if (history.state && history.state.fromList) history.back();
    else {
      history.replaceState(null, '', '/');
      this.closeConversation();
    }
    // Return keyboard focus to where the user came from.
    requestAnimationFrame(() => {
      const item = peer && document.querySelector(`#conv-list [data-peer="${CSS.escape(peer)}"]`);
      if (item) item.focus({ preventScroll: false });
    });
  }
}

const app = new App();
window.chatd = app; // handy for debugging and browser tests
app.boot();
