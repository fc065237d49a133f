// @ts-check
/**
 * Direct messages, both ways: sending them idempotently, and receiving them
 * at least once with acks and dedupe (contract section 5.2).
 *
 * How it works:
 * - Sending: every `send` carries an `id` (a random UUID unless the app
 *   gives one). `unavailable` (the store was not confirmed), `timeout`,
 *   `disconnected` and `rate_limited` are retried with the SAME id after a
 *   capped exponential backoff with full jitter (`rate_limited`: at least its
 *   `retry_after_ms`), at most `sendAttempts` attempts in all; the server
 *   answers a repeat it already stored with `duplicate: true`, which resolves
 *   like any `ok`. A retry after a dropped connection waits in the offline
 *   queue like any request. `inbox_full` rejects at once with
 *   `InboxFullError`; other errors reject at once. `close()` cancels waiting
 *   retries (`closed`).
 * - Receiving: a direct message is handed to the `message` listeners, then
 *   acked once they return (or their promises resolve), in batches of at most
 *   100 ids per `ack` frame, `ackDelayMs` apart. Ids of handled messages are
 *   remembered (`dedupeSize`): a copy (inbox replay after a lost ack) is
 *   dropped, emitted as `duplicate`, and acked again. With no `message`
 *   listener nothing is acked: the inbox replays it on the next connection.
 */
import { backoffDelay } from './backoff.js';
import { InboxFullError, WsgateError } from './errors.js';
import { RecentIds } from './dedupe.js';
import { errorText, isThenable, randomId } from './util.js';

/**
 * @typedef {import('./types.js').Message} Message
 * @typedef {import('./types.js').Frame} Frame
 * @typedef {import('./types.js').SendReply} SendReply
 * @typedef {import('./types.js').EmitFn} EmitFn
 * @typedef {object} DirectSettings
 * @property {boolean} autoAck
 * @property {number} ackDelayMs
 * @property {number} dedupeSize
 * @property {number} sendAttempts
 * @property {number} sendRetryMinMs
 * @property {number} sendRetryMaxMs
 * @property {() => number} random
 * @typedef {object} DirectLink what direct messages need from the client
 * @property {(frame: Frame) => Promise<any>} request
 * @property {(frame: Frame) => boolean} write
 * @property {(message: Message) => unknown[]} deliver calls the `message` listeners, returns their results
 * @property {() => number} listeners how many `message` listeners there are
 * @property {EmitFn} emit
 */

const MAX_ACK_BATCH = 100;
const RETRYABLE = new Set(['unavailable', 'timeout', 'disconnected', 'rate_limited']);

export class DirectMessages {
  /** @type {DirectSettings} */
  #opts;
  /** @type {DirectLink} */
  #link;
  #recent;
  /** Ids delivered to the app but not acked yet. @type {Set<string>} */
  #unacked = new Set();
  /** @type {string[]} */
  #ackBuffer = [];
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #ackTimer;
  /** Retries waiting out their backoff. @type {Set<{ timer: ReturnType<typeof setTimeout>, cancel: (e: WsgateError) => void }>} */
  #waits = new Set();

  /** @param {DirectSettings} settings @param {DirectLink} link */
  constructor(settings, link) {
    this.#opts = settings;
    this.#link = link;
    this.#recent = new RecentIds(settings.dedupeSize);
  }

  /**
   * @param {string} to
   * @param {unknown} content
   * @param {string} [id] a client-chosen UUID; default a random one
   * @returns {Promise<SendReply>}
   */
  async send(to, content, id = randomId()) {
    const frame = { type: 'send', to, content, id };
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#link.request(frame);
      } catch (err) {
        if (!(err instanceof WsgateError) || err instanceof InboxFullError) throw err;
        if (!RETRYABLE.has(err.code) || attempt >= this.#opts.sendAttempts) throw err;
        const backoff = backoffDelay(attempt - 1, {
          minMs: this.#opts.sendRetryMinMs,
          maxMs: this.#opts.sendRetryMaxMs,
          random: this.#opts.random,
        });
        await this.#wait(Math.max(backoff, err.retry_after_ms ?? 0));
      }
    }
  }

  /** @param {number} ms */
  #wait(ms) {
    return new Promise((resolve, reject) => {
      const wait = {
        timer: setTimeout(() => {
          this.#waits.delete(wait);
          resolve(undefined);
        }, ms),
        cancel: reject,
      };
      this.#waits.add(wait);
    });
  }

  /** The client stopped: retries waiting out their backoff reject with `error`. @param {WsgateError} error */
  cancelRetries(error) {
    for (const wait of this.#waits) {
      clearTimeout(wait.timer);
      wait.cancel(error);
    }
    this.#waits.clear();
  }

  /** @param {Message} message */
  onMessage(message) {
    const id = message.id;
    if (this.#unacked.has(id)) return; // still being handled: its ack covers this copy
    if (this.#recent.has(id)) {
      this.#queueAck(id); // the server still has it: our earlier ack was lost
      this.#link.emit('duplicate', message);
      return;
    }
    if (this.#link.listeners() === 0) return; // not acked: replayed later
    this.#unacked.add(id);
    const results = this.#link.deliver(message);
    if (!this.#opts.autoAck) return;
    const waits = results.filter(isThenable);
    if (waits.length === 0) {
      this.ack([id]);
      return;
    }
    Promise.all(waits).then(
      () => this.ack([id]),
      (err) => {
        this.#unacked.delete(id);
        this.#link.emit('error', new WsgateError('handler_failed', `message ${id} not acked, handler failed: ${errorText(err)}`));
      },
    );
  }

  /** @param {string[]} ids */
  ack(ids) {
    for (const id of ids) {
      this.#unacked.delete(id);
      this.#recent.add(id);
      this.#queueAck(id);
    }
  }

  /** @param {string} id */
  #queueAck(id) {
    this.#ackBuffer.push(id);
    if (this.#ackBuffer.length >= MAX_ACK_BATCH) {
      this.flushAcks();
    } else if (this.#ackBuffer.length === 1) {
      clearTimeout(this.#ackTimer);
      this.#ackTimer = setTimeout(() => this.flushAcks(), this.#opts.ackDelayMs);
    }
  }

  flushAcks() {
    clearTimeout(this.#ackTimer);
    const ids = this.#ackBuffer.splice(0, MAX_ACK_BATCH);
    if (ids.length === 1) this.#link.write({ type: 'ack', id: ids[0] });
    else if (ids.length > 1) this.#link.write({ type: 'ack', ids });
    if (this.#ackBuffer.length > 0) this.flushAcks();
  }

  /** The socket dropped: unsent acks are moot (the inbox replays those messages and they are acked again). */
  dropAcks() {
    this.#ackBuffer = [];
    clearTimeout(this.#ackTimer);
  }
}
