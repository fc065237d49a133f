// @ts-check
/**
 * Room memberships and their history positions: which rooms this client is
 * in, where it is in each room's history, and the recovery after a
 * reconnect (contract section 5.4).
 *
 * How it works:
 * - A join reply carries the room's `epoch` and `offset` (its last message's
 *   offset, 0 before any): that is where the client starts. Every room
 *   message carries its `offset`; `offset` in the position is the highest
 *   offset up to which every message was received (or predates the join).
 * - Offsets above it that arrived out of order (messages of two nodes can
 *   cross on the way) are kept in a set of at most `roomWindow` per room; a
 *   message whose offset is at or below the position, or in that set, is a
 *   repeat and is dropped. Past the bound the oldest hole is given up (the
 *   position jumps to the lowest offset held): memory stays bounded.
 * - After every reconnect each room is re-joined with `since: {epoch,
 *   offset}`. `recovered: true`: the reply is followed by the missed messages
 *   (`replay: true`), the position stays and fills up as they arrive;
 *   `recovered` is emitted. `recovered: false` (new epoch, or the window does
 *   not reach back): the position restarts at the reply's, and `notRecovered`
 *   is emitted so the app refetches. A room with no known position, or a
 *   server without room history, also gets `notRecovered`.
 * - A live message of another epoch than the room's (the history was lost
 *   while connected) restarts the position at it and emits `notRecovered`.
 * - The position is updated synchronously when the reply is read, so the
 *   replay that follows it in the same read is judged against it.
 */
import { WsgateError } from './errors.js';

/**
 * @typedef {import('./types.js').Message} Message
 * @typedef {import('./types.js').JoinReply} JoinReply
 * @typedef {import('./types.js').RoomStatus} RoomStatus
 * @typedef {import('./types.js').RoomPosition} RoomPosition
 * @typedef {import('./types.js').RecoveryEvent} RecoveryEvent
 * @typedef {import('./types.js').EmitFn} EmitFn
 * @typedef {import('./requests.js').RequestOptions} RequestOptions
 * @typedef {import('./types.js').Frame} Frame
 * @typedef {object} RoomsLink what rooms need from the client
 * @property {(frame: Frame, options?: RequestOptions) => Promise<any>} request queued while offline
 * @property {(frame: Frame, options?: RequestOptions) => Promise<any>} dispatchNow sent at once (re-joins, before the queue)
 * @property {(predicate: (frame: Frame) => boolean, error: WsgateError) => void} cancelQueued
 * @property {() => boolean} online
 * @property {EmitFn} emit
 * @property {number} window
 */

class Room {
  /** @type {string | undefined} */
  epoch;
  /** @type {number | undefined} */
  offset;
  /** Offsets received above `offset` (holes below them). @type {Set<number>} */
  ahead = new Set();
  /** @type {RoomStatus} */
  status = 'live';

  /** Starts at the reply's position. @param {JoinReply} reply */
  reset(reply) {
    this.epoch = typeof reply.epoch === 'string' ? reply.epoch : undefined;
    this.offset = typeof reply.offset === 'number' ? reply.offset : undefined;
    this.ahead.clear();
  }

  /**
   * Records a message's offset; false if it is a repeat.
   * @param {number} offset
   * @param {number} window
   */
  accept(offset, window) {
    if (this.offset === undefined) {
      this.offset = offset; // no position (an older server's join): start here
      return true;
    }
    if (offset <= this.offset || this.ahead.has(offset)) return false;
    this.ahead.add(offset);
    if (this.ahead.size > window) this.offset = Math.min(...this.ahead) - 1; // give up the oldest hole
    while (this.ahead.delete(this.offset + 1)) this.offset += 1;
    return true;
  }
}

export class Rooms {
  /** @type {Map<string, Room>} */
  #rooms = new Map();
  /** @type {RoomsLink} */
  #link;

  /** @param {RoomsLink} link */
  constructor(link) {
    this.#link = link;
  }

