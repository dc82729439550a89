import { describe, expect, it, vi } from 'vitest';

import { fakeFetch, json, memoryStorage } from '../test/fakeFetch';
import { ApiClient, ApiError, errorMessage, REFRESH_PATH } from './client';
import { TokenStore } from './tokens';

function setup(routes: Parameters<typeof fakeFetch>[0], signedIn = true) {
  const tokens = new TokenStore(memoryStorage());
  if (signedIn) tokens.set({ accessToken: 'old-access', refreshToken: 'old-refresh' });
  const fake = fakeFetch(routes);
  const client = new ApiClient({ tokens, fetch: fake.fetch });
  const expired = vi.fn();
  client.onSessionExpired(expired);
  return { client, tokens, calls: fake.calls, expired };
}

const freshPair = {
  access_token: 'new-access',
  refresh_token: 'new-refresh',
  token_type: 'bearer',
  expires_in: 900,
};

/** Answers 401 to the old access token and 200 to the refreshed one. */
function acceptsOnlyNewToken(body: unknown) {
  return ({ headers }: { headers: Headers }) =>
    headers.get('Authorization') === 'Bearer new-access'
      ? json(body)
      : json({ detail: 'token expired' }, 401);
}

describe('ApiClient requests', () => {
  it('sends JSON with the bearer token and parses the answer', async () => {
    const { client, calls } = setup({ 'POST /api/chat/conversations': () => json({ id: 'c1' }, 201) });

    const created = await client.json<{ id: string }>('/api/chat/conversations', {
      json: { title: 'Hello' },
    });

    expect(created).toEqual({ id: 'c1' });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.headers.get('Authorization')).toBe('Bearer old-access');
    expect(calls[0]?.headers.get('Content-Type')).toBe('application/json');
    expect(calls[0]?.body).toBe('{"title":"Hello"}');
  });

  it('starts a new W3C trace with every request, the token refresh included', async () => {
    const { client, calls } = setup({
      'GET /api/chat/conversations': acceptsOnlyNewToken([]),
      [`POST ${REFRESH_PATH}`]: () => json(freshPair),
    });
    await client.json('/api/chat/conversations');

    const traceparents = calls.map((call) => call.headers.get('traceparent') ?? '');
    expect(calls).toHaveLength(3); // refused, refresh, retried
    for (const value of traceparents) expect(value).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(new Set(traceparents.map((value) => value.split('-')[1])).size).toBe(3);
  });

  it('sends no token when auth is off', async () => {
    const { client, calls } = setup({ 'POST /api/auth/login': () => json(freshPair) });
    await client.json('/api/auth/login', { json: { username: 'a', password: 'b' }, auth: false });
    expect(calls[0]?.headers.has('Authorization')).toBe(false);
  });

  it.each([
    [json({ detail: 'username taken' }, 409), 409, 'username taken'],
    [json({ detail: [{ loc: ['body', 'title'], type: 'missing', msg: 'Field required' }] }, 422), 422, 'The title is required.'],
    [
      json({ detail: [{ loc: ['body', 'username'], type: 'string_pattern_mismatch', msg: "String should match pattern '^[A-Za-z0-9]'", ctx: { pattern: '^[A-Za-z0-9]' } }] }, 422),
      422,
      'The username contains characters that are not allowed.',
    ],
    [
      json({ detail: [
        { loc: ['body', 'password'], type: 'string_too_short', msg: 'String should have at least 8 characters', ctx: { min_length: 8 } },
        { loc: ['query', 'max_items'], type: 'value_error', msg: 'Value error, must be positive' },
      ] }, 422),
      422,
      'The password is too short: use at least 8 characters. The max items is not valid: must be positive.',
    ],
    [new Response('<html>bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }), 502, '502 Bad Gateway'],
    [json({ detail: 'slow down' }, 429, { 'Retry-After': '7' }), 429, 'slow down (try again in 7 s)'],
  ])('turns an error answer into ApiError %#', async (response, status, detail) => {
    const { client } = setup({ 'GET /api/x': () => response });
    const error = await client.json('/api/x').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status, detail });
    expect(errorMessage(error)).toBe(detail);
  });
});

