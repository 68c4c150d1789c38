// chatd's service worker, at the root scope: it shows a Web Push
// notification for a new message while no chatd tab is connected (the
// server pushes only then), and opens or focuses the conversation when the
// notification is clicked. The payload is {"conversation_id","from","seq"}
// and "text" only when the server is set to include it (push.include_text);
// the sender's name comes from GET /api/users/{id} with the session cookie,
// or a generic title when that fails (the access cookie may have expired).
'use strict';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

function parse(data) {
  if (!data) return null;
  try {
    const p = data.json();
    return p && typeof p === 'object' ? p : null;
  } catch {
    return null;
  }
}

async function senderName(id) {
  if (!id) return '';
  try {
    const r = await fetch(`/api/users/${encodeURIComponent(id)}`, { credentials: 'same-origin', cache: 'no-store' });
    if (!r.ok) return '';
    const j = await r.json();
    const u = j && j.user;
    return (u && ((u.display_name && u.display_name.trim()) || u.username)) || '';
  } catch {
    return '';
  }
}

async function show(p) {
  const name = await senderName(p && typeof p.from === 'string' ? p.from : '');
  const text = p && typeof p.text === 'string' ? p.text : '';
  const title = name || 'New message';
  const body = text || (name ? 'sent you a message' : 'You have a new message in chatd.');
  // One notification per conversation: a newer one replaces it (the server
  // collapses pushes per conversation the same way, with its Topic header).
  const tag = p && p.conversation_id ? `chatd-${p.conversation_id}` : 'chatd';
  return self.registration.showNotification(title, {
    body, tag, renotify: true, icon: '/assets/favicon.svg',
    data: { peer: p && typeof p.from === 'string' ? p.from : '' },
  });
}

self.addEventListener('push', (e) => e.waitUntil(show(parse(e.data))));

async function openPeer(peer) {
  const path = peer ? `/c/${encodeURIComponent(peer)}` : '/';
  const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const w of wins) {
    if (new URL(w.url).origin !== self.location.origin) continue;
    await w.focus();
    w.postMessage({ type: 'chatd-open', peer });
    return;
  }
  await self.clients.openWindow(path);
}

self.addEventListener('notificationclick', (e) => {
  e.notification.close();
  e.waitUntil(openPeer((e.notification.data && e.notification.data.peer) || ''));
});

// The browser replaced the subscription (it expired or was revoked): tell
// the server the new one, so pushes keep reaching this browser.
self.addEventListener('pushsubscriptionchange', (e) => {
  e.waitUntil((async () => {
    const r = await fetch('/api/push/key', { credentials: 'same-origin' });
    if (!r.ok) return;
    const { public_key: key } = await r.json();
    const raw = atob(key.replace(/-/g, '+').replace(/_/g, '/'));
    const appKey = Uint8Array.from(raw, (ch) => ch.charCodeAt(0));
    const sub = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: appKey });
    await fetch('/api/push/subscriptions', {
      method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(sub.toJSON()),
    });
  })().catch(() => {}));
});
