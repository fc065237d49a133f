// @ts-check
/**
 * The demo page in a real Chromium: two users on two nodes of a cluster
 * (Redis), rooms, presence, typing, direct messages with receipts, and direct
 * messages received while the page was closed, exactly once.
 *
 * Without redis-server (or with WSGATE_TEST_REDIS=0) both pages use one
 * standalone node instead.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startRedis, startWsgate } from '../helpers/servers.js';
import { launchBrowser, newPage, screenshot, signInWithName, watchErrors } from '../helpers/browser.js';

const useRedis = process.env.WSGATE_TEST_REDIS !== '0' && hasRedis();
/** @type {{ stop: () => Promise<any> } | undefined} */
let redis;
/** @type {Array<Awaited<ReturnType<typeof startWsgate>>>} */
const nodes = [];
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {string[][]} */
const allErrors = [];

function hasRedis() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  if (useRedis) {
    const r = await startRedis();
    redis = r;
    nodes.push(await startWsgate({ redisUrl: r.url, nodeId: 'web-n1' }));
    nodes.push(await startWsgate({ redisUrl: r.url, nodeId: 'web-n2' }));
  } else {
    const single = await startWsgate();
    nodes.push(single, single);
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await Promise.all([...new Set(nodes)].map((n) => n.stop()));
  await redis?.stop();
});

/** @param {string[]} errors */
function track(errors) {
  allErrors.push(errors);
  return errors;
}

/** Text of the messages shown in the open conversation. @param {import('playwright-core').Page} page */
function texts(page) {
  return page.locator('#messages .msg .text').allTextContents();
}

