import { describe, expect, it } from 'vitest';

import { newTraceparent } from './traceparent';

// version-traceid-parentid-flags, lower-case hex (W3C Trace Context, level 1).
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

describe('newTraceparent', () => {
  it('is a well-formed, sampled W3C traceparent', () => {
    const match = TRACEPARENT.exec(newTraceparent());
    expect(match).not.toBeNull();
    expect(match?.[1]).not.toMatch(/^0+$/);
    expect(match?.[2]).not.toMatch(/^0+$/);
  });

  it('names a new trace each time', () => {
    const ids = new Set(Array.from({ length: 50 }, () => newTraceparent().split('-')[1]));
    expect(ids.size).toBe(50);
  });

  it('draws again rather than send an all-zero (invalid) id', () => {
    let draws = 0;
    const random = (array: Uint8Array) => {
      draws += 1;
      return draws === 1 ? array.fill(0) : array.fill(0xab);
    };
    expect(newTraceparent(random)).toBe(`00-${'ab'.repeat(16)}-${'ab'.repeat(8)}-01`);
  });
});
