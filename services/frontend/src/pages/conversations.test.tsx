import { screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';

import type { Message } from '../api/types';
import { json } from '../test/fakeFetch';
import { renderApp } from '../test/renderApp';

const conversation = { id: 'c1', title: 'Trip planning', created_at: '2026-11-25T10:00:00Z' };

function message(overrides: Partial<Message>): Message {
  return {
    id: 'm1',
    conversation_id: 'c1',
    role: 'user',
    content: 'Hello',
    status: 'completed',
    created_at: '2026-11-25T10:01:00Z',
    ...overrides,
  };
}

const page = (items: unknown[], next_cursor: string | null = null) => json({ items, next_cursor });

describe('conversation list', () => {
  it('lists conversations and loads the next page', async () => {
    const { user } = renderApp('/conversations', {
      'GET /api/chat/conversations?limit=20': () => page([conversation], 'next'),
      'GET /api/chat/conversations?limit=20&cursor=next': () =>
        page([{ ...conversation, id: 'c2', title: 'Recipes' }]),
    });
    const list = await screen.findByRole('list', { name: 'Your conversations' });
    expect(within(list).getByRole('link', { name: 'Trip planning' })).toHaveAttribute(
      'href',
      '/conversations/c1',
    );
    await user.click(screen.getByRole('button', { name: 'Load more' }));
    expect(await within(list).findByRole('link', { name: 'Recipes' })).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument();
  });

  it('shows an error with a way to try again', async () => {
    let attempts = 0;
    const { user } = renderApp('/conversations', {
      'GET /api/chat/conversations': () =>
        ++attempts === 1 ? json({ detail: 'backend unavailable' }, 503) : page([conversation]),
    });
    expect(await screen.findByRole('alert')).toHaveTextContent('backend unavailable');
    await user.click(screen.getByRole('button', { name: 'Try again' }));
    expect(await screen.findByRole('link', { name: 'Trip planning' })).toBeInTheDocument();
  });

  it('creates a conversation and opens it', async () => {
    const { user, history, calls } = renderApp('/conversations', {
      'GET /api/chat/conversations': () => page([]),
      'POST /api/chat/conversations': () => json(conversation, 201),
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () => page([]),
    });
    await user.type(await screen.findByLabelText('New conversation title'), 'Trip planning{Enter}');
    expect(await screen.findByRole('heading', { name: 'Trip planning' })).toBeInTheDocument();
    expect(history.location.pathname).toBe('/conversations/c1');
    expect(calls.find((call) => call.method === 'POST')?.body).toBe('{"title":"Trip planning"}');
    expect(screen.getByText(/No messages yet/)).toBeInTheDocument();
  });

  it('says a pasted title is too long instead of cutting it', async () => {
    const { user, calls } = renderApp('/conversations', {
      'GET /api/chat/conversations': () => page([]),
    });
    const field = await screen.findByLabelText('New conversation title');
    await user.click(field);
    await user.paste(`${'word '.repeat(50)}end`);

    expect(field).toHaveValue(`${'word '.repeat(50)}end`); // 253 characters, all kept
    expect(field).toHaveAccessibleDescription('253 / 200 characters: too long, shorten it');
    expect(field).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByRole('button', { name: 'Create' })).toBeDisabled();
    await user.type(field, '{Enter}');
    expect(calls.filter((call) => call.method === 'POST')).toHaveLength(0);
  });
});

