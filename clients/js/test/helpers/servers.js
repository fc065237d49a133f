// @ts-check
/**
 * Starts real processes for integration and browser tests: `redis-server`
 * and `wsgate` nodes on free loopback ports. Everything started is killed
 * when the test process exits.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../../..');
export const wsgateBin = process.env.WSGATE_BIN ?? path.join(repoRoot, 'target/debug/wsgate');

/** @type {Set<import('node:child_process').ChildProcess>} */
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (never 6379). @returns {Promise<number>} */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
      });
    });
    if (port && port !== 6379) return port;
  }
}

/**
 * Polls `check` until it returns a truthy value or `timeoutMs` passes.
 * @template T
 * @param {() => T | Promise<T>} check
 * @param {{ timeoutMs?: number, intervalMs?: number, what?: string }} [options]
 * @returns {Promise<T>}
 */
export async function eventually(check, options = {}) {
  const deadline = Date.now() + (options.timeoutMs ?? 10000);
  /** @type {unknown} */
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${options.what ?? 'a condition'}${last ? `: ${last}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
  }
}

/**
 * @param {string} cmd
 * @param {string[]} args
 * @param {string} name for logs
 */
function launch(cmd, args, name) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  /** @type {string[]} */
  const log = [];
  const keep = (/** @type {Buffer} */ chunk) => {
    log.push(chunk.toString());
    if (log.length > 400) log.splice(0, 100);
    if (process.env.WSGATE_TEST_LOG) process.stderr.write(`[${name}] ${chunk}`);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('exit', () => running.delete(child));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, log, exited };
}

/** @param {import('node:child_process').ChildProcess} child @param {Promise<any>} exited */
async function stop(child, exited, signal = /** @type {NodeJS.Signals} */ ('SIGKILL')) {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill(signal);
  return exited;
}

/** Starts `redis-server` on a free port with no persistence. */
export async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync('/tmp/wsgate-js-redis-');
  const { child, log, exited } = launch(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    `redis:${port}`,
  );
  await eventually(() => log.join('').includes('Ready to accept connections'), {
    what: `redis on ${port}`,
    timeoutMs: 10000,
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: () => stop(child, exited),
  };
}

/**
 * @typedef {object} NodeOptions
 * @property {boolean} [anonymous] `--allow-anonymous` (default true)
 * @property {string} [redisUrl]
 * @property {string} [nodeId]
 * @property {string} [jwtSecret]
 * @property {number} [port] reuse a port (restart a node)
 * @property {string[]} [args] more flags
 */

/**
 * Starts a wsgate node and waits until `/readyz` answers 200.
 * @param {NodeOptions} [options]
 */
export async function startWsgate(options = {}) {
  if (!fs.existsSync(wsgateBin)) throw new Error(`${wsgateBin} missing: run cargo build -p wsgate`);
  const port = options.port ?? (await freePort());
  const adminPort = await freePort();
  const args = ['--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`];
  if (options.anonymous ?? true) args.push('--allow-anonymous');
  if (options.redisUrl) args.push('--redis-url', options.redisUrl);
  if (options.nodeId) args.push('--node-id', options.nodeId);
  if (options.jwtSecret) args.push('--jwt-secret', options.jwtSecret);
  args.push(...(options.args ?? []));
  const { child, log, exited } = launch(wsgateBin, args, options.nodeId ?? `wsgate:${port}`);
  const base = `http://127.0.0.1:${port}`;
  try {
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`wsgate exited ${child.exitCode}: ${log.join('').slice(-2000)}`);
        const res = await fetch(`${base}/readyz`);
        return res.status === 200;
      },
      { what: `wsgate on ${port} to be ready`, timeoutMs: 20000, intervalMs: 100 },
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${err}\n--- wsgate log ---\n${log.join('').slice(-3000)}`);
  }
  return {
    port,
    adminPort,
    base,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    log,
    child,
    exited,
    /** @param {NodeJS.Signals} [signal] */
    stop: (signal) => stop(child, exited, signal),
  };
}

/**
 * Signs an HS256 JWT.
 * @param {Record<string, unknown>} claims
 * @param {string} secret
 */
export function signJwt(claims, secret) {
  const b64 = (/** @type {object} */ o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
