// @ts-check
/**
 * The error a request promise rejects with.
 *
 * Server errors carry the contract's `code` (`bad_request`, `forbidden`,
 * `rate_limited`, `unavailable`, ...). The SDK adds its own codes for things
 * that happen on this side of the socket:
 *
 * - `timeout`: no reply within the request timeout;
 * - `disconnected`: the request was sent but the connection dropped before
 *   its reply (it may or may not have been processed: not retried for you);
 * - `closed`: `client.close()` was called while the request waited;
 * - `queue_full`: the offline queue is full;
 * - `not_connected`: a request that is never queued (`ping`) made while offline;
 * - `cancelled`: a queued `join` cancelled by a `leave` of the same room;
 * - `auth`: the server refused the token and no token provider can renew it.
 *
 * `inbox_full` (the recipient's inbox, or this sender's share of it, is full;
 * nothing was stored) rejects a `send` with the subclass `InboxFullError`.
 *
 * @typedef {'bad_request' | 'unknown_type' | 'message_too_large' | 'rate_limited' | 'forbidden'
 *   | 'too_many_rooms' | 'inbox_full' | 'unavailable' | 'token_expired' | 'internal'} ServerErrorCode
 * @typedef {'timeout' | 'disconnected' | 'closed' | 'queue_full' | 'not_connected' | 'cancelled' | 'auth'
 *   | 'bad_url' | 'bad_frame' | 'handler_failed'} ClientErrorCode
 * @typedef {ServerErrorCode | ClientErrorCode | (string & {})} ErrorCode
 */
export class WsgateError extends Error {
  /**
   * @param {ErrorCode} code
   * @param {string} message
   * @param {{ retry_after_ms?: number, ref?: string | number, frame?: any }} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'WsgateError';
    /** @type {ErrorCode} */
    this.code = code;
    /** Milliseconds to wait before retrying (set for `rate_limited`). @type {number | undefined} */
    this.retry_after_ms = extra.retry_after_ms;
    /** @type {string | number | undefined} */
    this.ref = extra.ref;
    /** The server's error frame, when there was one. @type {any} */
    this.frame = extra.frame;
  }

  /** Same as `retry_after_ms`, camel-cased. */
  get retryAfterMs() {
    return this.retry_after_ms;
  }

  /**
   * Builds an error from a server `error` frame.
   * @param {{ code?: unknown, message?: unknown, retry_after_ms?: unknown, ref?: unknown }} frame
   */
  static fromFrame(frame) {
    const code = typeof frame.code === 'string' ? frame.code : 'internal';
    const message = typeof frame.message === 'string' ? frame.message : code;
    const retry = typeof frame.retry_after_ms === 'number' ? frame.retry_after_ms : undefined;
    const ref = typeof frame.ref === 'string' || typeof frame.ref === 'number' ? frame.ref : undefined;
    const extra = { retry_after_ms: retry, ref, frame };
    return code === 'inbox_full' ? new InboxFullError(message, extra) : new WsgateError(code, message, extra);
  }
}

/**
 * A `send` refused because the recipient's inbox (or this sender's share of
 * it) is full. Nothing was stored; retrying soon will most likely be refused
 * again, so the SDK does not retry it: tell the user, or try much later.
 */
export class InboxFullError extends WsgateError {
  /**
   * @param {string} message
   * @param {{ retry_after_ms?: number, ref?: string | number, frame?: any }} [extra]
   */
  constructor(message, extra = {}) {
    super('inbox_full', message, extra);
    this.name = 'InboxFullError';
  }
}
