// The client's state: the signed-in user, conversations keyed by peer id,
// each with its messages keyed (and sorted) by seq, and the pending sends
// keyed by client_msg_id. Views listen to its events:
//   conv     {peer}            a conversation's summary changed (list item, header)
//   messages {peer, added}     messages were inserted (added: ascending Message[], events included)
//   update   {peer, seqs}      held text messages changed (an edit, delete or reaction, or a fresher copy)
//   loaded   {peer}            the newest page of a conversation arrived
//   receipts {peer}            peer_delivered_seq / peer_read_seq moved
//   typing   {peer}            the peer's typing state changed
//   pending  {peer, cid, op}   a pending send was added, changed or removed
//   reset                      everything was cleared (log out)

import { lowerBound, ms } from './util.js';
import { applyEvent, initState, isEvent, mergeCopy } from './events.js';

function emptyPresence() {
  return { online: false, last_seen: null };
}

export class Store extends EventTarget {
  constructor() {
    super();
    this.reset();
  }

  reset() {
    /** @type {{id:string, username:string, display_name:string}|null} */
    this.me = null;
    /** @type {Map<string, any>} peer id → conversation */
    this.convs = new Map();
    /** @type {Map<string, string>} conversation id → peer id */
    this.convPeer = new Map();
    /** @type {Map<string, any>} client_msg_id → pending send */
    this.pending = new Map();
    /** @type {Map<string, any>} user id → presence, for users met in search only */
    this.presence = new Map();
    this.emit('reset', {});
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** conv returns the conversation with peer, creating an empty one for user if asked. */
  conv(peer) {
    return this.convs.get(peer);
  }

  ensureConv(user, presence) {
    let c = this.convs.get(user.id);
    if (!c) {
      c = {
        id: null,
        peer: user,
        presence: presence || this.presence.get(user.id) || emptyPresence(),
        last_message: null,
        last_seq: 0,
        unread: 0,
        read_seq: 0,
        peer_read_seq: 0,
        peer_delivered_seq: 0,
        // Client-side fields.
        msgs: [], // text messages, ascending by seq
        events: new Map(), // seq → edit/delete/reaction event held
        evByTarget: new Map(), // target seq → [event], to apply to a target that arrives later
        floor: 0, // the lowest seq a history read returned (paging before= goes below it)
        loaded: false,
        loading: false,
        hasMoreBefore: true,
        activity: Date.now(),
        typingUntil: 0,
        sentReceived: 0,
        synced: 0, // every message with seq <= synced is held (see advanceSynced)
        listed: 0, // gap-free pointer of a conversation not loaded (see gapFree)
        placeholder: true, // not (yet) in the server's list
      };
      this.convs.set(user.id, c);
    } else if (user.username && (c.peer.username !== user.username || c.peer.display_name !== user.display_name)) {
      c.peer = user;
    }
    return c;
  }

  /** peerOf returns the peer id of a conversation id, if known. */
  peerOf(conversationId) {
    return this.convPeer.get(conversationId);
  }

  /** maxSeq is the highest seq held for a conversation (0 for none). */
  static maxSeq(c) {
    return c.msgs.length ? c.msgs[c.msgs.length - 1].seq : 0;
  }

  /**
   * gapFree is the conversation's gap-free pointer: the highest seq up to
   * which the client has every message, the limit of what it reports
   * `received` and `read` (api.md's catch-up rule). A loaded conversation
   * has synced; one never opened holds no history, so its pointer is the
   * last_seq of the latest conversation list (the catch-up of a closed
   * conversation, whose newest page is read when it opens) moved over live
   * messages that follow it without a gap.
   */
  static gapFree(c) {
    return c.loaded ? c.synced : c.listed;
  }

  /**
   * markSynced records that every message up to seq is held (a history
   * read returned them all), then advances further over consecutive seqs.
   */
  markSynced(c, seq) {
    if (seq > c.synced) c.synced = seq;
    Store.advanceSynced(c);
  }

  /**
   * advanceSynced moves a loaded conversation's synced pointer over the
   * held messages whose seqs follow it without a gap (seq synced+1, +2, …):
   * nothing can be missing between them. Any other message (a live one
   * after a gap, or one from a REST send) leaves it where it is, so the
   * catch-up pages after= it and fills the gap. The highest seq held is
   * not enough: a message that arrives on a new connection before the
   * catch-up read, or while it runs, can be above messages never received.
   */
  static advanceSynced(c) {
    if (!c.loaded) return;
    const arr = c.msgs;
    let i = lowerBound(arr, c.synced + 1);
    for (;;) {
      const next = c.synced + 1;
      if (i < arr.length && arr[i].seq === next) i++;
      else if (!c.events.has(next)) return;
      c.synced = next;
    }
  }

  /** mergeConversations folds in GET /api/conversations. */
  mergeConversations(list) {
    for (const s of list) {
      const c = this.ensureConv(s.peer, s.presence);
      c.placeholder = false;
      c.peer = s.peer;
      if (s.presence) c.presence = s.presence;
      if (s.id) {
        c.id = s.id;
        this.convPeer.set(s.id, s.peer.id);
      }
      if ((s.last_seq || 0) > c.listed) c.listed = s.last_seq || 0;
      if ((s.last_seq || 0) >= c.last_seq) {
        c.last_seq = s.last_seq || 0;
        if (s.last_message) {
          const held = this.held(c, s.last_message.seq);
          if (held) {
            // The list's copy is the current state: fold it in.
            if (mergeCopy(held, s.last_message, c.last_seq)) this.emit('update', { peer: c.peer.id, seqs: [held.seq] });
            c.last_message = held;
          } else {
            initState(s.last_message, c.last_seq);
            s.last_message._t = ms(s.last_message.created_at);
            c.last_message = s.last_message;
          }
        }
      }
      // The server is authoritative for my read pointer and unread count;
      // the peer's pointers only ever move forward.
      c.read_seq = s.read_seq || 0;
      c.unread = s.unread || 0;
      c.muted_until = s.muted_until || null; // an extension (notify.js)
      c.peer_read_seq = Math.max(c.peer_read_seq, s.peer_read_seq || 0);
      c.peer_delivered_seq = Math.max(c.peer_delivered_seq, s.peer_delivered_seq || 0, c.peer_read_seq);
      c.activity = Math.max(ms(c.last_message && c.last_message.created_at), c.last_message ? 0 : c.activity);
      this.emit('conv', { peer: c.peer.id });
      this.emit('receipts', { peer: c.peer.id });
    }
  }

  /** held returns the text message seq of conversation c if it is held. */
  held(c, seq) {
    const i = lowerBound(c.msgs, seq);
    if (i < c.msgs.length && c.msgs[i].seq === seq) return c.msgs[i];
    if (c.last_message && c.last_message.seq === seq && c.last_message._react) return c.last_message;
    return undefined;
  }

  /**
   * addMessages inserts messages of the conversation with peer, ignoring
   * seqs already held, and returns the ones inserted (ascending, events
   * included). Events (edit, delete, reaction) are applied to their
   * targets, never listed in c.msgs. page is the highest seq of the
   * history page list comes from (0 for live messages and answers to
   * sends): its text messages are in their current state as of at least
   * that seq, so they refresh held copies. silent skips the events (the
   * caller re-renders).
   */
  addMessages(peer, list, silent = false, page = 0) {
    const c = this.convs.get(peer);
    if (!c || !list.length) return [];
    const changed = new Set();
    const events = [];
    const texts = [];
    for (const m of list) {
      if (typeof m.seq !== 'number') continue;
      if (isEvent(m)) {
        if (c.events.has(m.seq)) continue;
        c.events.set(m.seq, m);
        m._t = ms(m.created_at);
        events.push(m);
      } else texts.push(m);
    }
    const added = this.addTexts(c, texts, page, changed);
    for (const e of events) {
      const t = e.target;
      if (!c.evByTarget.has(t)) c.evByTarget.set(t, []);
      c.evByTarget.get(t).push(e);
      const m = this.held(c, t);
      if (m && applyEvent(m, e)) changed.add(m.seq);
      if (e.seq > c.last_seq) c.last_seq = e.seq;
      if (!c.loaded && e.seq === c.listed + 1) c.listed = e.seq;
    }
    if (events.length) {
      Store.advanceSynced(c);
      if (!c.loaded) {
        // Events and texts may interleave: move over both.
        for (;;) {
          const next = c.listed + 1;
          if (c.events.has(next) || this.held(c, next)) c.listed = next;
          else break;
        }
      }
    }
    if (!events.length && !changed.size) {
      if (!silent && added.length) {
        this.emit('messages', { peer, added });
        this.emit('conv', { peer });
      }
      return added;
    }
    const all = added.concat(events).sort((a, b) => a.seq - b.seq);
    if (!silent) {
      if (all.length) this.emit('messages', { peer, added: all });
      if (changed.size) this.emit('update', { peer, seqs: [...changed] });
      this.emit('conv', { peer });
    }
    return all;
  }

  /** addTexts inserts text messages (see addMessages); held ones are refreshed from a page copy. */
  addTexts(c, list, page, changed) {
    const peer = c.peer.id;
    const added = [];
    if (!list.length) return added;
    const sorted = list.length > 1 ? [...list].sort((a, b) => a.seq - b.seq) : list;
    const fresh = (m) => {
      m._t = ms(m.created_at);
      initState(m, page);
      for (const e of c.evByTarget.get(m.seq) || []) applyEvent(m, e);
    };
    if (c.msgs.length && sorted.length > 1 && sorted[sorted.length - 1].seq < c.msgs[0].seq) {
      // An older page: one concatenation instead of a splice per message.
      let prev = -Infinity;
      for (const m of sorted) {
        if (typeof m.seq !== 'number' || m.seq === prev) continue;
        prev = m.seq;
        fresh(m);
        added.push(m);
      }
      c.msgs = added.concat(c.msgs);
      return added;
    }
    for (let m of sorted) {
      if (typeof m.seq !== 'number') continue;
      const arr = c.msgs;
      let i;
      if (!arr.length || arr[arr.length - 1].seq < m.seq) i = arr.length;
      else {
        i = lowerBound(arr, m.seq);
        if (i < arr.length && arr[i].seq === m.seq) {
          // Held already: a page's copy is fresher state.
          if (page && mergeCopy(arr[i], m, page)) changed.add(m.seq);
          continue;
        }
      }
      // Not held, but maybe the list's last message, with events applied since.
      const lm = c.last_message;
      if (lm && lm !== m && lm.seq === m.seq && lm._react) {
        if (page) mergeCopy(lm, m, page);
        m = lm;
      }
      if (m._tv === undefined) fresh(m);
      else if (m._t === undefined) m._t = ms(m.created_at);
      if (i === arr.length) arr.push(m);
      else arr.splice(i, 0, m);
      added.push(m);
    }
    if (!added.length) return added;
    Store.advanceSynced(c);
    if (!c.loaded) {
      for (const m of added) if (m.seq === c.listed + 1) c.listed = m.seq;
    }
    const last = c.msgs[c.msgs.length - 1];
    if (!c.last_message || last.seq >= c.last_message.seq) {
      c.last_seq = Math.max(c.last_seq, last.seq);
      c.last_message = last;
      c.activity = Math.max(c.activity, last._t || Date.now());
    }
    if (last.conversation_id && !c.id) {
      c.id = last.conversation_id;
      this.convPeer.set(c.id, peer);
    }
    return added;
  }

  /** setNewestPage stores the first page of a conversation. */
  setNewestPage(peer, messages, hasMore) {
    const c = this.convs.get(peer);
    if (!c) return;
    if (hasMore && messages.length && c.msgs.length) {
      // Keep the held messages contiguous with the page, so that paging
      // backwards with before=<first seq> leaves no hole.
      const first = messages[0].seq;
      c.msgs = c.msgs.filter((m) => m.seq >= first);
    }
    c.loaded = true;
    c.loading = false;
    c.hasMoreBefore = hasMore;
    const page = messages.reduce((a, m) => Math.max(a, m.seq || 0), 0);
    if (messages.length) c.floor = messages.reduce((a, m) => Math.min(a, m.seq || a), Infinity);
    this.addMessages(peer, messages, true, page);
    // The newest page holds everything up to its last message.
    if (messages.length) this.markSynced(c, messages[messages.length - 1].seq);
    this.emit('loaded', { peer });
    this.emit('conv', { peer });
  }

  /** receipt applies a receipt event; returns the peer id or undefined. */
  receipt(f) {
    const peer = this.peerOf(f.conversation_id);
    const c = peer && this.convs.get(peer);
    if (!c || !this.me) return undefined;
    if (f.user_id === this.me.id) {
      if (f.kind === 'read' && f.seq > c.read_seq) {
        c.read_seq = f.seq;
        if (c.read_seq >= c.last_seq) c.unread = 0;
        else c.unread = c.msgs.filter((m) => m.seq > c.read_seq && m.from !== this.me.id).length || c.unread;
        this.emit('conv', { peer });
      }
      return peer;
    }
    let moved = false;
    if (f.kind === 'read' && f.seq > c.peer_read_seq) {
      c.peer_read_seq = f.seq;
      moved = true;
    }
    if (f.seq > c.peer_delivered_seq) {
      // A read message is a delivered one too.
      c.peer_delivered_seq = f.seq;
      moved = true;
    }
    if (moved) {
      this.emit('receipts', { peer });
      this.emit('conv', { peer });
    }
    return peer;
  }

  /** setPresence records a user's presence wherever it is shown. */
  setPresence(userId, presence) {
    this.presence.set(userId, presence);
    const c = this.convs.get(userId);
    if (c) {
      c.presence = presence;
      this.emit('conv', { peer: userId });
    }
    this.emit('presence', { userId });
  }

  /** setTyping marks the peer as typing for ttl ms. */
  setTyping(peer, ttl) {
    const c = this.convs.get(peer);
    if (!c) return;
    c.typingUntil = ttl ? Date.now() + ttl : 0;
    this.emit('typing', { peer });
  }

  addPending(p) {
    this.pending.set(p.cid, p);
    this.emit('pending', { peer: p.to, cid: p.cid, op: 'add' });
  }

  updatePending(p) {
    if (this.pending.get(p.cid) !== p) return;
    this.emit('pending', { peer: p.to, cid: p.cid, op: 'update' });
  }

  removePending(cid) {
    const p = this.pending.get(cid);
    if (!p) return undefined;
    this.pending.delete(cid);
    clearTimeout(p.timer);
    this.emit('pending', { peer: p.to, cid, op: 'remove' });
    return p;
  }

  /** pendingFor lists the pending sends to peer in the order they were made. */
  pendingFor(peer) {
    const out = [];
    for (const p of this.pending.values()) if (p.to === peer) out.push(p);
    return out;
  }

  /** sortedConvs returns conversations, most recent activity first. */
  sortedConvs() {
    return [...this.convs.values()].sort(compareConvs);
  }
}

export function compareConvs(a, b) {
  if (b.activity !== a.activity) return b.activity - a.activity;
  return a.peer.id < b.peer.id ? -1 : a.peer.id > b.peer.id ? 1 : 0;
}

/** statusOf returns an own message's tick state. */
export function statusOf(c, m) {
  if (m.seq <= c.peer_read_seq) return 'read';
  if (m.seq <= c.peer_delivered_seq) return 'delivered';
  return 'sent';
}
