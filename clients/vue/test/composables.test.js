// @ts-check
/**
 * The composables over a client on a fake socket (the SDK's test double),
 * in a real Vue app context and effect scope (no DOM needed), with node:test
 * fake timers: connection state with the countdown, a room (messages once
 * and in order across a recovery, members, typing, status, a reactive room
 * name), direct messages with receipts, presence, and the plugin owning its
 * client.
 */
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { createApp, createRenderer, effectScope, nextTick, ref } from 'vue';
import { WsgateClient } from '@wsgate/client';
import { FakeWebSocket, flush } from '../../js/test/helpers/fake-socket.js';
import { createWsgate, useConnection, useDirectMessages, usePresence, useRoom, useWsgate } from '../src/index.js';

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

async function connectedClient() {
  const client = newClient();
  const ready = client.connect();
  await flush();
  FakeWebSocket.last.serverOpen();
  await ready;
  return { client, socket: FakeWebSocket.last };
}

/**
 * Runs `setup` as a component's setup would: inside the app (inject works)
 * and an effect scope (stopped by `dispose`).
 * @template T
 * @param {import('vue').Plugin} plugin
 * @param {() => T} setup
 */
function withSetup(plugin, setup) {
  const app = createApp({ render: () => null });
  app.use(plugin);
  const scope = effectScope();
  const result = /** @type {T} */ (app.runWithContext(() => scope.run(setup)));
  return { result, dispose: () => scope.stop(), app };
}

test('useConnection: status and the reconnect countdown', async () => {
  const { client, socket } = await connectedClient();
  const { result: c, dispose } = withSetup(createWsgate(client), () => useConnection({ tickMs: 100 }));
  assert.equal(c.status.value, 'online');
  assert.equal(c.user.value, 'alice');
  socket.serverClose(1013, 'slow consumer');
  assert.equal(c.status.value, 'offline');
  assert.equal(c.code.value, 1013);
  assert.equal(c.retryInMs.value, 500);
  mock.timers.tick(200);
  assert.equal(c.retryInMs.value, 300);
  c.reconnectNow();
  assert.equal(c.status.value, 'connecting');
  await flush();
  FakeWebSocket.last.serverOpen();
  assert.equal(c.status.value, 'online');
  dispose();
  client.close();
});

test('useRoom: messages once and in order through a recovery; members, typing, status', async () => {
  const { client, socket } = await connectedClient();
  const { result: r, dispose } = withSetup(createWsgate(client), () => useRoom('lobby'));
  assert.equal(r.status.value, 'joining');
  socket.reply('join', { room: 'lobby', member_count: 2, members: ['alice', 'bob'], epoch: 'e1', offset: 0 });
  assert.equal(r.status.value, 'live');
  assert.deepEqual(r.members.value, ['alice', 'bob']);
  const msg = (/** @type {number} */ offset, extra = {}) => ({ type: 'message', id: `m${offset}`, kind: 'room', from: 'bob', room: 'lobby', content: offset, time: offset, offset, ...extra });
  socket.serverSend({ type: 'typing', from: 'bob', room: 'lobby' });
  assert.deepEqual(r.typing.value, ['bob']);
  mock.timers.tick(3000);
  assert.deepEqual(r.typing.value, [], 'typing expires');
  socket.serverSend(msg(1));
  socket.serverClose(1006);
  assert.equal(r.status.value, 'recovering');
  mock.timers.tick(500);
  await flush();
  const next = FakeWebSocket.last;
  next.serverOpen();
  assert.deepEqual(next.sentOfType('join')[0].since, { epoch: 'e1', offset: 1 });
  next.reply('join', { room: 'lobby', member_count: 2, members: ['alice', 'bob'], epoch: 'e1', offset: 3, recovered: true });
  next.serverSend(msg(2, { replay: true }));
  next.serverSend(msg(3, { replay: true }));
  next.serverSend(msg(3, { replay: true }));
  assert.equal(r.status.value, 'recovered');
  assert.deepEqual(r.messages.value.map((m) => [m.offset, m.replay ?? false]), [[1, false], [2, true], [3, true]]);
  dispose();
  await flush();
  assert.equal(next.sentOfType('leave').length, 1, 'left when the scope ends');
  client.close();
});

