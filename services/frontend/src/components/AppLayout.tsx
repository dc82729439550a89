// Frame of every signed-in page: navigation, the current user, and log out.
import { useQuery } from '@tanstack/react-query';
import { Link, Outlet, useNavigate } from '@tanstack/react-router';

import { useServices } from '../session';

export function AppLayout() {
  const { api, tokens, queryClient } = useServices();
  const navigate = useNavigate();
  const me = useQuery({ queryKey: ['me'], queryFn: api.auth.me, staleTime: 5 * 60_000 });

  async function logOut() {
    const current = tokens.get();
    tokens.set(null);
    queryClient.clear();
    if (current) {
      // Revoking is best effort: the local session is gone either way.
      await api.auth.logout(current.refreshToken).catch(() => undefined);
    }
    await navigate({ to: '/login' });
  }

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <Link to="/conversations" className="brand">
          Chat
        </Link>
        <nav aria-label="Main">
          <Link to="/conversations" activeProps={{ 'aria-current': 'page' }}>
            Conversations
          </Link>
          <Link to="/files" activeProps={{ 'aria-current': 'page' }}>
            Files
          </Link>
          <Link to="/stats" activeProps={{ 'aria-current': 'page' }}>
            Statistics
          </Link>
        </nav>
        {me.data && (
          <span className="user">
            <span className="visually-hidden">Signed in as </span>
            {me.data.username}
          </span>
        )}
        <button type="button" onClick={() => void logOut()}>
          Log out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Outlet />
      </main>
    </div>
  );
}
