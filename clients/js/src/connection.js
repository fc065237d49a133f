// @ts-check
/**
 * One logical connection that survives reconnects: dialing, the welcome,
 * the heartbeat, reconnects with backoff, the token and its refresh, and the
 * connection state the app sees (`state` events).
 *
 * How it works:
 * - `connect()` opens `/ws` (token or anonymous `user` in the query string,
 *   subprotocol from the codec) and waits for `welcome`; no welcome within
 *   `connectTimeoutMs` is a failed attempt.
 * - On `welcome` it starts the heartbeat (application `ping` every
 *   `welcome.ping_interval_ms`; nothing received for that + a margin means
 *   the connection is dead), lets the owner re-join and flush (`onOpen`),
 *   schedules the token refresh, then announces `open`.
 * - When the socket closes for any reason but `close()`, it reconnects after
 *   an exponential backoff with full jitter (reset by a connection that lived
 *   `stableAfterMs`); a 1008 that names the token asks the token provider
 *   again, or stops when the token is a fixed string.
 * - Browsers: the `offline` event drops the socket at once (it is dead, and
 *   the heartbeat would take `ping_interval + margin` to notice); the
 *   `online` event skips the backoff wait.
 * Every other frame goes to the owner (`onFrame`).
 */
import { backoffDelay } from './backoff.js';
import { WsgateError } from './errors.js';
import { Heartbeat } from './heartbeat.js';
import { refreshDelay, tokenExpiry } from './token.js';
import { detach, errorText } from './util.js';

/**
 * @typedef {import('./types.js').Frame} Frame
 * @typedef {import('./types.js').Welcome} Welcome
 * @typedef {import('./types.js').ConnectionState} ConnectionState
 * @typedef {import('./types.js').StateChange} StateChange
 * @typedef {import('./types.js').SocketLike} SocketLike
 * @typedef {import('./types.js').ClientOptions} ClientOptions
 * @typedef {import('./types.js').WebSocketConstructor} WebSocketConstructor
 * @typedef {import('./types.js').EmitFn} EmitFn
 * @typedef {import('./codec.js').Codec} Codec
 * @typedef {object} ConnectionSettings
 * @property {Codec} codec
 * @property {boolean} reconnect
 * @property {number} reconnectMinMs
 * @property {number} reconnectMaxMs
 * @property {number} stableAfterMs
 * @property {number} connectTimeoutMs
 * @property {number} heartbeatMarginMs
 * @property {number} refreshLeadMs
 * @property {() => number} random
 * @typedef {object} ConnectionHooks what the connection needs from the client that owns it
 * @property {(frame: Frame) => void} onFrame every decoded frame but `welcome`
 * @property {(welcome: Welcome) => void} onOpen a welcome arrived (state is `open`): re-join and flush, before anyone hears of it
 * @property {(code: number) => void} onDown the socket closed; a reconnect or a stop follows
 * @property {() => void} beforeStop the client stops for good; the socket is still there (last acks)
 * @property {(error: WsgateError) => void} onStop the client stopped for good
 * @property {(frame: Frame) => Promise<any>} refresh sends the token `refresh` request
 * @property {EmitFn} emit
 */

const OPEN = 1;
const AUTH_REASON = /token|auth|expired|unauthori[sz]ed|credential/i;

export class Connection {
  /** @type {ClientOptions} */
  #given;
  /** @type {ConnectionSettings} */
  #opts;
  /** @type {ConnectionHooks} */
  #hooks;
  /** @type {SocketLike | null} */
  #socket = null;
  /** @type {ConnectionState} */
  #state = 'idle';
  #attempt = 0;
  #everOpened = false;
  #closedByUser = false;
  #authRejected = false;
  #openedAt = 0;
  /** No reconnect before this Date.now() (set by `drop`). */
  #holdUntil = 0;
  /** @type {Welcome | null} */
  #welcome = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retryTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #connectTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #refreshTimer;
  /** @type {Heartbeat | null} */
  #heartbeat = null;
  /** The token used by the current connection or its last refresh. @type {string | undefined} */
  #lastToken;
  /** @type {Array<{ resolve: (w: Welcome) => void, reject: (e: WsgateError) => void }>} */
  #welcomeWaiters = [];

