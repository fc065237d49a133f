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
