// A scripted stand-in for `fetch` in unit tests: answers by "METHOD /path" and records calls.
import { vi } from 'vitest';

export interface RecordedCall {
  method: string;
  path: string;
  headers: Headers;
  body: BodyInit | null | undefined;
}

type Handler = (call: RecordedCall) => Response | Promise<Response>;

export function json(body: unknown, status = 200, headers: Record<string, string> = {}) {
  return new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  });
}

export function fakeFetch(routes: Record<string, Handler>) {
  const calls: RecordedCall[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://app.test');
    const call: RecordedCall = {
      method: init?.method ?? 'GET',
      path: url.pathname + url.search,
      headers: new Headers(init?.headers),
      body: init?.body,
    };
    calls.push(call);
    const handler =
      routes[`${call.method} ${call.path}`] ?? routes[`${call.method} ${url.pathname}`];
    if (!handler) return json({ detail: `no fake for ${call.method} ${call.path}` }, 404);
    return handler(call);
  });
  return { fetch: fetchMock as unknown as typeof fetch, calls };
}

/** A Storage that lives in memory, so tests never share a session through localStorage. */
export function memoryStorage(): Storage {
  const data = new Map<string, string>();
  return {
    get length() {
      return data.size;
    },
    clear: () => data.clear(),
    getItem: (key) => data.get(key) ?? null,
    key: (index) => [...data.keys()][index] ?? null,
    removeItem: (key) => void data.delete(key),
    setItem: (key, value) => void data.set(key, String(value)),
  };
}
