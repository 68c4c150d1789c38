// Attachments in the composer: files from the picker, dropped on the
// conversation or pasted, uploaded at once with POST /api/attachments
// (api.md 1.1) over XMLHttpRequest, which reports upload progress and can
// be aborted (fetch cannot report an upload's progress). The tray shows
// each file with a progress bar and a cancel button; the message is sent
// with the ids of the finished ones.

import { refreshSession } from './api.js';
import { el, tooMany } from './util.js';
import { fmtSize } from './views/message.js';

/** MAX_ATTACHMENTS is api.md's limit per message. */
export const MAX_ATTACHMENTS = 10;

/** attachmentLimit is the largest upload in bytes, when the server said so (hello max_attachment_bytes). */
export const attachmentLimit = { bytes: 0 };

function uploadError(xhr) {
  let code = '';
  let message = '';
  try {
    const j = JSON.parse(xhr.responseText);
    code = (j && j.error && j.error.code) || '';
    message = (j && j.error && j.error.message) || '';
  } catch {
    // not the error shape
  }
  if (xhr.status === 413 || code === 'too_large') return 'Too large to upload.';
  if (xhr.status === 429) return tooMany(parseInt(xhr.getResponseHeader('Retry-After') || '', 10) || 0);
  if (xhr.status === 0) return 'Cannot reach the server.';
  return message || `Upload failed (${xhr.status}).`;
}

/**
 * upload sends file to the server. onProgress(loaded, total) follows the
 * upload. Returns {promise (resolves to the Attachment), abort()}. A 401
 * renews the session once and starts over.
 */
export function upload(file, name, onProgress) {
  let xhr = null;
  let aborted = false;
  const once = () =>
    new Promise((resolve, reject) => {
      xhr = new XMLHttpRequest();
      xhr.open('POST', `/api/attachments?name=${encodeURIComponent(name)}`);
      xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
      xhr.addEventListener('load', () => resolve(xhr));
      xhr.addEventListener('error', () => resolve(xhr));
      xhr.addEventListener('abort', () => reject(new DOMException('cancelled', 'AbortError')));
      xhr.send(file);
    });
  const promise = (async () => {
    let x = await once();
    if (x.status === 401 && !aborted && (await refreshSession())) {
      onProgress(0, file.size);
      x = await once();
    }
    if (x.status === 201 || x.status === 200) {
      const j = JSON.parse(x.responseText);
      if (j && j.attachment && j.attachment.id) return j.attachment;
    }
    throw new Error(uploadError(x));
  })();
  return {
    promise,
    abort: () => {
      aborted = true;
      if (xhr) xhr.abort();
    },
  };
}

let counter = 0;

/** Uploads is the composer's tray of attachments for the next message. */
export class Uploads {
  /** @param {HTMLElement} tray the list element; onChange() runs when the set or a state changes */
  constructor(tray, onChange, onError) {
    this.tray = tray;
    this.onChange = onChange;
    this.onError = onError;
    /** @type {Map<number, any>} */
    this.items = new Map();
    tray.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-upload]');
      if (b) this.remove(Number(b.dataset.upload));
    });
  }

  /** add starts uploading files (File objects), at most MAX_ATTACHMENTS in the tray. */
  add(files) {
    for (const file of files) {
      if (this.items.size >= MAX_ATTACHMENTS) {
        this.onError(`At most ${MAX_ATTACHMENTS} attachments per message.`);
        break;
      }
      if (attachmentLimit.bytes && file.size > attachmentLimit.bytes) {
        this.onError(`${file.name || 'That file'} is too large: at most ${fmtSize(attachmentLimit.bytes)}.`);
        continue;
      }
      // A pasted image has no useful name ("image.png"): keep it, with the type's extension.
      const name = file.name || `pasted.${(file.type.split('/')[1] || 'bin').replace(/[^a-z0-9]/gi, '')}`;
      const id = ++counter;
      const item = { id, file, name, loaded: 0, total: file.size, status: 'uploading', error: '', attachment: null, up: null };
      item.up = upload(file, name, (loaded, total) => {
        item.loaded = loaded;
        item.total = total || file.size;
        this.renderProgress(item);
      });
      item.up.promise.then(
        (a) => {
          if (!this.items.has(id)) return;
          item.status = 'done';
          item.attachment = a;
          this.render();
        },
        (e) => {
          if (!this.items.has(id) || (e && e.name === 'AbortError')) return;
          item.status = 'failed';
          item.error = e.message;
          this.render();
        },
      );
      this.items.set(id, item);
    }
    this.render();
  }

  remove(id) {
    const item = this.items.get(id);
    if (!item) return;
    this.items.delete(id);
    if (item.status === 'uploading') item.up.abort();
    this.render();
  }

  /** busy reports whether a file is still uploading. */
  get busy() {
    for (const i of this.items.values()) if (i.status === 'uploading') return true;
    return false;
  }

  /** ready lists the uploaded attachments, in the order added. */
  get ready() {
    return [...this.items.values()].filter((i) => i.status === 'done').map((i) => i.attachment);
  }

  /** clear empties the tray, cancelling uploads in flight. */
  clear() {
    for (const i of this.items.values()) if (i.status === 'uploading') i.up.abort();
    this.items.clear();
    this.render();
  }

  renderProgress(item) {
    const bar = this.tray.querySelector(`[data-item="${item.id}"] progress`);
    if (bar) {
      bar.max = item.total || 1;
      bar.value = Math.min(item.loaded, item.total || 1);
    }
  }

  render() {
    const rows = [...this.items.values()].map((i) => {
      const label = i.status === 'uploading' ? `Cancel upload of ${i.name}` : `Remove ${i.name}`;
      return el(
        'li',
        { class: `upload ${i.status}`, 'data-item': i.id, 'data-testid': 'upload', 'data-status': i.status },
        el('span', { class: 'upload-name', dir: 'auto', text: i.name }),
        el('span', { class: 'upload-size small muted', text: fmtSize(i.file.size) }),
        i.status === 'uploading'
          ? el('progress', { 'data-testid': 'upload-progress', max: i.total || 1, value: Math.min(i.loaded, i.total || 1), 'aria-label': `Uploading ${i.name}` })
          : null,
        i.status === 'failed' ? el('span', { class: 'error-text small', 'data-testid': 'upload-error', text: i.error }) : null,
        el('button', { type: 'button', class: 'btn icon small', 'data-upload': i.id, 'data-testid': 'upload-cancel', 'aria-label': label, title: label, text: '×' }),
      );
    });
    this.tray.replaceChildren(...rows);
    this.tray.hidden = rows.length === 0;
    this.onChange();
  }
}
