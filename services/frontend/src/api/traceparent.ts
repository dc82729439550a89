// W3C Trace Context for the SPA's API calls: each request carries a `traceparent` naming a
// new trace, so backend's server span (and the spans of auth, ai and data-processor after it)
// join one trace that starts at the browser. No OpenTelemetry web SDK: the header is all the
// services need, and the browser records no spans of its own.

const ZERO = /^0+$/;

function randomHex(bytes: number, random: (array: Uint8Array) => Uint8Array): string {
  // All zeros is invalid for both ids (the spec's "invalid" value): draw again.
  for (;;) {
    const hex = Array.from(random(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
    if (!ZERO.test(hex)) return hex;
  }
}

/**
 * `00-<trace-id>-<parent-id>-01`: version 00, a random 16-byte trace id and 8-byte parent id,
 * flagged sampled so the services record the trace the call starts.
 */
export function newTraceparent(
  random: (array: Uint8Array) => Uint8Array = (array) => crypto.getRandomValues(array),
): string {
  return `00-${randomHex(16, random)}-${randomHex(8, random)}-01`;
}
