// The settings screen (api.md 1.1 "Account" and "Privacy"): display name,
// notifications (turned on here too, once their prompt was dismissed),
// password, sessions, blocked users, export and account deletion. A modal
// <dialog>: focus stays inside, Escape closes it.

import { ApiError, api } from '../api.js';
import { byId, displayName, el, fmtFull, ms } from '../util.js';
import { toastError, toastInfo } from './toast.js';

const MESSAGES = {
  invalid_credentials: 'That password is not right.',
  weak_password: 'Choose a password of at least 10 characters that is not a common password and does not contain your username.',
  display_name_taken: 'That display name looks like another user’s name. Choose another one.',
  invalid_display_name: 'That display name has characters that cannot be shown.',
};

/** words is what to tell the user about a failed request. */
function words(e) {
  if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return 'This server does not offer that yet.';
  return MESSAGES[e && e.code] || (e && e.message) || 'Something went wrong.';
}

/** browserName shortens a User-Agent to what a person recognises. */
function browserName(ua) {
  if (!ua) return 'Unknown device';
  const b = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : '';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : '';
  if (b || os) return [b, os].filter(Boolean).join(' on ');
  return ua.length > 60 ? `${ua.slice(0, 60)}…` : ua;
}

export class SettingsView {
  /**
   * @param {import('../store.js').Store} store
   * @param {{leave:(message:string)=>void, expectEnd:(message:string)=>void, renamed:(user:any)=>void, unblocked:(id:string)=>void,
   *   enableNotifications:()=>Promise<void>}} actions
   *   expectEnd: the session is about to end by the user's own request (its socket may close first)
   */
  constructor(store, actions) {
    this.store = store;
    this.actions = actions;
    this.dialog = byId('settings');
    this.nameForm = byId('settings-name-form');
    this.nameInput = byId('settings-display-name');
    this.passwordForm = byId('settings-password-form');
    this.sessions = byId('settings-sessions');
    this.blocks = byId('settings-blocks');
    this.deleteForm = byId('settings-delete-form');

    byId('settings-open').addEventListener('click', () => this.open());
    byId('settings-close').addEventListener('click', () => this.dialog.close());
    this.nameForm.addEventListener('submit', (e) => {
      e.preventDefault();
      this.saveName();
    });
    this.passwordForm.addEventListener('submit', (e) => {
      e.preventDefault();
      this.changePassword();
    });
    byId('settings-notify').addEventListener('click', async () => {
      await this.actions.enableNotifications();
      this.renderNotify();
    });
    byId('settings-logout-all').addEventListener('click', () => this.logoutAll());
    byId('settings-export').addEventListener('click', () => this.exportData());
    this.deleteForm.addEventListener('submit', (e) => {
      e.preventDefault();
      this.deleteAccount();
    });
    this.sessions.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-session]');
      if (b) this.revoke(b.dataset.session, b.dataset.current === 'true', b);
    });
    this.blocks.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-unblock]');
      if (b) this.unblock(b.dataset.unblock, b);
    });
  }

  open() {
    const me = this.store.me;
    if (!me) return;
    this.nameInput.value = me.display_name || '';
    this.passwordForm.reset();
    this.deleteForm.reset();
    for (const id of ['settings-name-status', 'settings-password-status', 'settings-delete-status']) this.status(id, '');
    this.renderNotify();
    if (!this.dialog.open) this.dialog.showModal();
    this.loadSessions();
    this.loadBlocks();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  /** renderNotify says whether this browser notifies, with a button to turn it on while the browser still asks. */
  renderNotify() {
    const perm = 'Notification' in window ? Notification.permission : 'unsupported';
    const words = {
      granted: 'On in this browser.',
      denied: 'Blocked in this browser: allow notifications for this site in its site settings.',
      default: 'Off. Turn them on to hear of messages while chatd is in the background.',
      unsupported: 'This browser cannot show notifications.',
    };
    byId('settings-notify-state').textContent = words[perm] || words.unsupported;
    byId('settings-notify').hidden = perm !== 'default';
  }

  /** status shows a result line under a form; error marks it as an alert. */
  status(id, text, error = false) {
    const s = byId(id);
    s.textContent = text;
    s.hidden = !text;
    s.classList.toggle('error-text', error);
    s.setAttribute('role', error ? 'alert' : 'status');
  }

  async saveName() {
    const name = this.nameInput.value.trim();
    try {
      const r = await api.updateMe(name);
      if (r && r.user) {
        this.store.me = r.user;
        this.actions.renamed(r.user);
      }
      this.status('settings-name-status', 'Display name saved.');
    } catch (e) {
      this.status('settings-name-status', words(e), true);
    }
  }

  async changePassword() {
    const current = byId('settings-current-password').value;
    const next = byId('settings-new-password').value;
    if ([...next].length < 10) {
      this.status('settings-password-status', 'The new password needs at least 10 characters.', true);
      return;
    }
    try {
      await api.changePassword(current, next);
      this.passwordForm.reset();
      this.status('settings-password-status', 'Password changed. Your other sessions were logged out.');
      this.loadSessions();
    } catch (e) {
      this.status('settings-password-status', words(e), true);
    }
  }

  async loadSessions() {
    this.sessions.setAttribute('aria-busy', 'true');
    try {
      const r = await api.sessions();
      const rows = ((r && r.sessions) || []).map((s) =>
        el(
          'li',
          { class: 'session', 'data-testid': 'session', 'data-session-id': s.id, 'data-current': String(!!s.current) },
          el(
            'span',
            { class: 'session-body' },
            el('strong', { text: browserName(s.user_agent) + (s.current ? ' · this device' : '') }),
            el('span', { class: 'small muted', text: `Logged in ${fmtFull(ms(s.created_at))} · last used ${fmtFull(ms(s.last_used_at))}` }),
          ),
          el('button', {
            type: 'button',
            class: 'btn ghost small',
            'data-session': s.id,
            'data-current': String(!!s.current),
            'data-testid': 'session-logout',
            'aria-label': `Log out ${browserName(s.user_agent)}${s.current ? ' (this device)' : ''}`,
            text: 'Log out',
          }),
        ),
      );
      this.sessions.replaceChildren(...rows);
    } catch (e) {
      this.sessions.replaceChildren(el('li', { class: 'error-text', role: 'alert', text: `Could not list sessions: ${words(e)}` }));
    } finally {
      this.sessions.removeAttribute('aria-busy');
    }
  }

  async revoke(id, current, button) {
    button.disabled = true;
    if (current) this.actions.expectEnd('You logged out this device.');
    try {
      await api.revokeSession(id);
      if (current) {
        this.close();
        this.actions.leave('You logged out this device.');
        return;
      }
      this.loadSessions();
    } catch (e) {
      this.actions.expectEnd('');
      button.disabled = false;
      if (e instanceof ApiError && e.status === 404) this.loadSessions(); // already ended
      else toastError(`Could not log out that session: ${words(e)}`);
    }
  }

  async logoutAll() {
    this.actions.expectEnd('You logged out everywhere.');
    try {
      await api.logoutAll();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        this.actions.expectEnd('');
        toastError(`Could not log out everywhere: ${words(e)}`);
        return;
      }
    }
    this.close();
    this.actions.leave('You logged out everywhere.');
  }

  async loadBlocks() {
    try {
      const r = await api.blocks();
      const users = (r && r.users) || [];
      const rows = users.map((u) =>
        el(
          'li',
          { class: 'session', 'data-testid': 'blocked-user', 'data-user-id': u.id },
          el('span', { class: 'session-body' }, el('strong', { dir: 'auto', text: displayName(u) }), el('span', { class: 'small muted', dir: 'ltr', text: `@${u.username}` })),
          el('button', { type: 'button', class: 'btn ghost small', 'data-unblock': u.id, 'data-testid': 'unblock-button', text: 'Unblock' }),
        ),
      );
      if (!rows.length) rows.push(el('li', { class: 'muted small', text: 'You have not blocked anyone.' }));
      this.blocks.replaceChildren(...rows);
    } catch (e) {
      this.blocks.replaceChildren(el('li', { class: 'muted small', text: words(e) }));
    }
  }

  async unblock(id, button) {
    button.disabled = true;
    try {
      await api.unblock(id);
      this.actions.unblocked(id);
      this.loadBlocks();
    } catch (e) {
      button.disabled = false;
      toastError(`Could not unblock: ${words(e)}`);
    }
  }

  async exportData() {
    try {
      const data = await api.exportMe();
      const blob = new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' });
      const url = URL.createObjectURL(blob);
      const a = el('a', { href: url, download: `chatd-${this.store.me ? this.store.me.username : 'export'}.json`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      toastInfo('Your data was exported.');
    } catch (e) {
      toastError(`Could not export: ${words(e)}`);
    }
  }

  async deleteAccount() {
    const password = byId('settings-delete-password').value;
    if (!password) {
      this.status('settings-delete-status', 'Enter your password to delete your account.', true);
      return;
    }
    this.actions.expectEnd('Your account was deleted.');
    try {
      await api.deleteAccount(password);
    } catch (e) {
      this.actions.expectEnd('');
      this.status('settings-delete-status', words(e), true);
      return;
    }
    this.close();
    this.actions.leave('Your account was deleted.');
  }
}
