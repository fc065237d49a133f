// @ts-check
/**
 * A bounded first-in first-out queue for requests made while disconnected.
 *
 * Overflow policy (`overflow`):
 * - `"reject"` (default): the new item is refused, `push` returns it;
 * - `"drop-oldest"`: the oldest item is evicted to make room, `push` returns it.
 * Either way the caller learns which item did not make it.
 *
 * @template T
 */
export class BoundedQueue {
  /** @type {T[]} */
  #items = [];

  /**
   * @param {number} limit maximum number of items held (>= 0)
   * @param {'reject' | 'drop-oldest'} [overflow]
   */
  constructor(limit, overflow = 'reject') {
    this.limit = Math.max(0, limit);
    this.overflow = overflow;
  }

  get size() {
    return this.#items.length;
  }

  /**
   * Adds an item at the end.
   * @param {T} item
   * @returns {T | undefined} the item that overflowed (the new one or the oldest), if any
   */
  push(item) {
    if (this.#items.length < this.limit) {
      this.#items.push(item);
      return undefined;
    }
    if (this.overflow === 'drop-oldest' && this.limit > 0) {
      const dropped = this.#items.shift();
      this.#items.push(item);
      return dropped;
    }
    return item;
  }

  /**
   * Removes and returns every item, oldest first.
   * @returns {T[]}
   */
  drain() {
    const items = this.#items;
    this.#items = [];
    return items;
  }

  /**
   * Removes the items matching `predicate` and returns them.
   * @param {(item: T) => boolean} predicate
   * @returns {T[]}
   */
  remove(predicate) {
    /** @type {T[]} */
    const removed = [];
    this.#items = this.#items.filter((item) => {
      if (predicate(item)) {
        removed.push(item);
        return false;
      }
      return true;
    });
    return removed;
  }
}
