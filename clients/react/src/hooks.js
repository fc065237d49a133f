// @ts-check
/**
 * The hooks: each makes one store of `@wsgate/client/state` for its
 * component, starts it in an effect (stops it on unmount or when its
 * arguments change) and reads its snapshot with `useSyncExternalStore`, so a
 * component re-renders exactly when the part it shows changes.
 */
import { useEffect, useMemo, useSyncExternalStore } from 'react';
import { ConnectionStore, DirectStore, PresenceStore, RoomStore } from '@wsgate/client/state';
import { useWsgate } from './provider.js';

/**
 * @template T
 * @param {{ get: () => T, subscribe: (l: () => void) => () => void, start: () => void, stop: () => void }} store
 * @returns {T}
 */
function useStore(store) {
  useEffect(() => {
    store.start();
    return () => store.stop();
  }, [store]);
  return useSyncExternalStore(store.subscribe, store.get, store.get);
}

/**
 * The connection: `status` (`connecting`, `online`, `offline`, `closed`),
 * `retryInMs` (the reconnect countdown, renewed every second while offline),
 * `attempt`, `code`, `reason`, `error`, and `reconnectNow()`.
 * @param {{ tickMs?: number }} [options]
 */
export function useConnection(options = {}) {
  const client = useWsgate();
  const tickMs = options.tickMs;
  const store = useMemo(() => new ConnectionStore(client, { tickMs }), [client, tickMs]);
  const snapshot = useStore(store);
  return useMemo(() => ({ ...snapshot, reconnectNow: store.reconnectNow }), [snapshot, store]);
}

/**
 * A room, joined while the component is mounted (shared with other
 * components showing it): `messages` (each once, in order, replayed ones
 * with `replay: true`), `members`, `memberCount`, `typing`, `status`
 * (`joining`, `live`, `recovering`, `recovered`, `not_recovered`, `error`),
 * `recovery` (the last re-join's outcome), `publish(content)`,
 * `sendTyping()`.
 * @param {string} room
 * @param {import('@wsgate/client/state').RoomOptions} [options]
 */
export function useRoom(room, options = {}) {
  const client = useWsgate();
  const { limit, typingMs } = options;
  const store = useMemo(() => new RoomStore(client, room, { limit, typingMs }), [client, room, limit, typingMs]);
  const snapshot = useStore(store);
  return useMemo(() => ({ ...snapshot, publish: store.publish, sendTyping: store.sendTyping }), [snapshot, store]);
}

/**
 * Direct messages, received and sent (optionally only with `peer`), with
 * each sent one's `status`: `sending`, `sent`, `delivered` (receipt),
 * `failed` (`error`). `send(content, to?)`.
 * @param {import('@wsgate/client/state').DirectOptions} [options]
 */
export function useDirectMessages(options = {}) {
  const client = useWsgate();
  const { peer, limit } = options;
  const store = useMemo(() => new DirectStore(client, { peer, limit }), [client, peer, limit]);
  const snapshot = useStore(store);
  return useMemo(() => ({ ...snapshot, send: store.send }), [snapshot, store]);
}

/**
 * Whether `user` is online (asked on mount, after reconnects and every
 * `intervalMs`): `online`, `connections`, `loading`, `error`, `refresh()`.
 * @param {string} user
 * @param {{ intervalMs?: number }} [options]
 */
export function usePresence(user, options = {}) {
  const client = useWsgate();
  const intervalMs = options.intervalMs;
  const store = useMemo(() => new PresenceStore(client, user, { intervalMs }), [client, user, intervalMs]);
  const snapshot = useStore(store);
  return useMemo(() => ({ ...snapshot, refresh: store.refresh }), [snapshot, store]);
}
