// Fetch wrapper for the same-origin API: JSON in and out, errors as ApiError, and transparent
// token refresh (one refresh in flight at a time; a 401 triggers a refresh and a single retry).
import type { TokenPair } from './types';
import type { TokenStore, Tokens } from './tokens';
import { newTraceparent } from './traceparent';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
    this.name = 'ApiError';
  }
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  json?: unknown;
  body?: BodyInit;
  /** Send the access token (default true). */
  auth?: boolean;
  timeoutMs?: number;
  /**
   * `Idempotency-Key` of a creating request: the server stores it once however often it is
   * sent. With a key, a request whose answer was lost (network error, 502/503/504) is sent
   * again with the same key.
   */
  idempotencyKey?: string;
  /**
   * Called as the request body goes out (bytes sent, bytes in all). fetch reports no upload
   * progress, so such a request is sent with XMLHttpRequest (same headers, refresh and retry).
   */
  onUploadProgress?: (sent: number, total: number) => void;
}

export interface ApiClientOptions {
  tokens: TokenStore;
  fetch?: typeof fetch;
  /** Makes the XMLHttpRequest of a request with upload progress (tests give their own). */
  xhr?: () => XMLHttpRequest;
  baseUrl?: string;
  timeoutMs?: number;
}

export const REFRESH_PATH = '/api/auth/refresh';
const DEFAULT_TIMEOUT_MS = 15_000;
/** Pauses before the repeats of a keyed request whose answer was lost. */
export const IDEMPOTENT_RETRY_DELAYS_MS = [500, 1_500];
const LOST_ANSWER = new Set([502, 503, 504]);

/** A fresh Idempotency-Key for one creation (reuse it for that creation's retries). */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class ApiClient {
  private refreshing: Promise<Tokens | null> | null = null;
  private readonly fetchImpl: typeof fetch;
  private readonly makeXhr: (() => XMLHttpRequest) | null;
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly expiryListeners = new Set<() => void>();

  constructor(private readonly options: ApiClientOptions) {
    // Bound so that a stubbed or native fetch is never called with a foreign `this`.
    const impl = options.fetch ?? globalThis.fetch;
    this.fetchImpl = (input, init) => impl(input, init);
    // A client given its own fetch and no XMLHttpRequest (the page tests) sends through fetch.
    this.makeXhr = options.xhr ?? (options.fetch ? null : () => new XMLHttpRequest());
    this.baseUrl = options.baseUrl ?? '';
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  get tokens(): TokenStore {
    return this.options.tokens;
  }

  /** `listener` runs whenever the session ends because it could not be refreshed. */
  onSessionExpired(listener: () => void): () => void {
    this.expiryListeners.add(listener);
    return () => this.expiryListeners.delete(listener);
  }

  async json<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.send(path, options);
    return (await response.json()) as T;
  }

  async blob(path: string, options: RequestOptions = {}): Promise<Blob> {
    const response = await this.send(path, options);
    return response.blob();
  }

  async empty(path: string, options: RequestOptions = {}): Promise<void> {
    await this.send(path, options);
  }

  /** Sends the request; a keyed one again while its answer is lost (same key each time). */
  async send(path: string, options: RequestOptions = {}): Promise<Response> {
    const delays = options.idempotencyKey ? IDEMPOTENT_RETRY_DELAYS_MS : [];
    for (const delay of delays) {
      try {
        const response = await this.sendOnce(path, options);
        if (!LOST_ANSWER.has(response.status)) return this.checked(response);
      } catch (error) {
        if (!(error instanceof TypeError)) throw error; // only a network failure is retried
      }
      await sleep(delay);
    }
    return this.checked(await this.sendOnce(path, options));
  }

  private async checked(response: Response): Promise<Response> {
    if (!response.ok) throw await toApiError(response);
    return response;
  }

  /** One request; on a 401 refreshes the tokens once and retries once. */
  private async sendOnce(path: string, options: RequestOptions): Promise<Response> {
    const useAuth = options.auth ?? true;
    const sentWith = useAuth ? this.tokens.get() : null;
    let response = await this.attempt(path, options, sentWith);
    if (response.status === 401 && useAuth && sentWith) {
      const fresh = await this.tokensAfter(sentWith);
      if (!fresh) {
        this.expireSession();
        throw await toApiError(response);
      }
      response = await this.attempt(path, options, fresh);
      if (response.status === 401) this.expireSession();
    }
    return response;
  }

  /**
   * Tokens to retry with after `stale` was refused: a refresh already done by a concurrent
   * request is reused, a running one is joined, otherwise one is started.
   */
  private async tokensAfter(stale: Tokens): Promise<Tokens | null> {
    const current = this.tokens.get();
    if (current && current.accessToken !== stale.accessToken) return current;
    if (!current) return null;
    this.refreshing ??= this.refresh(current).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async refresh(current: Tokens): Promise<Tokens | null> {
    let response: Response;
    try {
      response = await this.attempt(
        REFRESH_PATH,
        { method: 'POST', json: { refresh_token: current.refreshToken } },
        null,
      );
    } catch {
      return null;
    }
    if (!response.ok) return null;
    const pair = (await response.json()) as TokenPair;
    const fresh = { accessToken: pair.access_token, refreshToken: pair.refresh_token };
    this.tokens.set(fresh);
    return fresh;
  }

  private expireSession(): void {
    if (this.tokens.get() === null) return;
    this.tokens.set(null);
    for (const listener of this.expiryListeners) listener();
  }

  private attempt(path: string, options: RequestOptions, tokens: Tokens | null) {
    const headers = new Headers({ Accept: 'application/json' });
    let body = options.body;
    if (options.json !== undefined) {
      headers.set('Content-Type', 'application/json');
      body = JSON.stringify(options.json);
    }
    if (tokens) headers.set('Authorization', `Bearer ${tokens.accessToken}`);
    if (options.idempotencyKey) headers.set('Idempotency-Key', `"${options.idempotencyKey}"`);
    // Every request starts a trace the services continue (W3C Trace Context).
    headers.set('traceparent', newTraceparent());
    const method = options.method ?? (body === undefined ? 'GET' : 'POST');
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    if (options.onUploadProgress && this.makeXhr) {
      const request = { method, headers, body, timeoutMs };
      return sendWithProgress(this.makeXhr(), this.baseUrl + path, request, options.onUploadProgress);
    }
    return this.fetchImpl(this.baseUrl + path, {
      method,
      headers,
      body,
      credentials: 'same-origin',
      signal: AbortSignal.timeout(timeoutMs),
    });
  }
}

interface XhrRequest {
  method: string;
  headers: Headers;
  body: BodyInit | undefined;
  timeoutMs: number;
}

const NO_BODY_STATUSES = new Set([101, 204, 205, 304]);

/** The request over XMLHttpRequest, its answer as a fetch Response; failures as fetch's. */
function sendWithProgress(
  xhr: XMLHttpRequest,
  url: string,
  request: XhrRequest,
  onProgress: (sent: number, total: number) => void,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    xhr.open(request.method, url);
    request.headers.forEach((value, key) => xhr.setRequestHeader(key, value));
    xhr.timeout = request.timeoutMs;
    xhr.responseType = 'text'; // the answers of uploads are JSON
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.onload = () => {
      const body = NO_BODY_STATUSES.has(xhr.status) ? null : xhr.responseText;
      resolve(
        new Response(body, {
          status: xhr.status,
          statusText: xhr.statusText,
          headers: responseHeaders(xhr.getAllResponseHeaders()),
        }),
      );
    };
    xhr.onerror = () => reject(new TypeError('Network error'));
    xhr.onabort = () => reject(new TypeError('Request aborted'));
    xhr.ontimeout = () => reject(new DOMException('The request timed out.', 'TimeoutError'));
    xhr.send((request.body ?? null) as XMLHttpRequestBodyInit | null);
  });
}

