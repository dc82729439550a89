// Everything a page needs to talk to the services, created once per app (and per test).
import { QueryClient } from '@tanstack/react-query';
import { createContext, useContext, useSyncExternalStore } from 'react';

import { ApiClient, ApiError } from './api/client';
import { createApi, type Api } from './api/endpoints';
import { TokenStore, type Tokens } from './api/tokens';

export interface AppServices {
  api: Api;
  client: ApiClient;
  tokens: TokenStore;
  queryClient: QueryClient;
}

export function createServices(options: { fetch?: typeof fetch; storage?: Storage | null } = {}) {
  const tokens = new TokenStore(options.storage === undefined ? undefined : options.storage);
  const client = new ApiClient({ tokens, fetch: options.fetch });
  const queryClient = new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 10_000,
        retry: (failures, error) => failures < 2 && isTransient(error),
      },
    },
  });
  return { api: createApi(client), client, tokens, queryClient } satisfies AppServices;
}

/** Worth another try: no answer, rate limited or a server error. A 4xx other than 429 is final. */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof ApiError)) return true;
  return error.status === 429 || error.status >= 500;
}

export const ServicesContext = createContext<AppServices | null>(null);

export function useServices(): AppServices {
  const services = useContext(ServicesContext);
  if (!services) throw new Error('useServices() outside <ServicesContext.Provider>');
  return services;
}

export function useApi(): Api {
  return useServices().api;
}

export function useTokens(): Tokens | null {
  const { tokens } = useServices();
  return useSyncExternalStore(
    (listener) => tokens.subscribe(listener),
    () => tokens.get(),
  );
}
