// Real-browser test of the BUILT app: headless Debian Chromium driven by playwright-core.
//
// The app (dist/) is served by `vite preview` with the production security headers, its /api
// paths proxied to one edge (API_URL: the local stack's edge router or a cluster's gateway, see
// config/api-routes.js); or, when APP_URL is set, the test uses that server for everything.
//
// Flow: the rules on the registration form and a refused username, register, a failed login
// (the "created" note goes), log in, create a conversation, send a message, wait for the AI's
// reply (marked "demo model"), reload with a rejected access token (one transparent refresh),
// upload the screenshot as a file, download it back, refuse an 11 MB file, open the statistics;
// then every page at desktop size and at 390x844 (a phone): no page may scroll sideways, and
// each is saved as desktop-<page>.png and phone-<page>.png. Prints one JSON line with the
// results; exits 1 on failure (with failure.png).
//
// Environment: APP_URL, API_URL, CHROMIUM_PATH (/usr/bin/chromium), OUTPUT_DIR
// (<repo>/test-output/browser), STEP_TIMEOUT_MS (30000).
import { randomBytes } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { chromium } from 'playwright-core';
import { preview } from 'vite';

const FRONTEND = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const REPO = resolve(FRONTEND, '..', '..');
export const OUTPUT_DIR = process.env.OUTPUT_DIR || join(REPO, 'test-output', 'browser');
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const STEP_TIMEOUT_MS = Number(process.env.STEP_TIMEOUT_MS || 30_000);
// Flags known to work for Debian's Chromium on headless CI machines (no GPU, no sandbox as root,
// nothing phoning home, shared memory in /tmp: containers, a Dagger engine's too, give /dev/shm
// only 64 MB, where Chromium's renderer crashes on a large page).
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** Serves dist/ like production, unless APP_URL names a server to use. */
export async function startApp() {
  if (process.env.APP_URL) {
    return { url: process.env.APP_URL.replace(/\/$/, ''), close: async () => undefined };
  }
  const port = await freePort();
  const server = await preview({
    root: FRONTEND,
    logLevel: 'warn',
    preview: { host: '127.0.0.1', port, strictPort: true, open: false },
  });
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} username
 * @param {string} password
 */
export async function registerAndLogIn(page, username, password) {
  await page.getByRole('link', { name: 'Register' }).click();
  await page.getByText('3 to 32 characters: letters, digits').waitFor();
  await page.getByText('At least 8 characters, and not a common or breached password').waitFor();
  await page.getByLabel('Username').fill('not allowed!');
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Repeat password').fill(password);
  await page.getByRole('button', { name: 'Register' }).click();
  await page.getByRole('alert').getByText('The username may only use letters').waitFor();

  // A common password is refused by auth (its block-list), in words.
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill('password');
  await page.getByLabel('Repeat password').fill('password');
  await page.getByRole('button', { name: 'Register' }).click();
  await page.getByRole('alert').getByText('list of common and breached passwords').waitFor();
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Repeat password').fill(password);
  await page.getByRole('button', { name: 'Register' }).click();
  const created = page.getByText(`Account ${username} created. Log in to continue.`);
  await created.waitFor();

  // A wrong password first: the error must not stand beside a green "created".
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(`${password}-wrong`);
  await page.getByLabel('Password').press('Enter');
  await page.getByRole('alert').waitFor();
  await created.waitFor({ state: 'detached' });

  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  // From the keyboard, as a user would.
  await page.getByLabel('Password').press('Enter');
  await page.getByRole('heading', { name: 'Conversations' }).waitFor();
  await page.getByText('No conversations yet').waitFor();
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} title
 * @param {string} text
 */
export async function chat(page, title, text) {
  await page.getByLabel('New conversation title').fill(title);
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('heading', { name: title }).waitFor();

  await page.getByLabel('Your message').fill(text);
  await page.getByLabel('Your message').press('Enter');
  const messages = page.getByRole('list', { name: 'Messages' });
  await messages.locator('.message-user').filter({ hasText: text }).waitFor();
  // The reply may first be shown as pending; wait until it is complete.
  const reply = messages.locator('.message-assistant.message-completed').first();
  await reply.waitFor({ timeout: STEP_TIMEOUT_MS * 2 });
  const replyText = (await reply.locator('.message-content').innerText()).trim();
  if (!replyText) throw new Error('the AI reply is empty');
  // The local stack runs ai's local provider: its reply says it is a demo.
  await reply.getByText('demo model').waitFor();
  return replyText;
}

