// Browser test driver for the demo, run by a Rust integration test:
//   node tests/browser/demo.mjs <base-url> <screenshot-dir>
// At 1,024 and 1,920 px wide: waits for the page to show quotes and bars, checks that nothing
// is clipped (no horizontal scrolling, every header on one line, every cell and list item of
// the side column inside its panel) and saves `dashboard-<width>.png`. Then, with nothing
// produced by the test, waits up to 10 s for a watchlist price or time to change by itself.
// Then prints `UPDATED`, reads a line `ALERT <symbol>` (the test has stored rows that raise an
// alert for that symbol) and waits up to 10 s for the alert to show in the page's alert list.
// Prints `RESULT {"layout_problems":[..],"updated_ms":N,"alert_ms":N,"alert":"..",
// "console_errors":[..]}` and exits 0, or `FAIL <reason>` and 1. Needs Debian's Chromium and
// web/'s npm packages.
import { createRequire } from 'node:module';
import path from 'node:path';
import { readLine } from './stdin.mjs';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const READY_TIMEOUT_MS = 15000;
const UPDATE_TIMEOUT_MS = 10000;
const WIDTHS = [1024, 1920];

const [baseUrl, screenshotDir] = process.argv.slice(2);

const problems = [];
let browser;

async function open(width) {
  const page = await browser.newPage({ viewport: { width, height: 1000 }, deviceScaleFactor: 1 });
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  await page.goto(baseUrl);
  await page.waitForFunction(
    () => document.querySelectorAll('#watchlist tbody tr[data-symbol]').length > 0
      && document.querySelectorAll('#gainers li, #losers li').length > 0
      && window.tickpipe?.barCount() > 0,
    null,
    { timeout: READY_TIMEOUT_MS, polling: 100 },
  ).catch(() => {
    throw new Error(`page not ready at ${width} px in ${READY_TIMEOUT_MS / 1000} s`);
  });
  return page;
}

// What is clipped on the page as shown: each problem names the element.
function clipped() {
  const found = [];
  const name = (el) => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : ''} "${el.textContent.trim().slice(0, 30)}"`;
  if (document.documentElement.scrollWidth > window.innerWidth) {
    found.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${window.innerWidth} px`);
  }
  for (const th of document.querySelectorAll('th')) {
    const range = document.createRange();
    range.selectNodeContents(th);
    const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
    if (lines.size > 1) found.push(`${name(th)} wraps onto ${lines.size} lines`);
  }
  for (const panel of document.querySelectorAll('aside .panel, header')) {
    const box = panel.getBoundingClientRect();
    for (const el of panel.querySelectorAll('th, td, li, li > *, h2, h3, .badge')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.right > box.right + 0.5 || r.left < box.left - 0.5) {
        found.push(`${name(el)} reaches ${Math.round(r.left)}–${Math.round(r.right)} px, its panel ${Math.round(box.left)}–${Math.round(box.right)}`);
      }
      if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflow !== 'visible') {
        found.push(`${name(el)} is cut: ${el.scrollWidth} px of content in ${el.clientWidth}`);
      }
    }
  }
  return found;
}

const watched = () => [...document.querySelectorAll('#watchlist tbody tr[data-symbol]')]
  .map((tr) => `${tr.dataset.symbol} ${tr.querySelector('.last')?.textContent} ${tr.querySelector('.time')?.textContent}`)
  .join('\n');

async function run() {
  if (!baseUrl || !screenshotDir) throw new Error('usage: demo.mjs <base-url> <screenshot-dir>');
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
  });
  const layoutProblems = [];
  let page;
  for (const width of WIDTHS) {
    page = await open(width);
    for (const problem of await page.evaluate(clipped)) layoutProblems.push(`${width} px: ${problem}`);
    await page.screenshot({ path: path.join(screenshotDir, `dashboard-${width}.png`) });
  }
  // The last page stays open: does it change by itself?
  const before = await page.evaluate(watched);
  const started = performance.now();
  await page.waitForFunction((was) => {
    const now = [...document.querySelectorAll('#watchlist tbody tr[data-symbol]')]
      .map((tr) => `${tr.dataset.symbol} ${tr.querySelector('.last')?.textContent} ${tr.querySelector('.time')?.textContent}`)
      .join('\n');
    return now !== was;
  }, before, { timeout: UPDATE_TIMEOUT_MS, polling: 100 }).catch(() => {
    throw new Error(`the watchlist did not change by itself within ${UPDATE_TIMEOUT_MS / 1000} s`);
  });
  const updatedMs = Math.round(performance.now() - started);
  console.log('UPDATED');

  const line = await readLine('an ALERT line');
  const asked = /^ALERT (\S+)$/.exec(line);
  if (!asked) throw new Error(`expected "ALERT <symbol>", got ${JSON.stringify(line)}`);
  const alertStarted = performance.now();
  const shown = await page.waitForFunction(
    (symbol) => document.querySelector(`#alerts li[data-symbol="${CSS.escape(symbol)}"]`)?.textContent,
    asked[1],
    { timeout: UPDATE_TIMEOUT_MS, polling: 100 },
  ).catch(() => {
    throw new Error(`no alert for ${asked[1]} on the page within ${UPDATE_TIMEOUT_MS / 1000} s`);
  });
  const alertMs = Math.round(performance.now() - alertStarted);
  const alert = await shown.jsonValue();
  await page.screenshot({ path: path.join(screenshotDir, `dashboard-alert.png`) });
  console.log(`RESULT ${JSON.stringify({ layout_problems: layoutProblems, updated_ms: updatedMs, alert_ms: alertMs, alert, console_errors: [...problems] })}`);
}

try {
  await run();
  await browser.close();
  process.exit(0);
} catch (err) {
  const seen = problems.length ? ` (console: ${JSON.stringify(problems)})` : '';
  console.log(`FAIL ${err.message.split('\n')[0]}${seen}`);
  await browser?.close().catch(() => {});
  process.exit(1);
}
