// @ts-check
/**
 * The reconnect schedule through the client, on node:test fake timers: each
 * delay is the jittered draw of `random` between the floor and a ceiling
 * that doubles per failed attempt up to `reconnectMaxMs`; no dial happens
 * before the delay is over; only a connection that lived `stableAfterMs`
 * starts the schedule over. (`backoff.test.js` checks `backoffDelay` alone.)
 */
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, flush } from '../helpers/fake-socket.js';
import { makeClient } from '../helpers/unit-client.js';

beforeEach(() => {
  FakeWebSocket.reset();
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
});
afterEach(() => {
  mock.timers.reset();
});

const MIN = 100;
const MAX = 1000;

/** A `random` that returns `draws` in turn (then 0.5). @param {number[]} draws */
function sequence(draws) {
  let i = 0;
  return () => (i < draws.length ? draws[i++] : 0.5);
}

/**
 * Fails the current attempt, checks the delay is `expected` and that the
 * next dial comes exactly then (not a millisecond before).
 * @param {any[]} states @param {number} expected @param {number} code
 */
async function failAndWait(states, expected, code = 1006) {
  const dials = FakeWebSocket.instances.length;
  FakeWebSocket.last.serverClose(code);
  const s = states.at(-1);
  assert.equal(s.state, 'reconnecting');
  assert.equal(s.delayMs, expected);
  mock.timers.tick(expected - 1);
  await flush();
  assert.equal(FakeWebSocket.instances.length, dials, `no dial before ${expected} ms`);
  mock.timers.tick(1);
  await flush();
  assert.equal(FakeWebSocket.instances.length, dials + 1, `a dial at ${expected} ms`);
}

test('reconnect delays are jittered draws between the floor and a doubling, capped ceiling', async () => {
  const draws = [0.3, 0.5, 0.25, 1, 0.75, 0, 0.9, 0.1];
  const { client, states } = makeClient({
    reconnectMinMs: MIN,
    reconnectMaxMs: MAX,
    random: sequence(draws),
  });
  void client.connect();
  await flush();
  for (const [attempt, r] of draws.entries()) {
    const ceiling = Math.min(MAX, MIN * 2 ** attempt);
    const expected = Math.round(MIN + r * (ceiling - MIN));
    assert.ok(expected >= MIN && expected <= MAX);
    await failAndWait(states, expected);
  }
  // The drawn delays: attempt 0 waits the floor whatever the draw; the cap
  // holds from the fifth on (1600 > 1000).
  assert.deepEqual(
    states.filter((s) => s.state === 'reconnecting').map((s) => s.delayMs),
    [100, 150, 175, 800, 775, 100, 910, 190],
  );
  client.close();
});

test('a connection shorter than stableAfterMs keeps the schedule; a stable one resets it', async () => {
  const { client, states } = makeClient({
    reconnectMinMs: MIN,
    reconnectMaxMs: MAX,
    stableAfterMs: 5000,
    random: () => 1,
  });
  void client.connect();
  await flush();
  await failAndWait(states, 100);
  await failAndWait(states, 200);
  await failAndWait(states, 400);
  // Open, but dropped before it was stable: the next delay keeps growing.
  FakeWebSocket.last.serverOpen();
  assert.equal(client.state, 'open');
  mock.timers.tick(4999);
  await failAndWait(states, 800, 1012);
  // Open and stable: the schedule starts over at the floor.
  FakeWebSocket.last.serverOpen();
  mock.timers.tick(5000);
  await failAndWait(states, 100, 1012);
  await failAndWait(states, 200);
  client.close();
});
