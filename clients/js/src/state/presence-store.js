// @ts-check
/**
 * Whether a user is online, as a UI shows it. The protocol pushes presence
 * only for rooms, so this store asks (`presence({ user })`) when it starts,
 * after every reconnect, and every `intervalMs` while started (one request
 * at a time; a failed ask keeps the last answer and sets `error`).
 */
import { Store } from './store.js';

/**
 * @typedef {object} PresenceSnapshot
 * @property {string} user
 * @property {boolean | undefined} online undefined until the first answer
 * @property {number | undefined} connections
 * @property {boolean} loading an ask is in flight
 * @property {import('../errors.js').WsgateError | undefined} error the last ask's failure
 */

/** @extends {Store<PresenceSnapshot>} */
export class PresenceStore extends Store {
  #client;
  #intervalMs;
  /** @type {Array<() => void>} */
  #offs = [];
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer;

  /**
   * @param {import('../client.js').WsgateClient} client
   * @param {string} user
   * @param {{ intervalMs?: number }} [options] default 30000
   */
  constructor(client, user, options = {}) {
    super({ user, online: undefined, connections: undefined, loading: false, error: undefined });
    this.#client = client;
    this.#intervalMs = options.intervalMs ?? 30000;
    this.refresh = this.refresh.bind(this);
  }

  start() {
    if (this.#offs.length) return;
    this.#offs.push(this.#client.on('welcome', () => void this.refresh()));
    this.#timer = setInterval(() => void this.refresh(), this.#intervalMs);
    if (this.#client.state === 'open') void this.refresh();
  }

  stop() {
    for (const off of this.#offs.splice(0)) off();
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Asks now (no-op while an ask is in flight or offline). */
  async refresh() {
    if (this.get().loading || this.#client.state !== 'open') return;
    this.set({ loading: true });
    try {
      const reply = await this.#client.presence({ user: this.get().user });
      this.set({ online: reply.online === true, connections: reply.connections, loading: false, error: undefined });
    } catch (err) {
      this.set({ loading: false, error: /** @type {any} */ (err) });
    }
  }
}
