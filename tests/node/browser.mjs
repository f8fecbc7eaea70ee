// Shared by the browser tests: Debian's Chromium driven by playwright-core, and axe-core.
//
// This machine has no network: Chromium is started with every flag that stops it reaching out
// (without them it stalls on connections it cannot make), never a browser of Playwright's own.
// playwright's `launch` gives each browser a fresh, temporary profile (`--user-data-dir`).
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const axeSource = require('axe-core').source;

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/// WCAG 2.2 A and AA, and everything before it.
export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];

/// Runs axe-core on the page as it stands and returns its violations. The source goes in
/// through the DevTools protocol, which a page's Content-Security-Policy does not govern.
export async function axeViolations(page) {
  await page.evaluate(axeSource);
  const results = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags } }),
    WCAG_TAGS,
  );
  return results.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => n.target.join(' ')),
  }));
}

/// Every request the page made to an origin other than `origin`.
export function recordForeignRequests(page, origin) {
  const foreign = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (!['data:', 'blob:', 'about:'].includes(url.protocol) && url.origin !== origin) {
      foreign.push(request.url());
    }
  });
  return foreign;
}
