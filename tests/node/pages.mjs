// The attendee's pages in a real headless Chromium: axe-core (WCAG 2.2 A and AA) on every page
// in each state, a keyboard-only registration, no horizontal scrolling at 320 CSS px, and the
// README's screenshots. One browser for the whole script; the Rust test sets the scene and
// passes it in PAGES (JSON): base, session, slugs and a live confirmation link.
import { launch, axeViolations } from './browser.mjs';

const scene = JSON.parse(process.env.PAGES);
const base = scene.base;
const shots = process.env.SCREENSHOTS;
const failures = [];
const browser = await launch();
const TIMEOUT = 5000;

async function context(options = {}, session = null) {
  const ctx = await browser.newContext({ viewport: { width: 1024, height: 800 }, ...options });
  if (session) {
    await ctx.addCookies([{ name: 'groundswell_session', value: session, url: base }]);
  }
  return ctx;
}

async function audit(page, label) {
  const violations = await axeViolations(page);
  if (violations.length > 0) failures.push({ label, violations });
  return violations.length;
}

async function fits(page, label) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  if (width > 320) failures.push({ label: `${label} at 320px`, scrollWidth: width });
}

async function visit(page, path) {
  const response = await page.goto(base + path);
  const csp = response.headers()['content-security-policy'] || '';
  if (!csp.includes("default-src 'none'")) failures.push({ label: path, csp });
  return response;
}

// Every state of every page, as [label, how to get there in a fresh page].
const anonymous = [
  ['home', (p) => visit(p, '/')],
  ['gathering, empty form', (p) => visit(p, `/gatherings/${scene.open}`)],
  ['gathering, form with errors', async (p) => {
    await visit(p, `/gatherings/${scene.open}`);
    await p.check('#access-quiet-space');
    await p.fill('#email', 'not an address');
    await p.click('button[type=submit]');
  }],
  ['check your email', async (p) => {
    await visit(p, `/gatherings/${scene.open}`);
    await p.check('#mode-online');
    await p.fill('#name', 'Ada Lovelace');
    await p.fill('#email', 'ada.browser@example.org');
    await p.click('button[type=submit]');
  }],
  ['sign-in form', (p) => visit(p, '/sign-in')],
  ['sign-in form with an error', async (p) => {
    await visit(p, '/sign-in');
    await p.fill('#email', 'nope');
    await p.click('button[type=submit]');
  }],
  ['confirm page', (p) => visit(p, `/registrations/confirm?token=${scene.confirmToken}`)],
  ['expired link', (p) => visit(p, '/registrations/confirm?token=nothing-here')],
  ['sign-in link page', (p) => visit(p, `/sign-in?token=${scene.signInToken}`)],
  ['sign-in link used up', async (p) => {
    await visit(p, '/sign-in?token=gsi_nothing-here');
    await p.click('button[type=submit]');
  }],
  ['unsubscribe page', (p) => visit(p, scene.unsubscribe)],
  ['unsubscribe link not valid', (p) => visit(p, '/unsubscribe/nothing-here')],
  ['not found', (p) => visit(p, '/gatherings/nowhere')],
];
const signedIn = [
  ['gathering, signed in', (p) => visit(p, `/gatherings/${scene.open}`)],
  ['confirmed', async (p) => {
    await visit(p, `/gatherings/${scene.open}`);
    await p.check('#mode-in-person');
    await p.click('button[type=submit]');
  }],
  ['waitlisted', async (p) => {
    await visit(p, `/gatherings/${scene.full}`);
    await p.click('button[type=submit]');
  }],
  ['my registrations', (p) => visit(p, '/my/registrations')],
];

async function run(states, session, label) {
  for (const easy of [false, true]) {
    for (const width of [1024, 320]) {
      const ctx = await context({ viewport: { width, height: 800 } }, session);
      if (easy) await ctx.addCookies([{ name: 'groundswell_read', value: 'easy', url: base }]);
      for (const [name, go] of states) {
        const page = await ctx.newPage();
        page.setDefaultTimeout(TIMEOUT);
        const what = `${label}: ${name}${easy ? ' (easy read)' : ''}`;
        try {
          await go(page);
        } catch (err) {
          const main = await page.textContent('main').catch(() => '');
          failures.push({ label: what, at: page.url(), error: String(err).slice(0, 300), main: (main || '').slice(0, 400) });
          await page.close();
          continue;
        }
        const text = await page.textContent('body');
        if (width === 1024) {
          await audit(page, what);
        } else {
          await fits(page, what);
        }
        if (easy && !(await page.$('body.easy'))) failures.push({ label: what, easy: 'not easy read' });
        if (!text.trim()) failures.push({ label: what, empty: true });
        await page.close();
      }
      await ctx.close();
    }
  }
}

