// Run by tests/test_real_clients.py from a copy of ../shared/clients (for playwright-core).
// The playground under its Content-Security-Policy (graph/transport/headers.py, PLAYGROUND_CSP):
// run a query and a subscription, open every panel and dialog, and report each CSP violation.
// Each step waits for what it is about (the editor took the text, a result, a panel, a WebSocket
// frame), never for a fixed time; a step that does not happen within TIMEOUT fails the script.
// Last line: "playground_csp: N violations".
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
const TIMEOUT = 20000;
const url = process.argv[2];
const ctx = await chromium.launchPersistentContext(mkdtempSync('/tmp/csp-'), {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
ctx.setDefaultTimeout(TIMEOUT);
const page = await ctx.newPage();
await page.addInitScript(() => {
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) =>
    window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
});
// a deadline for what Playwright cannot wait for by itself
const within = (promise, what) => Promise.race([promise, new Promise((_, fail) =>
  setTimeout(() => fail(new Error(`no ${what} within ${TIMEOUT} ms`)), TIMEOUT).unref())]);
// resolves when the page sends a graphql-transport-ws "subscribe" message
const subscribeSent = new Promise((resolve) => page.on('websocket', (ws) => ws.on('framesent', (frame) => {
  if (/"type":"subscribe"/.test(String(frame.payload))) resolve();
})));
const response = await page.goto(url, { waitUntil: 'load' });
console.log('policy:', response.headers()['content-security-policy']);
await page.waitForSelector('.graphiql-query-editor .CodeMirror', { state: 'visible' });
const execute = page.locator('.graphiql-execute-button').first();
const result = () => page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() || '');
async function setEditor(text) {
  await page.evaluate((t) => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(t), text);
  // GraphiQL takes an edit in a debounced handler, which stores the text: Run then sends it
  await page.waitForFunction((t) => localStorage.getItem('graphiql:query') === t, text);
}

await setEditor('{ articles(first: 2) { totalCount } }');
await execute.click();
await page.waitForFunction(() => /"totalCount"/.test(document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue()));
console.log('query:', (await result()).replace(/\s+/g, ' '));

// the label of each button, and what it shows (a dialog is where GraphiQL injects a <style>)
const panels = [
  ['Show Documentation Explorer', '.graphiql-doc-explorer'],
  ['Show History', '.graphiql-history'],
  ['Show GraphiQL Explorer', '.graphiql-explorer-root'],
  ['Open settings dialog', '.graphiql-dialog'],
  ['Open short keys dialog', '.graphiql-dialog'],
];
for (const [label, shown] of panels) {
  await page.getByRole('button', { name: label, exact: true }).click();
  await page.locator(shown).waitFor({ state: 'visible' });
  console.log('opened:', label);
  if (shown === '.graphiql-dialog') {
    await page.keyboard.press('Escape');
    await page.locator(shown).waitFor({ state: 'detached' });
  }
}

await setEditor('subscription { articlePublished { title } }');
await execute.click();
await within(subscribeSent, 'subscribe message on a WebSocket');
await page.locator('.graphiql-execute-button[aria-label^="Stop"]').waitFor({ state: 'visible' });
console.log('subscription: subscribed over WebSocket');
// violation events are queued as tasks: let every task queued so far run before reading them
await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0))));
const violations = await page.evaluate(() => window.__violations);
for (const v of violations) console.log('violation:', v);
await ctx.close();
console.log(`playground_csp: ${violations.length} violations`);
