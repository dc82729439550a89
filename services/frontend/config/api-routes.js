// Where the Vite dev server and `vite preview` (the browser test) send `/api/...`: one edge URL,
// the local stack's (`make run`, http://127.0.0.1:8080) or a cluster's gateway. The edge owns the
// routing (`/api/<route>/x` reaches the service as `/x`), so the path is forwarded unchanged.

export const API_URL_ENV = 'API_URL';
export const DEFAULT_API_URL = 'http://127.0.0.1:8080';

/**
 * Vite `server.proxy` / `preview.proxy`: every `/api` path to the edge in API_URL.
 * @param {Record<string, string | undefined>} env
 * @returns {Record<string, { target: string, changeOrigin: boolean }>}
 */
export function proxyTable(env) {
  const target = (env[API_URL_ENV] || DEFAULT_API_URL).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(target)) {
    throw new Error(`${API_URL_ENV}=${target}: expected http(s)://host[:port] of the edge`);
  }
  // `/api` and `/api/...`, not `/apiary`.
  return { '^/api(/|$|\\?)': { target, changeOrigin: true } };
}
