import {
  useInfiniteQuery,
  useMutation,
  useQuery,
  useQueryClient,
  type InfiniteData,
} from '@tanstack/react-query';
import { Link, getRouteApi } from '@tanstack/react-router';
import { useState, type FormEvent, type KeyboardEvent } from 'react';

import { ApiError } from '../api/client';
import type { Message, Page } from '../api/types';
import { Empty, ErrorNotice, Loading } from '../components/Status';
import { formatDateTime } from '../format';
import { MESSAGE_MAX_CHARS } from '../rules';
import { useApi } from '../session';
import { useSubmission } from '../submission';

const route = getRouteApi('/app/conversations/$conversationId');

/** While a reply is pending the messages are polled this often. */
export const PENDING_POLL_MS = 2_000;

const messagesKey = (conversationId: string) => ['messages', conversationId] as const;

export function ConversationPage() {
  const { conversationId } = route.useParams();
  const api = useApi();
  const conversation = useQuery({
    queryKey: ['conversation', conversationId],
    queryFn: () => api.chat.getConversation(conversationId),
  });

  return (
    <section aria-labelledby="conversation-heading">
      <p>
        <Link to="/conversations">← All conversations</Link>
      </p>
      {conversation.isPending ? (
        <Loading label="Loading conversation…" />
      ) : conversation.error instanceof ApiError && conversation.error.status === 404 ? (
        // Trying again cannot bring it back: say so and point the way out.
        <>
          <h1 id="conversation-heading">Conversation not found</h1>
          <p className="status status-error" role="alert">
            This conversation does not exist or belongs to someone else.
          </p>
          <p>
            <Link to="/conversations">Back to your conversations</Link>
          </p>
        </>
      ) : conversation.isError ? (
        <ErrorNotice error={conversation.error} onRetry={() => void conversation.refetch()} />
      ) : (
        <>
          <h1 id="conversation-heading">{conversation.data.title}</h1>
          <MessageThread conversationId={conversationId} />
          <Composer conversationId={conversationId} />
        </>
      )}
    </section>
  );
}

