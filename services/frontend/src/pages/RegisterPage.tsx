import { useMutation } from '@tanstack/react-query';
import { Link, useNavigate } from '@tanstack/react-router';
import { useState, type FormEvent } from 'react';

import { CredentialFields, PasswordField, useCredentials } from '../components/CredentialFields';
import { ErrorNotice } from '../components/Status';
import { useApi } from '../session';

export function RegisterPage() {
  const api = useApi();
  const navigate = useNavigate();
  const credentials = useCredentials();
  const [confirmation, setConfirmation] = useState('');
  const mismatch = confirmation !== '' && confirmation !== credentials.password;

  const register = useMutation({
    mutationFn: () => api.auth.register(credentials.username.trim(), credentials.password),
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
        <CredentialFields {...credentials.fields} passwordAutoComplete="new-password" />
        <PasswordField
          label="Repeat password"
          name="confirmation"
          autoComplete="new-password"
          invalid={mismatch}
          value={confirmation}
          onValueChange={setConfirmation}
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
