// @ts-check
/**
 * The browser scenario of the React and Vue packages (issue 14): a small
 * chat app, bundled with esbuild from the package's real dependencies, is
 * served by a loopback HTTP server of its own (`startAppServer`; the nodes
 * allow its origin) and connects to the node named in `?ws=`. Two users
 * chat in one room, each on a node of their own. Bob's page goes
 * offline (the browser's offline emulation), Alice keeps writing, Bob comes
 * back: he must see every message he missed exactly once, in order, marked
 * as replayed, then live ones again.
 *
 * The app's DOM contract: `#conn[data-status]` (the connection status),
 * `#room[data-status]` (the room status), `#messages li[data-replay]` with
 * `.from` and `.text`, and `#composer` with `#text`.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { eventually } from './servers.js';
import { newPage, screenshot } from './browser.js';

const PAGE =
  '<!doctype html><html><head><meta charset="utf-8"><title>app</title><link rel="icon" href="data:,"></head>' +
  '<body><div id="root"></div><script type="module" src="/app.js"></script></body></html>';

/**
 * Serves the app (`/` the page, `/app.js` the bundle) on a free loopback port.
 * @param {string} bundle
 * @returns {Promise<{ origin: string, stop: () => Promise<void> }>}
 */
export async function startAppServer(bundle) {
  const server = createServer((req, res) => {
    const js = req.url === '/app.js';
    res.writeHead(200, { 'content-type': js ? 'text/javascript; charset=utf-8' : 'text/html; charset=utf-8' });
    res.end(js ? bundle : PAGE);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    origin: `http://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * @param {import('playwright-core').Browser} browser
 * @param {string} appOrigin
 * @param {{ wsUrl: string }} node
 * @param {string} user
 * @param {string} room
 */
async function openApp(browser, appOrigin, node, user, room) {
  const { context, page, errors } = await newPage(browser);
  const query = new URLSearchParams({ user, room, ws: node.wsUrl });
  await page.goto(`${appOrigin}/?${query}`);
  await page.locator('#conn[data-status="online"]').waitFor({ timeout: 15000 });
  await page.locator('#room[data-status="live"]').waitFor({ timeout: 15000 });
  return { context, page, errors };
}

/** @param {import('playwright-core').Page} page */
async function shown(page) {
  return page.$$eval('#messages li', (items) =>
    items.map((li) => ({
      from: li.querySelector('.from')?.textContent ?? '',
      text: li.querySelector('.text')?.textContent ?? '',
      replay: /** @type {HTMLElement} */ (li).dataset.replay === 'true',
    })),
  );
}

/** @param {import('playwright-core').Page} page @param {string} text */
async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
  await eventually(async () => (await shown(page)).some((m) => m.text === text), { what: `"${text}" echoed`, timeoutMs: 10000 });
}

/**
 * @param {object} setup
 * @param {string} setup.name for screenshots: `react`, `vue`
 * @param {import('playwright-core').Browser} setup.browser
 * @param {string} setup.appOrigin where `startAppServer` serves the app
 * @param {{ wsUrl: string }} setup.aliceNode
 * @param {{ wsUrl: string }} setup.bobNode
 * @param {number} [setup.missed] messages sent while Bob is offline
 */
export async function offlineRecoveryScenario({ name, browser, appOrigin, aliceNode, bobNode, missed = 8 }) {
  const room = `${name}-room-${Date.now()}`;
  const alice = await openApp(browser, appOrigin, aliceNode, 'alice', room);
  const bob = await openApp(browser, appOrigin, bobNode, 'bob', room);
  try {
    await say(alice.page, 'hello bob');
    await eventually(async () => (await shown(bob.page)).some((m) => m.text === 'hello bob'), { what: 'bob sees hello', timeoutMs: 10000 });

    await bob.context.setOffline(true);
    await bob.page.locator('#conn[data-status="offline"]').waitFor({ timeout: 10000 });
    const texts = Array.from({ length: missed }, (_, i) => `while bob was away ${i + 1}`);
    for (const text of texts) await say(alice.page, text);
    assert.equal((await shown(bob.page)).length, 1, 'bob saw nothing while offline');

    await bob.context.setOffline(false);
    await bob.page.locator('#room[data-status="recovered"]').waitFor({ timeout: 20000 });
    await say(alice.page, 'welcome back');
    const expected = [
      { from: 'alice', text: 'hello bob', replay: false },
      ...texts.map((text) => ({ from: 'alice', text, replay: true })),
      { from: 'alice', text: 'welcome back', replay: false },
    ];
    await eventually(async () => (await shown(bob.page)).length === expected.length, { what: 'bob has every message', timeoutMs: 10000 });
    await screenshot(bob.page, `${name}-app-recovered`);
    assert.deepEqual(await shown(bob.page), expected, 'each missed message once, in order, marked as replayed');
    assert.deepEqual(alice.errors, []);
    // Chromium logs the reconnect attempts that the offline emulation fails.
    assert.deepEqual(bob.errors.filter((e) => !/WebSocket connection to .* failed/.test(e)), []);
  } finally {
    await alice.context.close();
    await bob.context.close();
  }
}
