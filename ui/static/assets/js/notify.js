// Notifications: the service worker and Web Push subscription (the server
// pushes while no tab of the user is connected), an in-page notification
// and a short beep for a message that arrives on the open socket while the
// tab is hidden, the "Turn on notifications" prompt (after the user's
// first send, dismissible, remembered), mute per conversation in the
// header, and the unread count drawn on the favicon.
import { request } from './api.js';
import { toastError } from './views/toast.js';
import { byId, displayName } from './util.js';

const PROMPT_KEY = 'chatd.notify.prompt'; // 'dismissed' once the user said no
const FOREVER = '9999-12-31T23:59:59.999Z'; // "until I unmute"
const MUTES = [
  ['For 1 hour', 3600e3],
  ['For 8 hours', 8 * 3600e3],
  ['Until I unmute', 0],
];

function b64uToBytes(s) {
  const raw = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(raw, (ch) => ch.charCodeAt(0));
}

function sameKey(buf, key) {
  if (!buf) return false;
  const a = new Uint8Array(buf);
  const b = b64uToBytes(key);
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** mutedUntil returns the end of c's mute as ms, or 0 when not muted now. */
export function mutedUntil(c) {
  const t = c && c.muted_until ? Date.parse(c.muted_until) : 0;
  return t > Date.now() ? t : 0;
}

export class Notify {
  /** actions: open(peer) shows a conversation. */
  constructor(store, actions) {
    this.store = store;
    this.actions = actions;
    this.session = 0;
    this.peer = null;
    this.key = null; // the VAPID public key, null when the server has push off
    this.reg = null; // the service worker registration
    this.audio = null;
    this.btn = byId('mute-toggle');
    this.menu = byId('mute-menu');
    this.icon = document.querySelector('link[rel="icon"]');
    this.iconHref = this.icon ? this.icon.href : '';
    this.iconImg = null;
    this.badgeCount = -1;

    for (const [label, ms] of MUTES) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'menu-item';
      b.setAttribute('role', 'menuitem');
      b.dataset.testid = 'mute-option';
      b.textContent = label;
      b.addEventListener('click', () => {
        this.closeMenu();
        this.setMute(this.peer, ms ? new Date(Date.now() + ms).toISOString() : FOREVER);
      });
      this.menu.append(b);
    }
    this.btn.addEventListener('click', (e) => {
      e.stopPropagation();
      if (!this.peer) return;
      if (mutedUntil(this.store.conv(this.peer))) this.setMute(this.peer, null);
      else if (this.menu.hidden) this.openMenu();
      else this.closeMenu();
    });
    document.addEventListener('click', (e) => {
      if (!this.menu.hidden && !this.menu.contains(e.target)) this.closeMenu();
    });
    this.menu.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        this.closeMenu();
        this.btn.focus();
      }
    });
    store.addEventListener('conv', (e) => {
      this.queueBadge();
      if (e.detail.peer === this.peer) this.renderMute();
    });
    if ('serviceWorker' in navigator) {
      // A notification click from the service worker: show that conversation.
      navigator.serviceWorker.addEventListener('message', (e) => {
        if (e.data && e.data.type === 'chatd-open' && e.data.peer && this.store.me) this.actions.open(e.data.peer);
      });
    }
  }

  supported() {
    return 'Notification' in window;
  }

  /** start runs at log in: the service worker, the key, a current subscription. */
  async start() {
    const s = ++this.session;
    this.queueBadge();
    if ('serviceWorker' in navigator && window.isSecureContext) {
      try {
        this.reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
      } catch {
        this.reg = null;
      }
    }
    try {
      const r = await request('GET', '/api/push/key', undefined, { quiet401: true });
      if (s === this.session) this.key = (r && r.public_key) || null;
    } catch {
      if (s === this.session) this.key = null; // push is off on this server
    }
    // Permission given earlier: make sure the server has this browser's subscription.
    if (s === this.session && this.supported() && Notification.permission === 'granted') this.subscribe().catch(() => {});
  }

  /** stop runs at log out. */
  stop() {
    this.session++;
    this.peer = null;
    this.closeMenu();
    this.hidePrompt();
    this.setBadge(0);
  }

  /** forget removes this browser's subscription from the server (before logging out). */
  async forget() {
    try {
      const sub = this.reg && this.reg.pushManager && (await this.reg.pushManager.getSubscription());
      if (!sub) return;
      await request('DELETE', '/api/push/subscriptions', { endpoint: sub.endpoint }, { quiet401: true }).catch(() => {});
      await sub.unsubscribe();
    } catch {
      // the session ends anyway
    }
  }

  async subscribe() {
    if (!this.reg || !this.key || !this.reg.pushManager) return false;
    await navigator.serviceWorker.ready;
    let sub = await this.reg.pushManager.getSubscription();
    // A subscription made with another server key cannot receive our pushes.
    if (sub && !sameKey(sub.options && sub.options.applicationServerKey, this.key)) {
      await sub.unsubscribe();
      sub = null;
    }
    if (!sub) sub = await this.reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64uToBytes(this.key) });
    await request('POST', '/api/push/subscriptions', sub.toJSON());
    return true;
  }

  /** sent is called after the user sends: the moment to offer notifications. */
  sent() {
    if (!this.supported() || Notification.permission !== 'default' || document.getElementById('notify-prompt')) return;
    try {
      if (localStorage.getItem(PROMPT_KEY) === 'dismissed') return;
    } catch {
      return;
    }
    const bar = document.createElement('div');
    bar.id = 'notify-prompt';
    bar.className = 'notify-prompt';
    bar.setAttribute('role', 'region');
    bar.setAttribute('aria-label', 'Notifications');
    bar.dataset.testid = 'notify-prompt';
    const text = document.createElement('span');
    text.textContent = 'Get a notification when a message arrives while chatd is in the background?';
    const on = document.createElement('button');
    on.type = 'button';
    on.className = 'btn primary small';
    on.dataset.testid = 'notify-enable';
    on.textContent = 'Turn on notifications';
    on.addEventListener('click', () => this.enable());
    const no = document.createElement('button');
    no.type = 'button';
    no.className = 'btn ghost small';
    no.dataset.testid = 'notify-dismiss';
    no.textContent = 'Not now';
    no.addEventListener('click', () => {
      try {
        localStorage.setItem(PROMPT_KEY, 'dismissed');
      } catch {
        // private mode: asked again next session
      }
      this.hidePrompt();
    });
    bar.append(text, on, no);
    // In the conversation, above the composer, in the flow (it covers
    // nothing: the reply bar, the upload tray, the last messages);
    // floating at the bottom otherwise.
    const form = document.getElementById('composer-form');
    if (form && form.offsetParent !== null) {
      bar.classList.add('inline');
      form.before(bar);
    } else document.body.append(bar);
  }

  hidePrompt() {
    const bar = document.getElementById('notify-prompt');
    if (bar) bar.remove();
  }

  async enable() {
    this.hidePrompt();
    let perm;
    try {
      perm = await Notification.requestPermission();
    } catch {
      perm = 'denied';
    }
    if (perm !== 'granted') return;
    this.unlockAudio();
    try {
      await this.subscribe();
    } catch (e) {
      toastError(`Notifications work while chatd is open, but not when it is closed: ${e.message}`);
    }
  }

  /** incoming is called for messages that arrived live from peer. */
  incoming(peer, msgs) {
    if (document.visibilityState === 'visible' || !this.supported() || Notification.permission !== 'granted') return;
    const texts = msgs.filter((m) => (!m.kind || m.kind === 'text') && !m.deleted);
    const c = this.store.conv(peer);
    if (!texts.length || !c || mutedUntil(c)) return;
    const last = texts[texts.length - 1];
    const title = displayName(c.peer) || 'New message';
    const opts = { body: last.text || 'sent an attachment', tag: `chatd-${peer}`, renotify: true, icon: '/assets/favicon.svg', data: { peer } };
    try {
      const n = new Notification(title, opts);
      n.onclick = () => {
        window.focus();
        this.actions.open(peer);
        n.close();
      };
    } catch {
      // Some browsers (Android) allow only the service worker's notifications.
      if (this.reg) this.reg.showNotification(title, opts).catch(() => {});
    }
    this.beep();
  }

  unlockAudio() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    if (!this.audio) {
      try {
        this.audio = new Ctx();
      } catch {
        return null;
      }
    }
    if (this.audio.state === 'suspended') this.audio.resume().catch(() => {});
    return this.audio;
  }

  /** beep plays a short two-tone chime (WebAudio, no sound file). */
  beep() {
    const ctx = this.unlockAudio();
    if (!ctx) return;
    const t = ctx.currentTime;
    for (const [freq, at] of [[880, 0], [1320, 0.09]]) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'sine';
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t + at);
      gain.gain.exponentialRampToValueAtTime(0.15, t + at + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + at + 0.12);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t + at);
      osc.stop(t + at + 0.13);
    }
  }

  // ---- mute ----

  /** setPeer tells which conversation the header shows (null: none). */
  setPeer(peer) {
    this.peer = peer;
    this.closeMenu();
    this.renderMute();
  }

  renderMute() {
    const c = this.peer && this.store.conv(this.peer);
    this.btn.hidden = !c;
    if (!c) return;
    const until = mutedUntil(c);
    this.btn.setAttribute('aria-pressed', String(!!until));
    this.btn.setAttribute('aria-haspopup', until ? 'false' : 'menu');
    this.btn.textContent = until ? 'Unmute' : 'Mute';
    this.btn.title = !until ? 'Mute notifications of this conversation'
      : Date.parse(FOREVER) - until < 1000 ? 'Muted until you unmute'
        : `Muted until ${new Date(until).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })}`;
  }

  openMenu() {
    this.menu.hidden = false;
    this.btn.setAttribute('aria-expanded', 'true');
    const first = this.menu.querySelector('button');
    if (first) first.focus();
  }

  closeMenu() {
    if (this.menu.hidden) return;
    this.menu.hidden = true;
    this.btn.setAttribute('aria-expanded', 'false');
  }

  async setMute(peer, until) {
    const c = peer && this.store.conv(peer);
    if (!c) return;
    const s = this.session;
    try {
      await request('PUT', `/api/conversations/${encodeURIComponent(peer)}/mute`, { until });
    } catch (e) {
      if (s === this.session) toastError(`Could not ${until ? 'mute' : 'unmute'} ${displayName(c.peer)}: ${e.message}`);
      return;
    }
    if (s !== this.session) return;
    c.muted_until = until;
    this.store.emit('conv', { peer });
  }

  // ---- favicon badge ----

  queueBadge() {
    if (this.badgeQueued) return;
    this.badgeQueued = true;
    setTimeout(() => {
      this.badgeQueued = false;
      let n = 0;
      if (this.store.me) for (const c of this.store.convs.values()) n += c.unread || 0;
      this.setBadge(n);
    }, 0);
  }

  /** setBadge draws the unread count on the favicon (the plain icon for 0). */
  setBadge(n) {
    if (!this.icon || n === this.badgeCount) return;
    this.badgeCount = n;
    document.documentElement.dataset.unreadBadge = String(n);
    if (!n) {
      this.icon.href = this.iconHref;
      return;
    }
    const draw = () => {
      if (this.badgeCount !== n) return;
      const cv = document.createElement('canvas');
      cv.width = cv.height = 64;
      const g = cv.getContext('2d');
      if (!g) return;
      if (this.iconImg && this.iconImg.complete && this.iconImg.naturalWidth) g.drawImage(this.iconImg, 0, 0, 64, 64);
      const label = n > 99 ? '99+' : String(n);
      g.fillStyle = '#d93025';
      g.beginPath();
      g.arc(44, 20, 20, 0, 2 * Math.PI);
      g.fill();
      g.fillStyle = '#fff';
      g.font = `bold ${label.length > 2 ? 18 : 26}px sans-serif`;
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.fillText(label, 44, 21);
      this.icon.href = cv.toDataURL('image/png');
    };
    if (!this.iconImg && this.iconHref) {
      this.iconImg = new Image();
      this.iconImg.addEventListener('load', draw, { once: true });
      this.iconImg.addEventListener('error', draw, { once: true });
      this.iconImg.src = this.iconHref;
      return;
    }
    draw();
  }
}
