import { createMemoryHistory } from '@tanstack/react-router';
import { render } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import { App } from '../App';
import { createServices } from '../session';
import { fakeFetch, memoryStorage } from './fakeFetch';

/** Renders the whole app at `path` against scripted API answers. */
export function renderApp(
  path: string,
  routes: Parameters<typeof fakeFetch>[0],
  { signedIn = true } = {},
) {
  const fake = fakeFetch({
    'GET /api/auth/me': () => Response.json({ id: 'u1', username: 'ada' }),
    ...routes,
  });
  const services = createServices({ fetch: fake.fetch, storage: memoryStorage() });
  services.queryClient.setDefaultOptions({ queries: { retry: false, staleTime: Infinity } });
  if (signedIn) services.tokens.set({ accessToken: 'access', refreshToken: 'refresh' });
  const history = createMemoryHistory({ initialEntries: [path] });
  const user = userEvent.setup();
  const view = render(<App services={services} history={history} />);
  return { ...view, user, history, services, calls: fake.calls };
}
