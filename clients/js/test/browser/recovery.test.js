// @ts-check
/**
 * The demo page's recovery (issue 14): Bob presses "Simulate network drop"
 * (the SDK drops the socket and stays offline 5 s), Alice writes in the
 * room meanwhile; when Bob is back he sees those messages once, in order,
 * marked as replayed, with a "recovered" notice; live messages go on.
 * One standalone node with room history (the cluster path is covered by the
 * SDK's integration test and the React/Vue apps).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWsgate } from '../helpers/servers.js';
import { launchBrowser, newPage, screenshot, signInWithName } from '../helpers/browser.js';

/** @type {Awaited<ReturnType<typeof startWsgate>>} */
let node;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  node = await startWsgate();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await node?.stop();
});

/** @param {import('playwright-core').Page} page */
function shown(page) {
  return page.$$eval('#messages .msg', (items) =>
    items.map((li) => `${li.classList.contains('replayed') ? 'replayed' : 'live'}: ${li.querySelector('.text')?.textContent}`),
  );
}

test('simulate network drop: the missed room messages come back marked as replayed', async () => {
  const alice = await newPage(browser);
  const bob = await newPage(browser);
  for (const [who, name] of [
    [alice, 'drop-alice'],
    [bob, 'drop-bob'],
  ]) {
    const p = /** @type {typeof alice} */ (who).page;
    await p.goto(`${node.base}/`);
    await signInWithName(p, /** @type {string} */ (name), 'drops');
    await p.locator('#status[data-state="open"]').waitFor();
    await p.locator('#conv-title', { hasText: '# drops' }).waitFor();
  }
  await alice.page.locator('#member-list .member', { hasText: 'drop-bob' }).waitFor();
  await alice.page.locator('#text').fill('before the drop');
  await alice.page.locator('#text').press('Enter');
  await bob.page.locator('#messages .msg .text', { hasText: 'before the drop' }).waitFor();

  await bob.page.locator('#drop-network').click();
  await bob.page.locator('#status[data-state="reconnecting"]').waitFor();
  for (const text of ['missed 1', 'missed 2', 'missed 3']) {
    await alice.page.locator('#text').fill(text);
    await alice.page.locator('#text').press('Enter');
    await alice.page.locator('#messages .msg .text', { hasText: text }).waitFor();
  }
  await bob.page.locator('.toast', { hasText: 'recovered 3 missed messages' }).waitFor({ timeout: 20000 });
  await bob.page.locator('#status[data-state="open"]').waitFor();
  await alice.page.locator('#text').fill('after the drop');
  await alice.page.locator('#text').press('Enter');
  await bob.page.locator('#messages .msg .text', { hasText: 'after the drop' }).waitFor();
  assert.deepEqual(await shown(bob.page), [
    'live: before the drop',
    'replayed: missed 1',
    'replayed: missed 2',
    'replayed: missed 3',
    'live: after the drop',
  ]);
  assert.equal(await bob.page.locator('#messages .msg.replayed .tag').count(), 3);
  await screenshot(bob.page, 'demo-recovered');
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await alice.context.close();
  await bob.context.close();
});
