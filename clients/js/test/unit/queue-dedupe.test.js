// @ts-check
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedQueue } from '../../src/queue.js';
import { RecentIds } from '../../src/dedupe.js';
import { tokenExpiry, refreshDelay } from '../../src/token.js';
import { Emitter } from '../../src/emitter.js';

test('queue keeps order and rejects the newest when full', () => {
  const q = new BoundedQueue(2);
  assert.equal(q.push('a'), undefined);
  assert.equal(q.push('b'), undefined);
  assert.equal(q.push('c'), 'c');
  assert.equal(q.size, 2);
  assert.deepEqual(q.drain(), ['a', 'b']);
  assert.equal(q.size, 0);
});

test('queue can drop the oldest instead', () => {
  const q = new BoundedQueue(2, 'drop-oldest');
  q.push(1);
  q.push(2);
  assert.equal(q.push(3), 1);
  assert.deepEqual(q.drain(), [2, 3]);
});

test('queue remove by predicate', () => {
  const q = new BoundedQueue(5);
  for (const x of [1, 2, 3, 4]) q.push(x);
  assert.deepEqual(q.remove((x) => x % 2 === 0), [2, 4]);
  assert.deepEqual(q.drain(), [1, 3]);
});

test('recent ids: bounded, oldest forgotten first', () => {
  const r = new RecentIds(3);
  assert.equal(r.add('a'), true);
  assert.equal(r.add('a'), false);
  r.add('b');
  r.add('c');
  r.add('a'); // refresh a: now b is the oldest
  r.add('d');
  assert.equal(r.has('b'), false);
  assert.equal(r.has('a'), true);
  assert.equal(r.has('d'), true);
  assert.equal(r.size, 3);
});

/** @param {object} claims */
function jwt(claims) {
  const b64 = (/** @type {object} */ o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.sig`;
}

test('token expiry is read from the JWT payload', () => {
  assert.equal(tokenExpiry(jwt({ sub: 'ü-user', exp: 1700000000 })), 1700000000);
  assert.equal(tokenExpiry(jwt({ sub: 'x' })), undefined);
  assert.equal(tokenExpiry('not a jwt'), undefined);
  assert.equal(tokenExpiry('a.%%%.c'), undefined);
});

test('refresh happens a lead before expiry, or half-way for short tokens', () => {
  const now = 1_000_000;
  assert.equal(refreshDelay(now / 1000 + 3600, now, 60000), 3540000);
  assert.equal(refreshDelay(now / 1000 + 10, now, 60000), 5000);
  assert.equal(refreshDelay(now / 1000 - 10, now, 60000), 0);
});

test('emitter: listeners, once, off, errors as rejected results', async () => {
  /** @type {Emitter<{ x: number }>} */
  const e = new Emitter();
  /** @type {number[]} */
  const got = [];
  const off = e.on('x', (v) => got.push(v));
  e.once('x', (v) => got.push(v * 10));
  e.emit('x', 1);
  e.emit('x', 2);
  off();
  e.emit('x', 3);
  assert.deepEqual(got, [1, 10, 2]);
  e.on('x', () => {
    throw new Error('boom');
  });
  const [result] = e.emit('x', 4);
  await assert.rejects(/** @type {Promise<unknown>} */ (result), /boom/);
});
