// @ts-check
/**
 * Room history positions and recovery (contract 5.4): the client remembers
 * {epoch, offset} per room, re-joins with `since` after every reconnect,
 * tells the app whether it recovered, and drops repeats by offset.
 */
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSocket, flush } from '../helpers/fake-socket.js';
import { connected, recordEvents } from '../helpers/unit-client.js';

beforeEach(() => {
  FakeWebSocket.reset();
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
});
afterEach(() => {
  mock.timers.reset();
});

/** @param {string} room @param {number} offset @param {object} [extra] */
function roomMessage(room, offset, extra = {}) {
  return { type: 'message', id: `m${offset}`, kind: 'room', from: 'bob', room, content: offset, time: 1, offset, ...extra };
}

/** Joins `room` at the given position. @param {import('../../src/client.js').WsgateClient} client @param {FakeWebSocket} socket */
async function joinAt(client, socket, room = 'lobby', epoch = 'e1', offset = 0) {
  const joined = client.join(room);
  socket.reply('join', { room, member_count: 2, members: ['alice', 'bob'], epoch, offset });
  return joined;
}

/** Drops the socket and completes the reconnect; returns the new socket. @param {FakeWebSocket} socket */
async function reconnect(socket) {
  socket.serverClose(1006);
  mock.timers.tick(20_000);
  await flush();
  const next = FakeWebSocket.last;
  assert.notEqual(next, socket);
  next.serverOpen();
  return next;
}

test('the join reply sets the position; room messages advance it and expose their offset', async () => {
  const { client, socket } = await connected();
  const messages = recordEvents(client, 'message');
  const reply = await joinAt(client, socket, 'lobby', 'e1', 7);
  assert.equal(reply.epoch, 'e1');
  assert.deepEqual(client.room('lobby'), { room: 'lobby', epoch: 'e1', offset: 7, status: 'live' });
  socket.serverSend(roomMessage('lobby', 8));
  socket.serverSend(roomMessage('lobby', 9));
  assert.deepEqual(messages.map((m) => m.offset), [8, 9]);
  assert.equal(client.room('lobby')?.offset, 9);
  assert.equal(client.room('elsewhere'), undefined);
});

test('repeats by offset are dropped (emitted as duplicate); out-of-order offsets fill the holes', async () => {
  const { client, socket } = await connected();
  const messages = recordEvents(client, 'message');
  const duplicates = recordEvents(client, 'duplicate');
  await joinAt(client, socket, 'lobby', 'e1', 0);
  for (const o of [1, 3, 2, 2, 1, 3, 4]) socket.serverSend(roomMessage('lobby', o));
  assert.deepEqual(messages.map((m) => m.offset), [1, 3, 2, 4]);
  assert.deepEqual(duplicates.map((m) => m.offset), [2, 1, 3]);
  assert.equal(client.room('lobby')?.offset, 4);
});

test('the set of offsets past a hole is bounded by roomWindow', async () => {
  const { client, socket } = await connected({ roomWindow: 3 });
  const messages = recordEvents(client, 'message');
  await joinAt(client, socket, 'lobby', 'e1', 0);
  for (const o of [2, 3, 4]) socket.serverSend(roomMessage('lobby', o));
  assert.equal(client.room('lobby')?.offset, 0, 'offset 1 still missing');
  socket.serverSend(roomMessage('lobby', 5)); // a fourth past the hole: the hole is given up
  assert.equal(client.room('lobby')?.offset, 5);
  socket.serverSend(roomMessage('lobby', 1)); // too late: below the position now
  assert.deepEqual(messages.map((m) => m.offset), [2, 3, 4, 5]);
});

test('after a reconnect the room is re-joined with since; recovered: true replays the gap once', async () => {
  const { client, socket } = await connected();
  const messages = recordEvents(client, 'message');
  const recovered = recordEvents(client, 'recovered');
  const notRecovered = recordEvents(client, 'notRecovered');
  const joined = recordEvents(client, 'joined');
  await joinAt(client, socket, 'lobby', 'e1', 10);
  socket.serverSend(roomMessage('lobby', 11));
  socket.serverSend(roomMessage('lobby', 13)); // 12 crossed it on the way, then the network dropped
  const next = await reconnect(socket);
  const rejoin = next.sentOfType('join')[0];
  assert.deepEqual(rejoin.since, { epoch: 'e1', offset: 11 });
  assert.equal(client.room('lobby')?.status, 'recovering');
  // The reply and the replay arrive in one read: the replay is judged against the reply.
  next.reply('join', { room: 'lobby', member_count: 2, epoch: 'e1', offset: 15, recovered: true });
  for (const o of [12, 13, 14, 15]) next.serverSend(roomMessage('lobby', o, { replay: true }));
  next.serverSend(roomMessage('lobby', 16));
  assert.deepEqual(messages.map((m) => [m.offset, m.replay ?? false]), [
    [11, false],
    [13, false],
    [12, true],
    [14, true],
    [15, true],
    [16, false],
  ]);
  assert.deepEqual(recovered, [{ room: 'lobby', epoch: 'e1', since: 11, offset: 15 }]);
  assert.deepEqual(notRecovered, []);
  assert.equal(joined.at(-1)?.recovered, true);
  assert.equal(joined.at(-1)?.rejoin, true);
  assert.deepEqual(client.room('lobby'), { room: 'lobby', epoch: 'e1', offset: 16, status: 'recovered' });
});

