// @ts-check
/**
 * The wsgate client: one logical connection that survives reconnects.
 *
 * How it works:
 * - `connect()` opens `/ws` (token or anonymous `user` in the query string,
 *   subprotocol from the codec) and waits for `welcome`.
 * - On `welcome` it re-joins the rooms it was in, flushes the offline queue in
 *   order, starts the heartbeat (application `ping` every
 *   `welcome.ping_interval_ms`; nothing received for that + a margin means
 *   the connection is dead) and schedules the token refresh.
 * - Requests carry a `ref`; the `reply`/`error`/`pong` echoing it settles the
 *   promise. Requests made while offline wait in a bounded queue.
 * - Direct messages are acked after the `message` listeners return (or their
 *   promises resolve), in batches; duplicates are dropped by id but acked again.
 * - When the socket closes for any reason but `client.close()`, it reconnects
 *   after an exponential backoff with full jitter.
 */
import { backoffDelay } from './backoff.js';
import { jsonCodec } from './codec.js';
import { RecentIds } from './dedupe.js';
import { Emitter } from './emitter.js';
import { WsgateError } from './errors.js';
import { Heartbeat } from './heartbeat.js';
import { BoundedQueue } from './queue.js';
import { refreshDelay, tokenExpiry } from './token.js';

/**
 * @typedef {import('./codec.js').Codec} Codec
 * @typedef {{ type: string, ref?: string | number, [key: string]: any }} Frame
 * @typedef {{ type: 'welcome', user: string, session: string, node: string, protocol: string, ping_interval_ms: number, max_message_bytes: number }} Welcome
 * @typedef {{ type: 'message', id: string, kind: 'direct' | 'room' | 'broadcast', from: string, to?: string, room?: string, content: any, time: number, replay?: boolean }} Message
 * @typedef {{ type: 'presence', room: string, event: 'join' | 'leave', user: string }} PresenceEvent
 * @typedef {{ type: 'typing', from: string, to?: string, room?: string }} TypingEvent
 * @typedef {{ type: 'receipt', id: string, by: string, status: 'delivered' }} Receipt
 * @typedef {{ type: 'reply', ref?: string | number, ok: true, [key: string]: any }} Reply
 * @typedef {'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'} ConnectionState
 * @typedef {object} StateChange
 * @property {ConnectionState} state
 * @property {number} [attempt] failed attempts so far (connecting, reconnecting)
 * @property {number} [delayMs] wait before the next attempt (reconnecting)
 * @property {number} [retryAt] Date.now() of the next attempt (reconnecting)
 * @property {number} [code] close code of the connection that ended
 * @property {string} [reason] close reason of the connection that ended
 * @property {boolean} [everOpened] whether any connection ever got a welcome
 * @property {WsgateError} [error] why the client stopped (closed)
 * @typedef {object} ClientEvents
 * @property {StateChange} state connection state changes, for UI
 * @property {Welcome} welcome every (re)connection's first frame
 * @property {Message} message room, broadcast and (deduplicated) direct messages
 * @property {Message} duplicate a direct message dropped as a duplicate
 * @property {PresenceEvent} presence
 * @property {TypingEvent} typing
 * @property {Receipt} receipt
 * @property {{ room: string, members: string[], rejoin: boolean }} joined
 * @property {{ code: number, reason: string, wasClean: boolean }} disconnect a socket closed
 * @property {{ frame: Frame, error: WsgateError }} queue_overflow a request did not fit the offline queue
 * @property {WsgateError} error errors with no request to reject (unsolicited error frames, failed re-joins, failed handlers)
 * @typedef {(context: { reason: 'connect' | 'refresh' | 'rejected' }) => string | Promise<string>} TokenProvider
 * @typedef {object} SocketLike
 * @property {number} readyState
 * @property {string} protocol
 * @property {string} binaryType
 * @property {(data: any) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {() => void} [terminate]
 * @property {((event: any) => void) | null} onopen
 * @property {((event: any) => void) | null} onmessage
 * @property {((event: any) => void) | null} onclose
 * @property {((event: any) => void) | null} onerror
 * @typedef {new (url: string, protocols?: string | string[]) => SocketLike} WebSocketConstructor
 * @typedef {object} ClientOptions
 * @property {string | (() => string)} [url] the `/ws` URL, or a function called before every connect (e.g. to rotate over nodes); default `/ws` on the page's origin (browsers)
 * @property {string | TokenProvider} [token] a JWT, or a function returning one (called on every connect and before expiry)
 * @property {string} [user] anonymous mode (`--allow-anonymous`): the user id to ask for
 * @property {WebSocketConstructor} [WebSocket] WebSocket implementation (Node: `import WebSocket from 'ws'`); default `globalThis.WebSocket`
 * @property {Codec} [codec] default `jsonCodec`
 * @property {boolean} [reconnect] default true
 * @property {number} [reconnectMinMs] default 500
 * @property {number} [reconnectMaxMs] default 20000
 * @property {number} [stableAfterMs] a connection open this long resets the backoff; default 5000
 * @property {number} [connectTimeoutMs] no welcome this long after dialing = failed attempt; default 10000
 * @property {number} [requestTimeoutMs] default 10000
 * @property {number} [heartbeatMarginMs] default 10000
 * @property {number} [queueLimit] offline queue size; default 100
 * @property {'reject' | 'drop-oldest'} [queueOverflow] default 'reject'
 * @property {boolean} [autoAck] ack direct messages after the handlers; default true (false: call `ack(id)`)
 * @property {number} [ackDelayMs] batch acks for this long; default 20
 * @property {number} [dedupeSize] direct message ids remembered; default 1000
 * @property {number} [refreshLeadMs] refresh the token this long before `exp`; default 60000
 * @property {number} [typingThrottleMs] at most one `typing` per target per this; default 2000
 * @property {() => number} [random] random source for the jitter (tests)
 */

