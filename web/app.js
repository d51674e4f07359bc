// tickpipe dashboard: watchlist, top movers, freshness badge and a candlestick chart, fed by the
// JSON API and the /api/events stream. Plain script, no build step; LightweightCharts is global.
'use strict';

const LC = window.LightweightCharts;
const LIVE_SECONDS = 10;
const SPARK_POINTS = 30;
const BAR_LIMIT = 500;
const REFETCH_MS = 1000;
const UP = '#26a69a';
const DOWN = '#ef5350';
const UP_FILL = 'rgba(38, 166, 154, 0.5)';
const DOWN_FILL = 'rgba(239, 83, 80, 0.5)';
const OVERLAYS = [
  { key: 'sma_20', label: 'SMA 20', color: '#f0b90b' },
  { key: 'sma_50', label: 'SMA 50', color: '#b36bff' },
  { key: 'ema_20', label: 'EMA 20', color: '#3fa7ff' },
  { key: 'vwap', label: 'VWAP', color: '#ff7a45' },
];

const $ = (id) => document.getElementById(id);
const quotes = new Map(); // symbol -> latest quote, plus ts (ms) and spark (closes)
const rows = new Map(); // symbol -> <tr>
const fresh = { updated: NaN, data: NaN, skew: 0 }; // newest updated_at / timestamp; server - client ms
const view = { symbol: null, interval: '1m', seq: 0, lastFetch: 0, timer: 0, live: [] };
let backlog = []; // stream events that arrive before the first load; null afterwards

// ---- formatting

const utcTime = (ms) => new Date(ms).toISOString().slice(11, 19);
const utcDateTime = (ms) => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
const trend = (x) => (x > 0 ? 'up' : x < 0 ? 'down' : 'flat');
const pct = (p) => (p == null ? '—' : `${p > 0 ? '+' : ''}${p.toFixed(2)}%`);
// An exact decimal string as stored (8 places) without the zeros past the cents: 1260.30000000
// shows as 1260.30, 0.00012300 as 0.000123.
const shownPrice = (p) => String(p).replace(/^(-?\d+\.\d\d\d*?)0+$/, '$1');
const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

