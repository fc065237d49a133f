// @ts-check
/**
 * The composables: each makes one store of `@wsgate/client/state` for the
 * calling component (or effect scope), mirrors its snapshot into a
 * `shallowRef`, and stops it when the scope is disposed. Arguments may be
 * refs or getters: a new value makes a new store (a new room is joined, the
 * old one left).
 */
import { computed, onScopeDispose, shallowRef, toValue, watch } from 'vue';
import { ConnectionStore, DirectStore, PresenceStore, RoomStore } from '@wsgate/client/state';
import { useWsgate } from './plugin.js';

/**
 * @typedef {import('@wsgate/client/state').ConnectionSnapshot} ConnectionSnapshot
 * @typedef {import('@wsgate/client/state').RoomSnapshot} RoomSnapshot
 * @typedef {import('@wsgate/client/state').DirectSnapshot} DirectSnapshot
 * @typedef {import('@wsgate/client/state').PresenceSnapshot} PresenceSnapshot
 */

/**
 * @template {{ get: () => any, subscribe: (l: () => void) => () => void, start: () => void, stop: () => void }} S
 * @param {() => S} make called again whenever what it reads changes
 * @returns {{ store: import('vue').ShallowRef<S>, state: import('vue').ShallowRef<ReturnType<S['get']>> }}
 */
function useStore(make) {
  /** @type {S | undefined} */
  let current;
  /** @type {(() => void) | undefined} */
  let off;
  const end = () => {
    off?.();
    current?.stop();
  };
  const first = make();
  const store = /** @type {import('vue').ShallowRef<S>} */ (shallowRef(first));
  const state = /** @type {import('vue').ShallowRef<ReturnType<S['get']>>} */ (shallowRef(first.get()));
  watch(
    make,
    (next) => {
      end();
      current = next;
      store.value = next;
      off = next.subscribe(() => {
        state.value = next.get();
      });
      next.start();
      state.value = next.get();
    },
    { immediate: false },
  );
  current = first;
  off = first.subscribe(() => {
    state.value = first.get();
  });
  first.start();
  state.value = first.get();
  onScopeDispose(end);
  return { store, state };
}

/**
 * Read-only refs of a snapshot's fields.
 * @template {object} T
 * @param {import('vue').ShallowRef<T>} state
 * @returns {{ [K in keyof T]: import('vue').ComputedRef<T[K]> }}
 */
function fields(state) {
  /** @type {any} */
  const out = {};
  for (const key of Object.keys(state.value)) out[key] = computed(() => /** @type {any} */ (state.value)[key]);
  return out;
}

/**
 * The connection: refs `status` (`connecting`, `online`, `offline`,
 * `closed`), `retryInMs` (the reconnect countdown, renewed every second
 * while offline), `attempt`, `code`, `reason`, `error`, `user`, and
 * `reconnectNow()`.
 * @param {{ tickMs?: number }} [options]
 */
export function useConnection(options = {}) {
  const client = useWsgate();
  const { store, state } = useStore(() => new ConnectionStore(client, options));
  return { snapshot: state, ...fields(state), reconnectNow: () => store.value.reconnectNow() };
}

/**
 * A room, joined while the scope lives (shared with other scopes showing
 * it): refs `messages` (each once, in order, replayed ones with `replay:
 * true`), `members`, `memberCount`, `typing`, `status` (`joining`, `live`,
 * `recovering`, `recovered`, `not_recovered`, `error`), `recovery`, `error`;
 * `publish(content)`, `sendTyping()`.
 * @param {import('vue').MaybeRefOrGetter<string>} room
 * @param {import('@wsgate/client/state').RoomOptions} [options]
 */
export function useRoom(room, options = {}) {
  const client = useWsgate();
  const { store, state } = useStore(() => new RoomStore(client, toValue(room), options));
  return {
    snapshot: state,
    ...fields(state),
    /** @param {unknown} content */
    publish: (content) => store.value.publish(content),
    sendTyping: () => store.value.sendTyping(),
  };
}

/**
 * Direct messages, received and sent (optionally only with `peer`): ref
 * `messages`, each sent one with its `status` (`sending`, `sent`,
 * `delivered`, `failed` with `error`); `send(content, to?)`.
 * @param {{ peer?: import('vue').MaybeRefOrGetter<string | undefined>, limit?: number }} [options]
 */
export function useDirectMessages(options = {}) {
  const client = useWsgate();
  const { store, state } = useStore(() => new DirectStore(client, { peer: toValue(options.peer), limit: options.limit }));
  return {
    snapshot: state,
    ...fields(state),
    /** @param {unknown} content @param {string} [to] */
    send: (content, to) => store.value.send(content, to),
  };
}

/**
 * Whether `user` is online (asked when the scope starts, after reconnects
 * and every `intervalMs`): refs `online`, `connections`, `loading`, `error`;
 * `refresh()`.
 * @param {import('vue').MaybeRefOrGetter<string>} user
 * @param {{ intervalMs?: number }} [options]
 */
export function usePresence(user, options = {}) {
  const client = useWsgate();
  const { store, state } = useStore(() => new PresenceStore(client, toValue(user), options));
  return { snapshot: state, ...fields(state), refresh: () => store.value.refresh() };
}
