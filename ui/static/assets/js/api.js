// HTTP access to chatd's API (docs/api.md): JSON bodies, cookies, the
// error shape, and the session rule: a 401 refreshes the session once and
// retries; if that fails too the app goes back to the login screen.

import { tooMany } from './util.js';

/** ApiError is a failed request: HTTP status (0 when the network failed), api.md code, message. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = 0) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /** transient reports whether the same request may succeed later. */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status >= 500 || this.code === 'timeout';
  }
}

const NO_REFRESH = new Set(['/auth/login', '/auth/signup', '/auth/refresh', '/auth/logout', '/auth/token']);

let unauthenticated = () => {};

/** onUnauthenticated sets what happens when a session cannot be renewed. */
export function onUnauthenticated(fn) {
  unauthenticated = fn;
}

async function raw(method, path, body, signal) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' }, signal, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(path, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
  }
}

const STATUS_TEXT = {
  400: 'The request was not accepted.',
  401: 'Please log in again.',
  403: 'Not allowed.',
  404: 'Not found.',
  413: 'That is too large.',
  429: 'Too many requests. Please slow down.',
  502: 'The server is unavailable. Trying again may help.',
  503: 'The server is busy or a backend is down. Try again shortly.',
  504: 'The server did not answer in time.',
};

async function toError(res) {
  let code = `http_${res.status}`;
  let message = STATUS_TEXT[res.status] || `Request failed (${res.status}).`;
  try {
    const j = await res.json();
    if (j && j.error) {
      code = j.error.code || code;
      message = j.error.message || message;
    }
  } catch {
    // Not the JSON error shape (a proxy page, say): keep the generic text.
  }
  let ra = parseInt(res.headers.get('Retry-After') || '', 10);
  if (!Number.isFinite(ra)) ra = 0;
  // Every 429 says in words how long to wait (the server's text says seconds).
  if (res.status === 429) message = tooMany(ra);
  return new ApiError(res.status, code, message, ra);
}

let refreshing = null;

/**
 * refreshSession renews the session with the refresh cookie and resolves
 * to true on success. Concurrent callers share one request, and tabs take
 * turns through a Web Lock: a rotated refresh token presented twice would
 * revoke the whole session. (Tabs share the cookie jar, so a tab that
 * waited for the lock presents the token the previous one received.)
 */
export function refreshSession() {
  if (!refreshing) {
    const run = async () => (await raw('POST', '/auth/refresh')).ok;
    const locked = navigator.locks ? navigator.locks.request('chatd-refresh', run) : run();
    refreshing = locked.catch(() => false).finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/**
 * request sends one API request and resolves to the decoded JSON body
 * (null for 204). It rejects with ApiError. Options: signal (AbortSignal),
 * quiet401 (do not send the app to the login screen on a final 401).
 */
export async function request(method, path, body, { signal, quiet401 = false } = {}) {
  let res = await raw(method, path, body, signal);
  const bare = path.split('?')[0];
  if (res.status === 401 && !NO_REFRESH.has(bare)) {
    if (await refreshSession()) res = await raw(method, path, body, signal);
    if (res.status === 401) {
      const err = await toError(res);
      if (!quiet401) unauthenticated();
      throw err;
    }
  }
  if (!res.ok) throw await toError(res);
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'bad_response', 'The server sent an unreadable answer.');
  }
}

export const api = {
  me: (opts) => request('GET', '/auth/me', undefined, opts),
  login: (username, password) => request('POST', '/auth/login', { username, password }),
  signup: (username, password, displayName) =>
    request('POST', '/auth/signup', displayName ? { username, password, display_name: displayName } : { username, password }),
  logout: () => request('POST', '/auth/logout'),
  searchUsers: (q, signal) => request('GET', `/api/users?q=${encodeURIComponent(q)}&limit=20`, undefined, { signal }),
  user: (id) => request('GET', `/api/users/${encodeURIComponent(id)}`),
  conversations: () => request('GET', '/api/conversations'),
  messagesBefore: (peer, before, limit) =>
    request('GET', `/api/conversations/${encodeURIComponent(peer)}/messages?limit=${limit}${before ? `&before=${before}` : ''}`),
  messagesAfter: (peer, after, limit) =>
    request('GET', `/api/conversations/${encodeURIComponent(peer)}/messages?after=${after}&limit=${limit}`),
  send: (to, text, clientMsgId, extra) => request('POST', '/api/messages', { to, text, client_msg_id: clientMsgId, ...extra }),
  // Message events (api.md 1.1): each answers 200 {"message"} with the event.
  editMessage: (peer, seq, text, clientMsgId) =>
    request('PATCH', `/api/conversations/${encodeURIComponent(peer)}/messages/${seq}`, { text, client_msg_id: clientMsgId }),
  deleteMessage: (peer, seq, clientMsgId) =>
    request('DELETE', `/api/conversations/${encodeURIComponent(peer)}/messages/${seq}?client_msg_id=${encodeURIComponent(clientMsgId)}`),
  react: (peer, seq, emoji, clientMsgId) =>
    request('PUT', `/api/conversations/${encodeURIComponent(peer)}/messages/${seq}/reaction`, { emoji, client_msg_id: clientMsgId }),
  // Account and privacy (api.md 1.1).
  updateMe: (displayName) => request('PATCH', '/api/me', { display_name: displayName }),
  changePassword: (current, next) => request('POST', '/auth/password', { current_password: current, new_password: next }),
  sessions: () => request('GET', '/auth/sessions'),
  revokeSession: (id) => request('DELETE', `/auth/sessions/${encodeURIComponent(id)}`),
  logoutAll: () => request('POST', '/auth/logout', { all: true }),
  deleteAccount: (password) => request('DELETE', '/auth/account', { password }),
  exportMe: () => request('GET', '/api/me/export'),
  blocks: () => request('GET', '/api/blocks'),
  block: (id) => request('PUT', `/api/users/${encodeURIComponent(id)}/block`),
  unblock: (id) => request('DELETE', `/api/users/${encodeURIComponent(id)}/block`),
  read: (peer, seq) => request('POST', `/api/conversations/${encodeURIComponent(peer)}/read`, { seq }),
};
