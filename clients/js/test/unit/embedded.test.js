// @ts-check
/**
 * The server embeds the demo page and the SDK (crates/wsgate/src/server/demo.rs):
 * its list must match the files here, or the page breaks on a missing import.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const js = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const demoRs = path.resolve(js, '../../crates/wsgate/src/server/demo.rs');

test('demo.rs embeds every SDK and demo file, under the URL the page uses', () => {
  const rust = fs.readFileSync(demoRs, 'utf8');
  /** @type {Map<string, string>} */
  const served = new Map();
  for (const m of rust.matchAll(/"(\/[^"]*)"(?:\s*\|\s*"(\/[^"]*)")?\s*=>\s*\(\s*\w+,\s*include_bytes!\("\.\.\/\.\.\/\.\.\/\.\.\/clients\/js\/([^"]+)"\)/g)) {
    served.set(m[1], m[3]);
    if (m[2]) served.set(m[2], m[3]);
  }
  /** @type {Map<string, string>} */
  const expected = new Map([
    ['/', 'demo/index.html'],
    ['/index.html', 'demo/index.html'],
    ['/app.js', 'demo/app.js'],
    ['/style.css', 'demo/style.css'],
  ]);
  for (const file of fs.readdirSync(path.join(js, 'src'))) {
    if (file.endsWith('.js')) expected.set(`/sdk/${file}`, `src/${file}`);
  }
  assert.deepEqual(new Map([...served].sort()), new Map([...expected].sort()));
});

test('the page references only embedded URLs', () => {
  const html = fs.readFileSync(path.join(js, 'demo/index.html'), 'utf8');
  const app = fs.readFileSync(path.join(js, 'demo/app.js'), 'utf8');
  const refs = [...html.matchAll(/(?:href|src)="(\/[^"]*)"/g), ...app.matchAll(/from '(\/[^']*)'/g)].map((m) => m[1]);
  assert.deepEqual(refs.sort(), ['/app.js', '/sdk/index.js', '/style.css']);
  assert.doesNotMatch(html + app, /https?:\/\//, 'no external URL (no CDN)');
});
