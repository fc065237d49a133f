// @ts-check
/**
 * Unit-test clients over the fake socket: `makeClient` (not connected yet)
 * and `connected` (welcome done). Tests enable node:test fake timers first.
 */
import { WsgateClient } from '../../src/client.js';
import { FakeWebSocket, flush } from './fake-socket.js';

/** @typedef {import('../../src/client.js').ClientOptions} ClientOptions */

/** @param {ClientOptions} [options] */
export function makeClient(options = {}) {
  const client = new WsgateClient({
    url: 'ws://gw.test/ws',
    user: 'alice',
    WebSocket: FakeWebSocket,
    random: () => 1,
    ...options,
  });
  /** @type {any[]} */
  const states = [];
  client.on('state', (s) => states.push(s));
  return { client, states };
}

/** Connects and completes the welcome. @param {ClientOptions} [options] */
export async function connected(options) {
  const made = makeClient(options);
  const ready = made.client.connect();
  await flush();
  const socket = FakeWebSocket.last;
  socket.serverOpen();
  await ready;
  return { ...made, socket };
}

/**
 * Records every event of `type`.
 * @template {keyof import('../../src/client.js').ClientEvents} K
 * @param {WsgateClient} client
 * @param {K} type
 * @returns {Array<import('../../src/client.js').ClientEvents[K]>}
 */
export function recordEvents(client, type) {
  /** @type {any[]} */
  const seen = [];
  client.on(type, (event) => {
    seen.push(event);
  });
  return seen;
}
