// Bytes on the wire of server frames (docs/benchmarks.md, "Compression"): node wire-bytes.js HOST PORT USER on|off MS
// upgrades with permessage-deflate offered (on) or not, joins "lobby", prints each frame's RSV1, opcode and sizes for MS ms.
// Bytes on the wire for one ~1 KB JSON broadcast, with and without permessage-deflate
const net = require('net'); const crypto = require('crypto');
const [host, port, token, ext] = process.argv.slice(2);
const s = net.connect(+port, host, () => {
  const key = crypto.randomBytes(16).toString('base64');
  s.write(`GET /ws?user=${token} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` + (ext === 'on' ? 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n' : '') + '\r\n');
});
let buf = Buffer.alloc(0), head = null;
s.on('data', (d) => { buf = Buffer.concat([buf, d]);
  if (!head) { const i = buf.indexOf('\r\n\r\n'); if (i < 0) return; head = buf.slice(0, i).toString(); buf = buf.slice(i + 4); const j = Buffer.from('{"type":"join","room":"lobby"}'); s.write(Buffer.concat([Buffer.from([0x81, 0x80 | j.length, 0, 0, 0, 0]), j])); console.log(JSON.stringify({ext: (head.match(/sec-websocket-extensions: (.*)/i) || [])[1] || null})); }
  while (buf.length >= 2) { let len = buf[1] & 0x7f, at = 2; if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); at = 4; }
    if (buf.length < at + len) return; const b0 = buf[0]; const payload = buf.slice(at, at + len); buf = buf.slice(at + len);
    console.log(JSON.stringify({rsv1: !!(b0 & 0x40), opcode: b0 & 0xf, frame_bytes: at + len, payload_bytes: len})); }
});
setTimeout(() => process.exit(0), +process.argv[6] || 3000);
