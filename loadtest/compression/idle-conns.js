// docs/benchmarks.md, "Compression": node idle-conns.js PORT N on|off
// Opens N raw WebSocket connections (permessage-deflate offered or not), each joined to "lobby"; reads and discards frames.
const net = require('net');
const [port, n, ext] = process.argv.slice(2);
let open = 0;
for (let i = 0; i < +n; i++) {
  const s = net.connect(+port, '127.0.0.1', () => {
    s.write(`GET /ws?user=m${ext}${i} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` + (ext === 'on' ? 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n' : '') + '\r\n');
  });
  let up = false;
  s.on('data', (d) => { if (!up && d.indexOf('\r\n\r\n') >= 0) { up = true; open++; const j = Buffer.from('{"type":"join","room":"lobby"}'); s.write(Buffer.concat([Buffer.from([0x81, 0x80 | j.length, 0, 0, 0, 0]), j])); if (open === +n) console.log('open', open); } });
  s.on('error', () => {});
}
setInterval(() => {}, 1000);
