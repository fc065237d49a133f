// @ts-check
/**
 * Reconnects (drain with 1012, node restart), offline queue flush, room
 * re-join, token refresh and token expiry, against real wsgate nodes.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startWsgate, signJwt, eventually } from '../helpers/servers.js';
import { connectClient, closeClients, record, waitFor } from '../helpers/clients.js';
import { startProxy } from '../helpers/proxy.js';

const SECRET = 'js-sdk-test-secret';
/** @type {Array<{ stop: () => Promise<any> }>} */
const nodes = [];
after(async () => {
  closeClients();
  await Promise.all(nodes.map((n) => n.stop()));
});

/** @param {Parameters<typeof startWsgate>[0]} [options] */
async function node(options) {
  const started = await startWsgate(options);
  nodes.push(started);
  return started;
}

test('drain (1012): reconnects, re-joins rooms and flushes the offline queue in order', async () => {
  const first = await node({ args: ['--drain-timeout', '1s'] });
  const room = `drain-${process.pid}`;
  const watcher = await node();
  const url = { current: first.wsUrl };
  const alice = await connectClient(() => url.current, { user: 'drain-alice' });
  const bob = await connectClient(watcher.wsUrl, { user: 'drain-bob' });
  const states = record(alice, 'state');
  const joined = record(alice, 'joined');
  await alice.join(room);
  const bobGot = record(bob, 'message');

  await first.stop('SIGTERM');
  const lost = await waitFor(states, (s) => s.state === 'reconnecting', 'reconnecting state');
  assert.equal(lost.code, 1012, 'drain closes with 1012');
  assert.ok((lost.delayMs ?? -1) >= 0 && lost.retryAt !== undefined);
  // Sent while offline: queued, then flushed in order on the next node.
  url.current = watcher.wsUrl;
  const replies = [1, 2, 3].map((i) => alice.send('drain-bob', { i }));
  await eventually(() => alice.state === 'open', { what: 'reconnected', timeoutMs: 15000 });
  const ids = (await Promise.all(replies)).map((r) => r.id);
  await eventually(() => bobGot.length >= 3, { what: 'flushed messages' });
  assert.deepEqual(bobGot.map((m) => m.id), ids);
  assert.deepEqual(bobGot.map((m) => m.content.i), [1, 2, 3]);
  await waitFor(joined, (j) => j.room === room && j.rejoin, 're-join');
  const members = await bob.presence({ room });
  assert.deepEqual(members.members, ['drain-alice']);
});

test('node restart on the same port: reconnects with backoff', async () => {
  const n1 = await node();
  const client = await connectClient(n1.wsUrl, { user: 'restart-user', reconnectMinMs: 200, reconnectMaxMs: 1000 });
  const states = record(client, 'state');
  await n1.stop('SIGKILL');
  await waitFor(states, (s) => s.state === 'reconnecting', 'reconnecting');
  await eventually(() => states.filter((s) => s.state === 'reconnecting').length >= 2, { what: 'a failed retry' });
  await node({ port: n1.port });
  await eventually(() => client.state === 'open', { what: 'reconnected', timeoutMs: 10000 });
  assert.equal((await client.ping()).type, 'pong');
});

test('heartbeat: application pings keep a connection with a short ping interval open', async () => {
  const n1 = await node({ args: ['--ping-interval', '1s', '--pong-timeout', '1s'] });
  const client = await connectClient(n1.wsUrl, { user: 'heartbeat-user', heartbeatMarginMs: 1000 });
  assert.equal(client.welcome?.ping_interval_ms, 1000);
  const disconnects = record(client, 'disconnect');
  await new Promise((r) => setTimeout(r, 3500));
  assert.deepEqual(disconnects, []);
  assert.equal(client.state, 'open');
});

