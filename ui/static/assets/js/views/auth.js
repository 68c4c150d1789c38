// The login / sign-up screen.

import { byId, tooMany } from '../util.js';

const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;

const MESSAGES = {
  invalid_credentials: 'Wrong username or password.',
  username_taken: 'That username is taken. Try another one.',
  display_name_taken: 'That display name looks like another user’s name. Choose another one.',
  invalid_username: 'Usernames have 3 to 32 characters: letters, digits, _ . or -.',
  weak_password: 'Choose a password of at least 10 characters that is not a common password and does not contain your username.',
  network: 'Cannot reach the server. Check your connection.',
};

export class AuthView {
  /** @param {{login:Function, signup:Function}} actions resolve on success, reject with ApiError */
  constructor(actions) {
    this.actions = actions;
    this.screen = byId('auth-screen');
    this.form = byId('auth-form');
    this.title = byId('auth-title');
    this.username = byId('auth-username');
    this.password = byId('auth-password');
    this.displayName = byId('auth-display-name');
    this.error = byId('auth-error');
    this.submit = byId('auth-submit');
    this.toggle = byId('auth-toggle');
    this.switchText = byId('auth-switch-text');
    this.busy = false;
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.onSubmit();
    });
    this.toggle.addEventListener('click', () => this.setMode(this.mode === 'login' ? 'signup' : 'login'));
    for (const input of [this.username, this.password, this.displayName]) {
      input.addEventListener('input', () => {
        input.removeAttribute('aria-invalid');
        if (!this.busy) this.showError('');
      });
    }
    this.setMode('login');
  }

  setMode(mode) {
    this.mode = mode;
    this.form.dataset.mode = mode;
    const signup = mode === 'signup';
    this.title.textContent = signup ? 'Create your chatd account' : 'Log in to chatd';
    this.submit.textContent = signup ? 'Sign up' : 'Log in';
    this.switchText.textContent = signup ? 'Already have an account?' : 'New to chatd?';
    this.toggle.textContent = signup ? 'Log in instead' : 'Create an account';
    this.password.autocomplete = signup ? 'new-password' : 'current-password';
    this.password.minLength = signup ? 10 : 8;
    this.displayName.disabled = !signup;
    this.showError('');
  }

  /** show resets the form to an empty login and shows it, with an optional notice. */
  show(message) {
    this.screen.hidden = false;
    this.form.reset();
    this.setMode('login');
    this.setBusy(false);
    this.showError(message || '');
    requestAnimationFrame(() => this.username.focus());
  }

  hide() {
    this.screen.hidden = true;
    this.password.value = '';
  }

  setBusy(busy) {
    this.busy = busy;
    this.submit.disabled = busy;
    this.form.setAttribute('aria-busy', String(busy));
    this.submit.textContent = busy ? (this.mode === 'signup' ? 'Creating account…' : 'Logging in…') : this.mode === 'signup' ? 'Sign up' : 'Log in';
  }

  showError(text, field) {
    this.error.textContent = text;
    this.error.hidden = !text;
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }

  async onSubmit() {
    if (this.busy) return;
    const username = this.username.value.trim();
    const password = this.password.value;
    const displayName = this.displayName.value.trim();
    if (!USERNAME.test(username)) {
      this.showError(this.mode === 'signup' ? MESSAGES.invalid_username : 'Enter your username (3 to 32 characters).', this.username);
      return;
    }
    // Accounts made before the 10-character rule still log in with 8.
    const min = this.mode === 'signup' ? 10 : 8;
    const chars = [...password].length;
    if (chars < min || chars > 256) {
      this.showError(this.mode === 'signup' ? 'Passwords have 10 to 256 characters.' : 'Enter your password (at least 8 characters).', this.password);
      return;
    }
    this.setBusy(true);
    this.showError('');
    try {
      if (this.mode === 'signup') await this.actions.signup(username, password, displayName);
      else await this.actions.login(username, password);
    } catch (e) {
      this.setBusy(false);
      let text = MESSAGES[e.code] || e.message || 'Something went wrong.';
      if (e.code === 'rate_limited' || e.status === 429) {
        text = tooMany(e.retryAfter);
      }
      const field = e.code === 'username_taken' || e.code === 'invalid_username' ? this.username
        : e.code === 'weak_password' ? this.password : e.code === 'display_name_taken' ? this.displayName : null;
      this.showError(text, field);
      if (!field && e.code === 'invalid_credentials') this.password.select();
      return;
    }
    this.setBusy(false);
  }
}
