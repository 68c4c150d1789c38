// Small DOM and formatting helpers shared by the views.

/**
 * Limits the server announces. maxTextBytes is the largest message text in
 * UTF-8 bytes: api.md's 4096 until a hello frame brings the server's
 * chat.max_text_bytes (setLimits).
 */
export const limits = { maxTextBytes: 4096 };

/** setLimits takes the limits a hello frame carries; absent or bad values keep the current ones. */
export function setLimits(hello) {
  const n = hello && hello.max_text_bytes;
  if (Number.isInteger(n) && n > 0) limits.maxTextBytes = n;
}

const encoder = new TextEncoder();

/** utf8Length returns the number of UTF-8 bytes of s. */
export function utf8Length(s) {
  // Fast path: pure ASCII strings are as long as they look.
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(s)) return s.length;
  return encoder.encode(s).length;
}

/** $ returns the element with the given id (throws if it is missing). */
export function byId(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`missing #${id}`);
  return e;
}

/**
 * el creates an element. attrs: class, text, dataset-style "data-*",
 * "aria-*", other attributes and "on*" listeners.
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

/** uuid returns a random RFC 4122 version 4 UUID. */
export function uuid() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // crypto.randomUUID needs a secure context; plain-HTTP hosts fall back here.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// The browser's locale decides 12 or 24 hours (no hour12 forced): "20:44" in
// most of Europe, "8:44 PM" in the US.
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long' });
const shortWeekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'long', year: 'numeric' });
const shortDateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });

/** ms parses an RFC 3339 time to epoch milliseconds (0 when absent). */
export function ms(iso) {
  if (!iso) return 0;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : t;
}

function startOfDay(t) {
  const d = new Date(t);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** dayKey returns a local calendar day key for epoch ms t. */
export function dayKey(t) {
  const d = new Date(t);
  return d.getFullYear() * 10000 + (d.getMonth() + 1) * 100 + d.getDate();
}

function daysAgo(t) {
  return Math.round((startOfDay(Date.now()) - startOfDay(t)) / 86400000);
}

export function fmtTime(t) {
  return t ? timeFmt.format(t) : '';
}

export function fmtFull(t) {
  return t ? fullFmt.format(t) : '';
}

/** fmtDay labels a date separator: Today, Yesterday, weekday, or date. */
export function fmtDay(t) {
  const n = daysAgo(t);
  if (n === 0) return 'Today';
  if (n === 1) return 'Yesterday';
  if (n > 1 && n < 7) return weekdayFmt.format(t);
  return dateFmt.format(t);
}

/** fmtListTime is the compact time shown in the conversation list. */
export function fmtListTime(t) {
  if (!t) return '';
  const n = daysAgo(t);
  if (n === 0) return timeFmt.format(t);
  if (n === 1) return 'Yesterday';
  if (n > 1 && n < 7) return shortWeekdayFmt.format(t);
  return shortDateFmt.format(t);
}

/** fmtPresence renders a Presence object for a header or tooltip. */
export function fmtPresence(p) {
  if (!p) return '';
  if (p.online) return 'online';
  const t = ms(p.last_seen);
  if (!t) return 'offline';
  const secs = Math.max(0, (Date.now() - t) / 1000);
  if (secs < 60) return 'last seen just now';
  if (secs < 3600) return `last seen ${Math.floor(secs / 60)} min ago`;
  const n = daysAgo(t);
  if (n === 0) return `last seen today at ${timeFmt.format(t)}`;
  if (n === 1) return `last seen yesterday at ${timeFmt.format(t)}`;
  return `last seen ${shortDateFmt.format(t)} at ${timeFmt.format(t)}`;
}

/** displayName is a user's display name, or the username without one. */
export function displayName(u) {
  if (!u) return '';
  return (u.display_name && u.display_name.trim()) || u.username || '…';
}

const graphemeSegmenter = typeof Intl.Segmenter === 'function' ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;

/** graphemes splits s into user-perceived characters (an emoji with its modifiers is one). */
export function graphemes(s) {
  if (graphemeSegmenter) return [...graphemeSegmenter.segment(s)].map((g) => g.segment);
  return [...s]; // code points: at least never half a surrogate pair
}

/** charCount is the number of user-perceived characters of s. */
export function charCount(s) {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(s)) return s.length;
  return graphemes(s).length;
}

/**
 * initials are the first characters of the first two words of name, by
 * grapheme, never half of one. Words starting with a letter are preferred,
 * so "داود 🚀 Dave" gives "دD"; a name of only emoji gives its first.
 */
export function initials(name) {
  const parts = String(name || '?').trim().split(/[\s._-]+/).filter(Boolean);
  const words = parts.filter((w) => /^\p{L}/u.test(w));
  const use = words.length ? words : parts;
  let s;
  if (use.length > 1) s = graphemes(use[0])[0] + graphemes(use[1])[0];
  else s = graphemes(use[0] || '?').slice(0, use === words ? 2 : 1).join('');
  return s.toUpperCase();
}

/** fmtWait says a Retry-After (seconds) in words: minutes, never seconds. */
export function fmtWait(seconds) {
  const s = Math.ceil(Number(seconds) || 0);
  if (s <= 0) return 'later';
  if (s < 60) return 'in less than a minute';
  const m = Math.ceil(s / 60);
  if (m < 120) return m === 1 ? 'in 1 minute' : `in ${m} minutes`;
  return `in ${Math.ceil(m / 60)} hours`;
}

/** tooMany is the words for a 429: "Too many attempts. Try again in 3 minutes." */
export function tooMany(retryAfter) {
  return `Too many attempts. Try again ${fmtWait(retryAfter)}.`;
}

/** hue derives a stable avatar hue from an id. */
export function hue(id) {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % 360;
}

/** fillAvatar renders initials and colour into an avatar element. */
export function fillAvatar(node, user) {
  const label = node.querySelector('.initials') || node.insertBefore(el('span', { class: 'initials' }), node.firstChild);
  label.textContent = initials(displayName(user));
  node.style.setProperty('--avatar-hue', String(hue(user ? user.id : '')));
}

/** lowerBound returns the first index of arr whose .seq is >= seq. */
export function lowerBound(arr, seq) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function sleep(msec) {
  return new Promise((r) => setTimeout(r, msec));
}
