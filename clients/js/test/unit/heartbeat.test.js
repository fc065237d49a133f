// @ts-check
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Heartbeat } from '../../src/heartbeat.js';

beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval'] }));
afterEach(() => mock.timers.reset());

function make(intervalMs = 1000, marginMs = 500) {
  const calls = { pings: 0, dead: 0 };
  const hb = new Heartbeat({
    intervalMs,
    marginMs,
    onPing: () => calls.pings++,
    onDead: () => calls.dead++,
  });
  return { hb, calls };
}

test('pings every interval while frames keep arriving', () => {
  const { hb, calls } = make();
  hb.start();
  for (let i = 0; i < 10; i++) {
    mock.timers.tick(1000);
    hb.touch();
  }
  assert.equal(calls.pings, 10);
  assert.equal(calls.dead, 0);
  assert.equal(hb.running, true);
});

test('dead exactly interval + margin after the last frame, once', () => {
  const { hb, calls } = make();
  hb.start();
  mock.timers.tick(700);
  hb.touch();
  mock.timers.tick(1499);
  assert.equal(calls.dead, 0);
  mock.timers.tick(1);
  assert.equal(calls.dead, 1);
  assert.equal(hb.running, false);
  mock.timers.tick(10000);
  assert.equal(calls.dead, 1, 'reported once');
  assert.equal(calls.pings, 2, 'no pings after death');
});

test('stop() cancels everything; touch() after stop does nothing', () => {
  const { hb, calls } = make();
  hb.start();
  hb.stop();
  hb.touch();
  mock.timers.tick(10000);
  assert.deepEqual(calls, { pings: 0, dead: 0 });
});
