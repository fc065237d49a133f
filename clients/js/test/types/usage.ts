// Compiled (not run) against the emitted .d.ts files (types/), the way a
// TypeScript user of @wsgate/client sees them. Checked by scripts/test-js.sh.
import {
  WsgateClient,
  WsgateError,
  msgpackCodec,
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
    void where;
  });
  client.on('state', (s: StateChange) => {
    if (s.state === 'reconnecting') console.log(s.delayMs, s.retryAt);
  });
  client.on('receipt', (r) => console.log(r.id, r.by, r.status));
  const welcome: Welcome = await client.connect();
  const joined = await client.join('lobby');
  const members: string[] = joined.members;
  const sent = await client.send('bob', { text: 'hi' });
  const online: boolean = sent.online;
  try {
    await client.publish('lobby', 1);
  } catch (err) {
    if (err instanceof WsgateError) console.log(err.code, err.retry_after_ms, err.retryAfterMs);
  }
  client.typing({ room: 'lobby' });
  client.typing({ to: 'bob' });
  off();
  client.close();
  void [welcome.ping_interval_ms, members, online];
}
void main;
