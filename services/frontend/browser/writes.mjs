// Real-browser checks that no write is lost or doubled, at desktop size and at 390x844, against
// the app served by the local app's NGINX edge (APP_URL). PHASE chooses what runs:
// - writes: a double click on Create and on Send stores one conversation and one message (one
//   AI reply); a second message typed and sent while the first is on its way is kept, never
//   lost; a 1 MB file uploaded on a throttled link shows its progress bar part-way, then
//   "Uploaded <name>." and no bar; prints {"ok": true, "accounts": [{username, password,
//   conversationUrl, text, upload: {name, bytes, progress: {value, max}}}, ...]}.
// - after-restart: ACCOUNTS (that JSON list) log in again and find their conversation, message
//   and file (the app was restarted in between).
// - unreachable: with the ai service down, a sent message says "AI service unreachable" at
//   once and offers Retry.
// Screenshots: <device>-<phase>.png (and <device>-upload-progress.png) in OUTPUT_DIR. Exits 1 on failure (with failure.png).
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { CHROMIUM_ARGS, CHROMIUM_PATH, OUTPUT_DIR, registerAndLogIn } from './run.mjs';

const APP_URL = (process.env.APP_URL ?? '').replace(/\/$/, '');
const PHASE = process.env.PHASE ?? 'writes';
const STEP_TIMEOUT_MS = Number(process.env.STEP_TIMEOUT_MS || 30_000);
// Sent at 256 kB/s, 1 MB takes ~4 s: long enough to see the bar part-way, on any machine.
const UPLOAD_BYTES = 1024 * 1024;
const UPLOAD_BYTES_PER_SECOND = 256 * 1024;
const DEVICES = {
  desktop: { viewport: { width: 1280, height: 800 } },
  phone: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
};

/** @param {import('playwright-core').Page} page */
const messages = (page) => page.getByRole('list', { name: 'Messages' });

/**
 * @param {import('playwright-core').Locator} locator
 * @param {number} expected
 * @param {string} what
 */
async function expectCount(locator, expected, what) {
  const count = await locator.count();
  if (count !== expected) throw new Error(`${what}: expected ${expected}, found ${count}`);
}

