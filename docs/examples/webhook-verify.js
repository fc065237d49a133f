// Verifies wsgate's X-Wsgate-Signature (docs/webhooks.md). Node 18+, no dependencies.
const crypto = require("crypto");

// True when `header` signs `raw` (the body's exact bytes, a Buffer) under
// `secret`, with a timestamp at most `windowSecs` from now.
function verify(secret, header, raw, windowSecs = 300) {
  const parts = Object.fromEntries((header || "").split(",").map((p) => p.split("=", 2)));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > windowSecs) return false; // replay window
  const want = crypto.createHmac("sha256", secret).update(`${parts.t}.`).update(raw).digest();
  const got = Buffer.from(parts.v1 || "", "hex");
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

module.exports = { verify };

// node webhook-verify.js HEADER BODY_FILE (secret in WSGATE_WEBHOOK_SECRET): exit 0 when valid.
if (require.main === module) {
  const [header, file] = process.argv.slice(2);
  const ok = verify(process.env.WSGATE_WEBHOOK_SECRET, header, require("fs").readFileSync(file));
  console.log(ok ? "valid" : "invalid");
  process.exit(ok ? 0 : 1);
}