describe('ApiClient token refresh', () => {
  it('refreshes once on a 401 and retries the request with the new token', async () => {
    const { client, tokens, calls, expired } = setup({
      'GET /api/auth/me': acceptsOnlyNewToken({ id: 'u1', username: 'ada' }),
      [`POST ${REFRESH_PATH}`]: () => json(freshPair),
    });

    await expect(client.json('/api/auth/me')).resolves.toEqual({ id: 'u1', username: 'ada' });

    expect(calls.map((call) => `${call.method} ${call.path}`)).toEqual([
      'GET /api/auth/me',
      `POST ${REFRESH_PATH}`,
      'GET /api/auth/me',
    ]);
    expect(calls[1]?.body).toBe('{"refresh_token":"old-refresh"}');
    expect(calls[1]?.headers.has('Authorization')).toBe(false);
    expect(tokens.get()).toEqual({ accessToken: 'new-access', refreshToken: 'new-refresh' });
    expect(expired).not.toHaveBeenCalled();
  });

  it('makes exactly one refresh for many concurrent 401s', async () => {
    let releaseRefresh: () => void = () => undefined;
    const refreshGate = new Promise<void>((resolve) => {
      releaseRefresh = resolve;
    });
    const { client, calls } = setup({
      'GET /api/chat/conversations': acceptsOnlyNewToken({ items: [], next_cursor: null }),
      'GET /api/media/files': acceptsOnlyNewToken({ items: [] }),
      'GET /api/stats/stats/me': acceptsOnlyNewToken({ total_messages: 0 }),
      [`POST ${REFRESH_PATH}`]: async () => {
        await refreshGate;
        return json(freshPair);
      },
    });

    const pending = [
      client.json('/api/chat/conversations'),
      client.json('/api/media/files'),
      client.json('/api/stats/stats/me'),
      client.json('/api/media/files'),
    ];
    await vi.waitFor(() => expect(calls.filter((c) => c.path === REFRESH_PATH)).toHaveLength(1));
    releaseRefresh();
    await Promise.all(pending);

    expect(calls.filter((call) => call.path === REFRESH_PATH)).toHaveLength(1);
    const retried = calls.filter(
      (call) => call.path !== REFRESH_PATH && call.headers.get('Authorization') === 'Bearer new-access',
    );
    expect(retried).toHaveLength(4);
  });

  it('reuses a refresh that finished before a late 401 arrived', async () => {
    let answerLate: (response: Response) => void = () => undefined;
    const late = new Promise<Response>((resolve) => {
      answerLate = resolve;
    });
    const { client, calls } = setup({
      'GET /api/fast': acceptsOnlyNewToken('fast'),
      'GET /api/slow': ({ headers }) =>
        headers.get('Authorization') === 'Bearer new-access' ? json('slow') : late,
      [`POST ${REFRESH_PATH}`]: () => json(freshPair),
    });

    const slow = client.json('/api/slow');
    await expect(client.json('/api/fast')).resolves.toBe('fast');
    answerLate(json({ detail: 'expired' }, 401));
    await expect(slow).resolves.toBe('slow');

    expect(calls.filter((call) => call.path === REFRESH_PATH)).toHaveLength(1);
  });

  it('ends the session when the refresh is refused', async () => {
    const { client, tokens, calls, expired } = setup({
      'GET /api/auth/me': () => json({ detail: 'expired' }, 401),
      [`POST ${REFRESH_PATH}`]: () => json({ detail: 'refresh token revoked' }, 401),
    });

    const error = await client.json('/api/auth/me').catch((caught: unknown) => caught);

    expect(error).toMatchObject({ status: 401 });
    expect(tokens.get()).toBeNull();
    expect(expired).toHaveBeenCalledTimes(1);
    expect(calls).toHaveLength(2);
  });

  it('retries only once: a second 401 ends the session', async () => {
    const { client, tokens, calls, expired } = setup({
      'GET /api/auth/me': () => json({ detail: 'nope' }, 401),
      [`POST ${REFRESH_PATH}`]: () => json(freshPair),
    });

    await expect(client.json('/api/auth/me')).rejects.toMatchObject({ status: 401 });

    expect(calls.map((call) => call.path)).toEqual(['/api/auth/me', REFRESH_PATH, '/api/auth/me']);
    expect(tokens.get()).toBeNull();
    expect(expired).toHaveBeenCalledTimes(1);
  });

  it('does not refresh for a 401 from a request sent without a session', async () => {
    const { client, calls, expired } = setup(
      { 'POST /api/auth/login': () => json({ detail: 'wrong password' }, 401) },
      false,
    );
    await expect(
      client.json('/api/auth/login', { json: {}, auth: false }),
    ).rejects.toMatchObject({ detail: 'wrong password' });
    expect(calls).toHaveLength(1);
    expect(expired).not.toHaveBeenCalled();
  });
});