// Registering signed in twice answers the first registration: use one person per pass.
await run(anonymous, null, 'anonymous');
await run(signedIn.slice(0, 1).concat(signedIn.slice(3)), scene.sessions[0], 'signed in');
for (const [i, easy] of [[1, false], [2, true]]) {
  const ctx = await context({}, scene.sessions[i]);
  if (easy) await ctx.addCookies([{ name: 'groundswell_read', value: 'easy', url: base }]);
  for (const [name, go] of signedIn.slice(1, 3)) {
    const page = await ctx.newPage();
    page.setDefaultTimeout(TIMEOUT);
    try {
      await go(page);
    } catch (err) {
      const main = await page.textContent('main').catch(() => '');
      failures.push({ label: name, at: page.url(), error: String(err).slice(0, 300), main: (main || '').slice(0, 600) });
      await page.close();
      continue;
    }
    await audit(page, `signed in: ${name}${easy ? ' (easy read)' : ''}`);
    const body = await page.textContent('h1');
    const expected = name === 'confirmed' ? /(confirmed|You have a place)/ : /(waitlist|waiting list)/;
    if (!expected.test(body)) failures.push({ label: name, heading: body });
    await page.setViewportSize({ width: 320, height: 800 });
    await fits(page, `signed in: ${name}${easy ? ' (easy read)' : ''}`);
    await page.close();
  }
  await ctx.close();
}

// Signing in with the link's button, and stopping digests with the unsubscribe button, in
// each version (each link works once, so one per version).
for (const [i, easy] of [[0, false], [1, true]]) {
  const ctx = await context({});
  if (easy) await ctx.addCookies([{ name: 'groundswell_read', value: 'easy', url: base }]);
  const steps = [
    ['signed in', `/sign-in?token=${scene.signInTokens[i]}`, /signed in/],
    ['digests stopped', scene.unsubscribes[i], /(stopped)/],
  ];
  for (const [name, path, expected] of steps) {
    const page = await ctx.newPage();
    page.setDefaultTimeout(TIMEOUT);
    const what = `button: ${name}${easy ? ' (easy read)' : ''}`;
    try {
      await visit(page, path);
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    } catch (err) {
      failures.push({ label: what, at: page.url(), error: String(err).slice(0, 300) });
      await page.close();
      continue;
    }
    await audit(page, what);
    const heading = await page.textContent('h1');
    if (!expected.test(heading)) failures.push({ label: what, heading });
    if (easy && !(await page.$('body.easy'))) failures.push({ label: what, easy: 'not easy read' });
    await page.setViewportSize({ width: 320, height: 800 });
    await fits(page, what);
    await page.close();
  }
  await ctx.close();
}

// Keyboard only: Tab, Space and Enter, with focus visible at every step.
{
  const ctx = await context({}, scene.sessions[3]);
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await visit(page, `/gatherings/${scene.keyboard}`);
  const wanted = ['mode-in-person', 'companions-coming', 'access-step-free-access', 'access-consent'];
  let steps = 0;
  let submitted = false;
  while (steps < 80 && !submitted) {
    await page.keyboard.press('Tab');
    steps += 1;
    // Focus is visible when the focused element looks different from itself unfocused: its
    // outline, ring or colours change.
    const focus = await page.evaluate(() => {
      const el = document.activeElement;
      const look = () => {
        const style = getComputedStyle(el);
        const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0
          && !['rgba(0, 0, 0, 0)', 'transparent'].includes(style.outlineColor);
        return [outline ? `${style.outlineWidth} ${style.outlineColor}` : 'none', style.boxShadow,
          style.backgroundColor, style.color].join('|');
      };
      const focused = look();
      el.blur();
      const unfocused = look();
      el.focus();
      const rect = el.getBoundingClientRect();
      return {
        id: el.id, tag: el.tagName, type: el.type || '', text: (el.textContent || '').trim(),
        visible: focused !== unfocused, onScreen: rect.width > 0 && rect.height > 0,
      };
    });
    if (focus.tag === 'BODY') continue;
    if (!focus.visible || !focus.onScreen) failures.push({ label: 'keyboard: focus not visible', focus });
    if (wanted.includes(focus.id)) {
      await page.keyboard.press('Space');
    } else if (focus.tag === 'BUTTON' && focus.type === 'submit') {
      await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
      submitted = true;
    }
  }
  const heading = submitted ? await page.textContent('h1') : '';
  if (!/confirmed/i.test(heading)) failures.push({ label: 'keyboard: registration', heading, steps });
  await visit(page, '/my/registrations');
  const mine = await page.textContent('main');
  if (!mine.includes('Step-free access') || !/Coming with you\s*1/.test(mine)) {
    failures.push({ label: 'keyboard: registration kept its answers', mine });
  }
  await ctx.close();
}

// Screenshots for the README.
if (shots) {
  const ctx = await context({ viewport: { width: 1024, height: 800 } });
  const page = await ctx.newPage();
  await visit(page, `/gatherings/${scene.open}`);
  await page.screenshot({ path: `${shots}/gathering.png`, fullPage: true });
  await page.check('#access-quiet-space');
  await page.fill('#name', 'Ada Lovelace');
  await page.fill('#email', 'ada at example');
  await page.click('button[type=submit]');
  await page.screenshot({ path: `${shots}/form-with-errors.png`, fullPage: true });
  await visit(page, `/gatherings/${scene.open}?read=easy`);
  await page.screenshot({ path: `${shots}/gathering-easy-read.png`, fullPage: true });
  await ctx.close();
}

await browser.close();
if (failures.length > 0) {
  console.log(JSON.stringify(failures, null, 2));
  process.exit(1);
}
console.log('pages: every state passed axe, 320px and the keyboard');
