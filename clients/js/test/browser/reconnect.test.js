// @ts-check
/**
 * The demo page while its node restarts: the connection state shows the
 * reconnect countdown, a message written offline is queued, and after the
 * reconnect the room is re-joined and the message is sent.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWsgate } from '../helpers/servers.js';
import { launchBrowser, newPage, screenshot, signInWithName } from '../helpers/browser.js';

/** @type {Array<Awaited<ReturnType<typeof startWsgate>>>} */
const nodes = [];
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  nodes.push(await startWsgate({ args: ['--drain-timeout', '1s'] }));
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await Promise.all(nodes.map((n) => n.stop()));
});

/** While the node is down, Chromium logs each refused dial itself. @param {string} e */
const isRefusedDial = (e) => /WebSocket connection to .* failed/.test(e);

test('restart: countdown, offline queue, re-join', async () => {
  const [first] = nodes;
  const { page, errors } = await newPage(browser);
  await page.goto(`${first.base}/`);
  await signInWithName(page, 'restart-carol', 'restart-room');
  await page.locator('#status[data-state="open"]').waitFor();
  await page.locator('#member-list .member', { hasText: 'restart-carol' }).waitFor();

  await first.stop('SIGTERM'); // drain: close 1012
  await page.locator('#status[data-state="reconnecting"]').waitFor();
  assert.match(await page.locator('#status-text').innerText(), /Reconnecting in \d+\.\d s/);
  assert.equal(await page.locator('#retry-now').isVisible(), true);
  await page.locator('#text').fill('written while offline');
  await page.locator('#text').press('Enter');
  await page.locator('#messages .msg.mine .delivery', { hasText: 'queued (offline)' }).waitFor();
  await screenshot(page, 'demo-reconnecting');

  nodes.push(await startWsgate({ port: first.port }));
  await page.locator('#retry-now').click().catch(() => {}); // skip the rest of the wait
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 25000 });
  await page.locator('#messages .msg.mine .delivery', { hasText: 'sent' }).waitFor();
  await page.locator('#member-list .member', { hasText: 'restart-carol' }).waitFor();
  assert.deepEqual(errors.filter((e) => !isRefusedDial(e)), []);
});