describe('a conversation', () => {
  it('shows the messages and the AI replies, oldest first', async () => {
    renderApp('/conversations/c1', {
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () =>
        page([
          message({ id: 'm1', content: 'Where should we go?' }),
          message({ id: 'm2', role: 'assistant', content: 'Lisbon is lovely in spring.' }),
        ]),
    });
    const items = within(await screen.findByRole('list', { name: 'Messages' })).getAllByRole(
      'listitem',
    );
    expect(items.map((item) => item.textContent)).toEqual([
      expect.stringMatching(/^You.*Where should we go\?$/),
      expect.stringMatching(/^AI.*Lisbon is lovely in spring\.$/),
    ]);
  });

  it('sends a message with Enter and shows the reply', async () => {
    let sent = false;
    const { user, calls } = renderApp('/conversations/c1', {
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () =>
        page(
          sent
            ? [message({ content: 'Hi there' }), message({ id: 'm2', role: 'assistant', content: 'Hello!' })]
            : [],
        ),
      'POST /api/chat/conversations/c1/messages': () => {
        sent = true;
        return json(
          {
            message: message({ content: 'Hi there' }),
            reply: message({ id: 'm2', role: 'assistant', content: 'Hello!' }),
          },
          201,
        );
      },
    });
    const box = await screen.findByLabelText('Your message');
    await user.type(box, 'Hi there{Enter}');

    expect(await screen.findByText('Hello!')).toBeInTheDocument();
    expect(box).toHaveValue('');
    expect(calls.find((call) => call.method === 'POST')?.body).toBe('{"content":"Hi there"}');
  });

  it('marks a pending reply and polls until it is complete', async () => {
    let polls = 0;
    renderApp('/conversations/c1', {
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () =>
        page([
          message({}),
          ++polls < 2
            ? message({ id: 'm2', role: 'assistant', content: '', status: 'pending' })
            : message({ id: 'm2', role: 'assistant', content: 'Done thinking.' }),
        ]),
    });
    expect(await screen.findByText('The AI is writing a reply…')).toBeInTheDocument();
    expect(await screen.findByText('Done thinking.', {}, { timeout: 4000 })).toBeInTheDocument();
    expect(screen.queryByText('The AI is writing a reply…')).not.toBeInTheDocument();
  });

  it('offers a retry for a failed reply', async () => {
    let retried = false;
    const { user, calls } = renderApp('/conversations/c1', {
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () =>
        page([
          message({}),
          retried
            ? message({ id: 'm2', role: 'assistant', content: 'Second time lucky.' })
            : message({ id: 'm2', role: 'assistant', content: '', status: 'failed' }),
        ]),
      'POST /api/chat/conversations/c1/messages/m2/retry': () => {
        retried = true;
        return json(message({ id: 'm2', role: 'assistant', content: 'Second time lucky.' }));
      },
    });
    expect(await screen.findByText('The AI could not reply.')).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Retry' }));
    expect(await screen.findByText('Second time lucky.')).toBeInTheDocument();
    await waitFor(() =>
      expect(calls.filter((call) => call.path.endsWith('/retry'))).toHaveLength(1),
    );
    expect(screen.queryByRole('button', { name: 'Retry' })).not.toBeInTheDocument();
  });

  it('marks replies of the local demo model, and only those', async () => {
    renderApp('/conversations/c1', {
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () =>
        page([
          message({ id: 'm1' }),
          message({ id: 'm2', role: 'assistant', content: 'echo', model: 'local-echo-1' }),
          message({ id: 'm3', role: 'assistant', content: 'real', model: 'gpt-4o-mini' }),
        ]),
    });
    const items = within(await screen.findByRole('list', { name: 'Messages' })).getAllByRole(
      'listitem',
    );
    expect(items.map((item) => within(item).queryByText('demo model') !== null)).toEqual([
      false,
      true,
      false,
    ]);
  });

  it('says a missing conversation does not exist, without a pointless "Try again"', async () => {
    renderApp('/conversations/gone', {
      'GET /api/chat/conversations/gone': () => json({ detail: 'conversation not found' }, 404),
    });
    expect(await screen.findByRole('heading', { name: 'Conversation not found' })).toBeVisible();
    expect(screen.getByRole('alert')).toHaveTextContent('does not exist');
    expect(screen.queryByRole('button', { name: 'Try again' })).toBeNull();
    expect(screen.getByRole('link', { name: 'Back to your conversations' })).toBeVisible();
  });

  it('still offers "Try again" when loading failed for another reason', async () => {
    renderApp('/conversations/c1', {
      'GET /api/chat/conversations/c1': () => json({ detail: 'upstream failed' }, 502),
    });
    expect(await screen.findByRole('button', { name: 'Try again' })).toBeVisible();
  });
});

describe('an unknown page', () => {
  it('keeps the header with the way back', async () => {
    renderApp('/no/such/page', {});
    expect(await screen.findByRole('heading', { name: 'Page not found' })).toBeVisible();
    const nav = screen.getByRole('navigation', { name: 'Main' });
    expect(within(nav).getByRole('link', { name: 'Files' })).toBeVisible();
    expect(screen.getByRole('link', { name: 'Chat' })).toBeVisible();
  });

  it('offers logging in to a visitor without a session', async () => {
    renderApp('/no/such/page', {}, { signedIn: false });
    const nav = await screen.findByRole('navigation', { name: 'Main' });
    expect(within(nav).getByRole('link', { name: 'Log in' })).toBeVisible();
  });
});

