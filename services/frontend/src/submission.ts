// One creation at a time, each with its own Idempotency-Key: a double click or a retry of the
// same input sends the same key (the server stores it once); new input gets a new key.
import { useRef } from 'react';

import { newIdempotencyKey } from './api/client';

export function useSubmission() {
  const current = useRef<{ input: string; key: string } | null>(null);
  // A ref, not state: a second click arrives before React re-renders with `isPending`.
  const inFlight = useRef<string | null>(null);
  return {
    /** The key for `input`, or null while another submit is in flight. */
    begin(input: string): string | null {
      if (inFlight.current !== null) return null;
      inFlight.current = input;
      if (current.current?.input !== input) current.current = { input, key: newIdempotencyKey() };
      return current.current.key;
    },
    /** The submit ended; after a success the next input gets a fresh key. */
    end(succeeded: boolean): void {
      inFlight.current = null;
      if (succeeded) current.current = null;
    },
    busyWith(): string | null {
      return inFlight.current;
    },
  };
}
