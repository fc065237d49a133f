// @ts-check
/**
 * @wsgate/client: the JavaScript SDK of the wsgate WebSocket gateway.
 * Plain ES modules, no dependencies, for browsers and Node 20+.
 */
export { WsgateClient } from './client.js';
export { WsgateError, InboxFullError } from './errors.js';
export { jsonCodec, msgpackCodec } from './codec.js';
export { backoffDelay } from './backoff.js';
export { BoundedQueue } from './queue.js';
export { RecentIds } from './dedupe.js';
export { Heartbeat } from './heartbeat.js';
export { tokenExpiry } from './token.js';
export { randomId } from './util.js';

/**
 * @typedef {import('./types.js').ClientOptions} ClientOptions
 * @typedef {import('./types.js').ClientEvents} ClientEvents
 * @typedef {import('./types.js').ConnectionState} ConnectionState
 * @typedef {import('./types.js').StateChange} StateChange
 * @typedef {import('./types.js').Welcome} Welcome
 * @typedef {import('./types.js').Message} Message
 * @typedef {import('./types.js').PresenceEvent} PresenceEvent
 * @typedef {import('./types.js').TypingEvent} TypingEvent
 * @typedef {import('./types.js').Receipt} Receipt
 * @typedef {import('./types.js').JoinReply} JoinReply
 * @typedef {import('./types.js').JoinedEvent} JoinedEvent
 * @typedef {import('./types.js').SendReply} SendReply
 * @typedef {import('./types.js').PublishReply} PublishReply
 * @typedef {import('./types.js').RoomStatus} RoomStatus
 * @typedef {import('./types.js').RoomPosition} RoomPosition
 * @typedef {import('./types.js').RecoveryEvent} RecoveryEvent
 * @typedef {import('./types.js').TokenProvider} TokenProvider
 * @typedef {import('./errors.js').ErrorCode} ErrorCode
 * @typedef {import('./codec.js').Codec} Codec
 */