function age(s) {
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${Math.floor(s / 86400)} d`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function insertSorted(parent, node, key, keyOf) {
  const next = [...parent.children].find((child) => keyOf(child) > key);
  parent.insertBefore(node, next || null);
}

async function getJSON(url) {
  const res = await fetch(url);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

// ---- watchlist, movers, freshness

function ensureRow(symbol) {
  if (rows.has(symbol)) return rows.get(symbol);
  const tr = el('tr');
  tr.dataset.symbol = symbol;
  tr.innerHTML = '<td class="sym"></td><td class="last num">—</td><td class="change num flat">—</td>'
    + '<td class="spark"><svg width="84" height="24" viewBox="0 0 84 24"><polyline/></svg></td>'
    + '<td class="time num">—</td>';
  tr.cells[0].textContent = symbol;
  tr.addEventListener('click', () => selectSymbol(symbol));
  insertSorted($('watchlist').tBodies[0], tr, symbol, (r) => r.dataset.symbol);
  rows.set(symbol, tr);
  const option = el('option', null, symbol);
  insertSorted($('symbol'), option, symbol, (o) => o.value);
  return tr;
}

function applyQuote(q) {
  const ts = Date.parse(q.timestamp);
  const updated = Date.parse(q.updated_at);
  if (!(fresh.updated >= updated)) fresh.updated = updated;
  if (!(fresh.data >= ts)) fresh.data = ts;
  ensureRow(q.symbol);
  if (!view.symbol) selectSymbol(q.symbol);
  const prev = quotes.get(q.symbol);
  if (prev && ts < prev.ts) return; // an older row than the one shown
  const spark = q.sparkline ? q.sparkline.slice(-SPARK_POINTS) : extendSpark(prev, ts, Number(q.price));
  quotes.set(q.symbol, { ...q, ts, spark });
  renderRow(q.symbol, prev);
  renderMovers();
  renderFreshness();
}

// The sparkline holds 1-minute closes: a quote in a later minute appends, else replaces the last.
function extendSpark(prev, ts, price) {
  const spark = prev ? prev.spark.slice() : [];
  const sameMinute = prev && Math.floor(ts / 60000) === Math.floor(prev.ts / 60000);
  if (sameMinute && spark.length) spark[spark.length - 1] = price;
  else spark.push(price);
  return spark.slice(-SPARK_POINTS);
}

function renderRow(symbol, prev) {
  const q = quotes.get(symbol);
  const [, last, change, spark, time] = rows.get(symbol).cells;
  last.textContent = shownPrice(q.price);
  if (prev && prev.price !== q.price) {
    const color = Number(q.price) > Number(prev.price) ? UP_FILL : DOWN_FILL;
    last.animate([{ backgroundColor: color }, { backgroundColor: 'transparent' }], 900);
  }
  change.textContent = pct(q.change_pct);
  change.className = `change num ${trend(q.change_pct)}`;
  time.textContent = utcTime(q.ts);
  drawSpark(spark.firstChild, q.spark);
}

function drawSpark(svg, closes) {
  const min = Math.min(...closes);
  const span = Math.max(...closes) - min || 1;
  const step = closes.length > 1 ? 82 / (closes.length - 1) : 0;
  const points = closes.map((c, i) => `${(1 + i * step).toFixed(1)},${(21 - ((c - min) / span) * 18).toFixed(1)}`);
  svg.firstChild.setAttribute('points', points.join(' '));
  svg.setAttribute('class', trend(closes[closes.length - 1] - closes[0]));
}

function renderMovers() {
  const ranked = [...quotes.values()].filter((q) => q.change_pct != null)
    .sort((a, b) => b.change_pct - a.change_pct);
  fillMovers($('gainers'), ranked.filter((q) => q.change_pct > 0).slice(0, 3));
  fillMovers($('losers'), ranked.filter((q) => q.change_pct < 0).reverse().slice(0, 3));
}

function fillMovers(list, items) {
  list.replaceChildren(...items.map((q) => {
    const li = el('li');
    li.dataset.symbol = q.symbol;
    li.append(el('span', 'sym', q.symbol), el('span', 'px', shownPrice(q.price)), el('span', `pill ${trend(q.change_pct)}`, pct(q.change_pct)));
    li.addEventListener('click', () => selectSymbol(q.symbol));
    return li;
  }));
  if (!items.length) list.append(el('li', 'empty', 'none'));
}

function renderFreshness() {
  const badge = $('freshness');
  if (Number.isNaN(fresh.updated)) {
    badge.querySelector('.status').textContent = 'stale · no data yet';
    return;
  }
  const seconds = Math.max(0, (Date.now() + fresh.skew - fresh.updated) / 1000);
  const live = seconds < LIVE_SECONDS;
  badge.className = `badge ${live ? 'live' : 'stale'}`;
  badge.querySelector('.status').textContent = `${live ? 'live' : 'stale'} · updated ${age(seconds)} ago`;
  badge.querySelector('.data-time').textContent = `data ${utcDateTime(fresh.data)}`;
}

// ---- chart

const chart = LC.createChart($('chart'), {
  autoSize: true,
  layout: {
    background: { type: LC.ColorType.Solid, color: '#131722' },
    textColor: '#8a91a5',
    fontFamily: getComputedStyle(document.body).fontFamily,
    attributionLogo: false, // the footer carries the attribution and link
    panes: { separatorColor: '#232838', separatorHoverColor: '#2d3447' },
  },
  grid: { vertLines: { color: '#1a1f2c' }, horzLines: { color: '#1a1f2c' } },
  crosshair: { mode: LC.CrosshairMode.Normal },
  rightPriceScale: { borderColor: '#232838' },
  timeScale: { borderColor: '#232838', timeVisible: true, secondsVisible: false, rightOffset: 4 },
});
const priceFormat = { type: 'price', precision: 2, minMove: 0.01 };
const candles = chart.addSeries(LC.CandlestickSeries, {
  upColor: UP, downColor: DOWN, wickUpColor: UP, wickDownColor: DOWN, borderVisible: false, priceFormat,
});
const volume = chart.addSeries(LC.HistogramSeries, {
  priceFormat: { type: 'volume' }, priceLineVisible: false, lastValueVisible: false,
}, 1);
chart.panes()[1].setStretchFactor(0.25);
const overlays = OVERLAYS.map((o) => ({
  ...o,
  series: chart.addSeries(LC.LineSeries, {
    color: o.color, lineWidth: 1, priceFormat, priceLineVisible: false, lastValueVisible: false,
    crosshairMarkerVisible: false,
  }),
}));

const toCandle = (b) => ({ time: b.time, open: +b.open, high: +b.high, low: +b.low, close: +b.close });
const toVolume = (b) => ({ time: b.time, value: +b.volume, color: +b.close >= +b.open ? UP_FILL : DOWN_FILL });
const lastBar = () => candles.data().at(-1) ?? null;

function showNotice(text) {
  $('notice').textContent = text;
  $('notice').hidden = !text;
}

function renderLegend(bar = lastBar(), vol = volume.data().at(-1)?.value) {
  const legend = $('legend');
  legend.replaceChildren(el('span', 'title', `${view.symbol ?? ''} · ${view.interval}`));
  if (!bar) return;
  const fmt = candles.priceFormatter();
  const dir = trend(bar.close - bar.open);
  for (const [label, value] of [['O', bar.open], ['H', bar.high], ['L', bar.low], ['C', bar.close]]) {
    legend.append(el('span', 'k', label), el('span', `v ${dir}`, fmt.format(value)));
  }
  if (vol != null) legend.append(el('span', 'k', 'Vol'), el('span', 'v', compact.format(vol)));
}

async function loadBars(resetView) {
  if (!view.symbol) return;
  clearTimeout(view.timer);
  view.timer = 0;
  const seq = ++view.seq;
  view.lastFetch = Date.now();
  view.live = [];
  const { symbol, interval } = view;
  let bars;
  try {
    const query = new URLSearchParams({ symbol, interval, limit: BAR_LIMIT });
    ({ bars } = await getJSON(`/api/bars?${query}`));
  } catch (err) {
    if (seq === view.seq) showNotice(`Could not load ${symbol} ${interval} bars: ${err.message}`);
    return;
  }
  if (seq !== view.seq) return; // a newer load has started
  candles.setData(bars.map(toCandle));
  volume.setData(bars.map(toVolume));
  for (const o of overlays) {
    o.series.setData(bars.filter((b) => b[o.key] != null).map((b) => ({ time: b.time, value: b[o.key] })));
  }
  const newest = bars.at(-1)?.time ?? -Infinity;
  view.live.filter((b) => b.time >= newest).forEach(updateCandle); // bars streamed during the fetch
  showNotice(bars.length || lastBar() ? '' : `No ${interval} bars for ${symbol} yet`);
  if (resetView) {
    const n = bars.length;
    if (n > 120) chart.timeScale().setVisibleLogicalRange({ from: n - 120, to: n + 4 });
    else chart.timeScale().fitContent();
  }
  renderLegend();
}

function scheduleLoad() {
  if (view.timer) return;
  view.timer = setTimeout(() => loadBars(false), Math.max(0, view.lastFetch + REFETCH_MS - Date.now()));
}

function updateCandle(bar) {
  candles.update(toCandle(bar));
  volume.update(toVolume(bar));
}

function applyBar({ symbol, bar }) {
  if (symbol !== view.symbol) return;
  if (view.interval === '1m') {
    view.live.push(bar);
    const last = lastBar();
    if (!last || bar.time >= last.time) {
      updateCandle(bar);
      renderLegend();
    }
  }
  scheduleLoad(); // overlays, other intervals, and bars older than the newest
}

function selectSymbol(symbol) {
  view.symbol = symbol;
  $('symbol').value = symbol;
  for (const [s, tr] of rows) tr.classList.toggle('selected', s === symbol);
  loadBars(true);
}

// ---- controls, stream, start

for (const o of overlays) {
  const box = el('input');
  box.type = 'checkbox';
  box.checked = true;
  box.addEventListener('change', () => o.series.applyOptions({ visible: box.checked }));
  const label = el('label', 'overlay');
  label.style.setProperty('--swatch', o.color);
  label.append(box, el('span', 'swatch'), o.label);
  $('overlays').append(label);
}
$('symbol').addEventListener('change', (e) => selectSymbol(e.target.value));
$('interval').addEventListener('change', (e) => {
  view.interval = e.target.value;
  loadBars(true);
});
chart.subscribeCrosshairMove((p) => {
  if (p.time) renderLegend(p.seriesData.get(candles), p.seriesData.get(volume)?.value);
  else renderLegend();
});

function onEvent(handler) {
  return (e) => {
    const data = JSON.parse(e.data);
    if (backlog) backlog.push(() => handler(data));
    else handler(data);
  };
}

// ---- alerts

const shownAlerts = new Set();

// Newest first; an alert already shown (from the load or an earlier event) is not repeated.
function applyAlert(alert, fresh = true) {
  if (shownAlerts.has(alert.id)) return;
  shownAlerts.add(alert.id);
  const list = $('alerts');
  list.querySelector('.empty')?.remove();
  const li = el('li', fresh ? 'new' : '');
  li.dataset.id = alert.id;
  li.dataset.symbol = alert.symbol;
  li.title = `${alert.rule}: ${alert.symbol} ${alert.detail}`;
  li.append(
    el('span', 'sym', alert.symbol),
    el('span', 'detail', alert.detail),
    el('span', 'when', `${alert.rule} · bar ${utcDateTime(Date.parse(alert.timestamp))}`),
  );
  li.addEventListener('click', () => selectSymbol(alert.symbol));
  insertSorted(list, li, -alert.id, (child) => -Number(child.dataset.id ?? Infinity));
  while (list.children.length > 50) {
    shownAlerts.delete(Number(list.lastElementChild.dataset.id));
    list.lastElementChild.remove();
  }
}

async function loadAlerts() {
  try {
    (await getJSON('/api/alerts?limit=20')).forEach((a) => applyAlert(a, false));
  } catch (err) {
    showNotice(`Could not load alerts: ${err.message}`);
  }
}

async function loadQuotes() {
  const [symbols, list] = await Promise.all([getJSON('/api/symbols'), getJSON('/api/quotes')]);
  symbols.forEach(ensureRow);
  if (!view.symbol && symbols.length) selectSymbol(symbols[0]);
  list.forEach(applyQuote);
}

function connect() {
  const events = new EventSource('/api/events');
  let opened = false;
  events.onopen = () => {
    if (opened) { // catch up after a reconnect
      loadQuotes().then(() => view.symbol && loadBars(false), (err) => showNotice(err.message));
    }
    opened = true;
  };
  events.addEventListener('quote', onEvent(applyQuote));
  events.addEventListener('bar', onEvent(applyBar));
  events.addEventListener('alert', onEvent(applyAlert));
  events.addEventListener('heartbeat', (e) => {
    fresh.skew = Date.parse(JSON.parse(e.data).now) - Date.now();
  });
}

window.tickpipe = { barCount: () => candles.data().length, lastBar, alertCount: () => shownAlerts.size };

connect();
Promise.all([loadQuotes(), loadAlerts()])
  .catch((err) => showNotice(`Could not load quotes: ${err.message}`))
  .finally(() => {
    backlog.splice(0).forEach((replay) => replay());
    backlog = null;
    renderLegend();
    setInterval(renderFreshness, 500);
  });