test('recovery works again and again: each re-join resumes from the latest position', async () => {
  const { client, socket } = await connected();
  const recovered = recordEvents(client, 'recovered');
  await joinAt(client, socket, 'lobby', 'e1', 0); // never got a message there: since offset 0
  let current = socket;
  for (let round = 0; round < 3; round++) {
    current = await reconnect(current);
    const since = current.sentOfType('join')[0].since;
    assert.deepEqual(since, { epoch: 'e1', offset: round * 2 });
    current.reply('join', { room: 'lobby', epoch: 'e1', offset: round * 2 + 2, recovered: true });
    current.serverSend(roomMessage('lobby', round * 2 + 1, { replay: true }));
    current.serverSend(roomMessage('lobby', round * 2 + 2, { replay: true }));
  }
  assert.deepEqual(recovered.map((r) => [r.since, r.offset]), [[0, 2], [2, 4], [4, 6]]);
});

test('recovered: false restarts at the reply and emits notRecovered with the reason', async () => {
  const { client, socket } = await connected();
  const messages = recordEvents(client, 'message');
  const notRecovered = recordEvents(client, 'notRecovered');
  await joinAt(client, socket, 'a', 'e1', 5);
  await joinAt(client, socket, 'b', 'e1', 5);
  const next = await reconnect(socket);
  const [ja, jb] = next.sentOfType('join');
  next.serverSend({ type: 'reply', ok: true, ref: ja.ref, room: 'a', epoch: 'e2', offset: 3, recovered: false });
  next.serverSend({ type: 'reply', ok: true, ref: jb.ref, room: 'b', epoch: 'e1', offset: 400, recovered: false });
  assert.deepEqual(notRecovered, [
    { room: 'a', epoch: 'e2', since: 5, offset: 3, reason: 'epoch_changed' },
    { room: 'b', epoch: 'e1', since: 5, offset: 400, reason: 'too_old' },
  ]);
  assert.deepEqual(client.room('a'), { room: 'a', epoch: 'e2', offset: 3, status: 'not_recovered' });
  next.serverSend(roomMessage('a', 4)); // the new epoch's offsets are not repeats
  next.serverSend(roomMessage('b', 399)); // before the new position: dropped
  next.serverSend(roomMessage('b', 401));
  assert.deepEqual(messages.map((m) => [m.room, m.offset]), [['a', 4], ['b', 401]]);
});

test('a server without room history: no since, and every re-join says notRecovered (unsupported)', async () => {
  const { client, socket } = await connected();
  const messages = recordEvents(client, 'message');
  const notRecovered = recordEvents(client, 'notRecovered');
  const joined = client.join('lobby');
  socket.reply('join', { room: 'lobby', members: ['alice'] });
  await joined;
  socket.serverSend({ type: 'message', id: 'x', kind: 'room', from: 'bob', room: 'lobby', content: 1, time: 1 });
  assert.equal(messages.length, 1, 'messages without offset pass');
  const next = await reconnect(socket);
  assert.equal(next.sentOfType('join')[0].since, undefined);
  next.reply('join', { room: 'lobby', members: ['alice'] });
  assert.deepEqual(notRecovered, [{ room: 'lobby', epoch: undefined, since: undefined, offset: undefined, reason: 'unsupported' }]);
});

test('leave forgets the position: a later join starts fresh, without since', async () => {
  const { client, socket } = await connected();
  await joinAt(client, socket, 'lobby', 'e1', 5);
  const left = client.leave('lobby');
  socket.reply('leave', { room: 'lobby' });
  await left;
  assert.equal(client.room('lobby'), undefined);
  const next = await reconnect(socket);
  assert.equal(next.sentOfType('join').length, 0, 'nothing to re-join');
  await joinAt(client, next, 'lobby', 'e1', 9);
  assert.equal(next.sentOfType('join')[0].since, undefined);
  assert.equal(client.room('lobby')?.offset, 9);
});

test('a failed re-join forgets the room and reports it', async () => {
  const { client, socket } = await connected();
  const errors = recordEvents(client, 'error');
  await joinAt(client, socket, 'lobby', 'e1', 5);
  const next = await reconnect(socket);
  const ref = next.sentOfType('join')[0].ref;
  next.serverSend({ type: 'error', ref, code: 'forbidden', message: 'room not allowed' });
  await flush();
  assert.equal(client.room('lobby'), undefined);
  assert.equal(errors[0]?.code, 'forbidden');
  assert.match(errors[0]?.message ?? '', /re-join of lobby failed/);
});

test('a live message of a new epoch restarts the position and says notRecovered', async () => {
  const { client, socket } = await connected();
  const messages = recordEvents(client, 'message');
  const notRecovered = recordEvents(client, 'notRecovered');
  await joinAt(client, socket, 'lobby', 'e1', 40);
  socket.serverSend(roomMessage('lobby', 41, { epoch: 'e1' }));
  socket.serverSend(roomMessage('lobby', 1, { epoch: 'e2' })); // history lost: offsets start again
  socket.serverSend(roomMessage('lobby', 2, { epoch: 'e2' }));
  socket.serverSend(roomMessage('lobby', 2, { epoch: 'e2' }));
  assert.deepEqual(messages.map((m) => [m.epoch, m.offset]), [['e1', 41], ['e2', 1], ['e2', 2]]);
  assert.deepEqual(notRecovered, [{ room: 'lobby', epoch: 'e2', since: 41, offset: 1, reason: 'epoch_changed' }]);
  assert.deepEqual(client.room('lobby'), { room: 'lobby', epoch: 'e2', offset: 2, status: 'not_recovered' });
});
