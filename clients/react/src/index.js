// @ts-check
/**
 * @wsgate/react: React 18+ bindings of the wsgate JS SDK. A provider that
 * owns (or is given) one `WsgateClient`, and hooks over the SDK's UI stores.
 */
export { WsgateProvider, WsgateContext, useWsgate } from './provider.js';
export { useConnection, useRoom, useDirectMessages, usePresence } from './hooks.js';

/**
 * @typedef {import('./provider.js').WsgateProviderProps} WsgateProviderProps
 */
