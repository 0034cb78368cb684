// Run by tests/test_docs_site.py from the real clients' folder (for playwright-core).
//   node reference_pages.mjs docs http://127.0.0.1:PORT   the GraphQL reference at /docs
//   node reference_pages.mjs api  http://127.0.0.1:PORT   the REST reference at /api/docs
// An optional third argument is a PNG file for a screenshot of the last view.
// docs: open /docs, search for "feed", follow the result to the feed query, then its links to
// ArticleConnection and on to Article, and see the Article type's section.
// api: read /api/openapi.json (fails at once, saying so, when the app serves none), open
// /api/docs, see the document's title and every operation's summary rendered, search for one.
// Both record every request (none may go to another origin), every Content-Security-Policy
// violation and every console error. Each step waits for what it is about, never for a fixed
// time; one that does not happen within TIMEOUT fails the script.
// Last line: "reference_pages: N passed, M failed".
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';

const TIMEOUT = 20000;
const [mode, base, screenshot] = process.argv.slice(2);
if (!['docs', 'api'].includes(mode) || !base) {
  console.error('usage: node reference_pages.mjs docs|api http://127.0.0.1:PORT');
  process.exit(2);
}
const origin = new URL(base).origin;
let passed = 0;
let failed = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok' : 'FAILED'}: ${what}`);
  if (ok) passed += 1;
  else failed += 1;
}

// what the REST reference must show, from the document the app serves, read before any browser starts
let spec = null;
if (mode === 'api') {
  const stop = (why) => {
    console.log(`FAILED: ${why}`);
    console.log('reference_pages: 0 passed, 1 failed');
    process.exit(1);
  };
  const response = await fetch(`${origin}/api/openapi.json`, { signal: AbortSignal.timeout(TIMEOUT) });
  if (!response.ok) stop(`/api/openapi.json answered ${response.status}: the app serves no OpenAPI document to render`);
  spec = await response.json().catch((error) => stop(`/api/openapi.json is not JSON: ${error.message}`));
  if (!spec?.info?.title || typeof spec.paths !== 'object') stop('/api/openapi.json has no info.title or no paths');
}

const ctx = await chromium.launchPersistentContext(mkdtempSync('/tmp/reference-'), {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
ctx.setDefaultTimeout(TIMEOUT);
const page = await ctx.newPage();
const requests = [];
const consoleErrors = [];
page.on('request', (request) => requests.push(request.url()));
// (the browser's own request for /favicon.ico, which no page here names, may be a 404)
page.on('console', (message) => {
  if (message.type() === 'error' && !message.location().url.endsWith('/favicon.ico')) consoleErrors.push(message.text());
});
page.on('pageerror', (error) => consoleErrors.push(String(error)));
await page.addInitScript(() => {
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) =>
    window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
});

async function docs() {
  const response = await page.goto(`${origin}/docs`, { waitUntil: 'load' });
  console.log('url:', page.url());
  console.log('policy:', response.headers()['content-security-policy']);
  check(page.url() === `${origin}/docs/`, '/docs redirects to /docs/');
  const search = page.locator('#docs-search-input');
  await search.fill('feed');
  const results = page.locator('#docs-search-results a');
  await results.first().waitFor({ state: 'visible' });
  const found = await results.allTextContents();
  console.log(`search "feed": ${found.length} results: ${found.slice(0, 5).join(' | ')}`);
  check(found[0] === 'feedQuery', 'the first result for "feed" is the feed query');
  await results.first().click();
  await page.waitForFunction(() => location.hash === '#query-feed');
  const feed = page.locator('#query-feed');
  await feed.locator('h2').waitFor({ state: 'visible' });
  check(await feed.locator('h2').isVisible(), 'the feed query is shown');
  await feed.locator('a[href="#definition-ArticleConnection"]').first().click();
  await page.waitForFunction(() => location.hash === '#definition-ArticleConnection');
  await page.locator('#definition-ArticleConnection a[href="#definition-Article"]').first().click();
  await page.waitForFunction(() => location.hash === '#definition-Article');
  const heading = page.locator('#definition-Article h2');
  await heading.waitFor({ state: 'visible' });
  const text = (await heading.textContent()).trim();
  console.log('opened:', text);
  check(text === 'Article' && (await heading.boundingBox()).y < 900, 'the Article type is on screen');
  const fields = await page.locator('#definition-Article .property-name code').allTextContents();
  check(fields.includes('slug') && fields.includes('author'), `Article's fields are listed: ${fields.join(', ')}`);
  const examples = await page.locator('.introduction-item').allTextContents();
  check(examples.some((text) => text.includes('query HomePage(')), `the example operations are shown: ${examples.length}`);
}

async function api() {
  const operations = Object.values(spec.paths || {}).flatMap((item) =>
    ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'].filter((m) => item[m]).map((m) => item[m]));
  const labels = operations.map((operation) => operation.summary || operation.operationId).filter(Boolean);
  console.log(`document: "${spec.info.title}", ${operations.length} operations`);
  check(labels.length > 0, 'the document has operations with a summary or operationId');
  const response = await page.goto(`${origin}/api/docs`, { waitUntil: 'load' });
  console.log('url:', page.url());
  console.log('policy:', response.headers()['content-security-policy']);
  check(page.url() === `${origin}/api/docs/`, '/api/docs redirects to /api/docs/');
  await page.locator('#redoc[data-state="rendered"], #redoc[data-state="error"]').waitFor({ state: 'attached' });
  const state = await page.locator('#redoc').getAttribute('data-state');
  check(state === 'rendered', `Redoc rendered the document${state === 'error' ? `: ${await page.locator('#redoc').textContent()}` : ''}`);
  if (state !== 'rendered') return;
  const title = page.locator('#redoc h1').first();
  await title.waitFor({ state: 'visible' });
  check((await title.textContent()).includes(spec.info.title), `the title is shown: ${await title.textContent()}`);
  const body = await page.locator('#redoc').textContent();
  const missing = labels.filter((label) => !body.includes(label));
  check(missing.length === 0, `every operation is shown${missing.length ? `; missing: ${missing.join(', ')}` : ''}`);
  // Redoc's search runs in a Worker (worker-src blob:): a result proves it ran under the policy
  const word = labels[0].split(/\s+/).sort((a, b) => b.length - a.length)[0];
  await page.locator('input[placeholder^="Search"]').fill(word);
  const hit = page.locator('[data-role="search:results"] li').first();
  await hit.waitFor({ state: 'visible' });
  check(true, `search "${word}" finds: ${(await hit.textContent()).trim()}`);
}

try {
  await (mode === 'docs' ? docs() : api());
} catch (error) {
  check(false, String(error.message || error).split('\n')[0]);
}
// violation events are queued as tasks: let every task queued so far run before reading them
await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0))));
const violations = await page.evaluate(() => window.__violations);
const external = requests.filter((url) => !url.startsWith(`${origin}/`) && !/^(data|blob):/.test(url));
for (const url of external) console.log('external request:', url);
for (const v of violations) console.log('violation:', v);
for (const e of consoleErrors) console.log('console error:', e);
console.log(`requests: ${requests.length}, external requests: ${external.length}`);
check(external.length === 0, 'no request to another origin');
check(violations.length === 0, 'no Content-Security-Policy violation');
check(consoleErrors.length === 0, 'no console error');
if (screenshot) await page.screenshot({ path: screenshot });
await ctx.close();
console.log(`reference_pages: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
