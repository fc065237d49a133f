// @ts-check
/**
 * The connection as a UI shows it: `connecting`, `online`, `offline` (with
 * the reconnect countdown) or `closed`, from the client's `state` events.
 * While offline with a retry scheduled, the snapshot is renewed every
 * `tickMs` so `retryInMs` counts down without the UI running a timer.
 */
import { Store } from './store.js';

/**
 * @typedef {import('../types.js').StateChange} StateChange
 * @typedef {import('../types.js').ConnectionState} ConnectionState
 * @typedef {'idle' | 'connecting' | 'online' | 'offline' | 'closed'} ConnectionStatus
 * @typedef {object} ConnectionSnapshot
 * @property {ConnectionStatus} status `offline`: between attempts, a retry is scheduled
 * @property {ConnectionState} state the SDK's own state
 * @property {number} attempt failed attempts in a row
 * @property {number | undefined} retryAt Date.now() of the next attempt (offline)
 * @property {number | undefined} retryInMs milliseconds until then, renewed every tick (offline)
 * @property {number | undefined} code the last close code
 * @property {string | undefined} reason the last close reason
 * @property {boolean} everOpened whether any connection got a welcome
 * @property {string | undefined} user the user id from the last welcome
 * @property {import('../errors.js').WsgateError | undefined} error why the client stopped (closed)
 */

/** @param {ConnectionState} state @returns {ConnectionStatus} */
function statusOf(state) {
  if (state === 'open') return 'online';
  if (state === 'reconnecting') return 'offline';
  return state;
}

/** @extends {Store<ConnectionSnapshot>} */
export class ConnectionStore extends Store {
  #client;
  #tickMs;
  /** @type {Array<() => void>} */
  #offs = [];
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #ticker;

  /**
   * @param {import('../client.js').WsgateClient} client
   * @param {{ tickMs?: number }} [options] countdown period; default 1000
   */
  constructor(client, options = {}) {
    super({
      status: statusOf(client.state),
      state: client.state,
      attempt: 0,
      retryAt: undefined,
      retryInMs: undefined,
      code: undefined,
      reason: undefined,
      everOpened: client.welcome !== null,
      user: client.welcome?.user,
      error: undefined,
    });
    this.#client = client;
    this.#tickMs = options.tickMs ?? 1000;
    this.reconnectNow = () => client.reconnectNow();
  }

  start() {
    if (this.#offs.length) return;
    const client = this.#client;
    this.#offs.push(client.on('state', (s) => this.#onState(s)));
    // Whatever happened while stopped:
    this.set({ status: statusOf(client.state), state: client.state, user: client.welcome?.user });
  }

  stop() {
    for (const off of this.#offs.splice(0)) off();
    this.#stopTicker();
  }

  /** @param {StateChange} s */
  #onState(s) {
    const retryAt = s.state === 'reconnecting' ? s.retryAt : undefined;
    this.set({
      status: statusOf(s.state),
      state: s.state,
      attempt: s.attempt ?? 0,
      retryAt,
      retryInMs: retryAt === undefined ? undefined : Math.max(0, retryAt - Date.now()),
      code: s.code ?? this.get().code,
      reason: s.reason ?? this.get().reason,
      everOpened: s.everOpened ?? this.get().everOpened,
      user: this.#client.welcome?.user,
      error: s.error,
    });
    if (retryAt === undefined) this.#stopTicker();
    else if (this.#ticker === undefined) {
      this.#ticker = setInterval(() => {
        const at = this.get().retryAt;
        if (at === undefined) return this.#stopTicker();
        this.set({ retryInMs: Math.max(0, at - Date.now()) });
      }, this.#tickMs);
    }
  }

  #stopTicker() {
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }
}
