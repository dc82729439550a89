import { useMutation } from '@tanstack/react-query';
import { Link, getRouteApi, useNavigate } from '@tanstack/react-router';
import type { FormEvent } from 'react';

import { CredentialFields, useCredentials } from '../components/CredentialFields';
import { ErrorNotice } from '../components/Status';
import { useServices } from '../session';

const route = getRouteApi('/login');

/** Only in-app paths are followed after login, never another origin. */
function safeRedirect(target: string | undefined): string {
  return target && target.startsWith('/') && !target.startsWith('//') ? target : '/conversations';
}

export function LoginPage() {
  const { api, tokens, queryClient } = useServices();
  const search = route.useSearch();
  const navigate = useNavigate();
  // Just registered: the new account's name is already filled in.
  const credentials = useCredentials(search.registered ?? '');

  const login = useMutation({
    mutationFn: () => api.auth.login(credentials.username.trim(), credentials.password),
    onSuccess: async (pair) => {
      queryClient.clear();
      tokens.set({ accessToken: pair.access_token, refreshToken: pair.refresh_token });
      await navigate({ href: safeRedirect(search.redirect) });
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    login.mutate();
  }

  return (
    <main className="centered">
      <h1>Log in</h1>
      {/* Only until the first attempt: a green "created" beside a red error confuses. */}
      {search.registered && login.isIdle && (
        <p className="status status-success" role="status">
          Account {search.registered} created. Log in to continue.
        </p>
      )}
      <form className="card" onSubmit={submit} aria-label="Log in">
        <CredentialFields {...credentials.fields} passwordAutoComplete="current-password" />
        {login.isError && <ErrorNotice error={login.error} />}
        <button type="submit" disabled={login.isPending}>
          {login.isPending ? 'Logging in…' : 'Log in'}
        </button>
      </form>
      <p>
        No account yet? <Link to="/register">Register</Link>
      </p>
    </main>
  );
}
