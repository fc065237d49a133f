// @ts-check
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { WsgateClient } from '../../src/client.js';
import { FakeWebSocket, flush } from '../helpers/fake-socket.js';

/** @typedef {import('../../src/client.js').ClientOptions} ClientOptions */

beforeEach(() => {
  FakeWebSocket.reset();
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
});
afterEach(() => {
  mock.timers.reset();
});

/** @param {ClientOptions} [options] */
function makeClient(options = {}) {
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
async function connected(options) {
  const made = makeClient(options);
  const ready = made.client.connect();
  await flush();
  const socket = FakeWebSocket.last;
  socket.serverOpen();
  await ready;
  return { ...made, socket };
}

test('connects with the user, the subprotocol and gets the welcome', async () => {
  const { client, socket, states } = await connected();
  assert.equal(socket.url, 'ws://gw.test/ws?user=alice');
  assert.deepEqual(socket.protocols, ['wsgate.v1.json']);
  assert.equal(client.state, 'open');
  assert.equal(client.welcome?.user, 'alice');
  assert.deepEqual(states.map((s) => s.state), ['connecting', 'open']);
});

test('requests resolve with the reply matched by ref', async () => {
  const { client, socket } = await connected();
  const joined = client.join('lobby');
  const sent = client.send('bob', { text: 'hi' });
  assert.deepEqual(socket.sent.map((f) => f.type), ['join', 'send']);
  assert.notEqual(socket.sent[0].ref, socket.sent[1].ref);
  socket.reply('send', { id: 'm1', online: true });
  socket.reply('join', { room: 'lobby', members: ['alice', 'bob'] });
  assert.deepEqual(await sent, { type: 'reply', ok: true, ref: socket.sent[1].ref, id: 'm1', online: true });
  assert.deepEqual((await joined).members, ['alice', 'bob']);
  assert.deepEqual(client.rooms, ['lobby']);
});

test('errors reject with code, message and retry_after_ms', async () => {
  const { client, socket } = await connected();
  const p = client.publish('lobby', 'x');
  const ref = socket.sentOfType('publish')[0].ref;
  socket.serverSend({ type: 'error', ref, code: 'rate_limited', message: 'slow down', retry_after_ms: 250 });
  await assert.rejects(p, (/** @type {any} */ err) => {
    assert.equal(err.code, 'rate_limited');
    assert.equal(err.message, 'slow down');
    assert.equal(err.retry_after_ms, 250);
    assert.equal(err.retryAfterMs, 250);
    return true;
  });
});

test('an error without ref is emitted, not thrown', async () => {
  const { client, socket } = await connected();
  /** @type {any[]} */
  const errors = [];
  client.on('error', (e) => errors.push(e));
  socket.serverSend({ type: 'error', code: 'bad_request', message: 'bad json' });
  assert.equal(errors[0].code, 'bad_request');
});

test('requests time out', async () => {
  const { client } = await connected({ requestTimeoutMs: 3000 });
  const p = client.presence({ room: 'lobby' });
  mock.timers.tick(3001);
  await assert.rejects(p, { code: 'timeout' });
});

test('ping resolves with the pong; never queued while offline', async () => {
  const { client, socket } = await connected();
  const p = client.ping();
  socket.serverSend({ type: 'pong', ref: socket.sentOfType('ping')[0].ref });
  assert.equal((await p).type, 'pong');
  socket.serverClose(1006);
  await assert.rejects(client.ping(), { code: 'not_connected' });
});

test('heartbeat: app ping every interval, dead after interval + margin of silence', async () => {
  const { client, socket, states } = await connected({ heartbeatMarginMs: 5000 });
  socket.serverSend({ type: 'presence', room: 'r', event: 'join', user: 'x' }); // any frame counts
  mock.timers.tick(25000);
  assert.equal(socket.sentOfType('ping').length, 1);
  assert.equal(socket.sentOfType('ping')[0].ref, undefined);
  socket.serverSend({ type: 'pong' });
  mock.timers.tick(25000);
  assert.equal(socket.sentOfType('ping').length, 2);
  assert.equal(client.state, 'open', 'frames keep it alive');
  socket.serverSend({ type: 'pong' });
  // Now the server goes silent: dead at 30 s after the last frame.
  mock.timers.tick(29000);
  assert.equal(client.state, 'open');
  mock.timers.tick(1000);
  assert.equal(client.state, 'reconnecting');
  assert.equal(socket.terminated, true);
  assert.equal(states.at(-1).code, 4000);
  assert.equal(states.at(-1).reason, 'heartbeat timeout');
  // It reconnects after the backoff.
  mock.timers.tick(500);
  await flush();
  assert.equal(FakeWebSocket.instances.length, 2);
});

test('heartbeat uses the ping interval from welcome', async () => {
  const made = makeClient({ heartbeatMarginMs: 1000 });
  void made.client.connect();
  await flush();
  FakeWebSocket.last.serverOpen({ ping_interval_ms: 2000 });
  mock.timers.tick(2000);
  assert.equal(FakeWebSocket.last.sentOfType('ping').length, 1);
  mock.timers.tick(1000);
  assert.equal(made.client.state, 'reconnecting');
});

test('no welcome within the connect timeout is a failed attempt', async () => {
  const { client } = makeClient({ connectTimeoutMs: 4000 });
  void client.connect();
  await flush();
  mock.timers.tick(4000);
  assert.equal(client.state, 'reconnecting');
  assert.equal(FakeWebSocket.instances[0].terminated, true);
});

test('reconnect backoff grows with failed attempts, resets after a stable connection', async () => {
  const { client, states } = makeClient();
  void client.connect();
  /** @type {number[]} */
  const delays = [];
  for (let i = 0; i < 7; i++) {
    await flush();
    FakeWebSocket.last.serverClose(1006);
    const s = states.at(-1);
    assert.equal(s.state, 'reconnecting');
    assert.equal(s.everOpened, false);
    assert.equal(s.retryAt, Date.now() + s.delayMs);
    delays.push(s.delayMs);
    mock.timers.tick(s.delayMs);
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16000, 20000]);
  await flush();
  FakeWebSocket.last.serverOpen();
  mock.timers.tick(6000);
  FakeWebSocket.last.serverClose(1012, 'draining');
  assert.equal(states.at(-1).delayMs, 500, 'backoff reset after a stable connection');
  assert.equal(states.at(-1).code, 1012);
  assert.equal(client.state, 'reconnecting');
});

