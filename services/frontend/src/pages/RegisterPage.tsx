import { useMutation } from '@tanstack/react-query';
import { Link, useNavigate } from '@tanstack/react-router';
import { useState, type FormEvent } from 'react';

import { CredentialFields, PasswordField, useCredentials } from '../components/CredentialFields';
import { ErrorNotice } from '../components/Status';
import { PASSWORD_RULE, USERNAME_RULE, passwordProblem, usernameProblem } from '../rules';
import { useApi } from '../session';

export function RegisterPage() {
  const api = useApi();
  const navigate = useNavigate();
  const credentials = useCredentials();
  const [confirmation, setConfirmation] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const mismatch = confirmation !== '' && confirmation !== credentials.password;

  const register = useMutation({
    mutationFn: () => api.auth.register(credentials.username.trim(), credentials.password),
    onSuccess: async (user) => {
      await navigate({ to: '/login', search: { registered: user.username } });
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    if (mismatch) return;
    // The rules are checked here first, so the user reads one sentence instead of a 422.
    const found =
      usernameProblem(credentials.username.trim()) ?? passwordProblem(credentials.password);
    setProblem(found);
    if (!found) register.mutate();
  }

  return (
    <main className="centered">
      <h1>Create an account</h1>
      <form className="card" onSubmit={submit} aria-label="Register">
        <CredentialFields
          {...credentials.fields}
          passwordAutoComplete="new-password"
          usernameHint={USERNAME_RULE}
          passwordHint={PASSWORD_RULE}
        />
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
        {problem && !mismatch && (
          <p className="status status-error" role="alert">
            {problem}
          </p>
        )}
        {register.isError && !problem && <ErrorNotice error={register.error} />}
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
