// @ts-check
/**
 * The wsgate client: the public API, wiring four parts that each own one
 * thing:
 * - `Connection` (connection.js): the socket, welcome, heartbeat, reconnect
 *   with backoff, token and refresh, and the connection state;
 * - `Requests` (requests.js): refs, replies, timeouts and the offline queue;
 * - `Rooms` (rooms.js): memberships, history positions, recovery on re-join
 *   and dropping repeated room messages by offset;
 * - `DirectMessages` (direct.js): idempotent `send` with retries, acks and
 *   dedupe of received direct messages by id.
 *
 * On every welcome the rooms are re-joined first, then the offline queue is
 * flushed: frames are handled in order, so a queued publish to a room lands
 * after its re-join. Frames from the server go to the part that owns them;
 * presence, typing and receipt frames are emitted as they are.
 */
import { jsonCodec } from './codec.js';
import { Connection } from './connection.js';
import { DirectMessages } from './direct.js';
import { Emitter } from './emitter.js';
import { WsgateError } from './errors.js';
import { Requests } from './requests.js';
import { Rooms } from './rooms.js';
import { isThenable, reportLater } from './util.js';

/**
 * The types are defined in types.js; re-exported here for existing imports.
 * @typedef {import('./codec.js').Codec} Codec
 * @typedef {import('./types.js').Frame} Frame
 * @typedef {import('./types.js').Welcome} Welcome
 * @typedef {import('./types.js').Message} Message
 * @typedef {import('./types.js').PresenceEvent} PresenceEvent
 * @typedef {import('./types.js').TypingEvent} TypingEvent
 * @typedef {import('./types.js').Receipt} Receipt
 * @typedef {import('./types.js').Reply} Reply
 * @typedef {import('./types.js').JoinReply} JoinReply
 * @typedef {import('./types.js').SendReply} SendReply
 * @typedef {import('./types.js').PublishReply} PublishReply
 * @typedef {import('./types.js').ConnectionState} ConnectionState
 * @typedef {import('./types.js').StateChange} StateChange
 * @typedef {import('./types.js').RoomStatus} RoomStatus
 * @typedef {import('./types.js').RoomPosition} RoomPosition
 * @typedef {import('./types.js').RecoveryEvent} RecoveryEvent
 * @typedef {import('./types.js').JoinedEvent} JoinedEvent
 * @typedef {import('./types.js').ClientEvents} ClientEvents
 * @typedef {import('./types.js').TokenProvider} TokenProvider
 * @typedef {import('./types.js').SocketLike} SocketLike
 * @typedef {import('./types.js').WebSocketConstructor} WebSocketConstructor
 * @typedef {import('./types.js').ClientOptions} ClientOptions
 */

