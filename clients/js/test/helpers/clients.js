// @ts-check
/** Node-side helpers for integration tests: SDK clients over the `ws` package. */
import WebSocket from 'ws';
import { WsgateClient } from '../../src/index.js';
import { eventually } from './servers.js';

/** @type {Set<WsgateClient>} */
const open = new Set();

/**
 * A connected client (waits for welcome).
 * @param {string | (() => string)} url
 * @param {import('../../src/client.js').ClientOptions} [options]
 */
export async function connectClient(url, options = {}) {
  const client = new WsgateClient({
    url,
    WebSocket: /** @type {any} */ (WebSocket),
    connectTimeoutMs: 5000,
    requestTimeoutMs: 5000,
    ...options,
  });
  open.add(client);
  await client.connect();
  return client;
}

/** Closes every client made by connectClient. */
export function closeClients() {
  for (const client of open) client.close();
  open.clear();
}

/**
 * Records every event of `type` a client emits.
 * @template {keyof import('../../src/client.js').ClientEvents} K
 * @param {WsgateClient} client
 * @param {K} type
 * @returns {Array<import('../../src/client.js').ClientEvents[K]>}
 */
export function record(client, type) {
  /** @type {any[]} */
  const seen = [];
  client.on(type, (event) => {
    seen.push(event);
  });
  return seen;
}

/**
 * Waits until `list` has an element matching `pred` and returns it.
 * @template T
 * @param {T[]} list
 * @param {(item: T) => boolean} pred
 * @param {string} [what]
 * @returns {Promise<T>}
 */
export function waitFor(list, pred, what = 'an event') {
  return /** @type {Promise<T>} */ (eventually(() => list.find(pred), { what, timeoutMs: 8000 }));
}
