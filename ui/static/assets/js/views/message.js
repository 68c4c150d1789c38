// What a message bubble holds beyond its text: the quote of the message it
// replies to, its attachments (images inline, other files as chips), links
// in its text, the "edited" label, the tombstone of a deleted message and
// its reactions. Everything is built as DOM nodes, never from HTML.

import { el, fmtFull, ms } from '../util.js';
import { linkNodes } from '../linkify.js';
import { DELETED_TEXT, isEdited, isInlineImage, myReaction, previewText, reactionsOf } from '../events.js';

/** fmtSize says a size in bytes as people read it: "820 B", "14 KB", "3.2 MB". */
export function fmtSize(n) {
  n = Number(n) || 0;
  if (n < 1000) return `${n} B`;
  const units = ['KB', 'MB', 'GB'];
  let v = n;
  let u = -1;
  do {
    v /= 1000;
    u++;
  } while (v >= 1000 && u < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** attachmentUrl is where an attachment's bytes are served. */
export function attachmentUrl(a) {
  return `/api/attachments/${encodeURIComponent(a.id)}`;
}

/**
 * attachmentNodes renders a message's attachments: images as buttons that
 * open the full-size view, in a box of fixed proportions reserved before
 * the image loads (the server does not say an image's size, so the box is
 * fixed and the image covers it: nothing moves when it arrives); other
 * files as a chip with name, size and a download link.
 */
export function attachmentNodes(list) {
  if (!list || !list.length) return null;
  const images = list.filter((a) => isInlineImage(a.type));
  const files = list.filter((a) => !isInlineImage(a.type));
  const box = el('div', { class: 'attachments', 'data-testid': 'attachments' });
  if (images.length) {
    const grid = el('div', { class: `images n${Math.min(images.length, 4)}` });
    for (const a of images) {
      grid.append(
        el(
          'button',
          { type: 'button', class: 'image', 'data-action': 'view-image', 'data-attachment-id': a.id, 'data-testid': 'attachment-image', 'aria-label': `View image ${a.name}` },
          el('img', { src: attachmentUrl(a), alt: a.name, loading: 'lazy', decoding: 'async', width: 240, height: 180 }),
        ),
      );
    }
    box.append(grid);
  }
  for (const a of files) {
    box.append(
      el(
        'a',
        { class: 'file', href: attachmentUrl(a), download: a.name, 'data-testid': 'attachment-file', 'data-attachment-id': a.id, title: `Download ${a.name}` },
        el('span', { class: 'file-icon', 'aria-hidden': 'true', text: '📄' }),
        el('span', { class: 'file-name', dir: 'auto', 'data-testid': 'attachment-name', text: a.name }),
        el('span', { class: 'file-size small', 'data-testid': 'attachment-size', text: fmtSize(a.size) }),
      ),
    );
  }
  return box;
}

/**
 * quoteNode is the quote of the message m replies to (target: the held
 * message, or undefined when it is not loaded): a button that jumps to it.
 */
export function quoteNode(replyTo, target, nameOf) {
  const who = target ? nameOf(target.from) : '';
  const text = target ? previewText(target) || 'Attachment' : 'Earlier message';
  return el(
    'button',
    { type: 'button', class: 'quote', 'data-action': 'jump', 'data-target': replyTo, 'data-testid': 'reply-quote', 'aria-label': `Reply to ${who ? `${who}: ` : ''}${text}. Show the original.` },
    who ? el('span', { class: 'quote-name', dir: 'auto', text: who }) : null,
    el('span', { class: `quote-text${target && target.deleted ? ' deleted' : ''}`, dir: 'auto', text }),
  );
}

/** textNode is the message text with its links, or the tombstone of a deleted message. */
export function textNode(m) {
  const span = el('span', { class: 'text', 'data-testid': 'message-text', dir: 'auto' });
  if (m.deleted) {
    span.hidden = true;
    return [span, el('span', { class: 'text tombstone', 'data-testid': 'message-deleted', text: DELETED_TEXT })];
  }
  if (m.text) span.append(...linkNodes(m.text));
  else span.hidden = true;
  return [span];
}

/** editedNode is the "edited" label, with the time of the edit as its title. */
export function editedNode(m) {
  if (!isEdited(m)) return null;
  return el('span', { class: 'edited', 'data-testid': 'message-edited', title: `Edited ${fmtFull(ms(m.edited_at))}`, text: 'edited' });
}

/**
 * reactionsNode lists the reactions under a bubble: one toggle per emoji
 * with its count; its title and accessible name say who reacted.
 */
export function reactionsNode(m, me, nameOf) {
  const list = reactionsOf(m);
  if (!list.length) return null;
  const mine = myReaction(m, me);
  const bar = el('div', { class: 'reactions', 'data-testid': 'reactions' });
  for (const { emoji, users } of list) {
    const names = users.map((u) => (u === me ? 'You' : nameOf(u)));
    const who = names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}` : names[0];
    const on = emoji === mine;
    bar.append(
      el(
        'button',
        {
          type: 'button', class: `reaction${on ? ' mine' : ''}`, 'data-action': 'react', 'data-emoji': emoji, 'data-testid': 'reaction',
          'data-count': users.length, 'aria-pressed': String(on), title: `${who} reacted with ${emoji}`,
          'aria-label': `${emoji} ${users.length}: ${who} reacted${on ? '. Press to remove yours' : ''}`,
        },
        el('span', { class: 'reaction-emoji', 'aria-hidden': 'true', text: emoji }),
        el('span', { class: 'reaction-count', 'aria-hidden': 'true', text: String(users.length) }),
      ),
    );
  }
  return bar;
}
