import { describe, expect, it } from 'vitest';

import { ApiError } from './api/client';
import { isTransient } from './session';

describe('query retry policy', () => {
  it.each([
    [new TypeError('Failed to fetch'), true],
    [new ApiError(503, 'unavailable'), true],
    [new ApiError(502, 'bad gateway'), true],
    [new ApiError(429, 'slow down'), true],
    [new ApiError(404, 'not found'), false],
    [new ApiError(401, 'expired'), false],
    [new ApiError(422, 'invalid'), false],
  ])('%s is transient: %s', (error, expected) => {
    expect(isTransient(error)).toBe(expected);
  });
});