test('1012 and 1013 reconnect; a user close() does not', async () => {
  for (const code of [1012, 1013, 1011, 1000]) {
    const { client, socket } = await connected();
    socket.serverClose(code);
    assert.equal(client.state, 'reconnecting', `after ${code}`);
    client.close();
  }
  const { client, socket, states } = await connected();
  client.close();
  assert.deepEqual(socket.closedWith, { code: 1000, reason: 'client closed' });
  assert.equal(client.state, 'closed');
  assert.equal(states.at(-1).state, 'closed');
  mock.timers.tick(60000);
  assert.equal(FakeWebSocket.instances.length, 5);
});

test('1008 for an expired token asks the token provider again', async () => {
  /** @type {string[]} */
  const reasons = [];
  const { client, socket } = await connected({
    user: undefined,
    token: ({ reason }) => {
      reasons.push(reason);
      return `tok${reasons.length}`;
    },
  });
  assert.equal(socket.url, 'ws://gw.test/ws?token=tok1');
  socket.serverClose(1008, 'token expired');
  assert.equal(client.state, 'reconnecting');
  mock.timers.tick(500);
  await flush();
  assert.deepEqual(reasons, ['connect', 'rejected']);
  assert.equal(FakeWebSocket.last.url, 'ws://gw.test/ws?token=tok2');
});

test('1008 auth with a fixed token stops with an auth error; other 1008 reconnect', async () => {
  const a = await connected({ user: undefined, token: 'fixed' });
  a.socket.serverClose(1008, 'token expired');
  assert.equal(a.client.state, 'closed');
  assert.equal(a.states.at(-1).error.code, 'auth');
  const b = await connected();
  b.socket.serverClose(1008, 'too many protocol errors');
  assert.equal(b.client.state, 'reconnecting');
});

