import '@testing-library/jest-dom/vitest';
import { cleanup } from '@testing-library/react';
import { afterEach } from 'vitest';

if (typeof window !== 'undefined') {
  // jsdom has no layout; the router's scroll restoration calls this after every navigation.
  window.scrollTo = () => undefined;

  afterEach(() => {
    cleanup();
    localStorage.clear();
  });
}
