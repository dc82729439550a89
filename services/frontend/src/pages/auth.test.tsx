import { screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';

import { json } from '../test/fakeFetch';
import { renderApp } from '../test/renderApp';

const emptyConversations = () => json({ items: [], next_cursor: null });

describe('login and registration', () => {
  it('sends a visitor without a session to the login page', async () => {
    const { history } = renderApp('/files', {}, { signedIn: false });
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeInTheDocument();
    expect(history.location.pathname).toBe('/login');
  });

  it('logs in from the keyboard and returns to the page asked for', async () => {
    const { user, history, services, calls } = renderApp(
      '/conversations',
      {
        'POST /api/auth/login': () =>
          json({ access_token: 'A', refresh_token: 'R', token_type: 'bearer', expires_in: 900 }),
        'GET /api/chat/conversations': emptyConversations,
      },
      { signedIn: false },
    );

    await user.type(await screen.findByLabelText('Username'), 'ada');
    await user.type(screen.getByLabelText('Password'), 's3cret-pass{Enter}');

    expect(await screen.findByText(/No conversations yet/)).toBeInTheDocument();
    expect(history.location.pathname).toBe('/conversations');
    expect(await screen.findByText('Signed in as')).toBeInTheDocument();
    expect(screen.getByText('ada')).toBeInTheDocument();
    expect(services.tokens.get()).toEqual({ accessToken: 'A', refreshToken: 'R' });
    const login = calls.find((call) => call.path === '/api/auth/login');
    expect(login?.body).toBe('{"username":"ada","password":"s3cret-pass"}');
  });

  it('shows the reason a login failed', async () => {
    const { user } = renderApp(
      '/login',
      { 'POST /api/auth/login': () => json({ detail: 'invalid username or password' }, 401) },
      { signedIn: false },
    );
    await user.type(await screen.findByLabelText('Username'), 'ada');
    await user.type(screen.getByLabelText('Password'), 'wrong');
    await user.click(screen.getByRole('button', { name: 'Log in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('invalid username or password');
  });

  it('registers and then asks to log in', async () => {
    const { user, history } = renderApp(
      '/register',
      { 'POST /api/auth/register': () => json({ id: 'u2', username: 'grace' }, 201) },
      { signedIn: false },
    );
    await user.type(await screen.findByLabelText('Username'), 'grace');
    await user.type(screen.getByLabelText('Password'), 'long-password');
    await user.type(screen.getByLabelText('Repeat password'), 'long-password');
    await user.click(screen.getByRole('button', { name: 'Register' }));

    expect(await screen.findByText('Account grace created. Log in to continue.')).toBeVisible();
    expect(history.location.pathname).toBe('/login');
    expect(screen.getByLabelText('Username')).toHaveValue('grace');
  });

  it('shows the rules of username and password on the form', async () => {
    renderApp('/register', {}, { signedIn: false });
    expect(await screen.findByLabelText('Username')).toHaveAccessibleDescription(
      '3 to 32 characters: letters, digits, dots, dashes or underscores, starting with a letter or digit.',
    );
    expect(screen.getByLabelText('Password')).toHaveAccessibleDescription(
      'At least 8 characters, and not a common or breached password (such as “password” or “12345678”) nor your username.',
    );
  });

  it.each([
    ['a b', 'long-password', 'The username may only use letters, digits, dots, dashes and underscores'],
    ['ab', 'long-password', 'The username is too short: use at least 3 characters.'],
    ['grace', 'short', 'The password is too short: use at least 8 characters.'],
  ])('explains a rule %s / %s breaks without asking the server', async (name, password, message) => {
    const { user, calls } = renderApp('/register', {}, { signedIn: false });
    await user.type(await screen.findByLabelText('Username'), name);
    await user.type(screen.getByLabelText('Password'), password);
    await user.type(screen.getByLabelText('Repeat password'), password);
    await user.click(screen.getByRole('button', { name: 'Register' }));
    expect(await screen.findByRole('alert')).toHaveTextContent(message);
    expect(calls.some((call) => call.path === '/api/auth/register')).toBe(false);
  });

  it('hides the "account created" note once a login attempt failed', async () => {
    const { user } = renderApp(
      '/login?registered=grace',
      { 'POST /api/auth/login': () => json({ detail: 'invalid username or password' }, 401) },
      { signedIn: false },
    );
    expect(await screen.findByText('Account grace created. Log in to continue.')).toBeVisible();
    await user.type(screen.getByLabelText('Username'), 'grace');
    await user.type(screen.getByLabelText('Password'), 'wrong-password{Enter}');
    expect(await screen.findByRole('alert')).toHaveTextContent('invalid username or password');
    expect(screen.queryByText(/Account grace created/)).toBeNull();
  });

  it('refuses to register with passwords that differ', async () => {
    const { user, calls } = renderApp('/register', {}, { signedIn: false });
    await user.type(await screen.findByLabelText('Password'), 'one-password');
    await user.type(screen.getByLabelText('Repeat password'), 'another');
    expect(screen.getByRole('alert')).toHaveTextContent('The passwords do not match.');
    expect(screen.getByRole('button', { name: 'Register' })).toBeDisabled();
    expect(calls.some((call) => call.path === '/api/auth/register')).toBe(false);
  });

  it('goes back to the login page when the session cannot be refreshed', async () => {
    const { history, services } = renderApp('/stats', {
      'GET /api/auth/me': () => json({ detail: 'expired' }, 401),
      'GET /api/stats/stats/me': () => json({ detail: 'expired' }, 401),
      'POST /api/auth/refresh': () => json({ detail: 'revoked' }, 401),
    });
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeInTheDocument();
    await waitFor(() => expect(history.location.pathname).toBe('/login'));
    expect(services.tokens.get()).toBeNull();
  });

  it('logs out', async () => {
    const { user, history, services, calls } = renderApp('/conversations', {
      'GET /api/chat/conversations': emptyConversations,
      'POST /api/auth/logout': () => new Response(null, { status: 204 }),
    });
    await user.click(await screen.findByRole('button', { name: 'Log out' }));
    await waitFor(() => expect(history.location.pathname).toBe('/login'));
    expect(services.tokens.get()).toBeNull();
    expect(calls.find((call) => call.path === '/api/auth/logout')?.body).toBe(
      '{"refresh_token":"refresh"}',
    );
  });
});
