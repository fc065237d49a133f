// @ts-check
/**
 * Reconnect delay: exponential backoff with full jitter and a floor.
 *
 * The ceiling doubles with every failed attempt, from `minMs` up to `maxMs`;
 * the delay is drawn uniformly between `minMs` and that ceiling, so clients
 * dropped together (a node drain, a network blip) spread out instead of
 * coming back all at once.
 *
 * attempt 0 -> minMs, attempt 1 -> [minMs, 2 minMs], attempt 2 -> [minMs, 4 minMs], ...
 *
 * @param {number} attempt number of failed attempts before this one (0 = first retry)
 * @param {{ minMs?: number, maxMs?: number, random?: () => number }} [options]
 * @returns {number} milliseconds to wait
 */
export function backoffDelay(attempt, options = {}) {
  const minMs = options.minMs ?? 500;
  const maxMs = Math.max(minMs, options.maxMs ?? 20000);
  const random = options.random ?? Math.random;
  // 2 ** 40 already overflows any sane maxMs; avoid Infinity arithmetic.
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(0, attempt), 40));
  return Math.round(minMs + random() * (ceiling - minMs));
}
