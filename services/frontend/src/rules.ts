// The services' input rules, shown before the user can break them and checked before sending.
// They mirror auth's Credentials model and media-storage's defaults (MEDIA_MAX_UPLOAD_BYTES,
// MEDIA_ALLOWED_TYPES); the services stay the authority and their answers are mapped too.

export const USERNAME_RULE = '3 to 32 characters: letters, digits, dots, dashes or underscores, starting with a letter or digit.';
// auth refuses common and breached passwords (NIST SP 800-63B block-list): said before typing.
export const PASSWORD_RULE =
  'At least 8 characters, and not a common or breached password (such as “password” or “12345678”) nor your username.';

const USERNAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Why `username` would be refused at registration, or null when it is fine. */
export function usernameProblem(username: string): string | null {
  if (username.length < 3) return 'The username is too short: use at least 3 characters.';
  if (username.length > 32) return 'The username is too long: use at most 32 characters.';
  if (!USERNAME_PATTERN.test(username)) {
    return 'The username may only use letters, digits, dots, dashes and underscores, and must start with a letter or digit.';
  }
  return null;
}

export function passwordProblem(password: string): string | null {
  if (password.length < 8) return 'The password is too short: use at least 8 characters.';
  if (password.length > 256) return 'The password is too long: use at most 256 characters.';
  return null;
}

export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
export const TOO_LARGE = 'File too large (max 10 MB).';
export const ALLOWED_TYPES_TEXT = 'PNG, JPEG, GIF, WebP, PDF or plain text';
export const UPLOAD_RULE = `Up to 10 MB; ${ALLOWED_TYPES_TEXT}.`;
export const TYPE_REFUSED = `This type of file is not accepted: upload ${ALLOWED_TYPES_TEXT}.`;
/** What the file picker offers first (the service checks the content, not the name). */
export const ACCEPT = 'image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,.txt';
export const MESSAGE_MAX_CHARS = 4000; // backend's MESSAGE_MAX_CHARS default
export const TITLE_MAX_CHARS = 200; // backend's TITLE_MAX
export const EMPTY_FILE = 'This file is empty (0 bytes): choose a file with content.';