/** @param {import('playwright-core').Page} page */
async function writeTwiceAndQuickly(page) {
  const username = `writes_${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  await page.goto(`${APP_URL}/`);
  await registerAndLogIn(page, username, password);

  const title = `Double ${randomBytes(3).toString('hex')}`;
  await page.getByLabel('New conversation title').fill(title);
  await page.getByRole('button', { name: 'Create' }).dblclick();
  await page.getByRole('heading', { name: title }).waitFor();
  const conversationUrl = page.url();

  const text = 'Sent with a double click';
  await page.getByLabel('Your message').fill(text);
  await page.getByRole('button', { name: 'Send' }).dblclick();
  await messages(page).locator('.message-user').filter({ hasText: text }).waitFor();
  await messages(page).locator('.message-assistant.message-completed').first().waitFor();

  // A second message typed and sent at once, while the first is on its way.
  await page.getByLabel('Your message').fill('First of two');
  await page.getByLabel('Your message').press('Enter');
  await page.getByLabel('Your message').fill('Second of two');
  await page.getByLabel('Your message').press('Enter');
  const second = messages(page).locator('.message-user').filter({ hasText: 'Second of two' });
  await messages(page).locator('.message-user').filter({ hasText: 'First of two' }).waitFor();
  // Either the app took the second at once (on its way: Send stays disabled until the box is
  // empty), or it kept it in the box while the first was sent (Send enabled again after that).
  const sendable = page.locator('form[aria-label="Send a message"] button[type="submit"]:enabled');
  await second.or(sendable).first().waitFor();
  if ((await second.count()) === 0) {
    const kept = await page.getByLabel('Your message').inputValue();
    if (kept !== '' && kept !== 'Second of two') throw new Error(`the box holds ${kept}`);
    // Enter, not a click: were it on its way after all, the app sends it once, never twice.
    if (kept) await page.getByLabel('Your message').press('Enter');
  }
  await second.waitFor(); // never cleared without being sent: a lost one never shows

  await page.goto(`${APP_URL}/conversations`);
  await page.getByRole('list', { name: 'Your conversations' }).waitFor();
  await expectCount(page.getByRole('link', { name: title }), 1, 'conversations after a double click');
  await page.goto(conversationUrl);
  await messages(page).locator('.message-user').first().waitFor();
  await expectCount(
    messages(page).locator('.message-user').filter({ hasText: text }),
    1,
    'messages after a double click on Send',
  );
  await expectCount(messages(page).locator('.message-assistant'), 3, 'AI replies');
  return { username, password, conversationUrl, text };
}

/**
 * Caps the page's upload speed with Chromium's DevTools network emulation, until the returned
 * session is detached.
 * @param {import('playwright-core').Page} page
 * @param {number} bytesPerSecond
 */
async function throttleUploads(page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond,
  });
  return cdp;
}

/**
 * A large upload shows its progress (a bar between 0 and its end) and, once stored, no bar and
 * "Uploaded <name>.".
 * @param {import('playwright-core').Page} page
 * @param {string} device
 */
async function uploadWithProgress(page, device) {
  const name = `progress-${randomBytes(3).toString('hex')}.txt`;
  const buffer = Buffer.alloc(UPLOAD_BYTES, 'Sent slowly, to watch it go. ');
  await page.goto(`${APP_URL}/files`);
  await page.getByRole('heading', { name: 'Files' }).waitFor();
  const throttled = await throttleUploads(page, UPLOAD_BYTES_PER_SECOND);
  await page.getByLabel('File to upload').setInputFiles({ name, mimeType: 'text/plain', buffer });
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  const bar = page.getByRole('progressbar', { name: 'Upload progress' });
  // Caught part-way, with the size it is drawn at (a bar in the DOM may still be drawn 0 px high).
  const partWay = await page.waitForFunction(() => {
    const shown = document.querySelector('progress[aria-label="Upload progress"]');
    if (!(shown instanceof HTMLProgressElement) || shown.value <= 0) return null;
    const { width, height } = shown.getBoundingClientRect();
    return { value: shown.value, max: shown.max, width, height };
  }).catch((error) => {
    throw new Error(`no upload progress bar above 0 while ${name} was sent: ${error.message}`);
  });
  const progress = await partWay.jsonValue();
  await page.screenshot({ path: join(OUTPUT_DIR, `${device}-upload-progress.png`), fullPage: true });
  await page.getByText(`Uploaded ${name}.`).waitFor();
  await bar.waitFor({ state: 'detached' });
  await page.getByRole('table', { name: 'Your files' }).getByText(name).waitFor();
  await throttled.detach();
  return { name, bytes: buffer.length, progress };
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} device
 */
async function writeAndUpload(page, device) {
  const account = await writeTwiceAndQuickly(page);
  return { ...account, upload: await uploadWithProgress(page, device) };
}

/**
 * @param {import('playwright-core').Page} page
 * @param {{username: string, password: string, conversationUrl: string, text: string,
 *   upload: {name: string}}} account
 */
async function findAfterRestart(page, account) {
  await page.goto(`${APP_URL}/login`);
  await page.getByLabel('Username').fill(account.username);
  await page.getByLabel('Password').fill(account.password);
  await page.getByLabel('Password').press('Enter');
  await page.getByRole('heading', { name: 'Conversations' }).waitFor();
  await page.goto(account.conversationUrl);
  await messages(page).locator('.message-user').filter({ hasText: account.text }).waitFor();
  await page.goto(`${APP_URL}/files`);
  await page.getByRole('table', { name: 'Your files' }).getByText(account.upload.name).waitFor();
  return account;
}

/** @param {import('playwright-core').Page} page */
async function unreachableAi(page) {
  const username = `noai_${randomBytes(4).toString('hex')}`;
  await page.goto(`${APP_URL}/`);
  await registerAndLogIn(page, username, `pw-${randomBytes(12).toString('hex')}`);
  await page.getByLabel('New conversation title').fill('Nobody answers');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('heading', { name: 'Nobody answers' }).waitFor();
  await page.getByLabel('Your message').fill('Anyone there?');
  await page.getByLabel('Your message').press('Enter');
  await page.getByText('AI service unreachable').waitFor();
  await page.getByRole('button', { name: 'Retry' }).waitFor();
  return { username };
}

const STEPS = {
  writes: writeAndUpload,
  unreachable: unreachableAi,
  /** @param {import('playwright-core').Page} page @param {string} _device @param {number} index */
  'after-restart': (page, _device, index) => findAfterRestart(page, JSON.parse(process.env.ACCOUNTS ?? '[]')[index]),
};

async function main() {
  const step = STEPS[/** @type {keyof typeof STEPS} */ (PHASE)];
  if (!APP_URL || !step) {
    console.error('usage: APP_URL=http://edge PHASE=writes|after-restart|unreachable node writes.mjs');
    process.exit(2);
  }
  await mkdir(OUTPUT_DIR, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  const accounts = [];
  let page;
  try {
    for (const [index, [name, device]] of Object.entries(DEVICES).entries()) {
      const context = await browser.newContext(device);
      context.setDefaultTimeout(STEP_TIMEOUT_MS);
      page = await context.newPage();
      accounts.push(await step(page, name, index));
      await page.screenshot({ path: join(OUTPUT_DIR, `${name}-${PHASE}.png`), fullPage: true });
      await context.close();
    }
    console.log(JSON.stringify({ ok: true, phase: PHASE, accounts }));
  } catch (error) {
    await page?.screenshot({ path: join(OUTPUT_DIR, 'failure.png'), fullPage: true }).catch(() => undefined);
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    console.error(`browser check ${PHASE} failed at ${page?.url()}:\n${message}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

await main();