  /**
   * @param {ClientOptions} given the options as the app gave them (url, token, user, WebSocket)
   * @param {ConnectionSettings} settings
   * @param {ConnectionHooks} hooks
   */
  constructor(given, settings, hooks) {
    this.#given = given;
    this.#opts = settings;
    this.#hooks = hooks;
  }

  get state() {
    return this.#state;
  }

  get welcome() {
    return this.#welcome;
  }

  /** @returns {Promise<Welcome>} */
  connect() {
    if (this.#state === 'open' && this.#welcome) return Promise.resolve(this.#welcome);
    const ready = new Promise((resolve, reject) => this.#welcomeWaiters.push({ resolve, reject }));
    ready.catch(() => {}); // an un-awaited connect() must not be an unhandled rejection
    if (this.#state === 'idle' || this.#state === 'closed') {
      if (!this.#given.WebSocket && typeof (/** @type {any} */ (globalThis).WebSocket) !== 'function') {
        throw new TypeError('no WebSocket implementation: pass { WebSocket } (in Node 20: the "ws" package)');
      }
      if (this.#given.url === undefined && typeof location === 'undefined') {
        throw new TypeError('no url: pass { url: "ws://host:port/ws" }');
      }
      this.#closedByUser = false;
      this.#authRejected = false;
      this.#attempt = 0;
      this.#holdUntil = 0;
      globalThis.addEventListener?.('online', this.#onOnline);
      globalThis.addEventListener?.('offline', this.#onOffline);
      void this.#dial();
    }
    return /** @type {Promise<Welcome>} */ (ready);
  }

  /** @param {string} reason */
  close(reason) {
    this.#closedByUser = true;
    this.#stop(new WsgateError('closed', 'the client was closed'), 1000, reason);
  }

  #onOnline = () => this.reconnectNow();

  #onOffline = () => {
    if (this.#socket) this.#kill(this.#socket, 4004, 'the browser went offline');
  };

  reconnectNow() {
    if (this.#state !== 'reconnecting') return;
    this.#holdUntil = 0;
    clearTimeout(this.#retryTimer);
    void this.#dial();
  }

  /**
   * Drops the socket as a network failure would, and reconnects as usual,
   * not before `holdMs` (tests and demos).
   * @param {number} holdMs
   * @returns {boolean} whether there was a socket to drop
   */
  drop(holdMs) {
    const socket = this.#socket;
    if (!socket) return false;
    this.#holdUntil = Date.now() + Math.max(0, holdMs);
    this.#kill(socket, 4003, 'dropped by the app');
    return true;
  }

  /**
   * Writes an encoded frame.
   * @param {string | Uint8Array} data
   * @returns {boolean} whether it went out
   */
  send(data) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== OPEN) return false;
    try {
      socket.send(data);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Encodes and writes a frame that needs no reply (ack, typing, ping).
   * @param {Frame} frame
   * @returns {boolean} whether it went out
   */
  write(frame) {
    try {
      return this.send(this.#opts.codec.encode(frame));
    } catch {
      return false;
    }
  }

  async #dial() {
    this.#setState({ state: 'connecting', attempt: this.#attempt });
    /** @type {string | undefined} */
    let token;
    try {
      token = await this.#token(this.#authRejected ? 'rejected' : 'connect');
    } catch (err) {
      this.#hooks.emit('error', new WsgateError('auth', `token provider failed: ${errorText(err)}`));
      this.#afterClose(4001, 'token provider failed');
      return;
    }
    if (this.#closedByUser || this.#state !== 'connecting') return;
    this.#lastToken = token;
    /** @type {WebSocketConstructor} */
    const Impl = this.#given.WebSocket ?? /** @type {any} */ (globalThis).WebSocket;
    /** @type {SocketLike} */
    let socket;
    try {
      socket = new Impl(this.#url(token), [this.#opts.codec.protocol]);
    } catch (err) {
      this.#stop(new WsgateError('bad_url', errorText(err)), 1000, 'bad url');
      return;
    }
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    this.#connectTimer = setTimeout(() => this.#kill(socket, 4002, 'no welcome in time'), this.#opts.connectTimeoutMs);
    socket.onmessage = (event) => {
      if (socket === this.#socket) this.#onData(event.data);
    };
    socket.onclose = (event) => {
      if (socket !== this.#socket) return;
      this.#socket = null;
      this.#afterClose(event.code ?? 1006, event.reason ?? '', event.wasClean ?? false);
    };
    socket.onerror = () => {
      // A close event always follows; browsers give no details here anyway.
    };
  }

  /** @param {string | undefined} token */
  #url(token) {
    const given = typeof this.#given.url === 'function' ? this.#given.url() : this.#given.url;
    const base =
      given ??
      (typeof location !== 'undefined' ? new URL('/ws', location.href).href.replace(/^http/, 'ws') : undefined);
    const url = new URL(/** @type {string} */ (base));
    if (token) url.searchParams.set('token', token);
    else if (this.#given.user) url.searchParams.set('user', this.#given.user);
    return url.href;
  }

  /**
   * @param {'connect' | 'refresh' | 'rejected'} reason
   * @returns {Promise<string | undefined>}
   */
  async #token(reason) {
    const source = this.#given.token;
    if (typeof source === 'function') return await source({ reason });
    return source;
  }

  /** @param {string | ArrayBuffer | Uint8Array} data */
  #onData(data) {
    /** @type {Frame} */
    let frame;
    try {
      frame = this.#opts.codec.decode(data);
    } catch (err) {
      this.#hooks.emit('error', new WsgateError('bad_frame', `undecodable frame from server: ${errorText(err)}`));
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    this.#heartbeat?.touch();
    if (frame.type === 'welcome') this.#onWelcome(/** @type {Welcome} */ (frame));
    else this.#hooks.onFrame(frame);
  }

  /** @param {Welcome} welcome */
  #onWelcome(welcome) {
    clearTimeout(this.#connectTimer);
    this.#welcome = welcome;
    this.#openedAt = Date.now();
    this.#everOpened = true;
    this.#authRejected = false;
    this.#state = 'open';
    const interval =
      typeof welcome.ping_interval_ms === 'number' && welcome.ping_interval_ms > 0 ? welcome.ping_interval_ms : 25000;
    const socket = this.#socket;
    this.#heartbeat = new Heartbeat({
      intervalMs: interval,
      marginMs: this.#opts.heartbeatMarginMs,
      onPing: () => this.write({ type: 'ping' }),
      onDead: () => socket && this.#kill(socket, 4000, 'heartbeat timeout'),
    });
    this.#heartbeat.start();
    this.#hooks.onOpen(welcome);
    this.#scheduleRefresh();
    for (const waiter of this.#welcomeWaiters.splice(0)) waiter.resolve(welcome);
    // Listeners may close the client: stop announcing if one did.
    this.#hooks.emit('welcome', welcome);
    if (this.#state === 'open') this.#setState({ state: 'open' });
  }

  /**
   * Forgets a socket at once (the close handshake of a dead connection can
   * take minutes) and handles it as closed with `code`.
   * @param {SocketLike} socket
   * @param {number} code
   * @param {string} reason
   */
  #kill(socket, code, reason) {
    if (socket !== this.#socket) return;
    this.#socket = null;
    detach(socket, undefined, reason);
    this.#afterClose(code, reason, false);
  }

  /**
   * @param {number} code
   * @param {string} reason
   * @param {boolean} [wasClean]
   */
  #afterClose(code, reason, wasClean = false) {
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#refreshTimer);
    this.#heartbeat?.stop();
    this.#heartbeat = null;
    this.#hooks.onDown(code);
    this.#hooks.emit('disconnect', { code, reason, wasClean });
    if (this.#closedByUser) return;
    if (this.#state === 'open' && Date.now() - this.#openedAt >= this.#opts.stableAfterMs) this.#attempt = 0;
    if (code === 1008 && AUTH_REASON.test(reason)) {
      this.#authRejected = true;
      if (typeof this.#given.token !== 'function') {
        this.#stop(new WsgateError('auth', `the server refused the token: ${reason}`), undefined, reason, code);
        return;
      }
    }
    if (!this.#opts.reconnect) {
      this.#stop(new WsgateError('disconnected', `connection closed (${code} ${reason})`), undefined, reason, code);
      return;
    }
    const backoff = backoffDelay(this.#attempt, {
      minMs: this.#opts.reconnectMinMs,
      maxMs: this.#opts.reconnectMaxMs,
      random: this.#opts.random,
    });
    const delayMs = Math.max(backoff, this.#holdUntil - Date.now());
    this.#attempt += 1;
    // Timer first: a state listener may call close(), which must cancel it.
    this.#retryTimer = setTimeout(() => void this.#dial(), delayMs);
    this.#setState({ state: 'reconnecting', attempt: this.#attempt, delayMs, retryAt: Date.now() + delayMs, code, reason });
  }

  /**
   * Ends everything: timers, socket, waiters; the owner rejects its requests.
   * @param {WsgateError} error
   * @param {number | undefined} closeCode close the socket with this code
   * @param {string} reason
   * @param {number} [code] the close code to report
   */
  #stop(error, closeCode, reason, code) {
    globalThis.removeEventListener?.('online', this.#onOnline);
    globalThis.removeEventListener?.('offline', this.#onOffline);
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#refreshTimer);
    this.#heartbeat?.stop();
    this.#heartbeat = null;
    this.#hooks.beforeStop();
    const socket = this.#socket;
    this.#socket = null;
    if (socket) detach(socket, closeCode ?? 1000, reason);
    this.#hooks.onStop(error);
    for (const waiter of this.#welcomeWaiters.splice(0)) waiter.reject(error);
    if (this.#state !== 'closed') {
      this.#setState({ state: 'closed', code: code ?? closeCode, reason, error });
    }
  }

  /** @param {Omit<StateChange, 'everOpened'>} change */
  #setState(change) {
    this.#state = change.state;
    this.#hooks.emit('state', { ...change, everOpened: this.#everOpened });
  }

  #scheduleRefresh() {
    clearTimeout(this.#refreshTimer);
    if (typeof this.#given.token !== 'function') return;
    const current = this.#lastToken;
    const exp = current ? tokenExpiry(current) : undefined;
    if (exp === undefined) return;
    const delay = refreshDelay(exp, Date.now(), this.#opts.refreshLeadMs);
    this.#refreshTimer = setTimeout(() => void this.#refresh(), delay);
  }

  async #refresh() {
    if (this.#state !== 'open') return;
    try {
      const token = await this.#token('refresh');
      if (!token || this.#state !== 'open') return;
      await this.#hooks.refresh({ type: 'refresh', token });
      this.#lastToken = token;
      this.#scheduleRefresh();
    } catch (err) {
      const error = err instanceof WsgateError ? err : new WsgateError('auth', `token refresh failed: ${errorText(err)}`);
      if (error.code !== 'disconnected' && error.code !== 'closed') {
        this.#hooks.emit('error', error);
        // Try again a little later; the server closes with 1008 at expiry and
        // the reconnect asks the provider anyway.
        this.#refreshTimer = setTimeout(() => void this.#refresh(), 5000);
      }
    }
  }
}
