// @ts-check
/**
 * One room as a UI shows it: its messages (the newest `limit`, each once, in
 * the order received; replayed ones marked `replay`), members and count,
 * who is typing, and the recovery state after reconnects.
 *
 * `start()` joins the room and `stop()` leaves it; joins are counted per
 * client and room, so two components showing one room share the
 * membership: the room is left when the last one stops (a microtask later,
 * so a stop and start in one go, as in React's strict mode, does not leave).
 * A join made before the client connected (a store started before
 * `connect()`), or cut off by a dropped connection, is tried again after the
 * next welcome; one refused (`forbidden`, `too_many_rooms`) sets `error`. Typing users expire
 * `typingMs` after their last `typing` event, or at their next message.
 */
import { appendBounded, Store } from './store.js';

/**
 * @typedef {import('../types.js').Message} Message
 * @typedef {import('../types.js').RecoveryEvent} RecoveryEvent
 * @typedef {import('../types.js').RoomStatus} RoomStatus
 * @typedef {import('../client.js').WsgateClient} WsgateClient
 * @typedef {object} RoomSnapshot
 * @property {string} room
 * @property {RoomStatus | 'error'} status `joining` until the first join reply; `error`: the join failed (see `error`)
 * @property {Message[]} messages the newest `limit`, oldest first
 * @property {string[]} members known members (rooms up to the server's presence-max-members)
 * @property {number | undefined} memberCount users in the room, cluster-wide (at the last join reply, then presence events)
 * @property {string[]} typing users typing now
 * @property {(RecoveryEvent & { recovered: boolean }) | undefined} recovery the last re-join's outcome
 * @property {import('../errors.js').WsgateError | undefined} error
 * @typedef {object} RoomOptions
 * @property {number} [limit] messages kept; default 200
 * @property {number} [typingMs] a typing user expires this long after the event; default 3000
 */

/** Joins per client and room. @type {WeakMap<WsgateClient, Map<string, number>>} */
const joins = new WeakMap();

/** @param {WsgateClient} client @param {string} room @param {number} delta @returns {number} the count after */
function countJoin(client, room, delta) {
  let rooms = joins.get(client);
  if (!rooms) joins.set(client, (rooms = new Map()));
  const n = (rooms.get(room) ?? 0) + delta;
  if (n <= 0) rooms.delete(room);
  else rooms.set(room, n);
  return n;
}

/** @extends {Store<RoomSnapshot>} */
export class RoomStore extends Store {
  #client;
  #limit;
  #typingMs;
  /** @type {Array<() => void>} */
  #offs = [];
  /** @type {Map<string, ReturnType<typeof setTimeout>>} */
  #typingTimers = new Map();
  #runs = 0;

  /**
   * @param {WsgateClient} client
   * @param {string} room
   * @param {RoomOptions} [options]
   */
  constructor(client, room, options = {}) {
    super({
      room,
      status: 'joining',
      messages: [],
      members: [],
      memberCount: undefined,
      typing: [],
      recovery: undefined,
      error: undefined,
    });
    this.#client = client;
    this.#limit = Math.max(1, options.limit ?? 200);
    this.#typingMs = options.typingMs ?? 3000;
    /** Publishes to the room. @param {unknown} content */
    this.publish = (content) => client.publish(room, content);
    /** Tells the room this user is typing (throttled by the client). */
    this.sendTyping = () => client.typing({ room });
  }

  get room() {
    return this.get().room;
  }

  start() {
    if (this.#offs.length) return;
    const client = this.#client;
    const room = this.room;
    this.#offs.push(
      client.on('message', (m) => {
        if (m.kind !== 'room' || m.room !== room) return;
        this.#stopTyping(m.from, false);
        this.set({ messages: appendBounded(this.get().messages, m, this.#limit), typing: this.#typingNow() });
      }),
      client.on('joined', (j) => {
        if (j.room !== room) return;
        const members = j.members.length || j.memberCount === 0 ? j.members : this.get().members;
        this.set({ members, memberCount: j.memberCount ?? members.length, status: client.room(room)?.status ?? 'live', error: undefined });
      }),
      client.on('presence', (p) => {
        if (p.room !== room) return;
        const { members, memberCount } = this.get();
        const has = members.includes(p.user);
        if (p.event === 'join' && !has) {
          this.set({ members: [...members, p.user], memberCount: (memberCount ?? members.length) + 1 });
        } else if (p.event === 'leave' && has) {
          this.#stopTyping(p.user, false);
          this.set({ members: members.filter((u) => u !== p.user), memberCount: Math.max(0, (memberCount ?? members.length) - 1), typing: this.#typingNow() });
        }
      }),
      client.on('typing', (t) => {
        if (t.room !== room || t.from === client.welcome?.user) return;
        clearTimeout(this.#typingTimers.get(t.from));
        this.#typingTimers.set(t.from, setTimeout(() => this.#stopTyping(t.from, true), this.#typingMs));
        this.set({ typing: this.#typingNow() });
      }),
      client.on('recovered', (r) => {
        if (r.room === room) this.set({ recovery: { ...r, recovered: true }, status: 'recovered' });
      }),
      client.on('notRecovered', (r) => {
        if (r.room === room) this.set({ recovery: { ...r, recovered: false }, status: 'not_recovered' });
      }),
      client.on('state', (s) => {
        if (s.state === 'reconnecting' && this.get().status !== 'joining') this.set({ status: 'recovering' });
      }),
    );
    countJoin(client, room, 1);
    this.#join(++this.#runs);
  }

  /**
   * Joins, for the run `run` of start(); a join made before the client
   * connected, or cut off by a dropped connection, is tried again after the
   * next welcome.
   * @param {number} run
   */
  #join(run) {
    this.#client.join(this.room).catch((error) => {
      if (!this.#offs.length || run !== this.#runs) return; // stopped (or restarted) meanwhile
      if (error.code === 'disconnected' || error.code === 'timeout' || error.code === 'not_connected') {
        this.#offs.push(this.#client.once('welcome', () => this.#join(run)));
      } else {
        this.set({ status: 'error', error });
      }
    });
  }

  stop() {
    if (!this.#offs.length) return;
    for (const off of this.#offs.splice(0)) off();
    for (const timer of this.#typingTimers.values()) clearTimeout(timer);
    this.#typingTimers.clear();
    countJoin(this.#client, this.room, -1);
    // Leave a moment later, unless a component (or this one: React's strict
    // mode mounts twice) wants the room again by then.
    queueMicrotask(() => {
      if (countJoin(this.#client, this.room, 0) > 0) return;
      this.#client.leave(this.room).catch(() => {
        // Leaving fails only when the connection is gone, and the server drops the membership with it.
      });
    });
  }

  /** @param {string} user @param {boolean} publish */
  #stopTyping(user, publish) {
    const timer = this.#typingTimers.get(user);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#typingTimers.delete(user);
    if (publish) this.set({ typing: this.#typingNow() });
  }

  #typingNow() {
    return [...this.#typingTimers.keys()];
  }
}