test('useRoom: a reactive room name leaves the old room and joins the new one', async () => {
  const { client, socket } = await connectedClient();
  const name = ref('a');
  const { result: r, dispose } = withSetup(createWsgate(client), () => useRoom(name));
  socket.reply('join', { room: 'a', member_count: 1, members: ['alice'], epoch: 'e', offset: 0 });
  assert.equal(r.room.value, 'a');
  name.value = 'b';
  await nextTick();
  await flush();
  assert.equal(r.room.value, 'b');
  assert.deepEqual(socket.sentOfType('join').map((j) => j.room), ['a', 'b']);
  assert.deepEqual(socket.sentOfType('leave').map((j) => j.room), ['a']);
  dispose();
  client.close();
});

test('useDirectMessages: sending -> sent -> delivered; received ones listed and acked', async () => {
  const { client, socket } = await connectedClient();
  const { result: d, dispose } = withSetup(createWsgate(client), () => useDirectMessages({ peer: 'bob' }));
  const sent = d.send('hi');
  const frame = socket.sentOfType('send')[0];
  assert.equal(d.messages.value[0].status, 'sending');
  socket.reply('send', { id: frame.id, online: false });
  await sent;
  assert.equal(d.messages.value[0].status, 'sent');
  assert.equal(d.messages.value[0].online, false);
  socket.serverSend({ type: 'receipt', id: frame.id, by: 'bob', status: 'delivered' });
  assert.equal(d.messages.value[0].status, 'delivered');
  socket.serverSend({ type: 'message', id: 'd1', kind: 'direct', from: 'bob', to: 'alice', content: 'yo', time: 1, replay: true });
  mock.timers.tick(20);
  assert.deepEqual(d.messages.value.map((m) => [m.from, m.status, m.replay ?? false]), [['alice', 'delivered', false], ['bob', 'received', true]]);
  assert.deepEqual(socket.sentOfType('ack').map((a) => a.id), ['d1']);
  dispose();
  client.close();
});

test('usePresence: asks when the scope starts and after reconnects', async () => {
  const { client, socket } = await connectedClient();
  const { result: p, dispose } = withSetup(createWsgate(client), () => usePresence('bob'));
  assert.equal(p.loading.value, true);
  const ask = socket.sentOfType('presence')[0];
  socket.serverSend({ type: 'reply', ok: true, ref: ask.ref, user: 'bob', online: true, connections: 1 });
  await flush();
  assert.equal(p.online.value, true);
  assert.equal(p.loading.value, false);
  dispose();
  client.close();
});

test('the plugin with options owns its client: connects on install, closes on unmount', async () => {
  // A renderer with no DOM: the root component renders nothing; mount and unmount are real.
  const { createApp: createHeadlessApp } = createRenderer({
    createElement: () => ({}),
    createText: () => ({}),
    createComment: () => ({}),
    insert: () => {},
    remove: () => {},
    patchProp: () => {},
    setText: () => {},
    setElementText: () => {},
    parentNode: () => null,
    nextSibling: () => null,
  });
  const plugin = createWsgate({ url: 'ws://gw.test/ws', user: 'alice', WebSocket: FakeWebSocket });
  /** @type {WsgateClient | undefined} */
  let seen;
  const app = createHeadlessApp({
    setup() {
      seen = useWsgate();
      return () => null;
    },
  });
  app.use(plugin);
  app.mount({});
  assert.equal(seen, plugin.client);
  assert.equal(plugin.client.state, 'connecting');
  app.unmount();
  assert.equal(plugin.client.state, 'closed');
});

test('useWsgate without the plugin throws', () => {
  const app = createApp({ render: () => null });
  assert.throws(() => app.runWithContext(() => useWsgate()), /install createWsgate/);
});
