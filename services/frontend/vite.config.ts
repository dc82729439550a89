/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

import { proxyTable } from './config/api-routes.js';
import { SECURITY_HEADERS } from './config/security-headers.js';

export default defineConfig({
  plugins: [react()],
  server: { proxy: proxyTable(process.env) },
  preview: { proxy: proxyTable(process.env), headers: { ...SECURITY_HEADERS } },
  build: { sourcemap: false, assetsDir: 'assets' },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}', 'config/**/*.test.ts'],
    restoreMocks: true,
  },
});