describe(`demo page, ${useRedis ? 'two nodes over redis' : 'one standalone node'}`, () => {
  /** @type {Awaited<ReturnType<typeof newPage>>} */
  let alice;
  /** @type {Awaited<ReturnType<typeof newPage>>} */
  let bob;

  test('loads with no console error and shows the sign-in form', async () => {
    alice = await newPage(browser);
    track(alice.errors);
    const res = await alice.page.goto(`${nodes[0].base}/`);
    assert.equal(res?.status(), 200);
    assert.match(res?.headers()['content-type'] ?? '', /text\/html/);
    await alice.page.locator('#login').waitFor();
    assert.equal(await alice.page.locator('#status-text').textContent(), 'Not connected');
    await screenshot(alice.page, 'demo-sign-in');
  });

  test('two users join a room and see each other', async () => {
    await signInWithName(alice.page, 'web-alice');
    bob = await newPage(browser);
    track(bob.errors);
    await bob.page.goto(`${nodes[1].base}/`);
    await signInWithName(bob.page, 'web-bob');
    for (const { page } of [alice, bob]) {
      await page.locator('#status[data-state="open"]').waitFor();
      await page.locator('#conv-title', { hasText: '# lobby' }).waitFor();
    }
    assert.match(await alice.page.locator('#status-text').innerText(), /Connected · node web-n1|Connected/);
    // Presence: each sees the other in the member list (bob joined after alice).
    await alice.page.locator('#member-list .member', { hasText: 'web-bob' }).waitFor();
    await bob.page.locator('#member-list .member', { hasText: 'web-alice' }).waitFor();
  });

  test('room messages and typing', async () => {
    await bob.page.locator('#text').pressSequentially('hel');
    await alice.page.locator('#typing', { hasText: 'web-bob is typing…' }).waitFor();
    await bob.page.locator('#text').fill('hello from bob');
    await bob.page.locator('#text').press('Enter');
    await alice.page.locator('#messages .msg .text', { hasText: 'hello from bob' }).waitFor();
    await alice.page.locator('#text').fill('hi bob, welcome to the lobby');
    await alice.page.locator('#send').click();
    await bob.page.locator('#messages .msg .text', { hasText: 'hi bob, welcome to the lobby' }).waitFor();
    // The sender's own message is shown once (reply and echo deduplicated).
    await bob.page.locator('#messages .msg.mine .delivery', { hasText: 'sent' }).first().waitFor();
    assert.deepEqual(await texts(bob.page), ['hello from bob', 'hi bob, welcome to the lobby']);
    assert.deepEqual(await texts(alice.page), ['hello from bob', 'hi bob, welcome to the lobby']);
    await bob.page.locator('#text').pressSequentially('thanks');
    await alice.page.locator('#typing', { hasText: 'web-bob is typing…' }).waitFor();
    await screenshot(alice.page, 'demo-room');
    await bob.page.locator('#text').fill('');
  });

  test('direct messages with delivery receipts', async () => {
    await alice.page.locator('#member-list .member', { hasText: 'web-bob' }).click();
    await alice.page.locator('#conv-title', { hasText: '@ web-bob' }).waitFor();
    await alice.page.locator('#conv-sub', { hasText: 'online' }).waitFor();
    await alice.page.locator('#text').pressSequentially('psst');
    await alice.page.locator('#text').press('Enter');
    // Bob is in the lobby: an unread badge on the new conversation.
    const conv = bob.page.locator('#dm-list .conv', { hasText: '@ web-alice' });
    await conv.locator('.badge', { hasText: '1' }).waitFor();
    await conv.click();
    await bob.page.locator('#messages .msg .text', { hasText: 'psst' }).waitFor();
    await alice.page.locator('#messages .msg.mine .delivery', { hasText: 'delivered' }).waitFor();
    await bob.page.locator('#text').fill('what is it?');
    await bob.page.locator('#text').press('Enter');
    await alice.page.locator('#messages .msg .text', { hasText: 'what is it?' }).waitFor();
    await screenshot(alice.page, 'demo-chat-alice');
    await screenshot(bob.page, 'demo-chat-bob');
  });

  test('direct messages sent while the page was closed arrive exactly once', async () => {
    await alice.page.close();
    // Bob sees alice leave the lobby.
    await bob.page.locator('#room-list .conv', { hasText: '# lobby' }).click();
    await bob.page.locator('#member-list .member', { hasText: 'web-alice' }).waitFor({ state: 'detached' });
    await bob.page.locator('#dm-list .conv', { hasText: '@ web-alice' }).click();
    for (const text of ['while you were away 1', 'while you were away 2', 'while you were away 3']) {
      await bob.page.locator('#text').fill(text);
      await bob.page.locator('#text').press('Enter');
    }
    await bob.page.locator('#messages .msg.mine .delivery', { hasText: 'stored until they connect' }).nth(2).waitFor();

    // Alice comes back, on the other node.
    const back = await alice.context.newPage();
    track(watchErrors(back));
    await back.goto(`${nodes[1].base}/`);
    await signInWithName(back, 'web-alice');
    const conv = back.locator('#dm-list .conv', { hasText: '@ web-bob' });
    await conv.locator('.badge', { hasText: '3' }).waitFor();
    await conv.click();
    await back.locator('#messages .msg .tag', { hasText: 'while you were away' }).nth(2).waitFor();
    assert.deepEqual(await texts(back), ['while you were away 1', 'while you were away 2', 'while you were away 3']);
    // Bob gets the receipts once alice's page acks them.
    await bob.page.locator('#messages .msg.mine .delivery', { hasText: 'delivered' }).nth(3).waitFor();
    await screenshot(back, 'demo-offline-replay');
    await back.waitForTimeout(500);
    assert.equal((await texts(back)).length, 3, 'no duplicate arrives later');

    // Acked: a third visit gets nothing replayed.
    await back.close();
    const third = await alice.context.newPage();
    track(watchErrors(third));
    await third.goto(`${nodes[0].base}/`);
    await signInWithName(third, 'web-alice');
    await third.locator('#member-list .member', { hasText: 'web-bob' }).waitFor();
    await third.waitForTimeout(700);
    assert.equal(await third.locator('#dm-list .conv').count(), 0, 'nothing replayed after the ack');
    await third.close();
  });

  test('no console errors on any page', () => {
    assert.deepEqual(allErrors.flat(), []);
  });
});
