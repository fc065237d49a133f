// @ts-check
/**
 * @wsgate/client: the JavaScript SDK of the wsgate WebSocket gateway.
 * Plain ES modules, no dependencies, for browsers and Node 20+.
 */
export { WsgateClient } from './client.js';
export { WsgateError } from './errors.js';
export { jsonCodec, msgpackCodec } from './codec.js';
export { backoffDelay } from './backoff.js';
export { BoundedQueue } from './queue.js';
export { RecentIds } from './dedupe.js';
export { Heartbeat } from './heartbeat.js';
export { tokenExpiry } from './token.js';

/**
 * @typedef {import('./client.js').ClientOptions} ClientOptions
 * @typedef {import('./client.js').ClientEvents} ClientEvents
 * @typedef {import('./client.js').ConnectionState} ConnectionState
 * @typedef {import('./client.js').StateChange} StateChange
 * @typedef {import('./client.js').Welcome} Welcome
 * @typedef {import('./client.js').Message} Message
 * @typedef {import('./client.js').PresenceEvent} PresenceEvent
 * @typedef {import('./client.js').TypingEvent} TypingEvent
 * @typedef {import('./client.js').Receipt} Receipt
 * @typedef {import('./client.js').TokenProvider} TokenProvider
 * @typedef {import('./codec.js').Codec} Codec
 */
