// Compiled (not run) against the emitted .d.ts files (types/), the way a
// TypeScript user of @wsgate/client sees them. Checked by scripts/test-js.sh.
import {
  WsgateClient,
  WsgateError,
  InboxFullError,
  msgpackCodec,
  type RecoveryEvent,
  type RoomPosition,
  type ClientOptions,
  type Message,
  type StateChange,
  type Welcome,
} from '../../types/index.js';

const options: ClientOptions = {
  url: () => 'ws://127.0.0.1:8080/ws',
  token: async ({ reason }) => `token-for-${reason}`,
  reconnectMinMs: 500,
  queueOverflow: 'drop-oldest',
  codec: msgpackCodec(
    (value: unknown) => new Uint8Array([value === null ? 0 : 1]),
    (data: Uint8Array) => data[0],
  ),
};

async function main(): Promise<void> {
  const client = new WsgateClient(options);
  const off = client.on('message', async (m: Message) => {
    const where: string | undefined = m.kind === 'room' ? m.room : m.from;
    const offset: number | undefined = m.offset;
    const replayed: boolean | undefined = m.replay;
    void [where, offset, replayed];
  });
  client.on('state', (s: StateChange) => {
    if (s.state === 'reconnecting') console.log(s.delayMs, s.retryAt);
  });
  client.on('receipt', (r) => console.log(r.id, r.by, r.status));
  const welcome: Welcome = await client.connect();
  const joined = await client.join('lobby');
  const members: string[] = joined.members ?? [];
  const position: RoomPosition | undefined = client.room('lobby');
  if (position?.status === 'not_recovered') console.log(position.epoch, position.offset);
  client.on('recovered', (r: RecoveryEvent) => console.log(r.room, r.since, r.offset));
  client.on('notRecovered', (r: RecoveryEvent) => console.log(r.room, r.reason));
  client.on('joined', (j) => console.log(j.memberCount, j.recovered));
  const sent = await client.send('bob', { text: 'hi' }, { id: crypto.randomUUID() });
  const online: boolean = sent.online;
  const duplicate: boolean | undefined = sent.duplicate;
  try {
    await client.send('carol', 'x');
  } catch (err) {
    if (err instanceof InboxFullError) console.log('inbox full', err.code === 'inbox_full');
  }
  client.dropConnection(5000);
  try {
    await client.publish('lobby', 1);
  } catch (err) {
    if (err instanceof WsgateError) console.log(err.code, err.retry_after_ms, err.retryAfterMs);
  }
  client.typing({ room: 'lobby' });
  client.typing({ to: 'bob' });
  off();
  client.close();
  void [welcome.ping_interval_ms, members, online, duplicate];
}
void main;