function MessageThread({ conversationId }: { conversationId: string }) {
  const api = useApi();
  const messages = useInfiniteQuery({
    queryKey: messagesKey(conversationId),
    queryFn: ({ pageParam }) => api.chat.listMessages(conversationId, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (page) => page.next_cursor,
    refetchInterval: (query) =>
      hasPending(query.state.data) ? PENDING_POLL_MS : false,
  });

  if (messages.isPending) return <Loading label="Loading messages…" />;
  if (messages.isError) {
    return <ErrorNotice error={messages.error} onRetry={() => void messages.refetch()} />;
  }
  const items = messages.data.pages.flatMap((page) => page.items);
  return (
    <>
      {items.length === 0 ? (
        <Empty>No messages yet. Say something below.</Empty>
      ) : (
        <ol className="messages" aria-label="Messages" aria-live="polite">
          {items.map((message) => (
            <MessageItem key={message.id} message={message} />
          ))}
        </ol>
      )}
      {messages.hasNextPage && (
        <button
          type="button"
          onClick={() => void messages.fetchNextPage()}
          disabled={messages.isFetchingNextPage}
        >
          {messages.isFetchingNextPage ? 'Loading…' : 'Load newer messages'}
        </button>
      )}
    </>
  );
}

function hasPending(data: InfiniteData<Page<Message>> | undefined): boolean {
  return data?.pages.some((page) => page.items.some((m) => m.status === 'pending')) ?? false;
}

export function MessageItem({ message }: { message: Message }) {
  const author = message.role === 'user' ? 'You' : 'AI';
  return (
    <li className={`message message-${message.role} message-${message.status}`}>
      <div className="message-meta">
        <strong>{author}</strong>
        <time dateTime={message.created_at}>{formatDateTime(message.created_at)}</time>
        {isDemoModel(message) && (
          <span
            className="badge"
            title="This reply comes from the built-in demo model, which only echoes. Plug in a real model: see the README (AI_PROVIDER=openai)."
          >
            demo model
          </span>
        )}
      </div>
      {message.status === 'pending' && message.failure ? (
        <RetryReply message={message} reason={`${message.failure}: trying again in the background.`} />
      ) : message.status === 'pending' ? (
        <p className="message-pending" role="status">
          {message.content || 'The AI is writing a reply…'}
        </p>
      ) : (
        <p className="message-content" dir="auto">
          {message.content}
        </p>
      )}
      {message.status === 'failed' && (
        <RetryReply message={message} reason={`${message.failure ?? 'The AI could not reply'}.`} />
      )}
    </li>
  );
}

/** ai's `local` provider (model `local-...`) answers with an echo, not a language model. */
export function isDemoModel(message: Message): boolean {
  return message.role === 'assistant' && (message.model ?? '').startsWith('local-');
}

function RetryReply({ message, reason }: { message: Message; reason: string }) {
  const api = useApi();
  const queryClient = useQueryClient();
  const retry = useMutation({
    mutationFn: () => api.chat.retryReply(message.conversation_id, message.id),
    onSettled: () =>
      queryClient.invalidateQueries({ queryKey: messagesKey(message.conversation_id) }),
  });
  return (
    <div className="message-failed-notice" role="alert">
      <span>{reason}</span>
      <button type="button" onClick={() => retry.mutate()} disabled={retry.isPending}>
        {retry.isPending ? 'Retrying…' : 'Retry'}
      </button>
      {retry.isError && <ErrorNotice error={retry.error} />}
    </div>
  );
}

function Composer({ conversationId }: { conversationId: string }) {
  const api = useApi();
  const queryClient = useQueryClient();
  const [content, setContent] = useState('');
  const [notice, setNotice] = useState<string | null>(null);
  const submission = useSubmission();

  const send = useMutation({
    mutationFn: ({ text, key }: { text: string; key: string }) =>
      api.chat.sendMessage(conversationId, text, key),
    onSuccess: (_sent, { text }) => {
      submission.end(true);
      setNotice(null);
      // Only what the server has leaves the box: text typed meanwhile stays.
      setContent((current) => (current.trim() === text ? '' : current));
    },
    onError: () => submission.end(false),
    onSettled: () => queryClient.invalidateQueries({ queryKey: messagesKey(conversationId) }),
  });

  function submit(event?: FormEvent) {
    event?.preventDefault();
    const text = content.trim();
    if (!text || text.length > MESSAGE_MAX_CHARS) return;
    const key = submission.begin(text);
    if (key === null) {
      if (submission.busyWith() !== text) {
        setNotice('Your previous message is still being sent; this one stays here: send it then.');
      }
      return;
    }
    send.mutate({ text, key });
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    // Enter sends, Shift+Enter makes a new line.
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  }

  const tooLong = content.trim().length > MESSAGE_MAX_CHARS;
  return (
    <form className="composer" onSubmit={submit} aria-label="Send a message">
      <label htmlFor="composer-input">Your message</label>
      <textarea
        id="composer-input"
        name="content"
        rows={3}
        required
        dir="auto"
        value={content}
        onChange={(event) => setContent(event.target.value)}
        onKeyDown={onKeyDown}
        aria-describedby="composer-hint composer-count"
        aria-invalid={tooLong}
      />
      <span id="composer-hint" className="hint">
        Enter sends, Shift+Enter adds a line.{' '}
        <span id="composer-count" className={tooLong ? 'field-error' : undefined}>
          {content.trim().length} / {MESSAGE_MAX_CHARS} characters
          {tooLong ? ': too long to send' : ''}
        </span>
      </span>
      {notice && (
        <p className="hint" role="status">
          {notice}
        </p>
      )}
      {send.isError && <ErrorNotice error={send.error} />}
      <button type="submit" disabled={send.isPending || !content.trim() || tooLong}>
        {send.isPending ? 'Sending…' : 'Send'}
      </button>
    </form>
  );
}
