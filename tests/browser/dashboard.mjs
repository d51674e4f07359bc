// Browser test driver for the dashboard, run by a Rust integration test:
//   node tests/browser/dashboard.mjs <base-url> <screenshot-path>
// Protocol: prints `READY <symbol>` once the page shows quotes and bars; reads one line
// `COMMITTED <symbol> <price>` and times how long until the watchlist (and the chart, if that
// symbol is selected) shows the price; takes a screenshot; prints
// `RESULT {"elapsed_ms":..,"console_errors":[..],"bars":N}` and exits 0, or `FAIL <reason>`, 1.
// Needs Debian's Chromium and web/'s npm packages (scripts/install-browser.sh).
import { createRequire } from 'node:module';
import { readLine } from './stdin.mjs';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const READY_TIMEOUT_MS = 15000;
const UPDATE_TIMEOUT_MS = 5000;

const [baseUrl, screenshotPath] = process.argv.slice(2);
const problems = []; // console errors and warnings, page errors, failed requests
let browser;
let page;

async function run() {
  if (!baseUrl || !screenshotPath) throw new Error('usage: dashboard.mjs <base-url> <screenshot-path>');
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });

  await page.goto(baseUrl);
  await page.waitForFunction(
    () => document.querySelector('#watchlist tbody tr[data-symbol]') && window.tickpipe?.barCount() > 0,
    null,
    { timeout: READY_TIMEOUT_MS, polling: 100 },
  ).catch(() => {
    throw new Error(`page not ready in ${READY_TIMEOUT_MS / 1000} s (no watchlist row or no chart bars)`);
  });
  console.log(`READY ${await page.locator('#symbol').inputValue()}`);

  const line = await readLine('a COMMITTED line');
  const started = performance.now();
  const committed = /^COMMITTED (\S+) (\S+)$/.exec(line);
  if (!committed) throw new Error(`expected "COMMITTED <symbol> <price>", got ${JSON.stringify(line)}`);
  const [, symbol, price] = committed;
  await page.waitForFunction(
    ([sym, px]) => {
      const cell = document.querySelector(`#watchlist tr[data-symbol="${CSS.escape(sym)}"] .last`);
      if (Number(cell?.textContent) !== Number(px)) return false;
      return document.getElementById('symbol').value !== sym || window.tickpipe.lastBar()?.close === Number(px);
    },
    [symbol, price],
    { timeout: UPDATE_TIMEOUT_MS, polling: 'raf' },
  ).catch(() => {
    throw new Error(`${symbol} did not show ${price} within ${UPDATE_TIMEOUT_MS / 1000} s`);
  });
  const elapsedMs = Math.round(performance.now() - started);

  await page.screenshot({ path: screenshotPath, fullPage: true });
  const bars = await page.evaluate(() => window.tickpipe.barCount());
  console.log(`RESULT ${JSON.stringify({ elapsed_ms: elapsedMs, console_errors: [...problems], bars })}`);
}

try {
  await run();
  await browser.close();
  process.exit(0);
} catch (err) {
  if (page && screenshotPath) await page.screenshot({ path: screenshotPath, fullPage: true }).catch(() => {});
  const seen = problems.length ? ` (console: ${JSON.stringify(problems)})` : '';
  console.log(`FAIL ${err.message.split('\n')[0]}${seen}`);
  await browser?.close().catch(() => {});
  process.exit(1);
}
