// @ts-check
/**
 * A TCP proxy that can turn into a black hole: connections stay open but no
 * byte goes through any more, like a half-open connection after a NAT
 * timeout or a laptop sleep. New connections made while it is a black hole
 * are held too; `restore()` lets new connections through again.
 */
import net from 'node:net';

/** @param {number} targetPort */
export async function startProxy(targetPort) {
  /** @type {Set<net.Socket>} */
  const sockets = new Set();
  let blackhole = false;
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (blackhole) return; // accepted, never answered
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.on('data', (chunk) => {
      if (!blackhole && !(/** @type {any} */ (client)).held) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!blackhole && !(/** @type {any} */ (client)).held) client.write(chunk);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    /** Silences every current connection and holds new ones. */
    blackhole() {
      blackhole = true;
      for (const s of sockets) (/** @type {any} */ (s)).held = true;
    },
    /** New connections go through again (silenced ones stay silent). */
    restore() {
      blackhole = false;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}
