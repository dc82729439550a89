import { QueryClientProvider } from '@tanstack/react-query';
import { RouterProvider, type RouterHistory } from '@tanstack/react-router';
import { useEffect, useState } from 'react';

import { createAppRouter } from './router';
import { ServicesContext, type AppServices } from './session';

export function App({ services, history }: { services: AppServices; history?: RouterHistory }) {
  const [router] = useState(() => createAppRouter(services, history));

  useEffect(
    // A refresh that failed ends the session: forget cached data and go back to the login page.
    () =>
      services.client.onSessionExpired(() => {
        services.queryClient.clear();
        const here = router.state.location.href;
        void router.navigate({ to: '/login', search: { redirect: here } });
      }),
    [services, router],
  );

  return (
    <ServicesContext.Provider value={services}>
      <QueryClientProvider client={services.queryClient}>
        <RouterProvider router={router} />
      </QueryClientProvider>
    </ServicesContext.Provider>
  );
}
