// @ts-check
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../../src/backoff.js';

test('first retry waits the minimum', () => {
  assert.equal(backoffDelay(0, { random: () => 0.99 }), 500);
});

test('ceiling doubles per attempt up to the maximum', () => {
  const top = (/** @type {number} */ n) => backoffDelay(n, { random: () => 1 });
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map(top), [1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000]);
});

test('full jitter: the delay spans the whole range above the floor', () => {
  assert.equal(backoffDelay(5, { random: () => 0 }), 500);
  assert.equal(backoffDelay(5, { random: () => 0.5 }), 500 + 0.5 * (16000 - 500));
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(10);
    assert.ok(d >= 500 && d <= 20000, `${d} in range`);
    seen.add(Math.floor(d / 2000));
  }
  assert.ok(seen.size > 5, 'delays are spread out');
});

test('custom bounds and huge attempt counts', () => {
  assert.equal(backoffDelay(1000, { minMs: 100, maxMs: 3000, random: () => 1 }), 3000);
  assert.equal(backoffDelay(-1, { minMs: 100, maxMs: 3000, random: () => 1 }), 100);
  assert.ok(Number.isFinite(backoffDelay(1e9)));
});
