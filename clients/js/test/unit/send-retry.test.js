// @ts-check
/**
 * `send` is idempotent (contract 5.2): it always carries a client-chosen id
 * and retries what may or may not have been stored with that same id.
 */
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { InboxFullError, WsgateError } from '../../src/index.js';
import { FakeWebSocket, flush } from '../helpers/fake-socket.js';
import { connected } from '../helpers/unit-client.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

beforeEach(() => {
  FakeWebSocket.reset();
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
});
afterEach(() => {
  mock.timers.reset();
});

/** @param {FakeWebSocket} socket @param {string} code @param {object} [extra] */
function failLastSend(socket, code, extra = {}) {
  const frame = socket.sentOfType('send').at(-1);
  socket.serverSend({ type: 'error', ref: frame.ref, code, message: code, ...extra });
}

test('every send carries a fresh UUID id, or the one given', async () => {
  const { client, socket } = await connected();
  const sends = [client.send('bob', 1), client.send('bob', 2), client.send('bob', 3, { id: '0190a0a0-0000-7000-8000-000000000001' })];
  const ids = socket.sentOfType('send').map((f) => f.id);
  assert.match(ids[0], UUID);
  assert.match(ids[1], UUID);
  assert.notEqual(ids[0], ids[1]);
  assert.equal(ids[2], '0190a0a0-0000-7000-8000-000000000001');
  client.close();
  for (const p of sends) await assert.rejects(p, { code: 'closed' });
});

test('unavailable is retried with the same id after a backoff; duplicate: true resolves', async () => {
  const { client, socket } = await connected({ sendRetryMinMs: 100, sendRetryMaxMs: 1000 });
  const sent = client.send('bob', { text: 'hi' });
  const first = socket.sentOfType('send')[0];
  failLastSend(socket, 'unavailable');
  await flush();
  assert.equal(socket.sentOfType('send').length, 1, 'no retry before the backoff');
  mock.timers.tick(100); // attempt 1 -> minimum delay
  await flush();
  assert.equal(socket.sentOfType('send').length, 2);
  failLastSend(socket, 'unavailable');
  await flush();
  mock.timers.tick(199);
  await flush();
  assert.equal(socket.sentOfType('send').length, 2, 'the delay doubles (random = 1)');
  mock.timers.tick(1);
  await flush();
  const retries = socket.sentOfType('send');
  assert.equal(retries.length, 3);
  for (const f of retries) {
    assert.equal(f.id, first.id);
    assert.deepEqual(f.content, { text: 'hi' });
  }
  assert.notEqual(retries[2].ref, first.ref, 'each attempt is its own request');
  socket.reply('send', { id: first.id, online: true, duplicate: true });
  const reply = await sent;
  assert.equal(reply.id, first.id);
  assert.equal(reply.duplicate, true);
});

test('attempts are bounded: the last error rejects', async () => {
  const { client, socket } = await connected({ sendAttempts: 3, sendRetryMinMs: 10 });
  const sent = client.send('bob', 'x');
  for (let i = 0; i < 3; i++) {
    failLastSend(socket, 'unavailable');
    await flush();
    mock.timers.tick(1000);
    await flush();
  }
  await assert.rejects(sent, { code: 'unavailable' });
  assert.equal(socket.sentOfType('send').length, 3);
});

test('inbox_full rejects at once with InboxFullError', async () => {
  const { client, socket } = await connected();
  const sent = client.send('bob', 'x');
  failLastSend(socket, 'inbox_full');
  await assert.rejects(sent, (/** @type {any} */ err) => {
    assert.ok(err instanceof InboxFullError);
    assert.ok(err instanceof WsgateError);
    assert.equal(err.code, 'inbox_full');
    return true;
  });
  mock.timers.tick(60_000);
  await flush();
  assert.equal(socket.sentOfType('send').length, 1, 'never retried');
});

test('errors that say nothing was done are not retried (bad_request, message_too_large with ref)', async () => {
  const { client, socket } = await connected();
  const a = client.send('bob', 'x');
  failLastSend(socket, 'bad_request');
  await assert.rejects(a, { code: 'bad_request' });
  const b = client.send('bob', 'y');
  failLastSend(socket, 'message_too_large');
  await assert.rejects(b, { code: 'message_too_large' });
  mock.timers.tick(60_000);
  await flush();
  assert.equal(socket.sentOfType('send').length, 2);
});

test('a send whose connection dropped before the reply is sent again after the reconnect, same id', async () => {
  const { client, socket } = await connected();
  const sent = client.send('bob', 'x');
  const id = socket.sentOfType('send')[0].id;
  socket.serverClose(1006);
  await flush();
  mock.timers.tick(250); // the retry's backoff: it waits in the offline queue
  await flush();
  assert.equal(client.queued, 1);
  mock.timers.tick(500); // the reconnect
  await flush();
  const next = FakeWebSocket.last;
  assert.notEqual(next, socket);
  next.serverOpen();
  assert.equal(next.sentOfType('send')[0].id, id);
  next.reply('send', { id, online: false });
  assert.equal((await sent).id, id);
});

test('rate_limited is retried after retry_after_ms', async () => {
  const { client, socket } = await connected({ sendRetryMinMs: 10 });
  const sent = client.send('bob', 'x');
  failLastSend(socket, 'rate_limited', { retry_after_ms: 700 });
  await flush();
  mock.timers.tick(699);
  await flush();
  assert.equal(socket.sentOfType('send').length, 1);
  mock.timers.tick(1);
  await flush();
  assert.equal(socket.sentOfType('send').length, 2);
  socket.reply('send', { id: socket.sentOfType('send')[0].id, online: true });
  await sent;
});

test('close() cancels a send waiting to retry', async () => {
  const { client, socket } = await connected();
  const sent = client.send('bob', 'x');
  failLastSend(socket, 'unavailable');
  await flush();
  client.close();
  await assert.rejects(sent, { code: 'closed' });
  mock.timers.tick(60_000);
  assert.equal(socket.sentOfType('send').length, 1);
});

test('any request rejected by an error carrying its ref rejects, e.g. an oversized publish', async () => {
  const { client, socket } = await connected();
  const p = client.publish('lobby', 'x');
  const ref = socket.sentOfType('publish')[0].ref;
  socket.serverSend({ type: 'error', ref, code: 'message_too_large', message: 'frame over 65536 bytes' });
  await assert.rejects(p, { code: 'message_too_large', message: 'frame over 65536 bytes' });
});
