// Toasts: short messages at the bottom of the screen. Errors stay until
// dismissed or for 8 s; the same text is not stacked twice.

import { byId, el } from '../util.js';

const MAX = 4;

function show(kind, text, ttl) {
  const box = byId('toasts');
  for (const t of box.children) {
    if (t.dataset.text === text) {
      t.remove(); // re-show the same message at the end instead of stacking it
      break;
    }
  }
  const close = el('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', text: '×' });
  const node = el(
    'div',
    {
      class: `toast ${kind}`,
      role: kind === 'error' ? 'alert' : 'status',
      'data-testid': kind === 'error' ? 'error-toast' : 'info-toast',
      'data-text': text,
    },
    el('span', { class: 'toast-text', text }),
    close,
  );
  const remove = () => {
    node.classList.add('leaving');
    setTimeout(() => node.remove(), 180);
  };
  close.addEventListener('click', remove);
  box.append(node);
  while (box.children.length > MAX) box.firstElementChild.remove();
  setTimeout(remove, ttl);
  return node;
}

/** toastError shows an error message to the user. */
export function toastError(text) {
  return show('error', text, 8000);
}

/** toastInfo shows a short notice. */
export function toastInfo(text) {
  return show('info', text, 4000);
}
