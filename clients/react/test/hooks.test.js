// @ts-check
/**
 * The hooks over a client on a fake socket (the SDK's test double), rendered
 * by real react-dom into happy-dom, with node:test fake timers: connection
 * state with the countdown, a room (messages once and in order across a
 * recovery, members, typing, status), direct messages with receipts, presence,
 * and the provider owning its client.
 */
import './support/dom.js';
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { act, createElement, StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { WsgateClient } from '@wsgate/client';
import { FakeWebSocket, flush } from '../../js/test/helpers/fake-socket.js';
import { WsgateProvider, useConnection, useDirectMessages, usePresence, useRoom, useWsgate } from '../src/index.js';

beforeEach(() => {
  FakeWebSocket.reset();
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
});
afterEach(() => {
  mock.timers.reset();
});

function newClient() {
  return new WsgateClient({ url: 'ws://gw.test/ws', user: 'alice', WebSocket: FakeWebSocket, random: () => 1 });
}

/** Connects a client and completes its welcome. */
async function connectedClient() {
  const client = newClient();
  const ready = client.connect();
  await flush();
  FakeWebSocket.last.serverOpen();
  await ready;
  return { client, socket: FakeWebSocket.last };
}

/**
 * Renders `useHook()` inside a provider (strict mode: effects run twice) and
 * returns a getter of its latest result.
 * @template T
 * @param {() => T} useHook
 * @param {{ client?: WsgateClient, options?: any }} providerProps
 */
async function renderHook(useHook, providerProps) {
  /** @type {{ current: T | undefined }} */
  const result = { current: undefined };
  function Probe() {
    result.current = useHook();
    return null;
  }
  const container = document.createElement('div');
  const root = createRoot(/** @type {any} */ (container));
  await act(async () => {
    root.render(createElement(StrictMode, null, createElement(WsgateProvider, providerProps, createElement(Probe))));
  });
  return {
    get current() {
      return /** @type {T} */ (result.current);
    },
    unmount: () => act(async () => root.unmount()),
  };
}

/** Runs `fn` (server frames, timers) inside act and lets promises settle. @param {() => void} fn */
async function server(fn) {
  await act(async () => {
    fn();
    await flush();
  });
}

test('useConnection: connecting, online, offline with a countdown, online again', async () => {
  const client = newClient();
  const hook = await renderHook(() => useConnection(), { client });
  assert.equal(hook.current.status, 'idle');
  await server(() => void client.connect());
  assert.equal(hook.current.status, 'connecting');
  await server(() => FakeWebSocket.last.serverOpen());
  assert.equal(hook.current.status, 'online');
  assert.equal(hook.current.user, 'alice');
  await server(() => FakeWebSocket.last.serverClose(1012, 'drain'));
  assert.equal(hook.current.status, 'offline');
  assert.equal(hook.current.code, 1012);
  assert.equal(hook.current.retryInMs, 500);
  await server(() => mock.timers.tick(400)); // under a tick: no new snapshot yet
  assert.equal(hook.current.retryInMs, 500);
  await server(() => hook.current.reconnectNow());
  assert.equal(hook.current.status, 'connecting');
  await server(() => FakeWebSocket.last.serverOpen());
  assert.equal(hook.current.status, 'online');
  await hook.unmount();
  client.close();
});

test('useConnection: retryInMs counts down every tick while offline', async () => {
  const { client, socket } = await connectedClient();
  const hook = await renderHook(() => useConnection({ tickMs: 100 }), { client });
  await server(() => socket.serverClose(1006));
  assert.equal(hook.current.retryInMs, 500);
  await server(() => mock.timers.tick(100));
  assert.equal(hook.current.retryInMs, 400);
  await server(() => mock.timers.tick(300));
  assert.equal(hook.current.retryInMs, 100);
  await hook.unmount();
  client.close();
});

test('useRoom: joins, shows members, messages once and in order through a recovery, typing', async () => {
  const { client, socket } = await connectedClient();
  const hook = await renderHook(() => useRoom('lobby'), { client });
  assert.equal(hook.current.status, 'joining');
  assert.ok(socket.sentOfType('join').length >= 1, 'joined on mount');
  await server(() => socket.reply('join', { room: 'lobby', member_count: 2, members: ['alice', 'bob'], epoch: 'e1', offset: 4 }));
  assert.equal(hook.current.status, 'live');
  assert.deepEqual(hook.current.members, ['alice', 'bob']);
  assert.equal(hook.current.memberCount, 2);
  const msg = (/** @type {number} */ offset, extra = {}) => ({ type: 'message', id: `m${offset}`, kind: 'room', from: 'bob', room: 'lobby', content: offset, time: offset, offset, ...extra });
  await server(() => {
    socket.serverSend({ type: 'typing', from: 'bob', room: 'lobby' });
  });
  assert.deepEqual(hook.current.typing, ['bob']);
  await server(() => socket.serverSend(msg(5)));
  assert.deepEqual(hook.current.typing, [], 'a message ends typing');
  await server(() => socket.serverClose(1006));
  assert.equal(hook.current.status, 'recovering');
  await server(() => mock.timers.tick(500));
  const next = FakeWebSocket.last;
  await server(() => next.serverOpen());
  assert.deepEqual(next.sentOfType('join').at(-1).since, { epoch: 'e1', offset: 5 });
  await server(() => {
    next.reply('join', { room: 'lobby', member_count: 2, members: ['alice', 'bob'], epoch: 'e1', offset: 7, recovered: true });
    next.serverSend(msg(5, { replay: true })); // a repeat the server may send: dropped
    next.serverSend(msg(6, { replay: true }));
    next.serverSend(msg(7, { replay: true }));
    next.serverSend(msg(8));
  });
  assert.equal(hook.current.status, 'recovered');
  assert.deepEqual(hook.current.recovery, { room: 'lobby', epoch: 'e1', since: 5, offset: 7, recovered: true });
  assert.deepEqual(hook.current.messages.map((m) => [m.offset, m.replay ?? false]), [[5, false], [6, true], [7, true], [8, false]]);
  await server(() => next.serverSend({ type: 'presence', room: 'lobby', event: 'leave', user: 'bob' }));
  assert.deepEqual(hook.current.members, ['alice']);
  assert.equal(hook.current.memberCount, 1);
  await server(() => void hook.current.publish({ text: 'hi' }).catch(() => {})); // rejected by close() below
  assert.deepEqual(next.sentOfType('publish').at(-1).content, { text: 'hi' });
  await hook.unmount();
  assert.equal(next.sentOfType('leave').length, 1, 'left once on unmount');
  client.close();
});

test('useRoom mounted before the client connects joins after the welcome', async () => {
  const client = newClient();
  const hook = await renderHook(() => useRoom('lobby'), { client });
  await server(() => void client.connect());
  assert.equal(hook.current.status, 'joining', 'not an error: the join waits for the connection');
  const socket = FakeWebSocket.last;
  await server(() => socket.serverOpen());
  assert.equal(socket.sentOfType('join').length, 1);
  await server(() => socket.reply('join', { room: 'lobby', member_count: 1, members: ['alice'], epoch: 'e1', offset: 0 }));
  assert.equal(hook.current.status, 'live');
  await hook.unmount();
  client.close();
});

test('useRoom: notRecovered is shown so the app can refetch', async () => {
  const { client, socket } = await connectedClient();
  const hook = await renderHook(() => useRoom('lobby'), { client });
  await server(() => socket.reply('join', { room: 'lobby', member_count: 1, members: ['alice'], epoch: 'e1', offset: 0 }));
  await server(() => socket.serverClose(1006));
  await server(() => mock.timers.tick(500));
  const next = FakeWebSocket.last;
  await server(() => next.serverOpen());
  await server(() => next.reply('join', { room: 'lobby', member_count: 1, members: ['alice'], epoch: 'e2', offset: 3, recovered: false }));
  assert.equal(hook.current.status, 'not_recovered');
  assert.equal(hook.current.recovery?.reason, 'epoch_changed');
  await hook.unmount();
  client.close();
});

test('useDirectMessages: sent ones go sending -> sent -> delivered; received ones are acked', async () => {
  const { client, socket } = await connectedClient();
  const hook = await renderHook(() => useDirectMessages({ peer: 'bob' }), { client });
  await server(() => void hook.current.send({ text: 'hi' }));
  assert.equal(hook.current.messages[0].status, 'sending');
  const frame = socket.sentOfType('send')[0];
  assert.equal(hook.current.messages[0].id, frame.id, 'the entry has the id the SDK sent');
  await server(() => socket.reply('send', { id: frame.id, online: true }));
  assert.equal(hook.current.messages[0].status, 'sent');
  await server(() => socket.serverSend({ type: 'receipt', id: frame.id, by: 'bob', status: 'delivered' }));
  assert.equal(hook.current.messages[0].status, 'delivered');
  await server(() => {
    socket.serverSend({ type: 'message', id: 'd1', kind: 'direct', from: 'bob', to: 'alice', content: 'yo', time: 1 });
    socket.serverSend({ type: 'message', id: 'd2', kind: 'direct', from: 'carol', to: 'alice', content: 'not shown', time: 2 });
    mock.timers.tick(20);
  });
  assert.deepEqual(hook.current.messages.map((m) => [m.from, m.status]), [['alice', 'delivered'], ['bob', 'received']]);
  assert.deepEqual(socket.sentOfType('ack').map((a) => a.ids ?? [a.id]).flat(), ['d1', 'd2']);
  await server(() => void hook.current.send('full?'));
  const second = socket.sentOfType('send').at(-1);
  await server(() => socket.serverSend({ type: 'error', ref: second.ref, code: 'inbox_full', message: 'full' }));
  const failed = hook.current.messages.at(-1);
  assert.equal(failed?.status, 'failed');
  assert.equal(failed?.error?.name, 'InboxFullError');
  await hook.unmount();
  client.close();
});

test('usePresence: asks on mount and after each reconnect', async () => {
  const { client, socket } = await connectedClient();
  const hook = await renderHook(() => usePresence('bob'), { client });
  const asked = socket.sentOfType('presence');
  assert.ok(asked.length >= 1);
  await server(() => socket.serverSend({ type: 'reply', ok: true, ref: asked.at(-1).ref, user: 'bob', online: true, connections: 2 }));
  assert.equal(hook.current.online, true);
  assert.equal(hook.current.connections, 2);
  await server(() => socket.serverClose(1006));
  await server(() => mock.timers.tick(500));
  const next = FakeWebSocket.last;
  await server(() => next.serverOpen());
  const again = next.sentOfType('presence');
  assert.equal(again.length, 1);
  await server(() => next.serverSend({ type: 'reply', ok: true, ref: again[0].ref, user: 'bob', online: false, connections: 0 }));
  assert.equal(hook.current.online, false);
  await hook.unmount();
  client.close();
});

test('the provider with options owns its client: connects on mount, closes on unmount', async () => {
  const hook = await renderHook(() => useWsgate(), {
    options: { url: 'ws://gw.test/ws', user: 'alice', WebSocket: FakeWebSocket },
  });
  const client = hook.current;
  assert.equal(client.state, 'connecting');
  await hook.unmount();
  assert.equal(client.state, 'closed');
});

test('useWsgate outside a provider throws', () => {
  function Bare() {
    useWsgate();
    return null;
  }
  const root = createRoot(/** @type {any} */ (document.createElement('div')));
  const errors = [];
  const original = console.error;
  console.error = (...args) => errors.push(args);
  try {
    assert.throws(() => act(() => root.render(createElement(Bare))), /no <WsgateProvider>/);
  } finally {
    console.error = original;
  }
});
