import { describe, expect, it } from 'vitest';

import { fakeFetch, json, memoryStorage } from '../test/fakeFetch';
import { ApiClient } from './client';
import { createApi } from './endpoints';
import { TokenStore } from './tokens';

function setup(routes: Parameters<typeof fakeFetch>[0]) {
  const tokens = new TokenStore(memoryStorage());
  tokens.set({ accessToken: 'a', refreshToken: 'r' });
  const fake = fakeFetch(routes);
  return { api: createApi(new ApiClient({ tokens, fetch: fake.fetch })), calls: fake.calls };
}

describe('API endpoints', () => {
  it('pages conversations with limit and cursor', async () => {
    const { api, calls } = setup({
      'GET /api/chat/conversations': () => json({ items: [], next_cursor: null }),
    });
    await api.chat.listConversations();
    await api.chat.listConversations('abc/=', 5);
    expect(calls.map((call) => call.path)).toEqual([
      '/api/chat/conversations?limit=20',
      '/api/chat/conversations?limit=5&cursor=abc%2F%3D',
    ]);
  });

  it('escapes ids in paths and posts retries', async () => {
    const { api, calls } = setup({
      'POST /api/chat/conversations/c%2F1/messages/m1/retry': () => json({ id: 'm1' }),
    });
    await api.chat.retryReply('c/1', 'm1');
    expect(calls[0]).toMatchObject({
      method: 'POST',
      path: '/api/chat/conversations/c%2F1/messages/m1/retry',
    });
  });

  it('uploads a file as multipart field "file"', async () => {
    const { api, calls } = setup({ 'POST /api/media/files': () => json({ id: 'f1' }, 201) });
    const file = new File(['hello'], 'hello.txt', { type: 'text/plain' });

    await api.media.upload(file);

    const body = calls[0]?.body;
    expect(body).toBeInstanceOf(FormData);
    const sent = (body as FormData).get('file');
    expect(sent).toBeInstanceOf(File);
    expect((sent as File).name).toBe('hello.txt');
    // The browser must set the multipart boundary itself.
    expect(calls[0]?.headers.has('Content-Type')).toBe(false);
  });

  it('deletes files and reads the statistics at their routed paths', async () => {
    const { api, calls } = setup({
      'DELETE /api/media/files/f1': () => new Response(null, { status: 204 }),
      'GET /api/stats/stats/me': () => json({ total_messages: 3 }),
    });
    await api.media.remove('f1');
    await expect(api.stats.me()).resolves.toMatchObject({ total_messages: 3 });
    expect(calls.map((call) => `${call.method} ${call.path}`)).toEqual([
      'DELETE /api/media/files/f1',
      'GET /api/stats/stats/me',
    ]);
  });
});