describe('ApiClient idempotent creations', () => {
  it('sends a keyed request again with the same key while its answer is lost', async () => {
    let attempts = 0;
    const { client, calls } = setup({
      'POST /api/chat/conversations': () => {
        attempts += 1;
        if (attempts === 1) throw new TypeError('Failed to fetch');
        return attempts === 2 ? json({ detail: 'bad gateway' }, 502) : json({ id: 'c1' }, 201);
      },
    });
    const created = await client.json<{ id: string }>('/api/chat/conversations', {
      json: { title: 'Hello' },
      idempotencyKey: 'k-1',
    });
    expect(created).toEqual({ id: 'c1' });
    expect(calls.map((call) => call.headers.get('Idempotency-Key'))).toEqual([
      '"k-1"',
      '"k-1"',
      '"k-1"',
    ]);
  });

  it('keeps the key across a token refresh', async () => {
    const { client, calls } = setup({
      'POST /api/chat/conversations': acceptsOnlyNewToken({ id: 'c1' }),
      [`POST ${REFRESH_PATH}`]: () => json(freshPair),
    });
    await client.json('/api/chat/conversations', { json: { title: 'x' }, idempotencyKey: 'k-2' });
    const posts = calls.filter((call) => call.path === '/api/chat/conversations');
    expect(posts.map((call) => call.headers.get('Idempotency-Key'))).toEqual(['"k-2"', '"k-2"']);
  });

  it('never repeats a request without a key', async () => {
    const { client, calls } = setup({
      'POST /api/chat/conversations': () => json({ detail: 'bad gateway' }, 502),
    });
    await expect(
      client.json('/api/chat/conversations', { json: { title: 'x' } }),
    ).rejects.toBeInstanceOf(ApiError);
    expect(calls).toHaveLength(1);
  });
});

describe('service error messages', () => {
  it('says which field a validation message is about, without the location syntax', async () => {
    const { client } = setup({
      'POST /api/auth/register': () =>
        json({ detail: 'body.password: Value error, this password is on a list of common and breached passwords' }, 422),
    });
    await expect(client.json('/api/auth/register', { json: {}, auth: false })).rejects.toThrow(
      'The password: this password is on a list of common and breached passwords',
    );
  });
});

/** An XMLHttpRequest stand-in for the network: it reports the body going out in two halves
 * and answers with the given status for the given bearer token. */
class FakeXhr {
  static sent: FakeXhr[] = [];
  readonly upload: { onprogress: ((event: ProgressEvent) => void) | null } = { onprogress: null };
  readonly headers = new Headers();
  method = '';
  url = '';
  timeout = 0;
  responseType = '';
  status = 0;
  statusText = '';
  responseText = '';
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  ontimeout: (() => void) | null = null;

  constructor(private readonly answer: (authorization: string | null) => [number, unknown]) {}

  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }

  setRequestHeader(key: string, value: string) {
    this.headers.set(key, value);
  }

  getAllResponseHeaders() {
    return 'content-type: application/json\r\n';
  }

  send(body: FormData) {
    FakeXhr.sent.push(this);
    expect(body).toBeInstanceOf(FormData);
    for (const loaded of [50, 100]) {
      this.upload.onprogress?.({ lengthComputable: true, loaded, total: 100 } as ProgressEvent);
    }
    const [status, payload] = this.answer(this.headers.get('Authorization'));
    this.status = status;
    this.responseText = JSON.stringify(payload);
    queueMicrotask(() => this.onload?.());
  }
}

describe('ApiClient upload progress', () => {
  it('reports the bytes sent and keeps the token refresh of every request', async () => {
    FakeXhr.sent = [];
    const tokens = new TokenStore(memoryStorage());
    tokens.set({ accessToken: 'old-access', refreshToken: 'old-refresh' });
    const refresh = fakeFetch({ [`POST ${REFRESH_PATH}`]: () => json(freshPair) });
    const xhrClient = new ApiClient({
      tokens,
      fetch: refresh.fetch,
      xhr: () =>
        new FakeXhr((authorization) =>
          authorization === 'Bearer new-access' ? [201, { id: 'f1' }] : [401, { detail: 'token expired' }],
        ) as unknown as XMLHttpRequest,
    });
    const progress: [number, number][] = [];
    const form = new FormData();
    form.append('file', new Blob(['x'.repeat(100)]), 'big.bin');

    const stored = await xhrClient.json<{ id: string }>('/api/media/files', {
      body: form,
      onUploadProgress: (sent, total) => progress.push([sent, total]),
    });

    expect(stored).toEqual({ id: 'f1' });
    expect(FakeXhr.sent.map((xhr) => [xhr.method, xhr.url, xhr.headers.get('Authorization')])).toEqual([
      ['POST', '/api/media/files', 'Bearer old-access'],
      ['POST', '/api/media/files', 'Bearer new-access'],
    ]);
    for (const xhr of FakeXhr.sent) expect(xhr.headers.get('traceparent')).toMatch(/^00-[0-9a-f]{32}-/);
    expect(refresh.calls.map((call) => call.path)).toEqual([REFRESH_PATH]);
    expect(tokens.get()?.accessToken).toBe('new-access');
    expect(progress).toEqual([
      [50, 100],
      [100, 100],
      [50, 100],
      [100, 100],
    ]);
  });

  it('turns an error answer into an ApiError as fetch requests do', async () => {
    const tokens = new TokenStore(memoryStorage());
    const xhrClient = new ApiClient({
      tokens,
      xhr: () => new FakeXhr(() => [413, { detail: 'file too large' }]) as unknown as XMLHttpRequest,
    });

    const sending = xhrClient.json('/api/media/files', { body: new FormData(), onUploadProgress: () => {} });

    await expect(sending).rejects.toEqual(new ApiError(413, 'file too large'));
  });
});