describe('no lost or doubled writes', () => {
  it('creates one conversation however often Create is clicked', async () => {
    let release: () => void = () => undefined;
    const { user, calls } = renderApp('/conversations', {
      'GET /api/chat/conversations': () => page([]),
      'POST /api/chat/conversations': () =>
        new Promise<Response>((resolve) => {
          release = () => resolve(json(conversation, 201));
        }),
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () => page([]),
    });
    await user.type(await screen.findByLabelText('New conversation title'), 'Trip planning');
    const create = screen.getByRole('button', { name: 'Create' });
    await user.dblClick(create);
    await user.keyboard('{Enter}');
    release();
    expect(await screen.findByRole('heading', { name: 'Trip planning' })).toBeInTheDocument();
    const posts = calls.filter((call) => call.method === 'POST');
    expect(posts).toHaveLength(1);
    expect(posts[0]?.headers.get('Idempotency-Key')).toMatch(/^"[0-9a-f-]{36}"$/);
  });

  it('keeps a second message typed while the first is being sent', async () => {
    let release: () => void = () => undefined;
    const sent = { message: message({}), reply: message({ id: 'm2', role: 'assistant' }) };
    const { user, calls } = renderApp('/conversations/c1', {
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () => page([]),
      'POST /api/chat/conversations/c1/messages': () =>
        new Promise<Response>((resolve) => {
          release = () => resolve(json(sent, 201));
        }),
    });
    const box = await screen.findByLabelText('Your message');
    await user.type(box, 'first{Enter}');
    await user.type(box, '{Control>}a{/Control}second{Enter}');
    expect(await screen.findByText(/previous message is still being sent/)).toBeInTheDocument();
    release();
    await waitFor(() => expect(screen.getByRole('button', { name: 'Send' })).toBeEnabled());
    expect(box).toHaveValue('second');
    expect(calls.filter((call) => call.method === 'POST')).toHaveLength(1);
  });

  it('keeps the text of a failed send, says why, and retries with the same key', async () => {
    let attempts = 0;
    const sent = { message: message({}), reply: message({ id: 'm2', role: 'assistant' }) };
    const { user, calls } = renderApp('/conversations/c1', {
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () => page([]),
      'POST /api/chat/conversations/c1/messages': () =>
        ++attempts === 1 ? json({ detail: 'message rate limit' }, 429) : json(sent, 201),
    });
    const box = await screen.findByLabelText('Your message');
    await user.type(box, 'hello{Enter}');
    expect(await screen.findByRole('alert')).toHaveTextContent('message rate limit');
    expect(box).toHaveValue('hello');
    await user.click(screen.getByRole('button', { name: 'Send' }));
    await waitFor(() => expect(box).toHaveValue(''));
    const keys = calls
      .filter((call) => call.method === 'POST')
      .map((call) => call.headers.get('Idempotency-Key'));
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBe(keys[1]);
  });

  it('counts the characters and refuses an over-long message before sending', async () => {
    const { user } = renderApp('/conversations/c1', {
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () => page([]),
    });
    const box = await screen.findByLabelText('Your message');
    await user.click(box);
    await user.paste('x'.repeat(4001));
    expect(screen.getByText(/4001 \/ 4000 characters: too long to send/)).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Send' })).toBeDisabled();
  });
});

describe('an unreachable AI service', () => {
  it('says so at once and offers Retry instead of "writing a reply"', async () => {
    renderApp('/conversations/c1', {
      'GET /api/chat/conversations/c1': () => json(conversation),
      'GET /api/chat/conversations/c1/messages': () =>
        page([
          message({}),
          message({
            id: 'm2',
            role: 'assistant',
            content: '',
            status: 'pending',
            failure: 'AI service unreachable',
          }),
        ]),
    });
    expect(
      await screen.findByText('AI service unreachable: trying again in the background.'),
    ).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Retry' })).toBeInTheDocument();
    expect(screen.queryByText(/writing a reply/)).not.toBeInTheDocument();
  });
});
