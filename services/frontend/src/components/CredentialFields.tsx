import { useState } from 'react';

import { TextField } from './TextField';

type PasswordFieldProps = {
  label: string;
  name: string;
  /** `current-password` on log-in forms, `new-password` where an account is created. */
  autoComplete: 'current-password' | 'new-password';
  value: string;
  onValueChange: (value: string) => void;
  invalid?: boolean;
  hint?: string;
};

/** A required, labelled password input that reports its text rather than the change event. */
export function PasswordField({ onValueChange, invalid, ...field }: PasswordFieldProps) {
  return (
    <TextField
      {...field}
      type="password"
      required
      aria-invalid={invalid}
      onChange={(event) => onValueChange(event.target.value)}
    />
  );
}

/** The state behind `CredentialFields`: the current values and the props that edit them. */
export function useCredentials(initialUsername = '') {
  const [username, setUsername] = useState(initialUsername);
  const [password, setPassword] = useState('');
  return {
    username,
    password,
    fields: { username, onUsernameChange: setUsername, password, onPasswordChange: setPassword },
  };
}

type CredentialFieldsProps = {
  username: string;
  onUsernameChange: (username: string) => void;
  password: string;
  onPasswordChange: (password: string) => void;
  passwordAutoComplete: PasswordFieldProps['autoComplete'];
  /** The rules of each field, shown under it (where an account is created). */
  usernameHint?: string;
  passwordHint?: string;
};

/**
 * The username and password fields shared by the log-in and registration forms, so both keep the
 * same labels and autocomplete hints (password managers and the browser test rely on them).
 */
export function CredentialFields({
  username,
  onUsernameChange,
  password,
  onPasswordChange,
  passwordAutoComplete,
  usernameHint,
  passwordHint,
}: CredentialFieldsProps) {
  return (
    <>
      <TextField
        label="Username"
        name="username"
        autoComplete="username"
        required
        hint={usernameHint}
        value={username}
        onChange={(event) => onUsernameChange(event.target.value)}
      />
      <PasswordField
        label="Password"
        name="password"
        autoComplete={passwordAutoComplete}
        hint={passwordHint}
        value={password}
        onValueChange={onPasswordChange}
      />
    </>
  );
}