function responseHeaders(raw: string): Headers {
  const headers = new Headers();
  for (const line of raw.trim().split(/[\r\n]+/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return headers;
}

/** The service's `{"detail": ...}` message, or a readable fallback. */
export async function toApiError(response: Response): Promise<ApiError> {
  let detail = `${response.status} ${response.statusText}`.trim();
  try {
    const payload: unknown = await response.json();
    if (typeof payload === 'object' && payload !== null && 'detail' in payload) {
      detail = describeDetail((payload as { detail: unknown }).detail) ?? detail;
    }
  } catch {
    // Not JSON (e.g. a proxy's error page): keep the status line.
  }
  if (response.status === 429) {
    const retryAfter = response.headers.get('Retry-After');
    if (retryAfter) detail = `${detail} (try again in ${retryAfter} s)`;
  }
  return new ApiError(response.status, detail);
}

/** servicekit's `body.password: Value error, this password ...` in words for people. */
const FIELD_ERROR = /^(?:body|query|path)\.([A-Za-z_]+): (?:Value error, )?(.+)$/s;

function describeDetail(detail: unknown): string | null {
  if (typeof detail === 'string') {
    const match = FIELD_ERROR.exec(detail);
    if (!match || detail.includes('; ')) return detail;
    const [, field = '', message = ''] = match;
    return `The ${field.replace(/_/g, ' ')}: ${message.charAt(0).toLowerCase()}${message.slice(1)}`;
  }
  // FastAPI validation errors: [{loc: [...], type: "...", msg: "...", ctx: {...}}]
  if (Array.isArray(detail)) {
    const messages = detail
      .map((item: unknown) => (isValidationItem(item) ? describeValidationItem(item) : null))
      .filter((message): message is string => message !== null);
    return messages.length > 0 ? messages.join(' ') : null;
  }
  return null;
}

interface ValidationItem {
  loc?: unknown[];
  type?: string;
  msg: string;
  ctx?: Record<string, unknown>;
}

function isValidationItem(item: unknown): item is ValidationItem {
  return typeof item === 'object' && item !== null && 'msg' in item;
}

/** A sentence a person understands: `body.username: String should match pattern ...` is none. */
export function describeValidationItem(item: ValidationItem): string {
  const names = (item.loc ?? []).filter((part) => typeof part === 'string' && part !== 'body');
  const field = names.length > 0 ? `The ${String(names[names.length - 1]).replace(/_/g, ' ')}` : 'A value';
  const ctx = item.ctx ?? {};
  switch (item.type) {
    case 'missing':
      return `${field} is required.`;
    case 'string_too_short':
      return `${field} is too short: use at least ${String(ctx.min_length)} characters.`;
    case 'string_too_long':
      return `${field} is too long: use at most ${String(ctx.max_length)} characters.`;
    case 'string_pattern_mismatch':
      return `${field} contains characters that are not allowed.`;
    default: {
      const text = String(item.msg).replace(/^Value error, /, '');
      return `${field} is not valid: ${text.charAt(0).toLowerCase()}${text.slice(1)}${/[.!?]$/.test(text) ? '' : '.'}`;
    }
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.detail;
  if (error instanceof DOMException && error.name === 'TimeoutError') {
    return 'The server did not answer in time. Please try again.';
  }
  if (error instanceof TypeError) return 'Network error: the server could not be reached.';
  return error instanceof Error ? error.message : String(error);
}
