// Run by tests/test_real_clients.py from a copy of ../shared/clients (for playwright-core).
// The playground under its Content-Security-Policy (graph/security.py, PLAYGROUND_CSP): run a
// query and a subscription, open every panel and dialog, and report each CSP violation.
// Last line: "playground_csp: N violations".
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
const url = process.argv[2];
const ctx = await chromium.launchPersistentContext(mkdtempSync('/tmp/csp-'), {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const page = await ctx.newPage();
await page.addInitScript(() => {
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) =>
    window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
});
const response = await page.goto(url, { waitUntil: 'load' });
console.log('policy:', response.headers()['content-security-policy']);
await page.waitForSelector('.graphiql-query-editor .CodeMirror', { state: 'visible', timeout: 20000 });
const setEditor = (text) => page.evaluate((t) => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(t), text);
const result = () => page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() || '');
await setEditor('{ articles(first: 2) { totalCount } }');
await page.waitForTimeout(700);
await page.locator('.graphiql-execute-button').first().click();
for (let i = 0; i < 50 && !/"data"/.test(await result()); i++) await page.waitForTimeout(100);
console.log('query:', (await result()).replace(/\s+/g, ' '));
for (const name of [/documentation/i, /history/i, /explorer/i, /settings/i, /short ?keys/i]) {
  const button = page.getByRole('button', { name }).first();
  if (await button.count()) {
    await button.click();
    await page.waitForTimeout(400);
    console.log('opened:', String(name));
    await page.keyboard.press('Escape');
  }
}
await setEditor('subscription { articlePublished { title } }');
await page.waitForTimeout(700);
await page.locator('.graphiql-execute-button').first().click();
await page.waitForTimeout(1000);
const violations = await page.evaluate(() => window.__violations);
for (const v of violations) console.log('violation:', v);
await ctx.close();
console.log(`playground_csp: ${violations.length} violations`);
