// Message events (api.md 1.1 "Message events"): edit, delete and reaction
// are messages of their own (own seq, `kind`, `target`), applied by the
// client to their target when it holds it.
//
// Pages (newest, before=, after=) carry text messages in their current
// state, which reflects every event up to at least the page's highest seq;
// live frames carry a text message as it was sent. So that the order in
// which copies and events arrive never matters, every piece of a text
// message's state carries the seq of what last set it (its version):
//   _tv     text, edited_at, attachments (the message's own seq, an edit's
//           seq, or the page's highest seq for a page copy)
//   deleted once true stays true
//   _react  user id → {emoji, v}: the user's reaction and its version
//           (emoji "" = removed, kept so that an older event cannot bring it back)
// A copy or an event changes a piece only when its version is higher.

/** kindOf is a message's kind; absent means text. */
export function kindOf(m) {
  return (m && m.kind) || 'text';
}

/** isEvent reports whether m is an edit, delete or reaction event. */
export function isEvent(m) {
  return kindOf(m) !== 'text';
}

/** initState prepares a new text message; version is its page's highest seq, or 0 for a live copy. */
export function initState(m, version) {
  m._tv = Math.max(m.seq, version || 0);
  m._react = new Map();
  const v = m._tv;
  if (m.reactions && typeof m.reactions === 'object') {
    for (const [emoji, users] of Object.entries(m.reactions)) {
      if (!Array.isArray(users)) continue;
      for (const u of users) m._react.set(u, { emoji, v });
    }
  }
  if (m.deleted) markDeleted(m);
  if (!Array.isArray(m.attachments)) m.attachments = [];
}

function markDeleted(m) {
  m.deleted = true;
  m.text = '';
  m.attachments = [];
  m._tv = Infinity;
}

/**
 * mergeCopy folds a page copy `fresh` (state as of at least `version`)
 * into the held message m. Returns whether anything shown changed.
 */
export function mergeCopy(m, fresh, version) {
  const before = stateKey(m);
  if (fresh.deleted) markDeleted(m);
  if (!m.deleted && version >= m._tv) {
    m.text = fresh.text || '';
    m.edited_at = fresh.edited_at || null;
    m.attachments = Array.isArray(fresh.attachments) ? fresh.attachments : [];
    m._tv = version;
  }
  for (const [u, r] of m._react) if (r.v <= version) m._react.delete(u);
  if (fresh.reactions && typeof fresh.reactions === 'object') {
    for (const [emoji, users] of Object.entries(fresh.reactions)) {
      if (!Array.isArray(users)) continue;
      for (const u of users) if (!m._react.has(u)) m._react.set(u, { emoji, v: version });
    }
  }
  if (m.reply_to == null && fresh.reply_to != null) m.reply_to = fresh.reply_to;
  return stateKey(m) !== before;
}

/** applyEvent applies event e to its target m. Returns whether anything shown changed. */
export function applyEvent(m, e) {
  if (m.deleted) return false;
  switch (kindOf(e)) {
    case 'edit':
      if (e.seq <= m._tv) return false;
      m.text = e.text || '';
      m.edited_at = e.created_at || new Date().toISOString();
      m._tv = e.seq;
      return true;
    case 'delete':
      markDeleted(m);
      return true;
    case 'reaction': {
      const r = m._react.get(e.from);
      if (r && r.v >= e.seq) return false;
      m._react.set(e.from, { emoji: e.emoji || '', v: e.seq });
      return !r || r.emoji !== (e.emoji || '');
    }
    default:
      return false;
  }
}

function stateKey(m) {
  const rs = [...m._react].filter(([, r]) => r.emoji).map(([u, r]) => `${u}=${r.emoji}`).sort().join(',');
  return `${m.deleted ? 1 : 0}\n${m.text}\n${m.edited_at || ''}\n${(m.attachments || []).map((a) => a.id).join(',')}\n${rs}`;
}

/**
 * reactionsOf lists a message's reactions: [{emoji, users}], the most
 * used first (ties in order of first use).
 */
export function reactionsOf(m) {
  const by = new Map();
  if (!m || m.deleted || !m._react) return [];
  const order = [...m._react].filter(([, r]) => r.emoji).sort((a, b) => a[1].v - b[1].v);
  for (const [u, r] of order) {
    if (!by.has(r.emoji)) by.set(r.emoji, []);
    by.get(r.emoji).push(u);
  }
  return [...by].map(([emoji, users]) => ({ emoji, users })).sort((a, b) => b.users.length - a.users.length);
}

/** myReaction is the emoji user reacted to m with ("" for none). */
export function myReaction(m, user) {
  const r = m && m._react && m._react.get(user);
  return (r && r.emoji) || '';
}

/** isEdited reports whether m was edited (a zero time, as some encoders send, is not an edit). */
export function isEdited(m) {
  return !!(m && m.edited_at && !m.deleted && Date.parse(m.edited_at) > 0);
}

export const DELETED_TEXT = 'This message was deleted';

/** previewText is the one-line summary of a text message (list previews, reply quotes). */
export function previewText(m) {
  if (!m) return '';
  if (m.deleted) return DELETED_TEXT;
  const text = (m.text || '').replace(/\s+/g, ' ').trim();
  if (text) return text;
  const a = m.attachments || [];
  if (!a.length) return '';
  const icon = a.every((x) => isInlineImage(x.type)) ? '🖼' : '📎';
  return a.length === 1 ? `${icon} ${a[0].name}` : `${icon} ${a.length} files`;
}

// Image types the server serves inline (api.md 1.1 Attachments); others download.
const INLINE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/** isInlineImage reports whether an attachment of this type is shown as an image. */
export function isInlineImage(type) {
  return INLINE_TYPES.has(String(type || '').toLowerCase());
}
