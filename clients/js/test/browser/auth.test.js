// @ts-check
/**
 * The demo page on a node without anonymous mode: it loads, asks for a token,
 * says clearly why a name alone cannot connect (HTTP 401, one attempt, no
 * retry loop), and connects with a token.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWsgate, signJwt } from '../helpers/servers.js';
import { launchBrowser, newPage, screenshot, signInWithName } from '../helpers/browser.js';

const SECRET = 'demo-page-secret';
/** @type {Awaited<ReturnType<typeof startWsgate>>} */
let node;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  node = await startWsgate({ anonymous: false, jwtSecret: SECRET });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await node?.stop();
});

/** The browser's own log line for a refused WebSocket upgrade. @param {string} e */
const isRefusedUpgrade = (e) => /WebSocket connection to .*\/ws\?user=.* failed/.test(e);

test('without anonymous mode: clear message, no retry loop, then a token works', async () => {
  const { page, errors } = await newPage(browser);
  await page.goto(`${node.base}/`);
  await page.locator('#login').waitFor();
  assert.deepEqual(errors, [], 'the page loads cleanly');

  await signInWithName(page, 'no-token-user');
  const notice = page.locator('#login-error');
  await notice.waitFor();
  assert.match(await notice.innerText(), /Could not connect.*token/s);
  await page.waitForTimeout(2500);
  // Chromium itself logs the refused upgrade (HTTP 401): exactly once, no loop.
  assert.equal(errors.filter(isRefusedUpgrade).length, 1, `one attempt: ${errors}`);
  assert.deepEqual(errors.filter((e) => !isRefusedUpgrade(e)), []);
  assert.equal(await page.locator('#status').getAttribute('data-state'), 'closed');
  await screenshot(page, 'demo-needs-token');

  // The page now asks for a token, and keeps asking after a reload.
  assert.equal(await page.locator('#tab-token').getAttribute('aria-selected'), 'true');
  assert.equal(await page.locator('#token').isVisible(), true);
  await page.reload();
  await page.locator('#token').waitFor();
  const token = signJwt({ sub: 'token-user', exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);
  await page.locator('#token').fill(token);
  await page.locator('#connect').click();
  await page.locator('#status[data-state="open"]').waitFor();
  assert.equal(await page.locator('#me-name').textContent(), 'token-user');
  await page.locator('#member-list .member', { hasText: 'token-user' }).waitFor();
  assert.deepEqual(errors.filter((e) => !isRefusedUpgrade(e)), []);
});
