// @ts-check
/**
 * A bounded memory of recently seen message ids, used to drop duplicates
 * (the inbox replays unacked direct messages; at-least-once means a message
 * can arrive twice). When full, the oldest id is forgotten first.
 */
export class RecentIds {
  /** @type {Set<string>} */
  #ids = new Set();

  /** @param {number} [limit] how many ids to remember */
  constructor(limit = 1000) {
    this.limit = Math.max(1, limit);
  }

  get size() {
    return this.#ids.size;
  }

  /** @param {string} id */
  has(id) {
    return this.#ids.has(id);
  }

  /**
   * Remembers `id` (as the newest). Returns false if it was already known.
   * @param {string} id
   */
  add(id) {
    if (this.#ids.has(id)) {
      // Refresh its position: a message still being replayed stays remembered.
      this.#ids.delete(id);
      this.#ids.add(id);
      return false;
    }
    this.#ids.add(id);
    while (this.#ids.size > this.limit) {
      const oldest = this.#ids.values().next().value;
      if (oldest === undefined) break;
      this.#ids.delete(oldest);
    }
    return true;
  }

  /** @param {string} id */
  delete(id) {
    return this.#ids.delete(id);
  }
}
