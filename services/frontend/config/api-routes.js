// The same-origin API routes, shared by the Vite dev server, `vite preview` (used by the browser
// test) and documented against the ingress: `/api/<route>/x` reaches the service as `/x`.

/** @typedef {{ prefix: string, env: string, defaultTarget: string }} ApiRoute */

/** @type {readonly ApiRoute[]} */
export const API_ROUTES = [
  { prefix: '/api/auth', env: 'API_AUTH_URL', defaultTarget: 'http://127.0.0.1:8001' },
  { prefix: '/api/chat', env: 'API_CHAT_URL', defaultTarget: 'http://127.0.0.1:8002' },
  { prefix: '/api/ai', env: 'API_AI_URL', defaultTarget: 'http://127.0.0.1:8003' },
  { prefix: '/api/media', env: 'API_MEDIA_URL', defaultTarget: 'http://127.0.0.1:8004' },
  { prefix: '/api/stats', env: 'API_STATS_URL', defaultTarget: 'http://127.0.0.1:8005' },
];

/**
 * Strips the route prefix the way the ingress does; the service always sees an absolute path.
 * @param {string} prefix
 * @param {string} path
 * @returns {string}
 */
export function stripPrefix(prefix, path) {
  const rest = path.slice(prefix.length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/**
 * Vite `server.proxy` / `preview.proxy` entries, targets taken from the environment.
 * @param {Record<string, string | undefined>} env
 * @returns {Record<string, { target: string, changeOrigin: boolean, rewrite: (path: string) => string }>}
 */
export function proxyTable(env) {
  return Object.fromEntries(
    API_ROUTES.map((route) => [
      // Match `/api/auth` and `/api/auth/...`, but not `/api/authority`.
      `^${route.prefix}(/|$|\\?)`,
      {
        target: env[route.env] || route.defaultTarget,
        changeOrigin: true,
        rewrite: (path) => stripPrefix(route.prefix, path),
      },
    ]),
  );
}
