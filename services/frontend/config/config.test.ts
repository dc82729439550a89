// @vitest-environment node
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { API_ROUTES, proxyTable, stripPrefix } from './api-routes.js';
import { SECURITY_HEADERS } from './security-headers.js';

describe('API routing (dev server and preview)', () => {
  it.each([
    ['/api/auth', '/api/auth/login', '/login'],
    ['/api/auth', '/api/auth', '/'],
    ['/api/chat', '/api/chat/conversations?limit=5', '/conversations?limit=5'],
    ['/api/stats', '/api/stats?x=1', '/?x=1'],
  ])('%s strips %s to %s', (prefix, path, expected) => {
    expect(stripPrefix(prefix, path)).toBe(expected);
  });

  it('matches each route and not a longer name sharing its prefix', () => {
    const patterns = Object.keys(proxyTable({})).map((key) => new RegExp(key));
    const matching = (path: string) => patterns.filter((pattern) => pattern.test(path)).length;
    expect(matching('/api/auth/login')).toBe(1);
    expect(matching('/api/auth')).toBe(1);
    expect(matching('/api/authors')).toBe(0);
    expect(matching('/conversations')).toBe(0);
  });

  it('takes each target from its environment variable', () => {
    const table = proxyTable({ API_MEDIA_URL: 'http://127.0.0.1:9999' });
    expect(table['^/api/media(/|$|\\?)']?.target).toBe('http://127.0.0.1:9999');
    expect(table['^/api/auth(/|$|\\?)']?.target).toBe('http://127.0.0.1:8001');
    expect(API_ROUTES.map((route) => route.prefix)).toEqual([
      '/api/auth',
      '/api/chat',
      '/api/ai',
      '/api/media',
      '/api/stats',
    ]);
  });
});

describe('nginx configuration', () => {
  const headers = readFileSync(new URL('../nginx/security-headers.conf', import.meta.url), 'utf8');
  const server = readFileSync(new URL('../nginx/default.conf', import.meta.url), 'utf8');

  it.each(Object.entries(SECURITY_HEADERS))('sends %s as the app defines it', (name, value) => {
    expect(headers).toContain(`add_header ${name} "${value}" always;`);
  });

  it('includes the security headers in every location that sets its own headers', () => {
    const locations = server.split(/\n\s*location /).slice(1);
    expect(locations.length).toBeGreaterThanOrEqual(4);
    for (const location of locations) {
      expect(location).toContain('include /etc/nginx/snippets/security-headers.conf;');
    }
  });
});
