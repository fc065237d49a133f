// @ts-check
/**
 * Direct messages as a UI shows them: received ones and the ones this UI
 * sent, in one list (the newest `limit`), optionally only those with one
 * peer. A sent message goes `sending` -> `sent` (stored in the recipient's
 * inbox; the SDK retries `unavailable` with the same id) -> `delivered` (the
 * recipient acked it: a `receipt`), or `failed` with the error
 * (`InboxFullError` for a full inbox). Received ones are acked by the SDK
 * once this store has them.
 */
import { randomId } from '../util.js';
import { appendBounded, Store } from './store.js';

/**
 * @typedef {import('../client.js').WsgateClient} WsgateClient
 * @typedef {object} DirectEntry
 * @property {string} id
 * @property {string} from
 * @property {string} to
 * @property {any} content
 * @property {number} time ms since the epoch (the gateway's for received ones, local for sent ones)
 * @property {boolean} outgoing sent by this UI
 * @property {'received' | 'sending' | 'sent' | 'delivered' | 'failed'} status
 * @property {boolean} [replay] received from the inbox replay
 * @property {boolean} [online] sent: whether the recipient was online
 * @property {import('../errors.js').WsgateError} [error] failed: why
 * @typedef {{ messages: DirectEntry[] }} DirectSnapshot
 * @typedef {object} DirectOptions
 * @property {string} [peer] only messages to and from this user
 * @property {number} [limit] messages kept; default 200
 */

/** @extends {Store<DirectSnapshot>} */
export class DirectStore extends Store {
  #client;
  #peer;
  #limit;
  /** @type {Array<() => void>} */
  #offs = [];

  /** @param {WsgateClient} client @param {DirectOptions} [options] */
  constructor(client, options = {}) {
    super({ messages: [] });
    this.#client = client;
    this.#peer = options.peer;
    this.#limit = Math.max(1, options.limit ?? 200);
    this.send = this.send.bind(this);
  }

  start() {
    if (this.#offs.length) return;
    this.#offs.push(
      this.#client.on('message', (m) => {
        if (m.kind !== 'direct' || (this.#peer !== undefined && m.from !== this.#peer)) return;
        if (this.get().messages.some((e) => e.id === m.id)) return;
        /** @type {DirectEntry} */
        const entry = { id: m.id, from: m.from, to: m.to ?? '', content: m.content, time: m.time, outgoing: false, status: 'received', replay: m.replay };
        this.set({ messages: appendBounded(this.get().messages, entry, this.#limit) });
      }),
      this.#client.on('receipt', (r) => this.#update(r.id, { status: 'delivered' })),
    );
  }

  stop() {
    for (const off of this.#offs.splice(0)) off();
  }

  /**
   * Sends a direct message (to the peer when the store has one).
   * @param {unknown} content
   * @param {string} [to] default: the peer
   * @returns {Promise<DirectEntry>} settles as the entry does; never rejects (see `status`, `error`)
   */
  async send(content, to = this.#peer) {
    if (to === undefined) throw new TypeError('send(content, to): no recipient and no peer');
    const id = randomId();
    /** @type {DirectEntry} */
    const entry = { id, from: this.#client.welcome?.user ?? '', to, content, time: Date.now(), outgoing: true, status: 'sending' };
    this.set({ messages: appendBounded(this.get().messages, entry, this.#limit) });
    try {
      const reply = await this.#client.send(to, content, { id });
      const current = this.get().messages.find((e) => e.id === id);
      if (current?.status === 'sending') this.#update(id, { status: 'sent', online: reply.online });
    } catch (err) {
      this.#update(id, { status: 'failed', error: /** @type {any} */ (err) });
    }
    return this.get().messages.find((e) => e.id === id) ?? entry;
  }

  /** @param {string} id @param {Partial<DirectEntry>} changes */
  #update(id, changes) {
    const messages = this.get().messages;
    const i = messages.findIndex((e) => e.id === id && e.outgoing);
    if (i < 0) return;
    const next = messages.slice();
    next[i] = { ...messages[i], ...changes };
    this.set({ messages: next });
  }
}