test('offline queue: sends wait, flush in order after welcome and re-joins', async () => {
  const { client, socket } = await connected();
  const joined = client.join('lobby');
  socket.reply('join', { room: 'lobby', members: ['alice'] });
  await joined;
  socket.serverClose(1006);
  const a = client.send('bob', 1);
  const b = client.publish('lobby', 2);
  const c = client.send('bob', 3);
  assert.equal(client.queued, 3);
  mock.timers.tick(500);
  await flush();
  const next = FakeWebSocket.last;
  assert.notEqual(next, socket);
  assert.equal(next.sent.length, 0, 'nothing before welcome');
  /** @type {any[]} */
  const rejoins = [];
  client.on('joined', (j) => rejoins.push(j));
  next.serverOpen();
  assert.deepEqual(
    next.sent.map((f) => [f.type, f.room ?? f.to, f.content]),
    [
      ['join', 'lobby', undefined],
      ['send', 'bob', 1],
      ['publish', 'lobby', 2],
      ['send', 'bob', 3],
    ],
  );
  next.reply('join', { room: 'lobby', members: ['alice', 'bob'] });
  assert.deepEqual(rejoins, [{ room: 'lobby', members: ['alice', 'bob'], memberCount: undefined, rejoin: true, recovered: false }]);
  for (const f of next.sent.slice(1)) next.serverSend({ type: 'reply', ok: true, ref: f.ref, id: `id-${f.content}` });
  assert.deepEqual((await Promise.all([a, b, c])).map((r) => r.id), ['id-1', 'id-2', 'id-3']);
});

test('offline queue overflow is reported', async () => {
  const { client, socket } = await connected({ queueLimit: 2 });
  socket.serverClose(1006);
  /** @type {any[]} */
  const overflows = [];
  client.on('queue_overflow', (o) => overflows.push(o));
  const kept = [client.send('bob', 1), client.send('bob', 2)];
  await assert.rejects(client.send('bob', 3), { code: 'queue_full' });
  assert.equal(overflows.length, 1);
  assert.equal(overflows[0].frame.content, 3);
  client.close();
  for (const p of kept) await assert.rejects(p, { code: 'closed' });
});

test('in-flight requests reject with disconnected when the socket drops', async () => {
  const { client, socket } = await connected();
  const p = client.publish('lobby', 'x');
  socket.serverClose(1006);
  await assert.rejects(p, { code: 'disconnected' });
});

test('leave while offline forgets the room and cancels a queued join', async () => {
  const { client, socket } = await connected();
  const j = client.join('a');
  socket.reply('join', { room: 'a', members: [] });
  await j;
  socket.serverClose(1006);
  const queuedJoin = client.join('b');
  assert.deepEqual(await client.leave('a'), { ok: true, room: 'a' });
  await client.leave('b');
  await assert.rejects(queuedJoin, { code: 'cancelled' });
  mock.timers.tick(500);
  await flush();
  FakeWebSocket.last.serverOpen();
  assert.equal(FakeWebSocket.last.sent.length, 0);
});

/** @param {string} id @param {object} [extra] */
function direct(id, extra = {}) {
  return { type: 'message', id, kind: 'direct', from: 'bob', to: 'alice', content: id, time: 1, ...extra };
}

test('direct messages are acked after the handler, in batches', async () => {
  const { client, socket } = await connected();
  /** @type {string[]} */
  const got = [];
  client.on('message', (m) => {
    got.push(m.id);
  });
  socket.serverSend(direct('m1'));
  socket.serverSend(direct('m2'));
  assert.deepEqual(got, ['m1', 'm2']);
  assert.equal(socket.sentOfType('ack').length, 0, 'batched');
  mock.timers.tick(20);
  assert.deepEqual(socket.sentOfType('ack'), [{ type: 'ack', ids: ['m1', 'm2'] }]);
  socket.serverSend(direct('m3'));
  mock.timers.tick(20);
  assert.deepEqual(socket.sentOfType('ack').at(-1), { type: 'ack', id: 'm3' });
});

test('room messages are not acked', async () => {
  const { client, socket } = await connected();
  client.on('message', () => {});
  socket.serverSend({ type: 'message', id: 'r1', kind: 'room', room: 'lobby', from: 'bob', content: 1, time: 1 });
  mock.timers.tick(100);
  assert.equal(socket.sentOfType('ack').length, 0);
});

test('async handlers: ack when the promise resolves, none when it rejects', async () => {
  const { client, socket } = await connected();
  /** @type {Record<string, (v?: any) => void>} */
  const settle = {};
  /** @type {any[]} */
  const errors = [];
  client.on('error', (e) => errors.push(e));
  client.on('message', (m) => new Promise((resolve, reject) => {
    settle[`ok-${m.id}`] = resolve;
    settle[`fail-${m.id}`] = reject;
  }));
  socket.serverSend(direct('m1'));
  socket.serverSend(direct('m2'));
  mock.timers.tick(100);
  assert.equal(socket.sentOfType('ack').length, 0);
  // A replayed copy while the handler still runs is dropped, not acked.
  socket.serverSend(direct('m1', { replay: true }));
  settle['ok-m1']();
  settle['fail-m2'](new Error('db down'));
  await flush();
  mock.timers.tick(20);
  assert.deepEqual(socket.sentOfType('ack'), [{ type: 'ack', id: 'm1' }]);
  assert.equal(errors[0].code, 'handler_failed');
  // m2 was not acked: its replay is delivered again.
  let calls = 0;
  client.on('message', () => {
    calls++;
  });
  socket.serverSend(direct('m2', { replay: true }));
  assert.equal(calls, 1);
});

