import { useMutation } from '@tanstack/react-query';
import { Link, useNavigate } from '@tanstack/react-router';
import { useState, type FormEvent } from 'react';

import { ErrorNotice } from '../components/Status';
import { TextField } from '../components/TextField';
import { useApi } from '../session';

export function RegisterPage() {
  const api = useApi();
  const navigate = useNavigate();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [confirmation, setConfirmation] = useState('');
  const mismatch = confirmation !== '' && confirmation !== password;

  const register = useMutation({
    mutationFn: () => api.auth.register(username.trim(), password),
    onSuccess: async (user) => {
      await navigate({ to: '/login', search: { registered: user.username } });
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    if (!mismatch) register.mutate();
  }

  return (
    <main className="centered">
      <h1>Create an account</h1>
      <form className="card" onSubmit={submit} aria-label="Register">
        <TextField
          label="Username"
          name="username"
          autoComplete="username"
          required
          value={username}
          onChange={(event) => setUsername(event.target.value)}
        />
        <TextField
          label="Password"
          name="password"
          type="password"
          autoComplete="new-password"
          required
          value={password}
          onChange={(event) => setPassword(event.target.value)}
        />
        <TextField
          label="Repeat password"
          name="confirmation"
          type="password"
          autoComplete="new-password"
          required
          aria-invalid={mismatch}
          value={confirmation}
          onChange={(event) => setConfirmation(event.target.value)}
        />
        {mismatch && (
          <p className="status status-error" role="alert">
            The passwords do not match.
          </p>
        )}
        {register.isError && <ErrorNotice error={register.error} />}
        <button type="submit" disabled={register.isPending || mismatch}>
          {register.isPending ? 'Creating account…' : 'Register'}
        </button>
      </form>
      <p>
        Already registered? <Link to="/login">Log in</Link>
      </p>
    </main>
  );
}
