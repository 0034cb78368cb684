// Run by tests/test_real_clients.py from a copy of ../shared/clients (for playwright-core).
// A person's first session in the playground: register, log in, set the header, write an article,
// comment on it while a second tab's subscription shows the comment, page through articles.
// Each step waits for what it is about, never for a fixed time; one that does not happen within
// TIMEOUT fails the script.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
const TIMEOUT = 20000;
const url = process.argv[2];
const ctx = await chromium.launchPersistentContext(mkdtempSync('/tmp/walk-'), {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
ctx.setDefaultTimeout(TIMEOUT);
const external = [];
const log = (...a) => console.log(...a);
// a deadline for what Playwright cannot wait for by itself
const within = (promise, what) => Promise.race([promise, new Promise((_, fail) =>
  setTimeout(() => fail(new Error(`no ${what} within ${TIMEOUT} ms`)), TIMEOUT).unref())]);
async function open() {
  const page = await ctx.newPage();
  page.on('request', (r) => { if (!r.url().startsWith(new URL(url).origin) && !r.url().startsWith('data:')) external.push(r.url()); });
  // resolves when this tab sends a graphql-transport-ws "subscribe" message
  page.subscribeSent = new Promise((resolve) => page.on('websocket', (ws) => ws.on('framesent', (frame) => {
    if (/"type":"subscribe"/.test(String(frame.payload))) resolve();
  })));
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { state: 'visible' });
  return page;
}
const QUERY_EDITOR = '.graphiql-query-editor .CodeMirror';
const HEADERS_EDITOR = '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror';
// GraphiQL takes an edit in a debounced handler that stores it under graphiql:<key>: wait for that.
// The tab comes to the front first, as for a person: a background tab's timers run late.
async function setEditor(page, selector, key, text) {
  await page.bringToFront();
  await page.evaluate(([s, t]) => document.querySelector(s).CodeMirror.setValue(t), [selector, text]);
  await page.waitForFunction(([k, t]) => localStorage.getItem(`graphiql:${k}`) === t, [key, text]);
}
const result = (page) => page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() || '');
async function run(page, query) {
  await setEditor(page, QUERY_EDITOR, 'query', query);
  const before = await result(page);
  await page.locator('.graphiql-execute-button').first().click();
  await page.waitForFunction((b) => {
    const r = document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() || '';
    return r !== b && /"(data|errors)"/.test(r);
  }, before);
  return JSON.parse(await result(page));
}
const a = await open();
const name = 'walker' + Date.now() % 100000;
let r = await run(a, `mutation { register(input: {username: "${name}", email: "${name}@example.com", password: "walk-password"}) { token user { username } } }`);
if (!r.data) { log(JSON.stringify(r)); process.exit(1); }
log('register:', JSON.stringify(r.data.register.user));
r = await run(a, `mutation { login(input: {email: "${name.toUpperCase()}@EXAMPLE.COM", password: "walk-password"}) { token refreshToken user { username email } } }`);
const token = r.data.login.token;
log('login:', JSON.stringify(r.data.login.user));
await a.getByRole('button', { name: /headers/i }).first().click();
await a.locator(HEADERS_EDITOR).waitFor({ state: 'visible' });
const cms = await a.evaluate(() => [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')].length);
await setEditor(a, HEADERS_EDITOR, 'headers', JSON.stringify({ Authorization: 'Bearer ' + token }));
r = await run(a, '{ viewer { username email } }');
log('viewer with header:', JSON.stringify(r.data.viewer), `(${cms} tool editors)`);
if (r.data.viewer?.username !== name) { log('the header was not sent'); process.exit(1); }
r = await run(a, `mutation { createArticle(input: {title: "Walking through GraphiQL ${name}", description: "A first article", body: "Written in the playground.", tagList: ["graphql", "walkthrough"]}) { slug tagList author { username } } }`);
const slug = r.data.createArticle.slug;
log('createArticle:', JSON.stringify(r.data.createArticle));
const b = await open();
await setEditor(b, QUERY_EDITOR, 'query', `subscription { commentAdded(slug: "${slug}") { body author { username } } }`);
await b.locator('.graphiql-execute-button').first().click();
await within(b.subscribeSent, 'subscribe message from the second tab');
// The server subscribes a moment after the message arrives, and a comment committed before that
// is not delivered: comment until one shows in the second tab (a few attempts at most).
let seen = '';
const deadline = Date.now() + TIMEOUT;
for (let attempt = 1; !seen.includes('Seen live'); attempt++) {
  if (Date.now() > deadline) { log('no comment reached the second tab'); process.exit(1); }
  r = await run(a, `mutation { addComment(slug: "${slug}", body: "Seen live in the other tab (${attempt})") { id body } }`);
  log('addComment:', JSON.stringify(r.data.addComment));
  await b.bringToFront();
  try {
    await b.waitForFunction(() => /Seen live/.test(document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue()), null, { timeout: 1000 });
  } catch {
    continue; // committed before the subscription was in place: try again
  }
  seen = await result(b);
}
log('second tab subscription:', seen.replace(/\s+/g, ' '));
r = await run(a, '{ articles(first: 2) { totalCount pageInfo { hasNextPage endCursor } nodes { slug } } }');
log('page 1:', JSON.stringify(r.data.articles));
r = await run(a, `{ articles(first: 2, after: "${r.data.articles.pageInfo.endCursor}") { pageInfo { hasNextPage endCursor } nodes { slug } } }`);
log('page 2:', JSON.stringify(r.data.articles));
if (process.argv[3]) await b.screenshot({ path: process.argv[3] });
log('external requests:', external.length);
await ctx.close();
const ok = seen.includes('Seen live') && external.length === 0;
console.log(ok ? 'walkthrough: 1 passed, 0 failed' : 'walkthrough: 0 passed, 1 failed');
process.exit(ok ? 0 : 1);
