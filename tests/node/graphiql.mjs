// Loads GraphiQL from a running server in Debian's headless Chromium: `node graphiql.mjs ORIGIN`.
// Checks that the editor renders, that the documentation explorer opens and lists Query's
// fields, that no request left the server's origin and that nothing broke the page's
// Content-Security-Policy. Prints what it saw as JSON; exits non-zero on any failure.
import { launch, recordForeignRequests } from './browser.mjs';

const origin = process.argv[2];
const browser = await launch();
const failures = [];
const seen = {};
try {
  const page = await browser.newPage();
  const foreign = recordForeignRequests(page, origin);
  const cspViolations = [];
  const consoleErrors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
  page.on('response', (response) => {
    if (response.status() >= 400) consoleErrors.push(`${response.status()} ${response.url()}`);
  });
  await page.exposeFunction('__cspViolation', (text) => cspViolations.push(text));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      window.__cspViolation(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  const response = await page.goto(`${origin}/graphql`, { waitUntil: 'load' });
  seen.status = response.status();
  seen.csp = response.headers()['content-security-policy'] || null;
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 30000 });
  seen.editor = true;
  await page.click('button[aria-label="Show Documentation Explorer"]', { timeout: 30000 });
  await page.waitForSelector('.graphiql-doc-explorer', { timeout: 30000 });
  await page.click('.graphiql-doc-explorer a.graphiql-doc-explorer-type-name:has-text("Query")', {
    timeout: 30000,
  });
  await page.waitForSelector('.graphiql-doc-explorer-field-name', { timeout: 30000 });
  seen.queryFields = await page.$$eval('.graphiql-doc-explorer-field-name', (nodes) =>
    nodes.map((n) => n.textContent),
  );
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });
  seen.foreignRequests = foreign;
  seen.cspViolations = cspViolations;
  seen.consoleErrors = consoleErrors;
  if (seen.status !== 200) failures.push(`GET /graphql answered ${seen.status}`);
  if (!seen.csp || !seen.csp.includes("script-src 'self'")) failures.push('no Content-Security-Policy');
  for (const field of ['changes', 'gatherings', 'pledges']) {
    if (!seen.queryFields.includes(field)) failures.push(`the explorer does not list Query.${field}`);
  }
  if (foreign.length > 0) failures.push(`requests to other origins: ${foreign.join(', ')}`);
  if (cspViolations.length > 0) failures.push(`CSP violations: ${cspViolations.join(', ')}`);
  if (consoleErrors.length > 0) failures.push(`errors: ${consoleErrors.join(', ')}`);
} catch (error) {
  failures.push(String(error));
} finally {
  await browser.close();
}
console.log(JSON.stringify({ seen, failures }, null, 2));
process.exit(failures.length === 0 ? 0 : 1);
