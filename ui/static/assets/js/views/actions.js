// Message actions: one menu per message, opened from the message's own
// button (keyboard and touch reach it; it is not hover-only): Reply, a row
// of common emoji, and for the author Edit and Delete. Delete asks first
// in a modal dialog. Also the full-size image view.

import { el } from '../util.js';
import { myReaction } from '../events.js';
import { attachmentUrl } from './message.js';

/** EMOJI is the picker: the common reactions. */
export const EMOJI = ['👍', '❤️', '😂', '😮', '😢', '🙏', '🎉'];

/**
 * MessageMenu is the one action menu, moved next to the message it is
 * opened for. Arrow keys move between items, Escape and Tab close it, and
 * focus returns to the message's button.
 */
export class MessageMenu {
  /** @param {object} on reply(seq), edit(seq), remove(seq), react(seq, emoji) */
  constructor(on) {
    this.on = on;
    this.seq = 0;
    this.opener = null;
    this.node = el('div', { class: 'msg-menu', role: 'menu', 'data-testid': 'message-menu', 'aria-label': 'Message actions', hidden: true });
    document.body.append(this.node);
    this.node.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-do]');
      if (!b) return;
      const seq = this.seq;
      const what = b.dataset.do;
      this.close(what !== 'edit' && what !== 'reply');
      if (what === 'react') this.on.react(seq, b.getAttribute('aria-checked') === 'true' ? '' : b.dataset.emoji);
      else this.on[what](seq);
    });
    this.node.addEventListener('keydown', (e) => this.onKey(e));
    document.addEventListener('pointerdown', (e) => {
      if (!this.node.hidden && !this.node.contains(e.target) && e.target !== this.opener) this.close(false);
    }, true);
    window.addEventListener('resize', () => this.close(false));
  }

  get open() {
    return !this.node.hidden;
  }

  /** show opens the menu for message m (own: its author is the user) from button. */
  show(button, m, me) {
    if (this.open && this.seq === m.seq) {
      this.close(true);
      return;
    }
    this.seq = m.seq;
    this.opener = button;
    const own = m.from === me;
    const mine = myReaction(m, me);
    const emoji = el('div', { class: 'menu-emoji', role: 'group', 'aria-label': 'React' });
    for (const e of EMOJI) {
      emoji.append(el('button', {
        type: 'button', role: 'menuitemradio', 'data-do': 'react', 'data-emoji': e, 'data-testid': 'react-option',
        'aria-checked': String(e === mine), 'aria-label': e === mine ? `Remove reaction ${e}` : `React with ${e}`, text: e,
      }));
    }
    const items = [emoji, el('button', { type: 'button', role: 'menuitem', 'data-do': 'reply', 'data-testid': 'action-reply', text: 'Reply' })];
    if (own) {
      if (m.text) items.push(el('button', { type: 'button', role: 'menuitem', 'data-do': 'edit', 'data-testid': 'action-edit', text: 'Edit' }));
      items.push(el('button', { type: 'button', role: 'menuitem', class: 'danger-text', 'data-do': 'remove', 'data-testid': 'action-delete', text: 'Delete for everyone' }));
    }
    this.node.replaceChildren(...items);
    this.node.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    this.place(button);
    this.items()[0].focus();
  }

  place(button) {
    const r = button.getBoundingClientRect();
    const n = this.node;
    n.style.left = '0px';
    n.style.top = '0px';
    const w = n.offsetWidth;
    const h = n.offsetHeight;
    const vw = document.documentElement.clientWidth;
    const vh = window.innerHeight;
    const left = Math.max(8, Math.min(r.right - w, vw - w - 8));
    const top = r.bottom + h + 8 <= vh ? r.bottom + 4 : Math.max(8, r.top - h - 4);
    n.style.left = `${left}px`;
    n.style.top = `${top}px`;
  }

  items() {
    return [...this.node.querySelectorAll('button')];
  }

  onKey(e) {
    const items = this.items();
    const i = items.indexOf(document.activeElement);
    let next = -1;
    if (e.key === 'ArrowDown' || e.key === 'ArrowRight') next = (i + 1) % items.length;
    else if (e.key === 'ArrowUp' || e.key === 'ArrowLeft') next = (i - 1 + items.length) % items.length;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = items.length - 1;
    else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      this.close(true);
      return;
    } else if (e.key === 'Tab') {
      this.close(false);
      return;
    }
    if (next >= 0) {
      e.preventDefault();
      items[next].focus();
    }
  }

  /** close hides the menu; refocus returns focus to the message's button. */
  close(refocus) {
    if (this.node.hidden) return;
    this.node.hidden = true;
    const b = this.opener;
    this.opener = null;
    if (b) {
      b.setAttribute('aria-expanded', 'false');
      if (refocus && b.isConnected) b.focus({ preventScroll: true });
    }
  }
}

/** confirmDelete asks in a modal dialog; resolves to true for Delete. */
export function confirmDelete() {
  let d = document.getElementById('confirm-delete');
  if (!d) {
    d = el(
      'dialog',
      { id: 'confirm-delete', class: 'confirm', 'data-testid': 'confirm-dialog', 'aria-labelledby': 'confirm-delete-title' },
      el('form', { method: 'dialog' },
        el('h2', { id: 'confirm-delete-title', text: 'Delete this message for everyone?' }),
        el('p', { class: 'small muted', text: 'Both of you will see “This message was deleted” instead. This cannot be undone.' }),
        el('div', { class: 'confirm-actions' },
          el('button', { type: 'submit', value: 'cancel', class: 'btn ghost', 'data-testid': 'confirm-cancel', text: 'Cancel' }),
          el('button', { type: 'submit', value: 'delete', class: 'btn danger', 'data-testid': 'confirm-delete', text: 'Delete' }))),
    );
    document.body.append(d);
  }
  return new Promise((resolve) => {
    d.returnValue = 'cancel';
    d.addEventListener('close', () => resolve(d.returnValue === 'delete'), { once: true });
    d.showModal();
    d.querySelector('[value="cancel"]').focus();
  });
}

/** viewImage shows an attachment full size in a modal dialog (Escape or a click closes it). */
export function viewImage(a) {
  let d = document.getElementById('image-view');
  if (!d) {
    d = el('dialog', { id: 'image-view', class: 'image-view', 'data-testid': 'image-view', 'aria-label': 'Image' });
    d.addEventListener('click', (e) => {
      if (e.target === d || e.target.tagName === 'IMG') d.close();
    });
    document.body.append(d);
  }
  const url = attachmentUrl(a);
  d.setAttribute('aria-label', a.name);
  d.replaceChildren(
    el('div', { class: 'image-view-bar' },
      el('span', { class: 'image-view-name', dir: 'auto', text: a.name }),
      el('a', { class: 'btn ghost small', href: url, download: a.name, 'data-testid': 'image-download', text: 'Download' }),
      el('button', { type: 'button', class: 'btn ghost small', 'data-testid': 'image-close', text: 'Close', onclick: () => d.close() })),
    el('img', { src: url, alt: a.name, 'data-testid': 'image-full' }),
  );
  d.showModal();
  d.querySelector('[data-testid="image-close"]').focus();
}