/**
 * @typedef {object} Pending
 * @property {Frame} frame
 * @property {(reply: any) => void} resolve
 * @property {(error: WsgateError) => void} reject
 * @property {any} [timer] the timeout handle (a number in browsers, an object in Node)
 */

const OPEN = 1;
const AUTH_REASON = /token|auth|expired|unauthori[sz]ed|credential/i;
const MAX_ACK_BATCH = 100;

export class WsgateClient {
  /** @type {Emitter<ClientEvents>} */
  #events = new Emitter();
  /** @type {Required<Omit<ClientOptions, 'url' | 'token' | 'user' | 'WebSocket'>>} */
  #opts;
  /** @type {ClientOptions} */
  #given;
  /** @type {SocketLike | null} */
  #socket = null;
  /** @type {ConnectionState} */
  #state = 'idle';
  #attempt = 0;
  #everOpened = false;
  #closedByUser = false;
  #authRejected = false;
  #openedAt = 0;
  #nextRef = 1;
  /** @type {Welcome | null} */
  #welcome = null;
  /** @type {Map<string, Pending>} */
  #inflight = new Map();
  /** @type {BoundedQueue<Pending>} */
  #queue;
  /** Rooms confirmed joined: re-joined after every reconnect. @type {Set<string>} */
  #rooms = new Set();
  #recent;
  /** Direct message ids delivered to the app but not acked yet. @type {Set<string>} */
  #unacked = new Set();
  /** @type {string[]} */
  #ackBuffer = [];
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #ackTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retryTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #connectTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #refreshTimer;
  /** @type {Heartbeat | null} */
  #heartbeat = null;
  /** @type {Map<string, number>} */
  #typingSent = new Map();
  /** @type {Array<{ resolve: (w: Welcome) => void, reject: (e: WsgateError) => void }>} */
  #welcomeWaiters = [];

  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    this.#given = options;
    this.#opts = {
      codec: options.codec ?? jsonCodec,
      reconnect: options.reconnect ?? true,
      reconnectMinMs: options.reconnectMinMs ?? 500,
      reconnectMaxMs: options.reconnectMaxMs ?? 20000,
      stableAfterMs: options.stableAfterMs ?? 5000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10000,
      heartbeatMarginMs: options.heartbeatMarginMs ?? 10000,
      queueLimit: options.queueLimit ?? 100,
      queueOverflow: options.queueOverflow ?? 'reject',
      autoAck: options.autoAck ?? true,
      ackDelayMs: options.ackDelayMs ?? 20,
      dedupeSize: options.dedupeSize ?? 1000,
      refreshLeadMs: options.refreshLeadMs ?? 60000,
      typingThrottleMs: options.typingThrottleMs ?? 2000,
      random: options.random ?? Math.random,
    };
    this.#queue = new BoundedQueue(this.#opts.queueLimit, this.#opts.queueOverflow);
    this.#recent = new RecentIds(this.#opts.dedupeSize);
  }

  // ---- public API -------------------------------------------------------

  /** The current connection state. */
  get state() {
    return this.#state;
  }

  /** The last `welcome` frame (user id, node, ...), or null before the first. */
  get welcome() {
    return this.#welcome;
  }

  /** The rooms this client is in (re-joined on reconnect). */
  get rooms() {
    return [...this.#rooms];
  }

  /** Requests waiting in the offline queue. */
  get queued() {
    return this.#queue.size;
  }

  /**
   * Starts connecting (no-op if already started). Resolves with the first
   * `welcome`; keeps retrying with backoff until then.
   * @returns {Promise<Welcome>}
   */
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
      // Browsers: when the network comes back, do not wait out the backoff.
      globalThis.addEventListener?.('online', this.#onOnline);
      void this.#dial();
    }
    return /** @type {Promise<Welcome>} */ (ready);
  }

  /**
   * Closes for good (code 1000, no reconnect). Queued and in-flight requests
   * reject with `closed`.
   * @param {string} [reason]
   */
  close(reason = 'client closed') {
    this.#closedByUser = true;
    this.#stop(new WsgateError('closed', 'the client was closed'), 1000, reason);
  }

  #onOnline = () => this.reconnectNow();

  /** Skips the current backoff wait and reconnects at once (a "retry now" button). */
  reconnectNow() {
    if (this.#state !== 'reconnecting') return;
    clearTimeout(this.#retryTimer);
    void this.#dial();
  }

  /**
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {(event: ClientEvents[K]) => unknown} listener for `message`, may return a promise: the ack waits for it
   * @returns {() => void} removes the listener
   */
  on(type, listener) {
    return this.#events.on(type, listener);
  }

  /**
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {(event: ClientEvents[K]) => unknown} listener
   */
  off(type, listener) {
    this.#events.off(type, listener);
  }

  /**
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {(event: ClientEvents[K]) => unknown} listener
   */
  once(type, listener) {
    return this.#events.once(type, listener);
  }

  /**
   * Joins a room; re-joined automatically after reconnects.
   * @param {string} room
   * @returns {Promise<{ ok: true, room: string, members: string[] }>}
   */
  async join(room) {
    const reply = await this.#request({ type: 'join', room });
    this.#rooms.add(room);
    this.#emit('joined', { room, members: reply.members ?? [], rejoin: false });
    return reply;
  }

  /**
   * Leaves a room. Offline, this only forgets the room (the server already
   * dropped the membership with the connection).
   * @param {string} room
   * @returns {Promise<{ ok: true, room: string }>}
   */
  async leave(room) {
    this.#rooms.delete(room);
    for (const p of this.#queue.remove((p) => p.frame.type === 'join' && p.frame.room === room)) {
      p.reject(new WsgateError('cancelled', `join of ${room} cancelled by leave`));
    }
    if (this.#state !== 'open') return { ok: true, room };
    return this.#request({ type: 'leave', room });
  }

  /**
   * Sends a direct message to every connection of `to` (stored in their inbox
   * until acked).
   * @param {string} to
   * @param {unknown} content
   * @returns {Promise<{ ok: true, id: string, online: boolean }>}
   */
  send(to, content) {
    this.#typingSent.delete(`u:${to}`); // receivers clear "typing" on a message
    return this.#request({ type: 'send', to, content });
  }

  /**
   * Publishes to a room this client is a member of.
   * @param {string} room
   * @param {unknown} content
   * @returns {Promise<{ ok: true, id: string }>}
   */
  publish(room, content) {
    this.#typingSent.delete(`r:${room}`);
    return this.#request({ type: 'publish', room, content });
  }

  /**
   * Sends to every connection in the cluster (needs the `broadcast` cap).
   * @param {unknown} content
   * @returns {Promise<{ ok: true, id: string }>}
   */
  broadcast(content) {
    return this.#request({ type: 'broadcast', content });
  }

  /**
   * Who is in a room, or whether a user is online.
   * @param {{ room: string } | { user: string }} target
   * @returns {Promise<any>} `{ok, room, members}` or `{ok, user, online, connections}`
   */
  presence(target) {
    return this.#request({ type: 'presence', ...target });
  }

  /**
   * Round trip to the server; resolves with the `pong`. Never queued.
   * @returns {Promise<{ type: 'pong', ref: string }>}
   */
  ping() {
    return this.#request({ type: 'ping' }, { queue: false });
  }

  /**
   * Tells a user or a room that this user is typing. Fire and forget: dropped
   * while offline, and throttled per target (`typingThrottleMs`).
   * @param {{ to: string } | { room: string }} target
   * @returns {boolean} whether a frame was sent
   */
  typing(target) {
    const key = 'to' in target ? `u:${target.to}` : `r:${target.room}`;
    const now = Date.now();
    const last = this.#typingSent.get(key);
    if (this.#state !== 'open' || (last !== undefined && now - last < this.#opts.typingThrottleMs)) {
      return false;
    }
    if (this.#typingSent.size > 256) this.#typingSent.clear();
    this.#typingSent.set(key, now);
    return this.#write({ type: 'typing', ...target });
  }

  /**
   * Acks direct messages by id (manual mode, `autoAck: false`). Acking an id
   * twice is harmless.
   * @param {...string} ids
   */
  ack(...ids) {
    for (const id of ids) {
      this.#unacked.delete(id);
      this.#recent.add(id);
      this.#queueAck(id);
    }
  }

  // ---- requests ---------------------------------------------------------

  /**
   * @param {Frame} frame
   * @param {{ queue?: boolean }} [options]
   * @returns {Promise<any>}
   */
  #request(frame, options = {}) {
    return new Promise((resolve, reject) => {
      /** @type {Pending} */
      const pending = { frame, resolve, reject };
      if (this.#state === 'open') {
        this.#dispatch(pending);
        return;
      }
      if (this.#state === 'closed' || this.#state === 'idle' || options.queue === false) {
        reject(new WsgateError('not_connected', `not connected (${this.#state})`));
        return;
      }
      const overflow = this.#queue.push(pending);
      if (overflow) {
        const error = new WsgateError('queue_full', `offline queue full (${this.#opts.queueLimit})`);
        overflow.reject(error);
        this.#emit('queue_overflow', { frame: overflow.frame, error });
      }
    });
  }

  /** @param {Pending} pending */
  #dispatch(pending) {
    const ref = String(this.#nextRef++);
    const frame = { ...pending.frame, ref };
    /** @type {string | Uint8Array} */
    let data;
    try {
      data = this.#opts.codec.encode(frame);
    } catch (err) {
      pending.reject(new WsgateError('bad_request', `cannot encode the ${frame.type} frame: ${errorText(err)}`));
      return;
    }
    const max = this.#welcome?.max_message_bytes;
    if (max && exceeds(data, max)) {
      pending.reject(new WsgateError('message_too_large', `the ${frame.type} frame exceeds max_message_bytes (${max})`));
      return;
    }
    this.#inflight.set(ref, pending);
    pending.timer = setTimeout(() => {
      this.#inflight.delete(ref);
      pending.reject(new WsgateError('timeout', `no reply to ${frame.type} in ${this.#opts.requestTimeoutMs} ms`, { ref }));
    }, this.#opts.requestTimeoutMs);
    if (!this.#send(data)) {
      this.#settle(ref, undefined, new WsgateError('disconnected', 'the connection dropped', { ref }));
    }
  }

  /**
   * @param {string} ref
   * @param {any} value
   * @param {WsgateError} [error]
   */
  #settle(ref, value, error) {
    const pending = this.#inflight.get(ref);
    if (!pending) return false;
    this.#inflight.delete(ref);
    clearTimeout(pending.timer);
    if (error) pending.reject(error);
    else pending.resolve(value);
    return true;
  }

  /**
   * @param {Frame} frame
   * @returns {boolean} whether it went out
   */
  #write(frame) {
    try {
      return this.#send(this.#opts.codec.encode(frame));
    } catch {
      return false;
    }
  }

  /**
   * @param {string | Uint8Array} data an encoded frame
   * @returns {boolean} whether it went out
   */
  #send(data) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== OPEN) return false;
    try {
      socket.send(data);
      return true;
    } catch {
      return false;
    }
  }

  // ---- connection lifecycle ---------------------------------------------

  async #dial() {
    this.#setState({ state: 'connecting', attempt: this.#attempt });
    /** @type {string | undefined} */
    let token;
    try {
      token = await this.#token(this.#authRejected ? 'rejected' : 'connect');
    } catch (err) {
      this.#emit('error', new WsgateError('auth', `token provider failed: ${errorText(err)}`));
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
      this.#emit('error', new WsgateError('bad_frame', `undecodable frame from server: ${errorText(err)}`));
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    this.#heartbeat?.touch();
    switch (frame.type) {
      case 'welcome':
        this.#onWelcome(/** @type {Welcome} */ (frame));
        break;
      case 'reply':
      case 'pong':
        if (frame.ref !== undefined) this.#settle(String(frame.ref), frame);
        break;
      case 'error': {
        const error = WsgateError.fromFrame(frame);
        if (frame.ref === undefined || !this.#settle(String(frame.ref), undefined, error)) {
          this.#emit('error', error);
        }
        break;
      }
      case 'message':
        this.#onMessage(/** @type {Message} */ (frame));
        break;
      case 'presence':
        this.#emit('presence', /** @type {PresenceEvent} */ (frame));
        break;
      case 'typing':
        this.#emit('typing', /** @type {TypingEvent} */ (frame));
        break;
      case 'receipt':
        this.#emit('receipt', /** @type {Receipt} */ (frame));
        break;
      default:
        break; // newer server, older client: ignore what we do not know
    }
  }

  /** @param {Welcome} welcome */
  #onWelcome(welcome) {
    clearTimeout(this.#connectTimer);
    this.#welcome = welcome;
    this.#openedAt = Date.now();
    this.#everOpened = true;
    this.#authRejected = false;
    this.#state = 'open';
    const interval = typeof welcome.ping_interval_ms === 'number' && welcome.ping_interval_ms > 0 ? welcome.ping_interval_ms : 25000;
    const socket = this.#socket;
    this.#heartbeat = new Heartbeat({
      intervalMs: interval,
      marginMs: this.#opts.heartbeatMarginMs,
      onPing: () => this.#write({ type: 'ping' }),
      onDead: () => socket && this.#kill(socket, 4000, 'heartbeat timeout'),
    });
    this.#heartbeat.start();
    // Re-join first, then flush the queue: frames are handled in order, so a
    // queued publish to a room lands after its re-join.
    for (const room of this.#rooms) this.#rejoin(room);
    for (const pending of this.#queue.drain()) this.#dispatch(pending);
    this.#scheduleRefresh();
    for (const waiter of this.#welcomeWaiters.splice(0)) waiter.resolve(welcome);
    // Listeners may close the client: stop announcing if one did.
    this.#emit('welcome', welcome);
    if (this.#state === 'open') this.#setState({ state: 'open' });
  }

  /** @param {string} room */
  #rejoin(room) {
    this.#dispatch({
      frame: { type: 'join', room },
      resolve: (reply) => this.#emit('joined', { room, members: reply.members ?? [], rejoin: true }),
      reject: (error) => {
        if (error.code !== 'disconnected' && error.code !== 'closed') {
          this.#rooms.delete(room);
          error.message = `re-join of ${room} failed: ${error.message}`;
          this.#emit('error', error);
        }
      },
    });
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
    this.#ackBuffer = []; // unacked messages are replayed and acked next time
    clearTimeout(this.#ackTimer);
    for (const ref of [...this.#inflight.keys()]) {
      this.#settle(ref, undefined, new WsgateError('disconnected', `connection closed (${code}) before the reply`, { ref }));
    }
    this.#emit('disconnect', { code, reason, wasClean });
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
    const delayMs = backoffDelay(this.#attempt, {
      minMs: this.#opts.reconnectMinMs,
      maxMs: this.#opts.reconnectMaxMs,
      random: this.#opts.random,
    });
    this.#attempt += 1;
    // Timer first: a state listener may call close(), which must cancel it.
    this.#retryTimer = setTimeout(() => void this.#dial(), delayMs);
    this.#setState({ state: 'reconnecting', attempt: this.#attempt, delayMs, retryAt: Date.now() + delayMs, code, reason });
  }

  /**
   * Ends everything: timers, socket, queued and in-flight requests.
   * @param {WsgateError} error
   * @param {number | undefined} closeCode close the socket with this code
   * @param {string} reason
   * @param {number} [code] the close code to report
   */
  #stop(error, closeCode, reason, code) {
    globalThis.removeEventListener?.('online', this.#onOnline);
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#refreshTimer);
    this.#heartbeat?.stop();
    this.#heartbeat = null;
    this.#flushAcks();
    const socket = this.#socket;
    this.#socket = null;
    if (socket) detach(socket, closeCode ?? 1000, reason);
    for (const ref of [...this.#inflight.keys()]) this.#settle(ref, undefined, error);
    for (const pending of this.#queue.drain()) pending.reject(error);
    for (const waiter of this.#welcomeWaiters.splice(0)) waiter.reject(error);
    if (this.#state !== 'closed') {
      this.#setState({ state: 'closed', code: code ?? closeCode, reason, error });
    }
  }

  /** @param {Omit<StateChange, 'everOpened'>} change */
  #setState(change) {
    this.#state = change.state;
    this.#emit('state', { ...change, everOpened: this.#everOpened });
  }

  // ---- token refresh ----------------------------------------------------

  #scheduleRefresh() {
    clearTimeout(this.#refreshTimer);
    if (typeof this.#given.token !== 'function') return;
    const current = this.#lastToken;
    const exp = current ? tokenExpiry(current) : undefined;
    if (exp === undefined) return;
    const delay = refreshDelay(exp, Date.now(), this.#opts.refreshLeadMs);
    this.#refreshTimer = setTimeout(() => void this.#refresh(), delay);
  }

  /** The token used by the current connection or its last refresh. @type {string | undefined} */
  #lastToken;

  async #refresh() {
    if (this.#state !== 'open') return;
    try {
      const token = await this.#token('refresh');
      if (!token || this.#state !== 'open') return;
      await this.#request({ type: 'refresh', token }, { queue: false });
      this.#lastToken = token;
      this.#scheduleRefresh();
    } catch (err) {
      const error = err instanceof WsgateError ? err : new WsgateError('auth', `token refresh failed: ${errorText(err)}`);
      if (error.code !== 'disconnected' && error.code !== 'closed') {
        this.#emit('error', error);
        // Try again a little later; the server closes with 1008 at expiry and
        // the reconnect asks the provider anyway.
        this.#refreshTimer = setTimeout(() => void this.#refresh(), 5000);
      }
    }
  }

  // ---- messages and acks ------------------------------------------------

  /** @param {Message} message */
  #onMessage(message) {
    if (message.kind !== 'direct' || typeof message.id !== 'string') {
      this.#emit('message', message);
      return;
    }
    const id = message.id;
    if (this.#unacked.has(id)) return; // still being handled: its ack covers this copy
    if (this.#recent.has(id)) {
      this.#queueAck(id); // the server still has it: our earlier ack was lost
      this.#emit('duplicate', message);
      return;
    }
    if (this.#events.listenerCount('message') === 0) return; // not acked: replayed later
    this.#unacked.add(id);
    const results = this.#events.emit('message', message);
    if (!this.#opts.autoAck) return;
    const waits = results.filter(isThenable);
    if (waits.length === 0) {
      this.ack(id);
      return;
    }
    Promise.all(waits).then(
      () => this.ack(id),
      (err) => {
        this.#unacked.delete(id);
        this.#emit('error', new WsgateError('handler_failed', `message ${id} not acked, handler failed: ${errorText(err)}`));
      },
    );
  }

  /** @param {string} id */
  #queueAck(id) {
    this.#ackBuffer.push(id);
    if (this.#ackBuffer.length >= MAX_ACK_BATCH) {
      this.#flushAcks();
    } else if (this.#ackBuffer.length === 1) {
      clearTimeout(this.#ackTimer);
      this.#ackTimer = setTimeout(() => this.#flushAcks(), this.#opts.ackDelayMs);
    }
  }

  #flushAcks() {
    clearTimeout(this.#ackTimer);
    const ids = this.#ackBuffer.splice(0, MAX_ACK_BATCH);
    if (ids.length === 1) this.#write({ type: 'ack', id: ids[0] });
    else if (ids.length > 1) this.#write({ type: 'ack', ids });
    if (this.#ackBuffer.length > 0) this.#flushAcks();
  }

  /**
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {ClientEvents[K]} event
   */
  #emit(type, event) {
    for (const result of this.#events.emit(type, event)) {
      if (isThenable(result)) {
        /** @type {Promise<unknown>} */ (result).catch(reportLater);
      }
    }
  }
}

/** @param {unknown} value @returns {value is PromiseLike<unknown>} */
function isThenable(value) {
  return typeof value === 'object' && value !== null && typeof (/** @type {any} */ (value).then) === 'function';
}

/**
 * Whether an encoded frame is over `max` bytes (UTF-8 for text frames).
 * @param {string | Uint8Array} data
 * @param {number} max
 */
function exceeds(data, max) {
  if (typeof data !== 'string') return data.byteLength > max;
  // A UTF-16 unit is 1 to 3 UTF-8 bytes: encode only when it matters.
  if (data.length * 3 <= max) return false;
  if (data.length > max) return true;
  return new TextEncoder().encode(data).length > max;
}

/** @param {unknown} err */
function errorText(err) {
  return err instanceof Error ? err.message : String(err);
}

/** A listener's failure is the app's bug: surface it like an uncaught error. @param {unknown} err */
function reportLater(err) {
  setTimeout(() => {
    throw err;
  }, 0);
}

/**
 * Stops listening to a socket and closes it: cleanly with `code` when given,
 * else at once (`terminate` in Node's ws; browsers only have `close`).
 * @param {SocketLike} socket
 * @param {number} [code]
 * @param {string} [reason]
 */
function detach(socket, code, reason) {
  socket.onmessage = null;
  socket.onclose = null;
  socket.onopen = null;
  socket.onerror = () => {};
  try {
    if (code !== undefined) socket.close(code, reason);
    else if (socket.terminate) socket.terminate();
    else socket.close(4000, reason);
  } catch {
    // nothing to do: it is gone either way
  }
}
