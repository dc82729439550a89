import { describe, expect, it, vi } from 'vitest';

import { memoryStorage } from '../test/fakeFetch';
import { TokenStore } from './tokens';

describe('TokenStore', () => {
  it('keeps the session across instances sharing storage and notifies listeners', () => {
    const storage = memoryStorage();
    const store = new TokenStore(storage);
    const listener = vi.fn();
    store.subscribe(listener);

    store.set({ accessToken: 'a', refreshToken: 'r' });

    expect(new TokenStore(storage).get()).toEqual({ accessToken: 'a', refreshToken: 'r' });
    expect(listener).toHaveBeenCalledWith({ accessToken: 'a', refreshToken: 'r' });

    store.set(null);
    expect(new TokenStore(storage).get()).toBeNull();
  });

  it.each(['not json', '{"accessToken": 1}', 'null'])('drops a corrupt entry %j', (raw) => {
    const storage = memoryStorage();
    storage.setItem('chat.session', raw);
    expect(new TokenStore(storage).get()).toBeNull();
    expect(storage.getItem('chat.session')).toBeNull();
  });
});
