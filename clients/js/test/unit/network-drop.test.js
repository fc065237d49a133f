// @ts-check
/**
 * What a network drop looks like from the app: the browser's `offline`
 * event ends the socket at once, `dropConnection(holdMs)` simulates a drop
 * (the demo's button), and the reconnect countdown is in the state events.
 */
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, flush } from '../helpers/fake-socket.js';
import { connected } from '../helpers/unit-client.js';

beforeEach(() => {
  FakeWebSocket.reset();
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
});
afterEach(() => {
  mock.timers.reset();
});

test('the browser offline event drops the socket at once; online reconnects', async () => {
  const target = new EventTarget();
  const g = /** @type {any} */ (globalThis);
  const saved = [g.addEventListener, g.removeEventListener];
  g.addEventListener = target.addEventListener.bind(target);
  g.removeEventListener = target.removeEventListener.bind(target);
  try {
    const { client, socket, states } = await connected();
    const pending = client.publish('lobby', 'x');
    target.dispatchEvent(new Event('offline'));
    assert.equal(socket.terminated, true);
    assert.equal(client.state, 'reconnecting');
    assert.equal(states.at(-1).code, 4004);
    await assert.rejects(pending, { code: 'disconnected' });
    target.dispatchEvent(new Event('online'));
    await flush();
    assert.equal(FakeWebSocket.instances.length, 2);
    client.close();
  } finally {
    [g.addEventListener, g.removeEventListener] = saved;
  }
});

test('dropConnection(holdMs) drops like a network failure and holds the reconnect', async () => {
  const { client, socket, states } = await connected();
  assert.equal(client.dropConnection(3000), true);
  assert.equal(socket.terminated, true, 'no close handshake');
  const s = states.at(-1);
  assert.equal(s.state, 'reconnecting');
  assert.equal(s.code, 4003);
  assert.equal(s.delayMs, 3000);
  assert.equal(s.retryAt, Date.now() + 3000);
  mock.timers.tick(2999);
  await flush();
  assert.equal(FakeWebSocket.instances.length, 1);
  mock.timers.tick(1);
  await flush();
  assert.equal(FakeWebSocket.instances.length, 2);
  FakeWebSocket.last.serverOpen();
  assert.equal(client.state, 'open');
  assert.equal(client.dropConnection(), true);
  mock.timers.tick(1000); // no hold: the usual backoff (second attempt in a row, random = 1)
  await flush();
  assert.equal(FakeWebSocket.instances.length, 3);
  client.close();
  assert.equal(client.dropConnection(), false, 'nothing to drop once closed');
});
