import { Link } from '@tanstack/react-router';

import { useServices } from '../session';

/** Unknown paths: the same header as every page, so the way back is where it always is. */
export function NotFoundPage() {
  const { tokens } = useServices();
  const signedIn = tokens.get() !== null;
  return (
    <div className="app">
      <header className="app-header">
        <Link to="/" className="brand">
          Chat
        </Link>
        <nav aria-label="Main">
          {signedIn ? (
            <>
              <Link to="/conversations">Conversations</Link>
              <Link to="/files">Files</Link>
              <Link to="/stats">Statistics</Link>
            </>
          ) : (
            <>
              <Link to="/login">Log in</Link>
              <Link to="/register">Register</Link>
            </>
          )}
        </nav>
      </header>
      <main id="main" className="centered">
        <h1>Page not found</h1>
        <p>There is nothing at this address.</p>
        <p>
          {signedIn ? (
            <Link to="/conversations">Back to your conversations</Link>
          ) : (
            <Link to="/login">Log in</Link>
          )}
        </p>
      </main>
    </div>
  );
}