test('duplicates are dropped but acked again', async () => {
  const { client, socket } = await connected();
  /** @type {any[]} */
  const got = [];
  /** @type {any[]} */
  const dups = [];
  client.on('message', (m) => {
    got.push(m);
  });
  client.on('duplicate', (m) => dups.push(m.id));
  socket.serverSend(direct('m1'));
  mock.timers.tick(20);
  socket.serverClose(1006);
  mock.timers.tick(500);
  await flush();
  const next = FakeWebSocket.last;
  next.serverOpen();
  next.serverSend(direct('m1', { replay: true }));
  next.serverSend(direct('m2', { replay: true }));
  mock.timers.tick(20);
  assert.deepEqual(got.map((m) => m.id), ['m1', 'm2']);
  assert.deepEqual(dups, ['m1']);
  assert.deepEqual(next.sentOfType('ack'), [{ type: 'ack', ids: ['m1', 'm2'] }]);
});

test('manual acks', async () => {
  const { client, socket } = await connected({ autoAck: false });
  /** @type {string[]} */
  const got = [];
  client.on('message', (m) => {
    got.push(m.id);
  });
  socket.serverSend(direct('m1'));
  mock.timers.tick(100);
  assert.equal(socket.sentOfType('ack').length, 0);
  socket.serverSend(direct('m1', { replay: true }));
  assert.deepEqual(got, ['m1']);
  client.ack('m1');
  mock.timers.tick(20);
  assert.deepEqual(socket.sentOfType('ack'), [{ type: 'ack', id: 'm1' }]);
});

test('no message listener: not acked (it will be replayed)', async () => {
  const { socket } = await connected();
  socket.serverSend(direct('m1'));
  mock.timers.tick(100);
  assert.equal(socket.sentOfType('ack').length, 0);
});

test('typing is throttled per target and dropped while offline', async () => {
  const { client, socket } = await connected({ typingThrottleMs: 2000 });
  assert.equal(client.typing({ room: 'lobby' }), true);
  assert.equal(client.typing({ room: 'lobby' }), false);
  assert.equal(client.typing({ to: 'bob' }), true);
  mock.timers.tick(2000);
  assert.equal(client.typing({ room: 'lobby' }), true);
  assert.deepEqual(socket.sentOfType('typing'), [
    { type: 'typing', room: 'lobby' },
    { type: 'typing', to: 'bob' },
    { type: 'typing', room: 'lobby' },
  ]);
  socket.serverClose(1006);
  assert.equal(client.typing({ to: 'bob' }), false);
});

test('events: presence, typing, receipt', async () => {
  const { client, socket } = await connected();
  /** @type {any[]} */
  const seen = [];
  client.on('presence', (e) => seen.push(e.type));
  client.on('typing', (e) => seen.push(e.type));
  client.on('receipt', (e) => seen.push(e.type));
  socket.serverSend({ type: 'presence', room: 'r', event: 'join', user: 'bob' });
  socket.serverSend({ type: 'typing', from: 'bob', room: 'r' });
  socket.serverSend({ type: 'receipt', id: 'm1', by: 'bob', status: 'delivered' });
  socket.serverSend({ type: 'something_new' });
  assert.deepEqual(seen, ['presence', 'typing', 'receipt']);
});