export class WsgateClient {
  /** @type {Emitter<ClientEvents>} */
  #events = new Emitter();
  #typingThrottleMs;
  /** @type {Map<string, number>} */
  #typingSent = new Map();
  /** @type {Connection} */
  #conn;
  /** @type {Requests} */
  #requests;
  /** @type {Rooms} */
  #rooms;
  /** @type {DirectMessages} */
  #direct;

  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    const codec = options.codec ?? jsonCodec;
    const random = options.random ?? Math.random;
    const emit = /** @type {import('./types.js').EmitFn} */ ((type, event) => this.#emit(type, event));
    this.#typingThrottleMs = options.typingThrottleMs ?? 2000;
    this.#conn = new Connection(
      options,
      {
        codec,
        reconnect: options.reconnect ?? true,
        reconnectMinMs: options.reconnectMinMs ?? 500,
        reconnectMaxMs: options.reconnectMaxMs ?? 20000,
        stableAfterMs: options.stableAfterMs ?? 5000,
        connectTimeoutMs: options.connectTimeoutMs ?? 10000,
        heartbeatMarginMs: options.heartbeatMarginMs ?? 10000,
        refreshLeadMs: options.refreshLeadMs ?? 60000,
        random,
      },
      {
        onFrame: (frame) => this.#onFrame(frame),
        onOpen: () => {
          this.#rooms.rejoinAll();
          this.#requests.flush();
        },
        onDown: (code) => {
          this.#direct.dropAcks(); // unacked messages are replayed and acked next time
          this.#requests.dropInflight(code);
        },
        beforeStop: () => this.#direct.flushAcks(),
        onStop: (error) => {
          this.#direct.cancelRetries(error);
          this.#requests.failAll(error);
        },
        refresh: async (frame) => {
          const reply = await this.#requests.request(frame, { queue: false });
          // Rooms the new token no longer allows were left by the server.
          this.#rooms.forget(reply?.left ?? []);
          return reply;
        },
        emit,
      },
    );
    this.#requests = new Requests({
      state: () => this.#conn.state,
      send: (data) => this.#conn.send(data),
      maxBytes: () => this.#conn.welcome?.max_message_bytes,
      codec,
      timeoutMs: options.requestTimeoutMs ?? 10000,
      queueLimit: options.queueLimit ?? 100,
      queueOverflow: options.queueOverflow ?? 'reject',
      onOverflow: (frame, error) => this.#emit('queue_overflow', { frame, error }),
    });
    this.#rooms = new Rooms({
      request: (frame, opts) => this.#requests.request(frame, opts),
      dispatchNow: (frame, opts) => this.#requests.dispatchNow(frame, opts),
      cancelQueued: (predicate, error) => this.#requests.cancelQueued(predicate, error),
      online: () => this.#conn.state === 'open',
      emit,
      window: options.roomWindow ?? 1000,
    });
    this.#direct = new DirectMessages(
      {
        autoAck: options.autoAck ?? true,
        ackDelayMs: options.ackDelayMs ?? 20,
        dedupeSize: options.dedupeSize ?? 1000,
        sendAttempts: Math.max(1, options.sendAttempts ?? 5),
        sendRetryMinMs: options.sendRetryMinMs ?? 250,
        sendRetryMaxMs: options.sendRetryMaxMs ?? 5000,
        random,
      },
      {
        request: (frame) => this.#requests.request(frame),
        write: (frame) => this.#conn.write(frame),
        deliver: (message) => this.#events.emit('message', message),
        listeners: () => this.#events.listenerCount('message'),
        emit,
      },
    );
  }

  // ---- connection ---------------------------------------------------------

  /** The current connection state. */
  get state() {
    return this.#conn.state;
  }

  /** The last `welcome` frame (user id, node, ...), or null before the first. */
  get welcome() {
    return this.#conn.welcome;
  }

  /** The rooms this client is in (re-joined on reconnect). */
  get rooms() {
    return this.#rooms.names;
  }

  /** Requests waiting in the offline queue. */
  get queued() {
    return this.#requests.queued;
  }

  /**
   * Starts connecting (no-op if already started). Resolves with the first
   * `welcome`; keeps retrying with backoff until then.
   * @returns {Promise<Welcome>}
   */
  connect() {
    return this.#conn.connect();
  }

  /**
   * Closes for good (code 1000, no reconnect). Queued and in-flight requests,
   * and sends waiting to retry, reject with `closed`.
   * @param {string} [reason]
   */
  close(reason = 'client closed') {
    this.#conn.close(reason);
  }

  /** Skips the current backoff wait and reconnects at once (a "retry now" button). */
  reconnectNow() {
    this.#conn.reconnectNow();
  }

  /**
   * Drops the connection as a network failure would (close code 4003 on this
   * side, no close handshake) and reconnects as usual, not before `holdMs`:
   * for demos and tests of what users see when their network drops.
   * @param {number} [holdMs] stay offline at least this long; default 0
   * @returns {boolean} whether there was a connection to drop
   */
  dropConnection(holdMs = 0) {
    return this.#conn.drop(holdMs);
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

  // ---- rooms --------------------------------------------------------------

  /**
   * Joins a room; re-joined automatically after reconnects, resuming from
   * where this client was in the room's history (`recovered` /
   * `notRecovered` events).
   * @param {string} room
   * @returns {Promise<JoinReply>}
   */
  join(room) {
    return this.#rooms.join(room);
  }

  /**
   * Leaves a room. Offline, this only forgets the room (the server already
   * dropped the membership with the connection).
   * @param {string} room
   * @returns {Promise<{ ok: true, room: string }>}
   */
  leave(room) {
    return this.#rooms.leave(room);
  }

  /**
   * Where this client is in a room's history, and its recovery status.
   * @param {string} room
   * @returns {RoomPosition | undefined} undefined when not in the room
   */
  room(room) {
    return this.#rooms.position(room);
  }

  /**
   * Publishes to a room this client is a member of.
   * @param {string} room
   * @param {unknown} content
   * @returns {Promise<PublishReply>}
   */
  publish(room, content) {
    this.#typingSent.delete(`r:${room}`);
    return this.#requests.request({ type: 'publish', room, content });
  }

  // ---- direct messages ----------------------------------------------------

  /**
   * Sends a direct message to every connection of `to` (stored in their inbox
   * until acked). Carries an `id` (a random UUID unless given) and retries
   * `unavailable`, `timeout`, `disconnected` and `rate_limited` with that same
   * id, so a retry never duplicates. `inbox_full` rejects with `InboxFullError`.
   * @param {string} to
   * @param {unknown} content
   * @param {{ id?: string }} [options] `id`: your own UUID for the message
   * @returns {Promise<SendReply>}
   */
  send(to, content, options = {}) {
    this.#typingSent.delete(`u:${to}`); // receivers clear "typing" on a message
    return this.#direct.send(to, content, options.id);
  }

  /**
   * Acks direct messages by id (manual mode, `autoAck: false`). Acking an id
   * twice is harmless.
   * @param {...string} ids
   */
  ack(...ids) {
    this.#direct.ack(ids);
  }

  // ---- the rest -----------------------------------------------------------

  /**
   * Sends to every connection in the cluster (needs the `broadcast` cap).
   * @param {unknown} content
   * @returns {Promise<PublishReply>}
   */
  broadcast(content) {
    return this.#requests.request({ type: 'broadcast', content });
  }

  /**
   * Who is in a room, or whether a user is online.
   * @param {{ room: string } | { user: string }} target
   * @returns {Promise<any>} `{ok, room, member_count, members}` or `{ok, user, online, connections}`
   */
  presence(target) {
    return this.#requests.request({ type: 'presence', ...target });
  }

  /**
   * Round trip to the server; resolves with the `pong`. Never queued.
   * @returns {Promise<{ type: 'pong', ref: string }>}
   */
  ping() {
    return this.#requests.request({ type: 'ping' }, { queue: false });
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
    if (this.#conn.state !== 'open' || (last !== undefined && now - last < this.#typingThrottleMs)) {
      return false;
    }
    if (this.#typingSent.size > 256) this.#typingSent.clear();
    this.#typingSent.set(key, now);
    return this.#conn.write({ type: 'typing', ...target });
  }

  /** @param {Frame} frame */
  #onFrame(frame) {
    switch (frame.type) {
      case 'reply':
      case 'pong':
        if (frame.ref !== undefined) this.#requests.settle(String(frame.ref), frame);
        break;
      case 'error': {
        const error = WsgateError.fromFrame(frame);
        if (frame.ref === undefined || !this.#requests.settle(String(frame.ref), undefined, error)) {
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

  /** @param {Message} message */
  #onMessage(message) {
    if (message.kind === 'direct' && typeof message.id === 'string') {
      this.#direct.onMessage(message);
    } else if (message.kind === 'room' && !this.#rooms.accept(message)) {
      this.#emit('duplicate', message);
    } else {
      this.#emit('message', message);
    }
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
