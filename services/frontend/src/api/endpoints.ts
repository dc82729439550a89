// One typed function per API call, all through the ApiClient (same-origin /api/... paths).
import type { ApiClient } from './client';
import type {
  Conversation,
  Message,
  Page,
  SentMessage,
  StoredFile,
  TokenPair,
  User,
  UserStats,
} from './types';

const UPLOAD_TIMEOUT_MS = 120_000;

function query(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

const id = encodeURIComponent;

export function createApi(client: ApiClient) {
  return {
    auth: {
      register: (username: string, password: string) =>
        client.json<User>('/api/auth/register', { json: { username, password }, auth: false }),
      login: (username: string, password: string) =>
        client.json<TokenPair>('/api/auth/login', { json: { username, password }, auth: false }),
      logout: (refreshToken: string) =>
        client.empty('/api/auth/logout', { json: { refresh_token: refreshToken }, auth: false }),
      me: () => client.json<User>('/api/auth/me'),
    },
    chat: {
      listConversations: (cursor?: string | null, limit = 20) =>
        client.json<Page<Conversation>>(`/api/chat/conversations${query({ limit, cursor })}`),
      createConversation: (title: string, idempotencyKey?: string) =>
        client.json<Conversation>('/api/chat/conversations', { json: { title }, idempotencyKey }),
      getConversation: (conversationId: string) =>
        client.json<Conversation>(`/api/chat/conversations/${id(conversationId)}`),
      listMessages: (conversationId: string, cursor?: string | null, limit = 50) =>
        client.json<Page<Message>>(
          `/api/chat/conversations/${id(conversationId)}/messages${query({ limit, cursor })}`,
        ),
      sendMessage: (conversationId: string, content: string, idempotencyKey?: string) =>
        client.json<SentMessage>(`/api/chat/conversations/${id(conversationId)}/messages`, {
          json: { content },
          idempotencyKey,
          // The AI reply is produced within this request; give it time.
          timeoutMs: 60_000,
        }),
      retryReply: (conversationId: string, messageId: string) =>
        client.json<Message>(
          `/api/chat/conversations/${id(conversationId)}/messages/${id(messageId)}/retry`,
          { method: 'POST', timeoutMs: 60_000 },
        ),
    },
    media: {
      listFiles: () => client.json<{ items: StoredFile[] }>('/api/media/files'),
      upload: (file: File, onProgress?: (sent: number, total: number) => void) => {
        const form = new FormData();
        form.append('file', file, file.name);
        return client.json<StoredFile>('/api/media/files', {
          body: form,
          timeoutMs: UPLOAD_TIMEOUT_MS,
          onUploadProgress: onProgress,
        });
      },
      download: (fileId: string) =>
        client.blob(`/api/media/files/${id(fileId)}`, { timeoutMs: UPLOAD_TIMEOUT_MS }),
      remove: (fileId: string) =>
        client.empty(`/api/media/files/${id(fileId)}`, { method: 'DELETE' }),
    },
    stats: {
      me: () => client.json<UserStats>('/api/stats/stats/me'),
    },
  };
}

export type Api = ReturnType<typeof createApi>;
