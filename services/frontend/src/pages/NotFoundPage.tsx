import { Link } from '@tanstack/react-router';

export function NotFoundPage() {
  return (
    <main className="centered">
      <h1>Page not found</h1>
      <p>
        <Link to="/conversations">Back to your conversations</Link>
      </p>
    </main>
  );
}
