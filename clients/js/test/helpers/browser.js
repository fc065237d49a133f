// @ts-check
/**
 * Launches the system Chromium (Debian `chromium`) through playwright-core.
 * Playwright never downloads a browser here; it gives the launch a fresh
 * temporary user data dir. Pages record console errors so tests can fail on any.
 */
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './servers.js';

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const artifactsDir = path.join(repoRoot, 'test-artifacts');

export async function launchBrowser() {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
    ],
  });
}

/**
 * A new isolated context and page that records console errors and page errors.
 * @param {import('playwright-core').Browser} browser
 */
export async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  return { context, page, errors: watchErrors(page) };
}

/**
 * @param {import('playwright-core').Page} page
 * @returns {string[]} filled as errors happen
 */
export function watchErrors(page) {
  /** @type {string[]} */
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  return errors;
}

/**
 * Saves a screenshot under test-artifacts/.
 * @param {import('playwright-core').Page} page
 * @param {string} name
 */
export async function screenshot(page, name) {
  fs.mkdirSync(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/**
 * Signs in on the demo page with a name and a first room.
 * @param {import('playwright-core').Page} page
 * @param {string} name
 * @param {string} [room]
 */
export async function signInWithName(page, name, room = 'lobby') {
  await page.fill('#name', name);
  await page.fill('#first-room', room);
  await page.click('#connect');
}
