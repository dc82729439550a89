// @vitest-environment node
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { DEFAULT_API_URL, proxyTable } from './api-routes.js';
import { SECURITY_HEADERS } from './security-headers.js';

describe('API proxy (dev server and preview): one edge URL', () => {
  it('sends every /api path, unchanged, to API_URL', () => {
    const table = proxyTable({ API_URL: 'http://127.0.0.1:9999/' });
    const [pattern, route] = Object.entries(table)[0] ?? [];
    expect(Object.keys(table)).toHaveLength(1);
    expect(route).toEqual({ target: 'http://127.0.0.1:9999', changeOrigin: true });
    const matches = (path: string) => new RegExp(pattern ?? '$^').test(path);
    expect(matches('/api/auth/login')).toBe(true);
    expect(matches('/api')).toBe(true);
    expect(matches('/api?x=1')).toBe(true);
    expect(matches('/apiary')).toBe(false);
    expect(matches('/conversations')).toBe(false);
  });

  it('defaults to the edge of `make run`', () => {
    expect(Object.values(proxyTable({}))[0]?.target).toBe(DEFAULT_API_URL);
    expect(DEFAULT_API_URL).toBe('http://127.0.0.1:8080');
  });

  it('refuses a value that is no URL, naming the variable', () => {
    expect(() => proxyTable({ API_URL: '127.0.0.1:8080' })).toThrow(/^API_URL=127.0.0.1:8080: expected/);
  });
});

describe('nginx configuration', () => {
  const headers = readFileSync(new URL('../nginx/security-headers.conf', import.meta.url), 'utf8');
  const server = readFileSync(new URL('../nginx/default.conf', import.meta.url), 'utf8');

  it.each(Object.entries(SECURITY_HEADERS))('sends %s as the app defines it', (name, value) => {
    expect(headers).toContain(`add_header ${name} "${value}" always;`);
  });

  it('answers an API path that reached the app with a JSON 404, not the app', () => {
    const api = server.split(/\n\s*location /).find((location) => location.startsWith('/api/ '));
    expect(api).toBeDefined();
    expect(api).toContain('default_type application/json;');
    expect(api).toMatch(/return 404 '\{"detail": "no such API route"\}';/);
  });

  it('includes the security headers in every location that sets its own headers', () => {
    const locations = server.split(/\n\s*location /).slice(1);
    expect(locations.length).toBeGreaterThanOrEqual(4);
    for (const location of locations) {
      expect(location).toContain('include /etc/nginx/snippets/security-headers.conf;');
    }
  });
});