/**
 * Replaces the stored access token with one auth never issued and reloads: every request the
 * page makes at once gets a 401, and the app must refresh exactly once and show the page again.
 * @param {import('playwright-core').Page} page
 * @param {string} text a message that must be visible again afterwards
 */
export async function survivesARejectedAccessToken(page, text) {
  const refreshes = [];
  /** @param {import('playwright-core').Request} request */
  const onRequest = (request) => {
    if (new URL(request.url()).pathname === '/api/auth/refresh') refreshes.push(request);
  };
  page.on('request', onRequest);
  const before = await page.evaluate(() => {
    const session = JSON.parse(localStorage.getItem('chat.session') ?? 'null');
    localStorage.setItem('chat.session', JSON.stringify({ ...session, accessToken: 'not.a.token' }));
    return session;
  });
  await page.reload();
  await page.getByRole('list', { name: 'Messages' }).getByText(text, { exact: true }).waitFor();
  const after = await page.evaluate(() => JSON.parse(localStorage.getItem('chat.session') ?? 'null'));
  page.off('request', onRequest);
  if (refreshes.length !== 1) throw new Error(`expected one token refresh, saw ${refreshes.length}`);
  if (!after || after.accessToken === 'not.a.token' || after.accessToken === before.accessToken) {
    throw new Error('the session was not refreshed with a new access token');
  }
  return refreshes.length;
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} file
 */
export async function uploadAndDownload(page, file) {
  const name = file.split('/').pop() ?? file;
  await page.getByRole('link', { name: 'Files' }).click();
  await page.getByRole('heading', { name: 'Files' }).waitFor();
  await page.getByText('No files yet').waitFor();
  await page.getByLabel('File to upload').setInputFiles(file);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.getByText(`Uploaded ${name}.`).waitFor();
  await page.getByRole('table', { name: 'Your files' }).getByText(name).waitFor();

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: `Download ${name}` }).click(),
  ]);
  const saved = join(OUTPUT_DIR, `downloaded-${name}`);
  await download.saveAs(saved);
  const [original, copy] = await Promise.all([stat(file), stat(saved)]);
  if (original.size !== copy.size) {
    throw new Error(`downloaded ${copy.size} bytes of ${name}, uploaded ${original.size}`);
  }
  return original.size;
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} file
 */
export async function deleteFile(page, file) {
  const name = file.split('/').pop() ?? file;
  await page.getByRole('link', { name: 'Files' }).click();
  page.once('dialog', (dialog) => dialog.accept()); // "Delete x? This cannot be undone."
  await page.getByRole('button', { name: `Delete ${name}` }).click();
  await page.getByText('No files yet').waitFor();
}

/**
 * An 11 MB file is refused in the browser, in words, before it travels.
 * @param {import('playwright-core').Page} page
 */