/** @param {number} exp */
function jwt(exp) {
  const b64 = (/** @type {object} */ o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256' })}.${b64({ sub: 'alice', exp })}.sig`;
}

test('token refresh before expiry', async () => {
  let n = 0;
  const { socket } = await connected({
    user: undefined,
    refreshLeadMs: 60000,
    token: () => jwt(Date.now() / 1000 + 3600 * ++n),
  });
  assert.equal(socket.sentOfType('refresh').length, 0);
  // Keep the connection alive (pongs) through the hour.
  for (let t = 0; t < 3600 * 1000 - 60000; t += 20000) {
    mock.timers.tick(20000);
    socket.serverSend({ type: 'pong' });
  }
  await flush();
  const [refresh] = socket.sentOfType('refresh');
  assert.equal(refresh.token.split('.').length, 3);
  socket.reply('refresh');
  await flush();
});

test('a refresh reply that lists rooms left drops them from the rooms re-joined', async () => {
  let n = 0;
  const { client, socket } = await connected({
    user: undefined,
    refreshLeadMs: 60000,
    token: () => jwt(Date.now() / 1000 + 3600 * ++n),
  });
  for (const room of ['team-a', 'lobby']) {
    const joined = client.join(room);
    await flush();
    socket.reply('join', { room, member_count: 1, members: ['alice'], epoch: 'e', offset: 0 });
    await joined;
  }
  assert.deepEqual(client.rooms.sort(), ['lobby', 'team-a']);
  for (let t = 0; t < 3600 * 1000 - 60000; t += 20000) {
    mock.timers.tick(20000);
    socket.serverSend({ type: 'pong' });
  }
  await flush();
  socket.reply('refresh', { left: ['team-a'] });
  await flush();
  assert.deepEqual(client.rooms, ['lobby']);
});

test('close() before any welcome rejects connect() and stops dialing', async () => {
  const { client } = makeClient();
  const ready = client.connect();
  await flush();
  client.close();
  await assert.rejects(ready, { code: 'closed' });
  mock.timers.tick(60000);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test('requests before connect() reject with not_connected', async () => {
  const { client } = makeClient();
  await assert.rejects(client.send('bob', 1), { code: 'not_connected' });
});

test('close() from a state listener stops the reconnect', async () => {
  const { client } = makeClient();
  client.on('state', (s) => {
    if (s.state === 'reconnecting') client.close();
  });
  void client.connect();
  await flush();
  FakeWebSocket.last.serverClose(1006);
  assert.equal(client.state, 'closed');
  mock.timers.tick(60000);
  await flush();
  assert.equal(FakeWebSocket.instances.length, 1);
});

test('close() from a welcome listener wins over the open state', async () => {
  const { client, states } = makeClient();
  client.on('welcome', () => client.close());
  void client.connect();
  await flush();
  FakeWebSocket.last.serverOpen();
  assert.equal(client.state, 'closed');
  assert.equal(states.at(-1).state, 'closed');
});

test('connect() without a WebSocket implementation or url throws', () => {
  assert.throws(() => new WsgateClient({ url: 'ws://x/ws' }).connect(), /WebSocket implementation/);
  assert.throws(() => new WsgateClient({ WebSocket: FakeWebSocket }).connect(), /no url/);
});

test('url may be a function, called for every connection', async () => {
  let n = 0;
  const { client } = makeClient({ url: () => `ws://node${++n}.test/ws` });
  void client.connect();
  await flush();
  FakeWebSocket.last.serverClose(1006);
  mock.timers.tick(500);
  await flush();
  assert.deepEqual(FakeWebSocket.instances.map((s) => s.url), ['ws://node1.test/ws?user=alice', 'ws://node2.test/ws?user=alice']);
});

test('frames that cannot be encoded or are too large reject before sending', async () => {
  const { client, socket } = await connected();
  await assert.rejects(client.send('bob', { n: 1n }), { code: 'bad_request' });
  await assert.rejects(client.publish('lobby', 'x'.repeat(70000)), { code: 'message_too_large' });
  assert.equal(socket.sent.length, 0);
  assert.equal(client.state, 'open');
});

test('a message resets the typing throttle of its target', async () => {
  const { client } = await connected({ typingThrottleMs: 2000 });
  assert.equal(client.typing({ room: 'lobby' }), true);
  void client.publish('lobby', 'done typing').catch(() => {});
  assert.equal(client.typing({ room: 'lobby' }), true);
  assert.equal(client.typing({ to: 'bob' }), true);
  void client.send('bob', 'x').catch(() => {});
  assert.equal(client.typing({ to: 'bob' }), true);
  client.close();
});

test('the browser online event skips the backoff wait', async () => {
  const target = new EventTarget();
  const g = /** @type {any} */ (globalThis);
  const saved = [g.addEventListener, g.removeEventListener];
  g.addEventListener = target.addEventListener.bind(target);
  g.removeEventListener = target.removeEventListener.bind(target);
  try {
    const { client } = await connected();
    FakeWebSocket.last.serverClose(1006);
    assert.equal(FakeWebSocket.instances.length, 1);
    target.dispatchEvent(new Event('online'));
    await flush();
    assert.equal(FakeWebSocket.instances.length, 2);
    client.close();
    target.dispatchEvent(new Event('online'));
    await flush();
    assert.equal(FakeWebSocket.instances.length, 2);
  } finally {
    [g.addEventListener, g.removeEventListener] = saved;
  }
});
