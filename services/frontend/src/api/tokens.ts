// The session's tokens, kept in Web Storage so a reload keeps the user logged in.

export interface Tokens {
  accessToken: string;
  refreshToken: string;
}

type Listener = (tokens: Tokens | null) => void;

const STORAGE_KEY = 'chat.session';

export class TokenStore {
  private tokens: Tokens | null;
  private readonly listeners = new Set<Listener>();

  constructor(private readonly storage: Storage | null = globalThis.localStorage ?? null) {
    this.tokens = readTokens(storage);
  }

  get(): Tokens | null {
    return this.tokens;
  }

  set(tokens: Tokens | null): void {
    this.tokens = tokens;
    if (tokens) this.storage?.setItem(STORAGE_KEY, JSON.stringify(tokens));
    else this.storage?.removeItem(STORAGE_KEY);
    for (const listener of this.listeners) listener(tokens);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

function readTokens(storage: Storage | null): Tokens | null {
  const raw = storage?.getItem(STORAGE_KEY);
  if (!raw) return null;
  try {
    const value: unknown = JSON.parse(raw);
    if (isTokens(value)) return value;
  } catch {
    // A corrupt entry is the same as no session.
  }
  storage?.removeItem(STORAGE_KEY);
  return null;
}

function isTokens(value: unknown): value is Tokens {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record.accessToken === 'string' && typeof record.refreshToken === 'string';
}
