// @ts-check
/**
 * Reads the `exp` claim (seconds since the epoch) of a JWT without verifying
 * it: the client only needs to know when to refresh. Returns undefined for
 * anything that is not a JWT with a numeric `exp`.
 * @param {string} token
 * @returns {number | undefined}
 */
export function tokenExpiry(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims?.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * When to refresh a token that expires at `expSeconds`: `leadMs` before
 * expiry, or half-way through its remaining life if that is shorter.
 * Returns the delay in milliseconds from `nowMs`.
 * @param {number} expSeconds
 * @param {number} nowMs
 * @param {number} leadMs
 */
export function refreshDelay(expSeconds, nowMs, leadMs) {
  const remaining = expSeconds * 1000 - nowMs;
  if (remaining <= 0) return 0;
  return Math.max(0, remaining - Math.min(leadMs, remaining / 2));
}