test('heartbeat: a silent (half-open) connection is dropped and replaced', async () => {
  const n1 = await node({ args: ['--ping-interval', '1s', '--pong-timeout', '5s'] });
  const proxy = await startProxy(n1.port);
  try {
    const client = await connectClient(`ws://127.0.0.1:${proxy.port}/ws`, {
      user: 'halfopen-user',
      heartbeatMarginMs: 1000,
      reconnectMinMs: 100,
      reconnectMaxMs: 500,
    });
    const states = record(client, 'state');
    const firstSession = client.welcome?.session;
    proxy.blackhole();
    const dead = await waitFor(states, (s) => s.state === 'reconnecting', 'dead connection noticed');
    assert.equal(dead.code, 4000);
    assert.equal(dead.reason, 'heartbeat timeout');
    proxy.restore();
    await eventually(() => client.state === 'open', { what: 'a new connection', timeoutMs: 10000 });
    assert.notEqual(client.welcome?.session, firstSession);
  } finally {
    await proxy.close();
  }
});

test('token: refreshed before expiry keeps the connection open', async () => {
  const n1 = await node({ anonymous: false, jwtSecret: SECRET });
  /** @type {string[]} */
  const reasons = [];
  const client = await connectClient(n1.wsUrl, {
    token: ({ reason }) => {
      reasons.push(reason);
      return signJwt({ sub: 'refresh-user', exp: Math.floor(Date.now() / 1000) + 4 }, SECRET);
    },
  });
  const disconnects = record(client, 'disconnect');
  const errors = record(client, 'error');
  assert.equal(client.welcome?.user, 'refresh-user');
  await new Promise((r) => setTimeout(r, 6500));
  assert.ok(reasons.includes('refresh'), `refreshed (${reasons})`);
  assert.deepEqual(errors, []);
  assert.deepEqual(disconnects, [], 'no disconnect past the first token expiry');
  assert.equal((await client.ping()).type, 'pong');
});

test('token: a fixed token that expires closes with 1008 and the client stops', async () => {
  const n1 = await node({ anonymous: false, jwtSecret: SECRET });
  const token = signJwt({ sub: 'expiring-user', exp: Math.floor(Date.now() / 1000) + 2 }, SECRET);
  const client = await connectClient(n1.wsUrl, { token });
  const states = record(client, 'state');
  const closed = await waitFor(states, (s) => s.state === 'closed', 'closed after token expiry');
  assert.equal(closed.code, 1008);
  assert.match(closed.reason ?? '', /token|expired/i);
  assert.equal(closed.error?.code, 'auth');
});

test('token: refused upgrade (401) with a JSON body; a token without caps cannot broadcast', async () => {
  const n1 = await node({ anonymous: false, jwtSecret: SECRET });
  const { status, body } = await new Promise((resolve, reject) => {
    const req = http.get(`${n1.base}/ws`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('upgrade', () => reject(new Error('upgraded without a token')));
    req.on('error', reject);
  });
  assert.equal(status, 401);
  const parsed = JSON.parse(body);
  assert.equal(typeof parsed.error, 'string');
  assert.equal(typeof parsed.message, 'string');

  const token = signJwt({ sub: 'plain-user', exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);
  const client = await connectClient(n1.wsUrl, { token });
  await assert.rejects(client.broadcast('no cap'), { code: 'forbidden' });
  const capped = await connectClient(n1.wsUrl, {
    token: signJwt({ sub: 'boss', caps: ['broadcast'], exp: Math.floor(Date.now() / 1000) + 600 }, SECRET),
  });
  assert.equal((await capped.broadcast('ok')).ok, true);
});

test('token rooms claim and max-rooms limit', async () => {
  const n1 = await node({ anonymous: false, jwtSecret: SECRET, args: ['--max-rooms', '2'] });
  const token = signJwt({ sub: 'roomy', rooms: ['team-*'], exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);
  const client = await connectClient(n1.wsUrl, { token });
  await assert.rejects(client.join('other'), { code: 'forbidden' });
  await client.join('team-a');
  await client.join('team-b');
  await assert.rejects(client.join('team-c'), { code: 'too_many_rooms' });
  assert.deepEqual(client.rooms.sort(), ['team-a', 'team-b']);
});
