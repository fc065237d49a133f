// @ts-check
/**
 * Small helpers shared by the client's modules: promise detection, error
 * text, the size check of an encoded frame, reporting a listener's failure,
 * detaching a socket, and the UUIDs that make a `send` idempotent.
 */

/** @param {unknown} value @returns {value is PromiseLike<unknown>} */
export function isThenable(value) {
  return typeof value === 'object' && value !== null && typeof (/** @type {any} */ (value).then) === 'function';
}

/** @param {unknown} err */
export function errorText(err) {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Whether an encoded frame is over `max` bytes (UTF-8 for text frames).
 * @param {string | Uint8Array} data
 * @param {number} max
 */
export function exceeds(data, max) {
  if (typeof data !== 'string') return data.byteLength > max;
  // A UTF-16 unit is 1 to 3 UTF-8 bytes: encode only when it matters.
  if (data.length * 3 <= max) return false;
  if (data.length > max) return true;
  return new TextEncoder().encode(data).length > max;
}

/** A listener's failure is the app's bug: surface it like an uncaught error. @param {unknown} err */
export function reportLater(err) {
  setTimeout(() => {
    throw err;
  }, 0);
}

/**
 * Stops listening to a socket and closes it: cleanly with `code` when given,
 * else at once (`terminate` in Node's ws; browsers only have `close`).
 * @param {import('./types.js').SocketLike} socket
 * @param {number} [code]
 * @param {string} [reason]
 */
export function detach(socket, code, reason) {
  socket.onmessage = null;
  socket.onclose = null;
  socket.onopen = null;
  socket.onerror = () => {};
  try {
    if (code !== undefined) socket.close(code, reason);
    else if (socket.terminate) socket.terminate();
    else socket.close(4000, reason);
  } catch {
    // nothing to do: it is gone either way
  }
}

/**
 * A random (version 4) UUID: `crypto.randomUUID` where it exists (Node,
 * browsers on https or localhost), else built from `crypto.getRandomValues`
 * (browsers on plain http to another host have only that).
 * @returns {string}
 */
export function randomId() {
  const c = /** @type {Crypto | undefined} */ (globalThis.crypto);
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (typeof c?.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
