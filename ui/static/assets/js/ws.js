// The WebSocket link to /ws: connects, reconnects with exponential backoff
// and jitter, and reports its state for the connection banner.
//
// Events (CustomEvent, detail in brackets):
//   state [{state}]  connecting | online | reconnecting | offline | idle
//   hello [frame]    the server's hello: the connection is subscribed
//   frame [frame]    any other server frame
//   down  [{code}]   an open connection closed
//   unauthenticated  the session could not be renewed (log in again)

const BASE_DELAY = 500;
const MAX_DELAY = 30000; // a hidden tab backs off up to this
// A visible tab retries at least this often, so that it is back within a
// couple of seconds of the server (jitter spreads the tabs: 1.25–2.5 s).
const VISIBLE_MAX_DELAY = 2500;

// Heartbeat. Browsers do not expose the server's WebSocket pings, so the
// socket checks itself: after heartbeat_s (from hello) without any frame it
// sends a probe, a frame of a type the server does not know, which api.md
// says is refused with an `error` frame whose ref is the probe's
// client_msg_id; with no frame at all within PROBE_TIMEOUT more, the link
// is dead (a frozen replica or proxy) and is replaced.
const PROBE_TIMEOUT = 10000;
const PROBE_TYPE = 'heartbeat_probe';

export class Socket extends EventTarget {
  /**
   * @param {object} hooks
   * @param {() => Promise<boolean>} hooks.refresh renews the session (close 4001)
   * @param {() => Promise<boolean>} hooks.checkAuth false when the session is gone
   */
  constructor({ refresh, checkAuth }) {
    super();
    this.refresh = refresh;
    this.checkAuth = checkAuth;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.attempt = 0;
    this.everOnline = false;
    this.timer = 0;
    this.beat = 0; // heartbeat interval timer
    this.probeSeq = 0;
    this.state = 'idle';
    this.onOnline = () => {
      if (!this.stopped && !this.ws) this.connectNow();
    };
    this.onOffline = () => {
      if (!this.stopped && !this.ready) this.setState('offline');
    };
  }

  /** start connects and keeps the link up until stop. */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.everOnline = false;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.connect();
  }

  /** stop closes the link and stops reconnecting. */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    this.stopHeartbeat();
    if (ws) ws.close(1000, 'bye');
    this.setState('idle');
  }

  /**
   * connectNow skips the backoff wait (the banner's "Retry now", the tab
   * becoming visible, the network coming back) and starts the backoff over.
   */
  connectNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  /** send writes one frame; false when not connected. */
  send(frame) {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state } }));
  }

  connect() {
    if (this.stopped) return;
    if (navigator.onLine === false) {
      this.setState('offline');
      this.schedule(MAX_DELAY);
      return;
    }
    this.setState(this.everOnline ? 'reconnecting' : 'connecting');
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.afterClose(1006, false);
      return;
    }
    this.ws = ws;
    let hello = false;
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastFrame = Date.now();
      this.probeAt = 0;
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!f || typeof f.type !== 'string') return;
      if (f.type === 'error' && typeof f.ref === 'string' && f.ref.startsWith(PROBE_TYPE)) {
        return; // the answer to a heartbeat probe: the link is alive
      }
      if (f.type === 'hello') {
        hello = true;
        this.startHeartbeat(ws, f.heartbeat_s, () => hello);
        this.ready = true;
        this.attempt = 0;
        this.everOnline = true;
        this.setState('online');
        this.dispatchEvent(new CustomEvent('hello', { detail: f }));
        return;
      }
      this.dispatchEvent(new CustomEvent('frame', { detail: f }));
    };
    ws.onclose = (ev) => this.closed(ws, ev.code, hello);
    ws.onerror = () => {
      // A close event always follows; it decides what to do.
    };
  }

  /** closed handles the end of ws (its close event, or a failed heartbeat). */
  closed(ws, code, hadHello) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.stopHeartbeat();
    const wasReady = this.ready;
    this.ready = false;
    if (wasReady) this.dispatchEvent(new CustomEvent('down', { detail: { code } }));
    if (!this.stopped) this.afterClose(code, hadHello);
  }

  /**
   * startHeartbeat checks ws every second: silent for heartbeat_s, it is
   * probed; silent PROBE_TIMEOUT after the probe, it is abandoned (closed
   * without waiting for a close handshake a frozen peer never answers) and
   * replaced as after a 1006.
   */
  startHeartbeat(ws, heartbeatS, hadHello) {
    this.stopHeartbeat();
    const every = (heartbeatS > 0 ? heartbeatS : 25) * 1000;
    this.lastFrame = Date.now();
    this.probeAt = 0;
    this.beat = setInterval(() => {
      if (this.ws !== ws) return;
      const now = Date.now();
      if (this.probeAt && now - this.probeAt > PROBE_TIMEOUT) {
        try {
          ws.close();
        } catch {
          // closing anyway
        }
        this.closed(ws, 1006, hadHello());
        return;
      }
      if (!this.probeAt && now - this.lastFrame > every) {
        this.probeAt = now;
        try {
          ws.send(JSON.stringify({ type: PROBE_TYPE, client_msg_id: `${PROBE_TYPE}-${++this.probeSeq}` }));
        } catch {
          // the close event follows
        }
      }
    }, 1000);
  }

  stopHeartbeat() {
    clearInterval(this.beat);
    this.beat = 0;
  }

  async afterClose(code, hadHello) {
    if (this.stopped) return;
    this.setState(navigator.onLine === false ? 'offline' : 'reconnecting');
    if (code === 4001 || !hadHello) {
      // 4001: the session expired or was revoked. A close before hello may
      // be a refused upgrade (an expired access cookie looks like 1006).
      let ok = true;
      try {
        ok = code === 4001 ? await this.refresh() : await this.checkAuth();
      } catch {
        ok = true; // the network is down: keep retrying
      }
      if (this.stopped) return;
      if (!ok) {
        this.stop();
        this.dispatchEvent(new CustomEvent('unauthenticated'));
        return;
      }
      if (code === 4001) {
        this.connect();
        return;
      }
    }
    const cap = document.visibilityState === 'visible' ? VISIBLE_MAX_DELAY : MAX_DELAY;
    let delay = Math.min(cap, BASE_DELAY * 2 ** this.attempt);
    if (code === 1013) delay = Math.max(delay, 5000); // overloaded: back off more
    if (code === 1001 && this.attempt === 0) delay = 250; // node shutting down: go elsewhere now
    this.attempt++;
    this.schedule(delay / 2 + Math.random() * (delay / 2));
  }

  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
