// @ts-check
/**
 * The Vue package in a real browser: ../app/app.js is bundled with
 * esbuild (real vue from npm), served from a loopback HTTP server of its own
 * and driven in headless Chromium against real wsgate nodes (two nodes over Redis when redis-server is there,
 * else one standalone node): a user who goes offline sees every room message
 * they missed once, in order, when they come back.
 */
import { test, before, after } from 'node:test';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { startRedis, startWsgate } from '../../../js/test/helpers/servers.js';
import { launchBrowser } from '../../../js/test/helpers/browser.js';
import { offlineRecoveryScenario, startAppServer } from '../../../js/test/helpers/chat-app.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** @type {Array<Awaited<ReturnType<typeof startWsgate>>>} */
const nodes = [];
/** @type {Awaited<ReturnType<typeof startRedis>> | undefined} */
let redis;
/** @type {Awaited<ReturnType<typeof launchBrowser>>} */
let browser;
/** @type {Awaited<ReturnType<typeof startAppServer>>} */
let app;

before(async () => {
  const out = await build({
    entryPoints: [path.join(here, '../app/app.js')],
    bundle: true,
    format: 'esm',
    minify: true,
    write: false,
    define: {
      'process.env.NODE_ENV': '"production"',
      __VUE_OPTIONS_API__: 'true',
      __VUE_PROD_DEVTOOLS__: 'false',
      __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
    },
    logLevel: 'error',
  });
  app = await startAppServer(out.outputFiles[0].text);
  const args = ['--allowed-origins', app.origin];
  redis = process.env.WSGATE_TEST_REDIS === '0' ? undefined : await startRedis();
  if (redis) {
    nodes.push(await startWsgate({ redisUrl: redis.url, nodeId: 'vue-n1', args }));
    nodes.push(await startWsgate({ redisUrl: redis.url, nodeId: 'vue-n2', args }));
  } else {
    const single = await startWsgate({ args });
    nodes.push(single, single);
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await Promise.all([...new Set(nodes)].map((n) => n.stop()));
  await redis?.stop();
  await app?.stop();
});

test('Vue app: offline, back, every missed room message once and in order', async () => {
  await offlineRecoveryScenario({ name: 'vue', browser, appOrigin: app.origin, aliceNode: nodes[0], bobNode: nodes[1] });
});
