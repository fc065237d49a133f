// @ts-check
/**
 * @wsgate/vue: Vue 3 bindings of the wsgate JS SDK. A plugin that owns (or
 * is given) one `WsgateClient`, and composables over the SDK's UI stores.
 */
export { createWsgate, useWsgate, WSGATE } from './plugin.js';
export { useConnection, useRoom, useDirectMessages, usePresence } from './composables.js';
