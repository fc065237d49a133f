// @ts-check
/**
 * `createWsgate()`: the Vue plugin that provides one `WsgateClient` to the
 * app's composables.
 *
 * Give it a client (yours: you connect and close it) or the client's
 * options (the plugin makes the client, connects it when installed and
 * closes it when the app unmounts).
 */
import { inject } from 'vue';
import { WsgateClient } from '@wsgate/client';

/** @type {import('vue').InjectionKey<WsgateClient>} */
export const WSGATE = Symbol('wsgate');

/**
 * @param {WsgateClient | import('@wsgate/client').ClientOptions} clientOrOptions
 * @returns {{ client: WsgateClient, install: (app: import('vue').App) => void }}
 */
export function createWsgate(clientOrOptions = {}) {
  const owned = !(clientOrOptions instanceof WsgateClient);
  const client = clientOrOptions instanceof WsgateClient ? clientOrOptions : new WsgateClient(clientOrOptions);
  return {
    client,
    install(app) {
      app.provide(WSGATE, client);
      if (!owned) return;
      client.connect().catch(() => {
        // The connection state (useConnection) shows why; nothing to throw into Vue.
      });
      app.onUnmount(() => client.close('app unmounted'));
    },
  };
}

/**
 * The client provided by `createWsgate()`.
 * @returns {WsgateClient}
 */
export function useWsgate() {
  const client = inject(WSGATE, null);
  if (!client) throw new Error('useWsgate: install createWsgate() in the app first');
  return client;
}
