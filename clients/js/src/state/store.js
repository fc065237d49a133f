// @ts-check
/**
 * The base of the UI stores: an immutable snapshot, replaced (never mutated)
 * on every change, and listeners told after each replacement. This is the
 * shape React's `useSyncExternalStore` and Vue's `shallowRef` both want.
 *
 * A store listens to the client only between `start()` and `stop()`
 * (components mount and unmount, and React's strict mode does both twice):
 * `start` after `stop` resumes from the last snapshot.
 *
 * @template T
 */
export class Store {
  /** @type {T} */
  #snapshot;
  /** @type {Set<() => void>} */
  #listeners = new Set();

  /** @param {T} initial */
  constructor(initial) {
    this.#snapshot = initial;
    this.get = this.get.bind(this);
    this.subscribe = this.subscribe.bind(this);
  }

  /** The current snapshot (the same object until something changes). @returns {T} */
  get() {
    return this.#snapshot;
  }

  /**
   * @param {() => void} listener called after each change
   * @returns {() => void} unsubscribes
   */
  subscribe(listener) {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** @param {Partial<T>} changes */
  set(changes) {
    this.#snapshot = { ...this.#snapshot, ...changes };
    for (const listener of [...this.#listeners]) listener();
  }
}

/**
 * Appends to a list, keeping at most `limit` (the newest).
 * @template T
 * @param {readonly T[]} list
 * @param {T} item
 * @param {number} limit
 * @returns {T[]}
 */
export function appendBounded(list, item, limit) {
  const next = list.length >= limit ? list.slice(list.length - limit + 1) : list.slice();
  next.push(item);
  return next;
}
