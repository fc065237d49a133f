// @ts-check
/**
 * A tiny typed event emitter (no dependency on Node's `events`).
 * `emit` returns what the listeners returned, so the client can wait for
 * asynchronous message handlers before acking; a listener that throws yields
 * a rejected promise in that list instead of breaking the others.
 *
 * @template {Record<string, any>} Events
 */
export class Emitter {
  /** @type {Map<keyof Events, Set<(event: any) => unknown>>} */
  #listeners = new Map();

  /**
   * Adds a listener; returns a function that removes it.
   * @template {keyof Events} K
   * @param {K} type
   * @param {(event: Events[K]) => unknown} listener
   * @returns {() => void}
   */
  on(type, listener) {
    let set = this.#listeners.get(type);
    if (!set) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    set.add(listener);
    return () => this.off(type, listener);
  }

  /**
   * @template {keyof Events} K
   * @param {K} type
   * @param {(event: Events[K]) => unknown} listener
   */
  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  /**
   * Adds a listener called at most once.
   * @template {keyof Events} K
   * @param {K} type
   * @param {(event: Events[K]) => unknown} listener
   * @returns {() => void}
   */
  once(type, listener) {
    /** @param {Events[K]} event */
    const wrapper = (event) => {
      this.off(type, wrapper);
      return listener(event);
    };
    return this.on(type, wrapper);
  }

  /**
   * @param {keyof Events} type
   * @returns {number}
   */
  listenerCount(type) {
    return this.#listeners.get(type)?.size ?? 0;
  }

  /**
   * Calls the listeners of `type` in the order they were added.
   * @template {keyof Events} K
   * @param {K} type
   * @param {Events[K]} event
   * @returns {unknown[]} what each listener returned
   */
  emit(type, event) {
    const set = this.#listeners.get(type);
    if (!set || set.size === 0) return [];
    /** @type {unknown[]} */
    const results = [];
    for (const listener of [...set]) {
      try {
        results.push(listener(event));
      } catch (err) {
        results.push(Promise.reject(err));
      }
    }
    return results;
  }
}
