import { useInfiniteQuery, useMutation, useQueryClient } from '@tanstack/react-query';
import { Link, useNavigate } from '@tanstack/react-router';
import { useState, type FormEvent } from 'react';

import { Empty, ErrorNotice, Loading } from '../components/Status';
import { TextField } from '../components/TextField';
import { formatDateTime } from '../format';
import { TITLE_MAX_CHARS } from '../rules';
import { useApi } from '../session';
import { useSubmission } from '../submission';

export const conversationsKey = ['conversations'] as const;

export function ConversationsPage() {
  const api = useApi();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [title, setTitle] = useState('');

  const conversations = useInfiniteQuery({
    queryKey: conversationsKey,
    queryFn: ({ pageParam }) => api.chat.listConversations(pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (page) => page.next_cursor,
  });

  const submission = useSubmission();
  const create = useMutation({
    mutationFn: ({ text, key }: { text: string; key: string }) =>
      api.chat.createConversation(text, key),
    onSuccess: async (conversation) => {
      submission.end(true);
      setTitle('');
      await queryClient.invalidateQueries({ queryKey: conversationsKey });
      await navigate({
        to: '/conversations/$conversationId',
        params: { conversationId: conversation.id },
      });
    },
    onError: () => submission.end(false),
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const text = title.trim();
    const key = text && text.length <= TITLE_MAX_CHARS ? submission.begin(text) : null;
    if (key !== null) create.mutate({ text, key });
  }

  // No maxLength: a pasted long title would be cut without a word; it is counted instead.
  const titleLength = title.trim().length;
  const tooLong = titleLength > TITLE_MAX_CHARS;
  const items = conversations.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <section aria-labelledby="conversations-heading">
      <h1 id="conversations-heading">Conversations</h1>
      <form className="inline-form" onSubmit={submit} aria-label="New conversation">
        <TextField
          label="New conversation title"
          name="title"
          required
          hint={`${titleLength} / ${TITLE_MAX_CHARS} characters${tooLong ? ': too long, shorten it' : ''}`}
          aria-invalid={tooLong}
          value={title}
          onChange={(event) => setTitle(event.target.value)}
        />
        <button type="submit" disabled={create.isPending || !title.trim() || tooLong}>
          {create.isPending ? 'Creating…' : 'Create'}
        </button>
      </form>
      {create.isError && <ErrorNotice error={create.error} />}

      {conversations.isPending ? (
        <Loading label="Loading conversations…" />
      ) : conversations.isError ? (
        <ErrorNotice error={conversations.error} onRetry={() => void conversations.refetch()} />
      ) : items.length === 0 ? (
        <Empty>No conversations yet. Create one above.</Empty>
      ) : (
        <ul className="list" aria-label="Your conversations">
          {items.map((conversation) => (
            <li key={conversation.id}>
              <Link
                to="/conversations/$conversationId"
                params={{ conversationId: conversation.id }}
              >
                {conversation.title}
              </Link>
              <time dateTime={conversation.created_at}>
                {formatDateTime(conversation.created_at)}
              </time>
            </li>
          ))}
        </ul>
      )}
      {conversations.hasNextPage && (
        <button
          type="button"
          onClick={() => void conversations.fetchNextPage()}
          disabled={conversations.isFetchingNextPage}
        >
          {conversations.isFetchingNextPage ? 'Loading…' : 'Load more'}
        </button>
      )}
    </section>
  );
}
