import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useRef, useState, type FormEvent } from 'react';

import { ApiError } from '../api/client';
import type { StoredFile } from '../api/types';
import { Empty, ErrorNotice, Loading } from '../components/Status';
import { ACCEPT, EMPTY_FILE, MAX_UPLOAD_BYTES, TOO_LARGE, TYPE_REFUSED, UPLOAD_RULE } from '../rules';
import { formatDateTime, formatSize } from '../format';
import { useApi } from '../session';

const filesKey = ['files'] as const;

export function FilesPage() {
  const api = useApi();
  const files = useQuery({ queryKey: filesKey, queryFn: api.media.listFiles });

  return (
    <section aria-labelledby="files-heading">
      <h1 id="files-heading">Files</h1>
      <UploadForm />
      {files.isPending ? (
        <Loading label="Loading files…" />
      ) : files.isError ? (
        <ErrorNotice error={files.error} onRetry={() => void files.refetch()} />
      ) : files.data.items.length === 0 ? (
        <Empty>No files yet. Upload one above.</Empty>
      ) : (
        <div className="table-scroll">
          <table className="files">
            <caption>Your files</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Size</th>
                <th scope="col" className="column-type">
                  Type
                </th>
                <th scope="col">Uploaded</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {files.data.items.map((file) => (
                <FileRow key={file.id} file={file} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function UploadForm() {
  const api = useApi();
  const queryClient = useQueryClient();
  const input = useRef<HTMLInputElement>(null);
  const [chosen, setChosen] = useState<File | null>(null);
  const [sent, setSent] = useState<{ sent: number; total: number } | null>(null);
  const files = useQuery({ queryKey: filesKey, queryFn: api.media.listFiles });
  // "Uploaded x." only while x is still there: deleting it ends the news.
  const deleted = (id: string) => files.data?.items.every((file) => file.id !== id) ?? false;

  const upload = useMutation({
    mutationFn: (file: File) => {
      setSent({ sent: 0, total: file.size });
      return api.media
        .upload(file, (bytes, total) => setSent({ sent: bytes, total }))
        .catch((error: unknown) => {
          throw uploadError(error);
        });
    },
    onSuccess: async () => {
      setChosen(null);
      if (input.current) input.current.value = '';
      await queryClient.invalidateQueries({ queryKey: filesKey });
    },
  });

  function choose(file: File | null) {
    upload.reset(); // the last upload's message belongs to the last file
    setChosen(file);
  }

  // Checked before sending: 10 MB need not travel to be refused.
  const tooLarge = chosen !== null && chosen.size > MAX_UPLOAD_BYTES;
  const empty = chosen !== null && chosen.size === 0;

  function submit(event: FormEvent) {
    event.preventDefault();
    if (chosen && !tooLarge && !empty) upload.mutate(chosen);
  }

  return (
    <form className="inline-form" onSubmit={submit} aria-label="Upload a file">
      <div className="field">
        <label htmlFor="upload-input">File to upload</label>
        <input
          id="upload-input"
          ref={input}
          type="file"
          name="file"
          accept={ACCEPT}
          aria-describedby="upload-rule"
          onChange={(event) => choose(event.target.files?.[0] ?? null)}
        />
        <span id="upload-rule" className="hint">
          {UPLOAD_RULE}
        </span>
      </div>
      <button type="submit" disabled={!chosen || tooLarge || empty || upload.isPending}>
        {upload.isPending ? 'Uploading…' : 'Upload'}
      </button>
      {upload.isPending && sent && (
        <progress
          className="upload-progress"
          aria-label="Upload progress"
          value={sent.sent}
          max={Math.max(sent.total, 1)}
        />
      )}
      {empty && (
        <p className="status status-error" role="alert">
          {EMPTY_FILE}
        </p>
      )}
      {tooLarge && (
        <p className="status status-error" role="alert">
          {TOO_LARGE}
        </p>
      )}
      {upload.isError && <ErrorNotice error={upload.error} />}
      {upload.isSuccess && !deleted(upload.data.id) && (
        <p className="status status-success" role="status">
          Uploaded {upload.data.name}.
        </p>
      )}
    </form>
  );
}

function FileRow({ file }: { file: StoredFile }) {
  const api = useApi();
  const queryClient = useQueryClient();

  const download = useMutation({
    mutationFn: () => api.media.download(file.id),
    onSuccess: (blob) => saveBlob(blob, file.name),
  });
  const remove = useMutation({
    mutationFn: () => api.media.remove(file.id),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: filesKey }),
  });

  return (
    <tr>
      <td>{file.name}</td>
      <td>{formatSize(file.size)}</td>
      <td className="column-type">{file.content_type}</td>
      <td>
        <time dateTime={file.created_at}>{formatDateTime(file.created_at)}</time>
      </td>
      <td>
        <div className="actions">
          <button
            type="button"
            onClick={() => download.mutate()}
            disabled={download.isPending}
            aria-label={`Download ${file.name}`}
          >
            {download.isPending ? 'Downloading…' : 'Download'}
          </button>
          <button
            type="button"
            className="button-danger"
            onClick={() => {
              if (window.confirm(`Delete ${file.name}? This cannot be undone.`)) remove.mutate();
            }}
            disabled={remove.isPending}
            aria-label={`Delete ${file.name}`}
          >
            {remove.isPending ? 'Deleting…' : 'Delete'}
          </button>
        </div>
        {(download.isError || remove.isError) && (
          <ErrorNotice error={download.error ?? remove.error} />
        )}
      </td>
    </tr>
  );
}

/** media-storage's refusals, in the words of the rules shown above the form. */
function uploadError(error: unknown): unknown {
  if (error instanceof ApiError && error.status === 413) return new ApiError(413, TOO_LARGE);
  if (error instanceof ApiError && error.status === 415) return new ApiError(415, TYPE_REFUSED);
  if (error instanceof ApiError && error.detail.endsWith('is empty')) {
    return new ApiError(error.status, EMPTY_FILE);
  }
  return error;
}

/** The download needs the bearer token, so it is fetched and handed to the browser as a blob. */
function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
