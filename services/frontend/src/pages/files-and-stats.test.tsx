import { screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';

import { json } from '../test/fakeFetch';
import { renderApp } from '../test/renderApp';

const stored = {
  id: 'f1',
  name: 'notes.txt',
  size: 2048,
  content_type: 'text/plain',
  sha256: 'ab',
  created_at: '2026-11-25T10:00:00Z',
};

describe('files', () => {
  it('shows the empty state, uploads a file and lists it', async () => {
    let files: (typeof stored)[] = [];
    const { user, calls } = renderApp('/files', {
      'GET /api/media/files': () => json({ items: files }),
      'POST /api/media/files': () => {
        files = [stored];
        return json(stored, 201);
      },
    });
    expect(await screen.findByText(/No files yet/)).toBeInTheDocument();

    await user.upload(screen.getByLabelText('File to upload'), new File(['hi'], 'notes.txt'));
    await user.click(screen.getByRole('button', { name: 'Upload' }));

    expect(await screen.findByText('Uploaded notes.txt.')).toBeInTheDocument();
    const table = await screen.findByRole('table', { name: 'Your files' });
    expect(within(table).getByText('2.0 KiB')).toBeInTheDocument();
    const upload = calls.find((call) => call.method === 'POST');
    expect((upload?.body as FormData).get('file')).toBeInstanceOf(File);
  });

  it('deletes a file', async () => {
    let files = [stored];
    const { user } = renderApp('/files', {
      'GET /api/media/files': () => json({ items: files }),
      'DELETE /api/media/files/f1': () => {
        files = [];
        return new Response(null, { status: 204 });
      },
    });
    await user.click(await screen.findByRole('button', { name: 'Delete notes.txt' }));
    expect(await screen.findByText(/No files yet/)).toBeInTheDocument();
  });

  it('shows why an upload was refused', async () => {
    const { user } = renderApp('/files', {
      'GET /api/media/files': () => json({ items: [] }),
      'POST /api/media/files': () => json({ detail: 'file type not allowed' }, 415),
    });
    await user.upload(await screen.findByLabelText('File to upload'), new File(['x'], 'a.exe'));
    await user.click(screen.getByRole('button', { name: 'Upload' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('file type not allowed');
  });
});

describe('statistics', () => {
  it('shows totals and messages per day', async () => {
    renderApp('/stats', {
      'GET /api/stats/stats/me': () =>
        json({
          user_id: 'u1',
          total_messages: 12,
          active_conversations: 3,
          per_day: [
            { day: '2026-11-24', count: 5 },
            { day: '2026-11-25', count: 7 },
          ],
        }),
    });
    const table = await screen.findByRole('table', { name: 'Messages per day' });
    expect(within(table).getAllByRole('row').map((row) => row.textContent)).toEqual([
      'DayMessages',
      '2026-11-245',
      '2026-11-257',
    ]);
    expect(screen.getByText('Messages sent').nextSibling).toHaveTextContent('12');
    expect(screen.getByText('Active conversations').nextSibling).toHaveTextContent('3');
  });

  it('shows a loading state, then an error', async () => {
    renderApp('/stats', {
      'GET /api/stats/stats/me': () => json({ detail: 'statistics unavailable' }, 503),
    });
    expect(await screen.findByText('Loading statistics…')).toBeInTheDocument();
    await waitFor(() =>
      expect(screen.getByRole('alert')).toHaveTextContent('statistics unavailable'),
    );
  });
});
