// @ts-check
/**
 * The SDK in Node against a real standalone wsgate node.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { encode, decode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { startWsgate, eventually } from '../helpers/servers.js';
import { connectClient, closeClients, record, waitFor } from '../helpers/clients.js';
import { msgpackCodec } from '../../src/index.js';

/** @type {Awaited<ReturnType<typeof startWsgate>>} */
let node;
let n = 0;
/** A user id unique to this run. @param {string} name */
const uid = (name) => `${name}-${process.pid}-${++n}`;

before(async () => {
  node = await startWsgate();
});
after(async () => {
  closeClients();
  await node?.stop();
});

describe('standalone node', () => {
  test('welcome carries the contract fields', async () => {
    const alice = uid('alice');
    const client = await connectClient(node.wsUrl, { user: alice });
    const w = client.welcome;
    assert.ok(w);
    assert.equal(w.type, 'welcome');
    assert.equal(w.user, alice);
    assert.equal(w.protocol, 'wsgate.v1');
    assert.equal(typeof w.session, 'string');
    assert.equal(typeof w.node, 'string');
    assert.ok(w.ping_interval_ms > 0, 'ping_interval_ms');
    assert.ok(w.max_message_bytes > 0, 'max_message_bytes');
    const pong = await client.ping();
    assert.equal(pong.type, 'pong');
  });

  test('rooms: join, presence, publish, leave', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const room = uid('room');
    const ca = await connectClient(node.wsUrl, { user: a });
    const cb = await connectClient(node.wsUrl, { user: b });
    const presence = record(ca, 'presence');
    const messages = record(ca, 'message');
    const j1 = await ca.join(room);
    assert.equal(j1.ok, true);
    assert.equal(j1.room, room);
    assert.deepEqual(j1.members, [a]);
    const j2 = await cb.join(room);
    assert.deepEqual([...(j2.members ?? [])].sort(), [a, b].sort());
    await waitFor(presence, (p) => p.event === 'join' && p.user === b && p.room === room, 'presence join');
    const p = await cb.presence({ room });
    assert.deepEqual([...p.members].sort(), [a, b].sort());
    const sent = await cb.publish(room, { text: 'hi room', n: [1, 2] });
    assert.equal(typeof sent.id, 'string');
    const m = await waitFor(messages, (m) => m.id === sent.id, 'room message');
    assert.equal(m.kind, 'room');
    assert.equal(m.room, room);
    assert.equal(m.from, b);
    assert.deepEqual(m.content, { text: 'hi room', n: [1, 2] });
    assert.equal(typeof m.time, 'number');
    const left = await cb.leave(room);
    assert.equal(left.ok, true);
    await waitFor(presence, (p) => p.event === 'leave' && p.user === b, 'presence leave');
    await assert.rejects(cb.publish(room, 'not a member'), { code: 'forbidden' });
  });

  test('direct messages: reply, delivery, auto-ack, receipt', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const ca = await connectClient(node.wsUrl, { user: a });
    const cb = await connectClient(node.wsUrl, { user: b });
    const receipts = record(ca, 'receipt');
    const got = record(cb, 'message');
    const reply = await ca.send(b, { text: 'psst' });
    assert.equal(reply.online, true);
    const m = await waitFor(got, (m) => m.id === reply.id, 'direct message');
    assert.equal(m.kind, 'direct');
    assert.equal(m.from, a);
    assert.equal(m.to, b);
    assert.equal(m.replay ?? false, false);
    const r = await waitFor(receipts, (r) => r.id === reply.id, 'receipt');
    assert.deepEqual({ by: r.by, status: r.status }, { by: b, status: 'delivered' });
    const pres = await ca.presence({ user: b });
    assert.equal(pres.online, true);
    assert.equal(pres.connections, 1);
  });

  test('offline inbox: replayed once on connect, not again after the ack', async () => {
    const [a, c] = [uid('a'), uid('c')];
    const ca = await connectClient(node.wsUrl, { user: a });
    /** @type {string[]} */
    const ids = [];
    for (const text of ['one', 'two', 'three']) {
      const reply = await ca.send(c, { text });
      assert.equal(reply.online, false);
      ids.push(reply.id);
    }
    const receipts = record(ca, 'receipt');
    // Connect with the listener attached before the welcome.
    const { WsgateClient } = await import('../../src/index.js');
    const cc = new WsgateClient({ url: node.wsUrl, user: c, WebSocket: /** @type {any} */ (WebSocket) });
    const got = record(cc, 'message');
    await cc.connect();
    await eventually(() => got.length >= 3, { what: 'replay' });
    assert.deepEqual(got.map((m) => m.id), ids, 'in order, once each');
    assert.ok(got.every((m) => m.replay === true), 'replay: true');
    assert.deepEqual(got.map((m) => m.content.text), ['one', 'two', 'three']);
    await eventually(() => receipts.length >= 3, { what: 'receipts after ack' });
    cc.close();
    const again = new WsgateClient({ url: node.wsUrl, user: c, WebSocket: /** @type {any} */ (WebSocket) });
    const got2 = record(again, 'message');
    await again.connect();
    await again.ping();
    await new Promise((r) => setTimeout(r, 500));
    again.close();
    assert.deepEqual(got2, [], 'acked messages are not replayed');
  });

  test('typing to a user and to a room', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const room = uid('room');
    const ca = await connectClient(node.wsUrl, { user: a });
    const cb = await connectClient(node.wsUrl, { user: b });
    await ca.join(room);
    await cb.join(room);
    const typing = record(cb, 'typing');
    assert.equal(ca.typing({ to: b }), true);
    await waitFor(typing, (t) => t.from === a && t.to === b, 'direct typing');
    assert.equal(ca.typing({ room }), true);
    await waitFor(typing, (t) => t.from === a && t.room === room, 'room typing');
  });

  test('errors reject with the contract codes', async () => {
    const client = await connectClient(node.wsUrl, { user: uid('e') });
    await assert.rejects(client.join('not a valid room!'), { code: 'bad_request' });
    await assert.rejects(client.publish(uid('room'), 'x'), { code: 'forbidden' });
    assert.equal(client.state, 'open');
  });

  test('broadcast reaches every connection (anonymous users may broadcast)', async () => {
    const ca = await connectClient(node.wsUrl, { user: uid('a') });
    const cb = await connectClient(node.wsUrl, { user: uid('b') });
    const got = record(cb, 'message');
    const sent = await ca.broadcast({ text: 'to all' });
    const m = await waitFor(got, (m) => m.id === sent.id, 'broadcast');
    assert.equal(m.kind, 'broadcast');
  });

  /**
   * 45 pings at once against the default 20/s (burst 40): a few are refused
   * with rate_limited (fewer than the 10 errors that close the connection).
   */
  async function flood() {
    const client = await connectClient(node.wsUrl, { user: uid('fast'), requestTimeoutMs: 1500 });
    const errors = record(client, 'error');
    const results = await Promise.allSettled(Array.from({ length: 45 }, () => client.ping()));
    return { client, errors, results };
  }

  test('rate limiting: rate_limited errors with retry_after_ms, connection stays open', async () => {
    const { client, errors, results } = await flood();
    const rejected = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    const limited = [...errors, ...rejected].filter((e) => e.code === 'rate_limited');
    assert.ok(limited.length > 0, 'some pings are rate limited');
    assert.ok(limited.every((e) => typeof e.retry_after_ms === 'number' && e.retry_after_ms > 0));
    assert.equal(client.state, 'open');
  });

  test('rate limiting: the refused request itself rejects (error echoes its ref)', async () => {
    const { results } = await flood();
    const rejected = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    assert.ok(rejected.length > 0 && rejected.every((e) => e.code === 'rate_limited'), `${rejected.map((e) => e.code)}`);
  });

  test('msgpack subprotocol', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const codec = msgpackCodec(encode, /** @type {any} */ (decode));
    const ca = await connectClient(node.wsUrl, { user: a, codec });
    const cb = await connectClient(node.wsUrl, { user: b });
    const got = record(cb, 'message');
    const gotA = record(ca, 'message');
    const reply = await ca.send(b, { text: 'packed', list: [1, 2, 3], nested: { ok: true } });
    const m = await waitFor(got, (m) => m.id === reply.id, 'msgpack-sent message');
    assert.deepEqual(m.content, { text: 'packed', list: [1, 2, 3], nested: { ok: true } });
    const back = await cb.send(a, { text: 'json to msgpack' });
    const m2 = await waitFor(gotA, (m) => m.id === back.id, 'message on msgpack connection');
    assert.deepEqual(m2.content, { text: 'json to msgpack' });
  });
});
