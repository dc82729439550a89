import { screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';

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
    const confirm = vi.spyOn(window, 'confirm').mockReturnValueOnce(false).mockReturnValueOnce(true);
    await user.click(await screen.findByRole('button', { name: 'Delete notes.txt' }));
    expect(confirm).toHaveBeenCalledWith('Delete notes.txt? This cannot be undone.');
    expect(screen.getByRole('button', { name: 'Delete notes.txt' })).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Delete notes.txt' }));
    expect(await screen.findByText(/No files yet/)).toBeInTheDocument();
    confirm.mockRestore();
  });

  it('states the size limit and the allowed types before any upload', async () => {
    renderApp('/files', { 'GET /api/media/files': () => json({ items: [] }) });
    const input = await screen.findByLabelText('File to upload');
    expect(input).toHaveAccessibleDescription('Up to 10 MB; PNG, JPEG, GIF, WebP, PDF or plain text.');
  });

  it.each([
    [415, 'This type of file is not accepted: upload PNG, JPEG, GIF, WebP, PDF or plain text.'],
    [413, 'File too large (max 10 MB).'],
  ])('says in plain words why the service refused an upload (%i)', async (status, message) => {
    const { user } = renderApp('/files', {
      'GET /api/media/files': () => json({ items: [] }),
      'POST /api/media/files': () => json({ detail: 'refused by media-storage' }, status),
    });
    await user.upload(await screen.findByLabelText('File to upload'), new File(['x'], 'a.txt'));
    await user.click(screen.getByRole('button', { name: 'Upload' }));
    expect(await screen.findByRole('alert')).toHaveTextContent(message);
  });

  it('refuses a file over 10 MB without sending it', async () => {
    const { user, calls } = renderApp('/files', { 'GET /api/media/files': () => json({ items: [] }) });
    const big = new File([new Uint8Array(10 * 1024 * 1024 + 1)], 'big.png', { type: 'image/png' });
    await user.upload(await screen.findByLabelText('File to upload'), big);
    expect(await screen.findByRole('alert')).toHaveTextContent('File too large (max 10 MB).');
    expect(screen.getByRole('button', { name: 'Upload' })).toBeDisabled();
    expect(calls.some((call) => call.method === 'POST')).toBe(false);
  });

  it('puts the files table in a box of its own that can scroll sideways', async () => {
    renderApp('/files', {
      'GET /api/media/files': () =>
        json({ items: [{ id: 'f1', name: 'a.txt', size: 3, content_type: 'text/plain', sha256: 'x', created_at: '2026-11-24T10:00:00Z' }] }),
    });
    const table = await screen.findByRole('table', { name: 'Your files' });
    expect(table.parentElement).toHaveClass('table-scroll');
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

describe('the upload notice', () => {
  it('goes when the uploaded file is deleted', async () => {
    const uploaded = { ...stored, id: 'f9', name: 'fresh.txt' };
    let files: (typeof stored)[] = [];
    const { user } = renderApp('/files', {
      'GET /api/media/files': () => json({ items: files }),
      'POST /api/media/files': () => {
        files = [uploaded];
        return json(uploaded, 201);
      },
      'DELETE /api/media/files/f9': () => {
        files = [];
        return new Response(null, { status: 204 });
      },
    });
    await user.upload(
      await screen.findByLabelText('File to upload'),
      new File(['hi'], 'fresh.txt', { type: 'text/plain' }),
    );
    await user.click(screen.getByRole('button', { name: 'Upload' }));
    expect(await screen.findByText('Uploaded fresh.txt.')).toBeInTheDocument();
    const confirm = vi.spyOn(window, 'confirm').mockReturnValue(true);
    await user.click(await screen.findByRole('button', { name: 'Delete fresh.txt' }));
    await screen.findByText(/No files yet/);
    expect(screen.queryByText('Uploaded fresh.txt.')).not.toBeInTheDocument();
    confirm.mockRestore();
  });
});

describe('an empty file', () => {
  it('is refused in words before it is sent', async () => {
    const { user, calls } = renderApp('/files', { 'GET /api/media/files': () => json({ items: [] }) });
    await user.upload(
      await screen.findByLabelText('File to upload'),
      new File([], 'empty.txt', { type: 'text/plain' }),
    );
    expect(await screen.findByRole('alert')).toHaveTextContent(
      'This file is empty (0 bytes): choose a file with content.',
    );
    expect(screen.getByRole('button', { name: 'Upload' })).toBeDisabled();
    expect(calls.filter((call) => call.method === 'POST')).toHaveLength(0);
  });
});
