// Run by tests/test_real_clients.py from a copy of ../shared/clients (for playwright-core).
// A person's first session in the playground: register, log in, set the header, write an article,
// comment on it while a second tab's subscription shows the comment, page through articles.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
const url = process.argv[2];
const ctx = await chromium.launchPersistentContext(mkdtempSync('/tmp/walk-'), {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const external = [];
const log = (...a) => console.log(...a);
async function open() {
  const page = await ctx.newPage();
  page.on('request', (r) => { if (!r.url().startsWith(new URL(url).origin) && !r.url().startsWith('data:')) external.push(r.url()); });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { state: 'visible', timeout: 20000 });
  return page;
}
const setEditor = (page, sel, text) => page.evaluate(([s, t]) => document.querySelector(s).CodeMirror.setValue(t), [sel, text]);
const result = (page) => page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() || '');
async function run(page, query, wait = /"(data|errors)"/) {
  await setEditor(page, '.graphiql-query-editor .CodeMirror', query);
  await page.waitForTimeout(700); // GraphiQL re-reads the operation name after an edit
  const before = await result(page);
  await page.locator('.graphiql-execute-button').first().click();
  for (let i = 0; i < 100; i++) {
    const r = await result(page);
    if (r !== before && wait.test(r)) return JSON.parse(r);
    await page.waitForTimeout(100);
  }
  throw new Error('no result for ' + query + ': ' + (await result(page)));
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
await a.waitForTimeout(300);
const cms = await a.evaluate(() => [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')].length);
await a.evaluate(([t]) => { document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror').CodeMirror.setValue(JSON.stringify({ Authorization: 'Bearer ' + t })); }, [token]);
await a.waitForTimeout(500);
r = await run(a, '{ viewer { username email } }');
log('viewer with header:', JSON.stringify(r.data.viewer), `(${cms} tool editors)`);
r = await run(a, `mutation { createArticle(input: {title: "Walking through GraphiQL ${name}", description: "A first article", body: "Written in the playground.", tagList: ["graphql", "walkthrough"]}) { slug tagList author { username } } }`);
const slug = r.data.createArticle.slug;
log('createArticle:', JSON.stringify(r.data.createArticle));
const b = await open();
await setEditor(b, '.graphiql-query-editor .CodeMirror', `subscription { commentAdded(slug: "${slug}") { body author { username } } }`);
await b.waitForTimeout(700);
await b.locator('.graphiql-execute-button').first().click();
await b.waitForTimeout(1500);
r = await run(a, `mutation { addComment(slug: "${slug}", body: "Seen live in the other tab") { id body } }`);
log('addComment:', JSON.stringify(r.data.addComment));
let seen = '';
for (let i = 0; i < 50 && !seen.includes('Seen live'); i++) { await b.waitForTimeout(100); seen = await result(b); }
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
