// @ts-check
/**
 * @wsgate/client/state: framework-neutral UI stores over a `WsgateClient`,
 * the one implementation behind `@wsgate/react` and `@wsgate/vue`. Each store
 * has `get()` (an immutable snapshot), `subscribe(listener)`, and `start()` /
 * `stop()` (listen to the client, and join/leave for a room).
 */
export { Store } from './store.js';
export { ConnectionStore } from './connection-store.js';
export { RoomStore } from './room-store.js';
export { DirectStore } from './direct-store.js';
export { PresenceStore } from './presence-store.js';

/**
 * @typedef {import('./connection-store.js').ConnectionSnapshot} ConnectionSnapshot
 * @typedef {import('./connection-store.js').ConnectionStatus} ConnectionStatus
 * @typedef {import('./room-store.js').RoomSnapshot} RoomSnapshot
 * @typedef {import('./room-store.js').RoomOptions} RoomOptions
 * @typedef {import('./direct-store.js').DirectEntry} DirectEntry
 * @typedef {import('./direct-store.js').DirectSnapshot} DirectSnapshot
 * @typedef {import('./direct-store.js').DirectOptions} DirectOptions
 * @typedef {import('./presence-store.js').PresenceSnapshot} PresenceSnapshot
 */
