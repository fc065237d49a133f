// @ts-check
/**
 * Room recovery with the real binary (contract 5.4): the SDK remembers
 * {epoch, offset}, re-joins with `since` after a reconnect and gets exactly
 * the messages it missed, once and in order, then live ones; standalone, and
 * across two nodes over Redis (the reconnect lands on the other node). Also
 * what the SDK says when recovery is impossible (history window passed).
 * Prints how long the recovery of 100 messages took (a figure, not a check).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startWsgate } from '../helpers/servers.js';
import { connectClient, closeClients, record, waitFor } from '../helpers/clients.js';

/** 100 messages kept per room; publishers may send fast (the default 20/s would refuse the bursts). */
const HISTORY_ARGS = ['--history-size', '100', '--rate-limit', '5000'];
/** @type {Awaited<ReturnType<typeof startRedis>> | undefined} */
let redis;
/** @type {Awaited<ReturnType<typeof startWsgate>>} */
let single;
/** @type {Awaited<ReturnType<typeof startWsgate>>[]} */
const cluster = [];

before(async () => {
  single = await startWsgate({ args: HISTORY_ARGS });
  redis = await startRedis();
  cluster.push(await startWsgate({ redisUrl: redis.url, nodeId: 'rec-n1', args: HISTORY_ARGS }));
  cluster.push(await startWsgate({ redisUrl: redis.url, nodeId: 'rec-n2', args: HISTORY_ARGS }));
});
after(async () => {
  closeClients();
  await Promise.all([single, ...cluster].map((n) => n?.stop()));
  await redis?.stop();
});

/**
 * Alice stays, Bob drops (dropConnection) and misses `missed` messages, then
 * comes back (to `bobBack`): he must get each missed one once, in order.
 * @param {{ alice: string, bob: string, bobBack: string, room: string, missed: number }} how
 */
async function dropAndRecover(how) {
  const alice = await connectClient(how.alice, { user: `${how.room}-alice` });
  let urls = [how.bob, how.bobBack];
  const bob = await connectClient(() => urls.shift() ?? how.bobBack, { user: `${how.room}-bob`, reconnectMinMs: 50 });
  const got = record(bob, 'message');
  const recovered = record(bob, 'recovered');
  const notRecovered = record(bob, 'notRecovered');
  await alice.join(how.room);
  const joined = await bob.join(how.room);
  assert.equal(typeof joined.epoch, 'string', 'the join reply has the epoch');
  assert.equal(typeof joined.offset, 'number', 'the join reply has the offset');
  await alice.publish(how.room, { n: 0 });
  await waitFor(got, (m) => m.content.n === 0, 'the first message');
  assert.equal(got[0].offset, /** @type {number} */ (joined.offset) + 1);

  bob.dropConnection(60_000); // held offline until reconnectNow()
  for (let n = 1; n <= how.missed; n++) await alice.publish(how.room, { n });
  const started = performance.now();
  bob.reconnectNow();
  await waitFor(recovered, (r) => r.room === how.room, 'recovered');
  await waitFor(got, (m) => m.content.n === how.missed, 'the last missed message');
  const ms = performance.now() - started;
  await alice.publish(how.room, { n: how.missed + 1 });
  await waitFor(got, (m) => m.content.n === how.missed + 1, 'live again');

  assert.deepEqual(notRecovered, []);
  assert.deepEqual(got.map((m) => m.content.n), Array.from({ length: how.missed + 2 }, (_, i) => i), 'each once, in order');
  assert.deepEqual(
    got.map((m) => m.replay === true),
    got.map((_, i) => i >= 1 && i <= how.missed),
    'the missed ones are replays, the others live',
  );
  const offsets = got.map((m) => m.offset);
  assert.deepEqual(offsets, offsets.map((_, i) => /** @type {number} */ (joined.offset) + 1 + i), 'contiguous offsets');
  assert.equal(bob.room(how.room)?.offset, offsets.at(-1));
  console.log(`# recovery of ${how.missed} messages (${how.bob === how.bobBack ? 'same node' : 'other node'}): ${ms.toFixed(0)} ms from reconnectNow to the last replayed message`);
  alice.close();
  bob.close();
}

describe('room recovery against the real binary', () => {
  test('standalone: a reconnect with since gets exactly what was missed', async () => {
    await dropAndRecover({ alice: single.wsUrl, bob: single.wsUrl, bobBack: single.wsUrl, room: 'rec-s', missed: 100 });
  });

  test('cluster: the reconnect lands on the other node and recovers', async () => {
    await dropAndRecover({ alice: cluster[0].wsUrl, bob: cluster[0].wsUrl, bobBack: cluster[1].wsUrl, room: 'rec-c', missed: 100 });
  });

  test('past the history window: notRecovered, no replay, live goes on', async () => {
    const node = single;
    const room = 'rec-old';
    const alice = await connectClient(node.wsUrl, { user: 'old-alice' });
    const bob = await connectClient(node.wsUrl, { user: 'old-bob', reconnectMinMs: 50 });
    const got = record(bob, 'message');
    const notRecovered = record(bob, 'notRecovered');
    await alice.join(room);
    await bob.join(room);
    bob.dropConnection(60_000);
    for (let n = 1; n <= 101; n++) await alice.publish(room, { n }); // one more than --history-size
    bob.reconnectNow();
    const event = await waitFor(notRecovered, (r) => r.room === room, 'notRecovered');
    assert.equal(event.reason, 'too_old');
    await alice.publish(room, { n: 102 });
    await waitFor(got, (m) => m.content.n === 102, 'live after notRecovered');
    assert.deepEqual(got.map((m) => m.content.n), [102], 'no replay');
    assert.equal(bob.room(room)?.status, 'not_recovered');
    alice.close();
    bob.close();
  });
});
