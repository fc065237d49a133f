// A line-driven WebSocket client on Node's `ws` package, for
// tests/compression.rs: `node ws-client.js URL on|off` connects with
// permessage-deflate offered (threshold 0: every message compressed) or not,
// prints one JSON line per event (upgrade, open, message, close, error) and
// sends every stdin line as a text message; the line `BOMB` sends 50 MB of
// spaces, which `ws` deflates to a frame of a few tens of KiB.
const WebSocket = require('ws');
const readline = require('readline');

const [url, deflate] = process.argv.slice(2);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const ws = new WebSocket(url, 'wsgate.v1.json', {
  perMessageDeflate: deflate === 'on' ? { threshold: 0 } : false,
});
ws.on('upgrade', (res) =>
  out({ event: 'upgrade', extensions: res.headers['sec-websocket-extensions'] || null }));
ws.on('open', () => {
  out({ event: 'open', extensions: ws.extensions });
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    ws.send(line === 'BOMB' ? ' '.repeat(50 * 1000 * 1000) : line);
  });
});
ws.on('message', (data) => out({ event: 'message', data: data.toString() }));
ws.on('close', (code) => {
  out({ event: 'close', code });
  process.exit(0);
});
ws.on('error', (e) => out({ event: 'error', message: String(e) }));
