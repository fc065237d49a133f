// @ts-check
/**
 * Two wsgate nodes sharing a redis-server started by the test.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startRedis, startWsgate, eventually } from '../helpers/servers.js';
import { connectClient, closeClients, record, waitFor } from '../helpers/clients.js';
import { WsgateClient } from '../../src/index.js';

/** @type {Awaited<ReturnType<typeof startRedis>>} */
let redis;
/** @type {Awaited<ReturnType<typeof startWsgate>>[]} */
const nodes = [];

before(async () => {
  redis = await startRedis();
  nodes.push(await startWsgate({ redisUrl: redis.url, nodeId: 'js-n1' }));
  nodes.push(await startWsgate({ redisUrl: redis.url, nodeId: 'js-n2' }));
});
after(async () => {
  closeClients();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

describe('cluster over redis', () => {
  test('rooms, presence and direct messages across nodes', async () => {
    const alice = await connectClient(nodes[0].wsUrl, { user: 'c-alice' });
    const bob = await connectClient(nodes[1].wsUrl, { user: 'c-bob' });
    assert.equal(alice.welcome?.node, 'js-n1');
    assert.equal(bob.welcome?.node, 'js-n2');
    const aliceGot = record(alice, 'message');
    const bobGot = record(bob, 'message');
    const presence = record(alice, 'presence');
    const receipts = record(bob, 'receipt');
    await alice.join('c-room');
    const j = await bob.join('c-room');
    assert.deepEqual([...(j.members ?? [])].sort(), ['c-alice', 'c-bob']);
    await waitFor(presence, (p) => p.user === 'c-bob' && p.event === 'join', 'presence across nodes');
    const pub = await bob.publish('c-room', { text: 'from n2' });
    await waitFor(aliceGot, (m) => m.id === pub.id, 'room message across nodes');
    const dm = await bob.send('c-alice', { text: 'direct across nodes' });
    assert.equal(dm.online, true);
    await waitFor(aliceGot, (m) => m.id === dm.id && m.kind === 'direct', 'direct across nodes');
    await waitFor(receipts, (r) => r.id === dm.id, 'receipt across nodes');
    const back = await alice.send('c-bob', 'hi');
    await waitFor(bobGot, (m) => m.id === back.id, 'reply across nodes');
    const who = await alice.presence({ user: 'c-bob' });
    assert.equal(who.online, true);
  });

  test('a message stored through one node is replayed on the other', async () => {
    const sender = await connectClient(nodes[0].wsUrl, { user: 'c-sender' });
    const r1 = await sender.send('c-away', { text: 'while away 1' });
    const r2 = await sender.send('c-away', { text: 'while away 2' });
    assert.equal(r1.online, false);
    const away = new WsgateClient({ url: nodes[1].wsUrl, user: 'c-away', WebSocket: /** @type {any} */ (WebSocket) });
    const got = record(away, 'message');
    await away.connect();
    await eventually(() => got.length >= 2, { what: 'replay on the other node' });
    assert.deepEqual(got.map((m) => [m.id, m.replay]), [[r1.id, true], [r2.id, true]]);
    away.close();
  });
});
