// End-to-end test of the dashboard in headless chromium (run by scripts/e2e.sh):
//   node dashboard.mjs URL SCREENSHOT_DIR     (PLAYWRIGHT_CORE = the playwright-core folder)
// Opens the overview, follows a link to a matrix, clicks through the comparison heatmap, visits
// every page, runs SQL queries, checks the rendered tables and charts against the API's own
// answers, and saves a screenshot of each page. URL is the one `sparsa serve` prints, with its
// token: the first visit keeps it as a cookie, which every API request of the pages carries; a
// browser without it gets 401. Any page error or failed check exits non-zero.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const [url, shots] = process.argv.slice(2);
const TIMEOUT = 20000;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});
const problems = [];
const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
page.setDefaultTimeout(TIMEOUT);
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
// The browser logs every HTTP error status, e.g. the refused DROP TABLE's 400; checks below cover loads.
page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console error: ${m.text()}`); });
page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

async function api(p, init) {
  const res = await page.request.fetch(new URL(p, url).toString(), init);
  const body = await res.json();
  assert.ok(res.ok(), `${p}: ${JSON.stringify(body)}`);
  return body;
}
async function shot(name) {
  await page.waitForLoadState('networkidle');
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  console.log(`e2e: ${name} ok`);
}
async function chartsRendered(selector, min = 1) {
  await page.waitForFunction(([s, n]) => document.querySelectorAll(`${s} svg .mark-group, ${s} svg g[class^="mark-"]`).length > 0
    && document.querySelectorAll(`${s} .chart svg, ${s}.chart svg`).length >= n, [selector, min]);
}
async function imageLoaded(selector) {
  await page.waitForFunction((s) => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }, selector);
}

try {
  // Overview: the perplexity table lists every perplexity row; the charts render.
  assert.match(url, /\?token=[0-9a-f]{48}$/, 'the printed URL carries the token');
  await page.goto(url);
  await page.waitForSelector('h1:has-text("Study of")');
  assert.ok(!page.url().includes('token='), `the token left the address bar: ${page.url()}`);
  const cookies = await page.context().cookies();
  assert.ok(cookies.some((c) => c.name.startsWith('sparsa_token_') && c.httpOnly && c.sameSite === 'Strict'),
    `token cookie: ${JSON.stringify(cookies.map((c) => c.name))}`);
  const stranger = await browser.newContext();
  const refused = await stranger.request.get(new URL('/api/q/runs', url).toString());
  assert.equal(refused.status(), 401, 'an API request without the token');
  const foreign = await stranger.request.post(new URL('/api/sql', url).toString(), {
    headers: { Origin: 'http://attacker.example', 'Content-Type': 'text/plain' }, data: '{"sql": "SELECT 1"}' });
  assert.equal(foreign.status(), 403, 'a cross-origin POST');
  await stranger.close();
  const ppl = await api('/api/q/perplexities');
  await page.waitForSelector('table');
  const firstTableRows = await page.locator('table').first().locator('tbody tr').count();
  assert.equal(firstTableRows, ppl.rows.length, 'overview perplexity table rows');
  await chartsRendered('main', 1);
  await shot('overview');

  // Follow the first link to a matrix: spy image, per-feature charts, matrices table.
  const link = page.locator('a[href^="#/matrix?run="]').first();
  const href = await link.getAttribute('href');
  const run = new URLSearchParams(href.split('?')[1]).get('run');
  await link.click();
  await page.waitForSelector('h1:has-text("model.")');
  await imageLoaded('#spy');
  await chartsRendered('main', 2);
  const matrices = await api(`/api/q/matrices?run=${run}`);
  assert.equal(await page.locator('table').last().locator('tbody tr').count(), matrices.rows.length, 'matrices table rows');
  assert.match(decodeURIComponent(await page.locator('#spy').getAttribute('src')), new RegExp(`run=${run}&matrix=`));
  await shot('matrix');

  // Method comparison: the heatmap has a cell per matrix; clicking one opens that matrix.
  await page.goto(`${url}#/compare`);
  await page.waitForSelector('#heatmap svg');
  await chartsRendered('#heatmap');
  const cells = page.locator('#heatmap svg g.mark-rect.role-mark path');
  const pairs = await api('/api/q/comparison_pairs');
  const first = await api(`/api/q/comparison?a=${pairs.rows[0][1]}&b=${pairs.rows[0][2]}`);
  assert.equal(await cells.count(), first.rows.length, 'heatmap cells');
  await shot('compare');
  await cells.first().click({ force: true });  // the cell's label lies on top; both open the matrix
  await page.waitForFunction(() => location.hash.startsWith('#/matrix?'));
  await imageLoaded('#spy');

  // Co-activation: t-SNE scatter with a point per feature, clustered and gradient spy images.
  await page.goto(`${url}#/coactivation`);
  await page.waitForSelector('#tsne svg');
  await chartsRendered('main', 2);
  const sources = new Set((await api('/api/q/clusterings')).rows.map((r) => r[2]));
  assert.equal(await page.locator('select').first().locator('option').count(), sources.size, 'co-activation sources');
  if (await page.locator('#clustered-spy').count()) {
    await imageLoaded('#clustered-spy');
    await imageLoaded('#gradient-spy');
  }
  await shot('coactivation');

  // Activations: histogram with thresholds, perplexity against activation sparsity.
  await page.goto(`${url}#/activations`);
  await page.waitForSelector('#act-histogram svg');
  await chartsRendered('main', 2);
  await shot('activations');

  // SQL console: the table shows the query's rows; "Chart" draws a bar per row.
  await page.goto(`${url}#/sql`);
  const query = "SELECT r.method || ' ' || r.structure AS model, p.ppl FROM perplexities p JOIN runs r USING (run_id) WHERE p.kind = 'pruned' ORDER BY p.ppl";
  await page.fill('#sql', query);
  await page.click('#run-button');
  await page.waitForSelector('#sql-result table');
  const expected = await api('/api/sql', { method: 'POST', data: { sql: query } });
  const shown = await page.locator('#sql-result tbody tr').allInnerTexts();
  assert.equal(shown.length, expected.rows.length, 'SQL result rows');
  assert.ok(shown[0].startsWith(expected.rows[0][0]), `first SQL row: ${shown[0]}`);
  await page.click('#chart-button');
  await page.waitForSelector('#sql-chart svg g.mark-rect.role-mark path');
  assert.equal(await page.locator('#sql-chart svg g.mark-rect.role-mark path').count(), expected.rows.length, 'SQL chart bars');
  await shot('sql');

  // A statement that would change the database is refused with a readable error.
  await page.fill('#sql', 'DROP TABLE runs');
  await page.click('#run-button');
  await page.waitForSelector('#sql-output .error');
  assert.match(await page.locator('#sql-output .error').innerText(), /not allowed/);

  // Benchmarks: the notes are rendered from Markdown.
  await page.goto(`${url}#/bench`);
  await page.waitForSelector('#bench-notes h1, #bench-notes h2, main .error');
  await shot('bench');
} finally {
  await browser.close();
}
assert.deepEqual(problems, [], problems.join('\n'));
console.log('e2e: all pages checked');
