// @ts-check
/**
 * Requests and their replies: every request frame gets a fresh `ref`; the
 * `reply`, `pong` or `error` that echoes it settles the request's promise.
 *
 * How it works:
 * - While the connection is open a request is encoded, checked against the
 *   welcome's `max_message_bytes` (rejects with `message_too_large` before
 *   sending) and written; a timer rejects it with `timeout` if no reply comes.
 * - While reconnecting it waits in a bounded FIFO queue (`queueLimit`,
 *   overflow policy `queueOverflow`), flushed in order after the next welcome;
 *   its timeout starts when it is sent. Requests marked `queue: false`
 *   (`ping`, token refresh) reject with `not_connected` instead.
 * - An `error` frame with a known `ref` rejects that request (any code,
 *   `message_too_large` included); one without is the caller's to report.
 * - A dropped socket rejects what was sent and not answered with
 *   `disconnected` (it may or may not have been processed); `stop` rejects
 *   everything, queued requests included.
 * - `onReply` runs synchronously when the reply is read, before any later
 *   frame: rooms use it so that the frames that follow a join reply (the
 *   history replay) see the room's new position.
 */
import { WsgateError } from './errors.js';
import { BoundedQueue } from './queue.js';
import { errorText, exceeds } from './util.js';

/**
 * @typedef {import('./types.js').Frame} Frame
 * @typedef {import('./types.js').ConnectionState} ConnectionState
 * @typedef {import('./codec.js').Codec} Codec
 * @typedef {object} Pending
 * @property {Frame} frame
 * @property {(reply: any) => void} resolve
 * @property {(error: WsgateError) => void} reject
 * @property {any} [timer] the timeout handle (a number in browsers, an object in Node)
 * @typedef {object} RequestLink what requests need from the connection
 * @property {() => ConnectionState} state
 * @property {(data: string | Uint8Array) => boolean} send writes an encoded frame; false if it did not go out
 * @property {() => number | undefined} maxBytes the welcome's `max_message_bytes`
 * @property {Codec} codec
 * @property {number} timeoutMs
 * @property {number} queueLimit
 * @property {'reject' | 'drop-oldest'} queueOverflow
 * @property {(frame: Frame, error: WsgateError) => void} onOverflow a request did not fit the queue
 * @typedef {object} RequestOptions
 * @property {boolean} [queue] wait in the offline queue while reconnecting (default true)
 * @property {(reply: any) => any} [onReply] runs synchronously on the reply; its result resolves the promise
 * @property {(error: WsgateError) => void} [onError] runs synchronously on a rejection, before the promise rejects
 */

export class Requests {
  #nextRef = 1;
  /** @type {Map<string, Pending>} */
  #inflight = new Map();
  /** @type {BoundedQueue<Pending>} */
  #queue;
  /** @type {RequestLink} */
  #link;

  /** @param {RequestLink} link */
  constructor(link) {
    this.#link = link;
    this.#queue = new BoundedQueue(link.queueLimit, link.queueOverflow);
  }

  /** Requests waiting in the offline queue. */
  get queued() {
    return this.#queue.size;
  }

  /**
   * @param {Frame} frame
   * @param {RequestOptions} [options]
   * @returns {Promise<any>}
   */
  request(frame, options = {}) {
    return new Promise((resolve, reject) => {
      const pending = this.#pending(frame, options, resolve, reject);
      const state = this.#link.state();
      if (state === 'open') {
        this.dispatch(pending);
        return;
      }
      if (state === 'closed' || state === 'idle' || options.queue === false) {
        pending.reject(new WsgateError('not_connected', `not connected (${state})`));
        return;
      }
      const overflow = this.#queue.push(pending);
      if (overflow) {
        const error = new WsgateError('queue_full', `offline queue full (${this.#link.queueLimit})`);
        overflow.reject(error);
        this.#link.onOverflow(overflow.frame, error);
      }
    });
  }

  /**
   * Sends at once, bypassing the queue (re-joins go out before the queue).
   * @param {Frame} frame
   * @param {RequestOptions} [options]
   * @returns {Promise<any>}
   */
  dispatchNow(frame, options = {}) {
    return new Promise((resolve, reject) => this.dispatch(this.#pending(frame, options, resolve, reject)));
  }

  /**
   * @param {Frame} frame
   * @param {RequestOptions} options
   * @param {(value: any) => void} resolve
   * @param {(error: WsgateError) => void} reject
   * @returns {Pending}
   */
  #pending(frame, options, resolve, reject) {
    return {
      frame,
      resolve: (reply) => {
        if (!options.onReply) return resolve(reply);
        try {
          resolve(options.onReply(reply));
        } catch (err) {
          reject(err instanceof WsgateError ? err : new WsgateError('internal', errorText(err)));
        }
      },
      reject: (error) => {
        options.onError?.(error);
        reject(error);
      },
    };
  }

  /** @param {Pending} pending */
  dispatch(pending) {
    const ref = String(this.#nextRef++);
    const frame = { ...pending.frame, ref };
    /** @type {string | Uint8Array} */
    let data;
    try {
      data = this.#link.codec.encode(frame);
    } catch (err) {
      pending.reject(new WsgateError('bad_request', `cannot encode the ${frame.type} frame: ${errorText(err)}`));
      return;
    }
    const max = this.#link.maxBytes();
    if (max && exceeds(data, max)) {
      pending.reject(new WsgateError('message_too_large', `the ${frame.type} frame exceeds max_message_bytes (${max})`));
      return;
    }
    this.#inflight.set(ref, pending);
    pending.timer = setTimeout(() => {
      this.#inflight.delete(ref);
      pending.reject(new WsgateError('timeout', `no reply to ${frame.type} in ${this.#link.timeoutMs} ms`, { ref }));
    }, this.#link.timeoutMs);
    if (!this.#link.send(data)) {
      this.settle(ref, undefined, new WsgateError('disconnected', 'the connection dropped', { ref }));
    }
  }

  /**
   * Settles the request `ref` (a reply, or an error); false if none waits.
   * @param {string} ref
   * @param {any} value
   * @param {WsgateError} [error]
   */
  settle(ref, value, error) {
    const pending = this.#inflight.get(ref);
    if (!pending) return false;
    this.#inflight.delete(ref);
    clearTimeout(pending.timer);
    if (error) pending.reject(error);
    else pending.resolve(value);
    return true;
  }

  /** Sends the offline queue, oldest first (after the welcome and the re-joins). */
  flush() {
    for (const pending of this.#queue.drain()) this.dispatch(pending);
  }

  /**
   * Rejects the queued requests matching `predicate` with `error`.
   * @param {(frame: Frame) => boolean} predicate
   * @param {WsgateError} error
   */
  cancelQueued(predicate, error) {
    for (const pending of this.#queue.remove((p) => predicate(p.frame))) pending.reject(error);
  }

  /** The socket dropped: what was sent and not answered rejects. @param {number} code */
  dropInflight(code) {
    for (const ref of [...this.#inflight.keys()]) {
      this.settle(ref, undefined, new WsgateError('disconnected', `connection closed (${code}) before the reply`, { ref }));
    }
  }

  /** The client stopped: everything rejects with `error`. @param {WsgateError} error */
  failAll(error) {
    for (const ref of [...this.#inflight.keys()]) this.settle(ref, undefined, error);
    for (const pending of this.#queue.drain()) pending.reject(error);
  }
}
