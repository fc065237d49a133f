// @ts-check
/**
 * `<WsgateProvider>`: puts one `WsgateClient` in React context for the hooks.
 *
 * Give it `client` (yours: you connect and close it) or `options` (it makes
 * the client, connects on mount and closes it on unmount). With `options`
 * the client is made once per mount: later changes to `options` are ignored
 * (remount with a `key` to change them).
 */
import { createContext, createElement, useContext, useEffect, useState } from 'react';
import { WsgateClient } from '@wsgate/client';

/** @type {import('react').Context<WsgateClient | null>} */
export const WsgateContext = createContext(/** @type {WsgateClient | null} */ (null));

/**
 * @typedef {object} WsgateProviderProps
 * @property {WsgateClient} [client] a client you own
 * @property {import('@wsgate/client').ClientOptions} [options] or: options of a client the provider owns
 * @property {import('react').ReactNode} [children]
 */

/**
 * @param {WsgateProviderProps} props
 * @returns {import('react').ReactElement}
 */
export function WsgateProvider({ client, options, children }) {
  const [owned] = useState(() => (client ? null : new WsgateClient(options ?? {})));
  useEffect(() => {
    if (!owned) return undefined;
    owned.connect().catch(() => {
      // The connection state (useConnection) shows why; nothing to throw into React.
    });
    return () => owned.close('provider unmounted');
  }, [owned]);
  const value = client ?? owned;
  return createElement(WsgateContext.Provider, { value }, children);
}

/**
 * The client of the nearest `<WsgateProvider>`.
 * @returns {WsgateClient}
 */
export function useWsgate() {
  const client = useContext(WsgateContext);
  if (!client) throw new Error('useWsgate: no <WsgateProvider> above this component');
  return client;
}