  /** The rooms this client is in (joined; a first join in flight is not listed). */
  get names() {
    return [...this.#rooms.keys()];
  }

  /**
   * Where this client is in a room's history.
   * @param {string} room
   * @returns {RoomPosition | undefined}
   */
  position(room) {
    const entry = this.#rooms.get(room);
    if (!entry) return undefined;
    return { room, epoch: entry.epoch, offset: entry.offset, status: entry.status };
  }

  /**
   * @param {string} room
   * @returns {Promise<JoinReply>}
   */
  join(room) {
    return this.#link.request(
      { type: 'join', room },
      {
        onReply: (/** @type {JoinReply} */ reply) => {
          // Joining a room already joined keeps its position: messages may be on the way.
          if (!this.#rooms.has(room)) {
            const entry = new Room();
            entry.reset(reply);
            entry.status = 'live';
            this.#rooms.set(room, entry);
          }
          this.#joined(room, reply, false);
          return reply;
        },
      },
    );
  }

  /**
   * @param {string} room
   * @returns {Promise<{ ok: true, room: string }>}
   */
  async leave(room) {
    this.#rooms.delete(room);
    this.#link.cancelQueued(
      (frame) => frame.type === 'join' && frame.room === room,
      new WsgateError('cancelled', `join of ${room} cancelled by leave`),
    );
    if (!this.#link.online()) return { ok: true, room };
    return this.#link.request({ type: 'leave', room });
  }

  /**
   * Rooms the server left for this client (a `refresh` reply's `left`: the
   * new token no longer allows them); they are not re-joined on reconnect.
   * @param {string[]} rooms
   */
  forget(rooms) {
    for (const room of rooms) this.#rooms.delete(room);
  }

  /**
   * A room message: false if it is a repeat (by offset) to drop.
   * @param {Message} message
   */
  accept(message) {
    const room = message.room;
    const entry = room === undefined ? undefined : this.#rooms.get(room);
    if (!entry || room === undefined || typeof message.offset !== 'number') return true;
    if (typeof message.epoch === 'string' && entry.epoch !== undefined && message.epoch !== entry.epoch) {
      // The room's history was lost while we were live (e.g. a Redis restart
      // without persistence): offsets start again. Whatever fell in between
      // cannot be replayed.
      /** @type {RecoveryEvent} */
      const event = { room, epoch: message.epoch, since: entry.offset, offset: message.offset, reason: 'epoch_changed' };
      entry.epoch = message.epoch;
      entry.offset = message.offset;
      entry.ahead.clear();
      entry.status = 'not_recovered';
      this.#link.emit('notRecovered', event);
      return true;
    }
    return entry.accept(message.offset, this.#link.window);
  }

  /** A new connection is open: re-join every room, resuming where it was. */
  rejoinAll() {
    for (const [room, entry] of this.#rooms) this.#rejoin(room, entry);
  }

  /** @param {string} room @param {Room} entry */
  #rejoin(room, entry) {
    const since = entry.epoch !== undefined && entry.offset !== undefined ? { epoch: entry.epoch, offset: entry.offset } : undefined;
    entry.status = 'recovering';
    const frame = since ? { type: 'join', room, since } : { type: 'join', room };
    this.#link
      .dispatchNow(frame, {
        onReply: (/** @type {JoinReply} */ reply) => {
          if (this.#rooms.get(room) !== entry) return; // left meanwhile
          /** @type {RecoveryEvent} */
          const event = { room, epoch: entry.epoch, since: since?.offset, offset: reply.offset };
          if (since && reply.recovered === true) {
            entry.status = 'recovered';
            this.#joined(room, reply, true);
            this.#link.emit('recovered', event);
            return;
          }
          /** @type {RecoveryEvent['reason']} */
          let reason = 'unsupported';
          if (typeof reply.epoch === 'string') {
            if (!since) reason = 'no_position';
            else reason = reply.epoch === since.epoch ? 'too_old' : 'epoch_changed';
          }
          entry.reset(reply);
          entry.status = 'not_recovered';
          this.#joined(room, reply, true);
          this.#link.emit('notRecovered', { ...event, epoch: entry.epoch, reason });
        },
      })
      .catch((/** @type {WsgateError} */ error) => {
        if (error.code === 'disconnected' || error.code === 'closed') return; // the next connection re-joins
        if (this.#rooms.get(room) === entry) this.#rooms.delete(room);
        error.message = `re-join of ${room} failed: ${error.message}`;
        this.#link.emit('error', error);
      });
  }

  /**
   * @param {string} room
   * @param {JoinReply} reply
   * @param {boolean} rejoin
   */
  #joined(room, reply, rejoin) {
    this.#link.emit('joined', {
      room,
      members: reply.members ?? [],
      memberCount: reply.member_count,
      rejoin,
      recovered: rejoin ? reply.recovered === true : undefined,
    });
  }
}