export async function refuseTooLargeFile(page) {
  await page.getByText('Up to 10 MB; PNG, JPEG, GIF, WebP, PDF or plain text.').waitFor();
  const buffer = Buffer.alloc(11 * 1024 * 1024, 0x30);
  await page.getByLabel('File to upload').setInputFiles({ name: 'big.txt', mimeType: 'text/plain', buffer });
  await page.getByRole('alert').getByText('File too large (max 10 MB).').waitFor();
  if (await page.getByRole('button', { name: 'Upload', exact: true }).isEnabled()) {
    throw new Error('an 11 MB file can still be sent');
  }
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/**
 * Every page at desktop and at phone size: saved as <device>-<name>.png, and none may be wider
 * than the window (the page scrolling sideways, a header or table cut off).
 * @param {import('playwright-core').Page} page
 * @param {{ name: string, url: string, heading: string }[]} pages
 * @returns {Promise<string[]>} the problems found
 */
export async function layoutTour(page, pages) {
  const problems = [];
  /** @type {[string, { width: number, height: number }][]} */
  const devices = [['desktop', DESKTOP], ['phone', PHONE]];
  for (const [device, viewport] of devices) {
    await page.setViewportSize(viewport);
    for (const { name, url, heading } of pages) {
      await page.goto(url);
      await page.getByRole('heading', { name: heading }).first().waitFor();
      const overflow = await page.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      if (overflow > 0) problems.push(`${name} at ${viewport.width} px scrolls sideways by ${overflow} px`);
      await page.screenshot({ path: join(OUTPUT_DIR, `${device}-${name}.png`), fullPage: true });
    }
  }
  await page.setViewportSize(DESKTOP);
  return problems;
}

/**
 * data-processor counts messages from backend's event stream, a moment after they were sent:
 * reload until the message sent by this test is counted.
 * @param {import('playwright-core').Page} page
 */
export async function openStatistics(page) {
  await page.getByRole('link', { name: 'Statistics' }).click();
  await page.getByRole('heading', { name: 'Your statistics' }).waitFor();
  const sent = page.locator('dt:text-is("Messages sent") + dd');
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    const count = Number(await sent.innerText());
    if (count >= 1) return count;
    if (Date.now() > deadline) throw new Error(`statistics still count ${count} messages`);
    await page.waitForTimeout(1_000);
    await page.reload();
  }
}

export async function main() {
  await mkdir(OUTPUT_DIR, { recursive: true });
  const app = await startApp();
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: STEP_TIMEOUT_MS,
  });
  /** @type {string[]} */
  const problems = [];
  const page = await browser.newPage({ viewport: DESKTOP, acceptDownloads: true });
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  // Script errors and CSP violations in the console fail the test: the build must run under the
  // production policy.
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) {
      problems.push(`CSP violation: ${message.text()}`);
    }
  });

  const username = `browser_${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const screenshot = join(OUTPUT_DIR, 'conversation.png');
  try {
    const signedOut = [
      { name: 'login', url: `${app.url}/login`, heading: 'Log in' },
      { name: 'register', url: `${app.url}/register`, heading: 'Create an account' },
    ];
    problems.push(...(await layoutTour(page, signedOut)));
    await page.goto(`${app.url}/`);
    await page.getByRole('heading', { name: 'Log in' }).waitFor();
    await registerAndLogIn(page, username, password);
    const userText = 'Hello from the browser test! What can you do?';
    const reply = await chat(page, 'Browser test conversation', userText);
    const conversationUrl = page.url();
    await page.screenshot({ path: screenshot, fullPage: true });
    const refreshes = await survivesARejectedAccessToken(page, userText);
    const uploadedBytes = await uploadAndDownload(page, screenshot);
    await refuseTooLargeFile(page);
    const messagesCounted = await openStatistics(page);
    problems.push(
      ...(await layoutTour(page, [
        { name: 'conversations', url: `${app.url}/conversations`, heading: 'Conversations' },
        { name: 'conversation', url: conversationUrl, heading: 'Browser test conversation' },
        { name: 'files', url: `${app.url}/files`, heading: 'Files' },
        { name: 'statistics', url: `${app.url}/stats`, heading: 'Your statistics' },
        { name: 'not-found', url: `${app.url}/no/such/page`, heading: 'Page not found' },
      ])),
    );
    await deleteFile(page, screenshot);
    if (problems.length > 0) throw new Error(problems.join('\n'));
    console.log(
      JSON.stringify({
        ok: true,
        app: app.url,
        username,
        reply,
        uploadedBytes,
        messagesCounted,
        refreshes,
        screenshot,
      }),
    );
  } catch (error) {
    await page.screenshot({ path: join(OUTPUT_DIR, 'failure.png'), fullPage: true }).catch(() => undefined);
    const message = error instanceof Error ? error.stack ?? error.message : String(error);
    console.error(`browser test failed at ${page.url()}:\n${message}`);
    const alerts = await page.getByRole('alert').allInnerTexts().catch(() => []);
    if (alerts.length > 0) console.error(`alerts on the page: ${JSON.stringify(alerts)}`);
    if (problems.length > 0) console.error(problems.join('\n'));
    process.exitCode = 1;
  } finally {
    await browser.close();
    await app.close();
  }
}

// Run when executed, not when imported for its steps.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
