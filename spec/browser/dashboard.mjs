// spec/browser/dashboard.mjs — drives headless Chromium (puppeteer-core,
// Debian's /usr/bin/chromium) against a running `weft serve`; run by
// spec/integration/dashboard_spec.lua, which starts the server with the
// scripts ask.lua and xss.lua and an admin key. Env: WEFT_URL (base URL),
// WEFT_KEY (admin key), SHOTS (directory for screenshots), CHROMIUM, or
// BROWSER=firefox and FIREFOX.
// Prints one line per check (ok / not ok); exits 1 when one failed.
import puppeteer from 'puppeteer-core';
import { mkdirSync, writeFileSync } from 'node:fs';

const BASE = process.env.WEFT_URL;
const KEY = process.env.WEFT_KEY;
const SHOTS = process.env.SHOTS;
const STEP_MS = Number(process.env.STEP_MS || 30000);
if (!BASE || !KEY || !SHOTS) { console.error('WEFT_URL, WEFT_KEY and SHOTS are required'); process.exit(2); }
mkdirSync(SHOTS, { recursive: true });

const PAYLOAD = '<img src=x onerror="window.__xss=1;alert(1)">';

// The REST API from node (not through the page).
async function call(method, path, body) {
  const res = await fetch(BASE + path, {
    method, headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

let failures = 0;
const consoleErrors = [];
const dialogs = [];
function ok(what) { console.log(`ok - ${what}`); }
function fail(what, detail) { console.log(`not ok - ${what}${detail ? ': ' + detail : ''}`); failures++; }
function check(cond, what, detail) { if (cond) ok(what); else fail(what, detail); return cond; }

// BROWSER=firefox drives Firefox (WebDriver BiDi; FIREFOX: its path)
const FIREFOX = process.env.BROWSER === 'firefox';
const browser = await puppeteer.launch(FIREFOX ? {
  browser: 'firefox', executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr', headless: true,
} : {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // root in CI: Chromium's sandbox needs an unprivileged user
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});
console.log(`# ${await browser.version()}`);
let page;
try {
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.setDefaultTimeout(STEP_MS);
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });

  const view = async (hash, ready, name) => {
    consoleErrors.length = 0;
    await page.goto(`${BASE}/${hash}`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector(ready);
    await page.screenshot({ path: `${SHOTS}/dashboard-${name}.png`, fullPage: false });
    check(consoleErrors.length === 0, `view ${name} loads with no console error`, consoleErrors.join(' | '));
    // keyboard and screen readers: every control has a label, and the
    // controls are real ones (buttons, links, inputs)
    const unlabelled = await page.evaluate(() => Array.from(document.querySelectorAll('input, select, textarea'))
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map((el) => el.outerHTML));
    check(unlabelled.length === 0, `view ${name}: every control has a label`, unlabelled.join(' '));
    const clickable = await page.evaluate(() => Array.from(document.querySelectorAll('main div[onclick], main span[onclick], main [role=button]')).length);
    check(clickable === 0, `view ${name}: no div or span acts as a button`);
  };

  // 1. no key yet: the page loads, the API refuses, the page says so
  await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => /API key/.test(document.getElementById('status').textContent));
  ok('without a key the page asks for one');
  const csp = await page.evaluate(async () => (await fetch('/')).headers.get('content-security-policy'));
  check(csp && csp.includes("script-src 'self'"), 'the page comes with its Content-Security-Policy', csp);
  // type the key once: kept in sessionStorage, never in the URL
  await page.type('#apikey', KEY);
  await page.click('#keyform button[type=submit]');
  await page.waitForSelector('a[href="#/workflows/ask"]');
  check(!page.url().includes(KEY), 'the key is not in the URL');
  check(await page.evaluate(() => sessionStorage.getItem('weft.apiKey') !== null), 'the key is kept in the tab\'s sessionStorage');

  // keyboard: the skip link first, then the views in order; Enter opens one
  const focused = async () => page.evaluate(() => document.activeElement && document.activeElement.textContent.trim());
  await page.reload({ waitUntil: 'domcontentloaded' }); // focus starts at the top again
  await page.waitForSelector('a[href="#/workflows/ask"]');
  await page.keyboard.press('Tab');
  const order = [await focused()];
  for (let i = 0; i < 3; i++) { await page.keyboard.press('Tab'); order.push(await focused()); }
  check(JSON.stringify(order) === JSON.stringify(['Skip to content', 'Workflows', 'Executions', 'Requests']),
    'Tab goes to the skip link, then the views in order', JSON.stringify(order));
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => location.hash === '#/inbox');
  ok('Enter on a view\'s link opens it');
  await page.evaluate(() => document.activeElement.blur());

  // 2. each view (with --watch: a broken save shows its file:line)
  if (process.env.WATCH_DIR) {
    writeFileSync(`${process.env.WATCH_DIR}/edit.lua`, 'local weft = require "weft"\nreturn weft.workflow("edit"):start(\n');
    let failed = null;
    for (let i = 0; i < 600 && !failed; i++) { // the host notices the save
      const r = await call('GET', '/api/v1/reloads');
      failed = (r.events || []).find((e) => e.type === 'reload_failed' && e.script === 'edit');
      if (!failed) await new Promise((res) => setTimeout(res, 50));
    }
    check(failed, 'the server reports the broken save');
    check(failed && failed.file === 'edit.lua' && failed.path === undefined && !JSON.stringify(failed).includes(process.env.WATCH_DIR),
      'the reload event names the script\'s file, not the server\'s path', JSON.stringify(failed));
    await view('#/workflows/edit', '.problem pre.err', 'reload');
    const msg = await page.evaluate(() => document.querySelector('.problem pre.err').textContent);
    check(/edit\.lua:\d+/.test(msg) && !msg.includes(process.env.WATCH_DIR || '\u0000'), 'the workflow view shows the reload error with file:line', msg);
    await view('#/workflows', 'li.bad', 'workflows-reload');
    check(!(await page.evaluate(() => document.body.textContent)).includes(process.env.WATCH_DIR),
      'the reload list shows no server path');
  }
  await view('#/workflows', 'a[href="#/workflows/ask"]', 'workflows');
  await view('#/workflows/ask', '.graphbox', 'workflow-ask');
  check(await page.evaluate(() => document.querySelector('pre.code').textContent.includes('request_info')), 'the workflow view shows the Lua source');
  const svg = await page.evaluate(() => !!document.querySelector('.graph svg g.node'));
  console.log(`# graph drawn as SVG: ${svg}`);
  // examples/branching.lua: every executor drawn, edges by kind
  await view('#/workflows/branching', '.graphbox', 'workflow');
  if (svg) {
    const g = await page.evaluate(() => ({
      nodes: Array.from(document.querySelectorAll('.graph g.node')).map((n) => n.dataset.executor).sort(),
      listed: Array.from(document.querySelectorAll('li.exec')).map((n) => n.dataset.executor).sort(),
      kinds: Array.from(new Set(Array.from(document.querySelectorAll('.graph g.edge')).map((e) => e.dataset.kind))).sort(),
    }));
    check(JSON.stringify(g.nodes) === JSON.stringify(g.listed) && g.nodes.length === 12, 'each executor of branching is drawn', JSON.stringify(g));
    check(['fan_in', 'fan_out', 'switch'].every((k) => g.kinds.includes(k)), 'the edges carry their kind (switch, fan-out, fan-in)', JSON.stringify(g.kinds));
  }
  const br = await call('POST', '/api/v1/workflows/branching/execute', { input: 'The quick brown fox jumps over the lazy dog' });
  await view(`#/executions/${br.id}`, '#xstatus[data-status="completed"]', 'execution-branching');
  await page.waitForFunction(() => document.querySelectorAll('.exec[data-state="completed"]').length >= 8);
  ok('a finished run of branching shows its executors lit completed');
  await page.waitForSelector('table.tl tbody tr');
  await (await page.$('section[aria-labelledby="t-h"]')).screenshot({ path: `${SHOTS}/dashboard-timeline.png` });

  // 3. a run started over the API appears, and lights up as events arrive
  const a = await call('POST', '/api/v1/workflows/ask/execute', { input: 'laptop', async: true });
  await view('#/executions', `tr[data-id="${a.id}"]`, 'executions');
  ok('a run started over the API appears in the list');
  await view(`#/executions/${a.id}`, '.exec[data-executor="approve"][data-state="waiting"]', 'execution');
  check(await page.evaluate(() => document.querySelector('.exec[data-executor="draft"]').dataset.state === 'completed'),
    'draft is lit completed and approve waiting for its request');
  if (svg) {
    check(await page.evaluate(() => document.querySelector('.graph g.node[data-executor="draft"]').classList.contains('x-completed')),
      'the SVG node of draft is lit completed');
  }
  // answered over the API while the page is open: book lights up live
  const x = await call('GET', `/api/v1/executions/${a.id}`);
  await call('POST', `/api/v1/executions/${a.id}/responses`, { request_id: x.requests[0].request_id, value: { approved: true, by: 'api' } });
  await page.waitForSelector('.exec[data-executor="book"][data-state="completed"]');
  ok('book lights up completed as its events arrive on the open page');
  await page.waitForFunction(() => document.querySelector('#xstatus') && document.querySelector('#xstatus').dataset.status === 'completed');
  await page.waitForFunction(() => document.querySelector('ol.outputs').textContent.includes('booked laptop by api'));
  ok('the page shows the run completed with its output');
  await page.waitForSelector('.state-view table.diff, .state-view p');
  await (await page.$('section[aria-labelledby="c-h"]')).screenshot({ path: `${SHOTS}/dashboard-state.png` });
  check(await page.evaluate(() => document.querySelector('.state-view').textContent.includes('approved_by')),
    'state over time shows the shared state written between checkpoints');
  check(consoleErrors.length === 0, 'the live execution view has no console error', consoleErrors.join(' | '));

  // "resume from here": a failed durable run continued from checkpoint 1
  if (process.env.RESUME) {
    const f = await call('POST', '/api/v1/workflows/flaky/execute', { input: 'go' });
    check(f.status === 'failed', 'the flaky run fails first', JSON.stringify(f));
    await view(`#/executions/${f.id}`, '#resume-ask', 'resume');
    await page.click('#ck-B-1');
    await page.waitForFunction(() => /checkpoint 1/.test(document.getElementById('resume-ask').textContent));
    await page.click('#resume-ask');
    await page.waitForSelector('#resume-confirm');
    await (await page.$('section[aria-labelledby="c-h"]')).screenshot({ path: `${SHOTS}/dashboard-resume.png` });
    await page.click('#resume-confirm');
    await page.waitForFunction(() => document.querySelector('#xstatus') && document.querySelector('#xstatus').dataset.status === 'completed');
    await page.waitForFunction(() => document.querySelector('ol.outputs').textContent.includes('a,b #2'));
    await page.waitForSelector('.exec[data-executor="c"][data-state="completed"]');
    const lit = await page.evaluate(() => Array.from(document.querySelectorAll('.exec')).map((e) => `${e.dataset.executor}:${e.dataset.state || ''}`));
    // in process the resumed run's events start again from 1 (a did not run
    // again: not lit); with workers the execution's event log goes on, so a
    // keeps its state of the first attempt
    const aAgain = process.env.RESUME === 'workers' ? true : !lit.includes('a:completed');
    check(aAgain && lit.includes('b:completed') && lit.includes('c:completed'),
      'resumed from checkpoint 1, the page follows b and c running again', JSON.stringify(lit));
    const r = await call('GET', `/api/v1/executions/${f.id}`);
    check(r.status === 'completed' && r.outputs[0] === 'a,b #2', 'the resumed execution completes with its output', JSON.stringify(r));
    check(consoleErrors.length === 0, 'resuming has no console error', consoleErrors.join(' | '));
  }

  // 4. the inbox: answering continues the run
  const b = await call('POST', '/api/v1/workflows/ask/execute', { input: 'desk', async: true });
  for (let i = 0; i < 200; i++) { // the run pauses on its request
    const d = await call('GET', `/api/v1/executions/${b.id}`);
    if (d.status === 'idle') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await view('#/inbox', `article.request[data-execution="${b.id}"]`, 'inbox');
  const form = `article.request[data-execution="${b.id}"] form`;
  // the request carries a JSON schema: a form with its fields
  await page.type(`${form} input[type=text]`, 'ana');
  await page.click(`${form} input[type=checkbox]`);
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector(`article.request[data-execution="${b.id}"] .continued[data-status="completed"]`);
  const out = await call('GET', `/api/v1/executions/${b.id}`);
  check(out.status === 'completed' && out.outputs[0] === 'booked desk by ana', 'answering in the inbox continues the run', JSON.stringify(out));
  check(consoleErrors.length === 0, 'the inbox has no console error', consoleErrors.join(' | '));

  // model tokens (agent_update) in the executor's group of the event log
  const t = await call('POST', '/api/v1/workflows/talk/execute', { input: 'one two <b>three</b>' });
  await view(`#/executions/${t.id}`, 'details[data-executor="writer"] pre.tokens', 'tokens');
  await page.waitForFunction(() => document.querySelector('details[data-executor="writer"] pre.tokens').textContent === 'echo: one two <b>three</b>');
  check(await page.evaluate(() => document.querySelectorAll('main b').length === 0), 'the streamed model tokens are shown, as text, in their executor\'s group');

  // 5. hostile ids and outputs render as text
  const h = await call('POST', '/api/v1/workflows/xss/execute', { input: PAYLOAD, async: true });
  for (let i = 0; i < 200; i++) {
    const d = await call('GET', `/api/v1/executions/${h.id}`);
    if (d.status === 'completed' || d.status === 'failed') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await view(`#/executions/${h.id}`, '#xstatus[data-status="completed"]', 'xss-execution');
  await page.waitForFunction((p) => document.querySelector('ol.outputs').textContent.includes(p), {}, PAYLOAD);
  await view('#/workflows/xss', '.graphbox', 'xss-workflow');
  const inert = await page.evaluate((p) => ({
    xss: window.__xss, imgs: document.querySelectorAll('img').length,
    scripts: document.querySelectorAll('script').length, bold: document.querySelectorAll('main b').length,
    text: document.body.textContent.includes(p),
  }), PAYLOAD);
  check(inert.xss === undefined && inert.imgs === 0 && inert.scripts === 1 && inert.bold === 0 && inert.text,
    'HTML/JS in executor ids and outputs renders as inert text', JSON.stringify(inert));
  const cleaned = await page.evaluate(async () => {
    const { safeSvg } = await import('/ui/dom.js');
    const el = safeSvg('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" onload="window.__xss=7">'
      + '<script>window.__xss=8</script><foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>'
      + '<g class="node" onclick="window.__xss=9"><title>n</title><a xlink:href="javascript:window.__xss=10"><text>t</text></a>'
      + '<image href="http://evil/x.png"/><use href="#x"/><animate attributeName="href" to="javascript:1"/></g></svg>');
    document.body.appendChild(el);
    const html = el.outerHTML;
    el.remove();
    return html;
  });
  check(!/script|foreignObject|onload|onclick|javascript|<a|image|<use|animate/i.test(cleaned),
    'safeSvg drops scripts, foreignObject, event handlers, links and external content', cleaned);
  check(dialogs.length === 0, 'no dialog was ever opened', dialogs.join(' | '));

  // the page's pure helpers, on tricky input
  const helpers = await page.evaluate(async () => {
    const { diff } = await import('/ui/history.js');
    const { parseMetrics } = await import('/ui/operations.js');
    const d = diff({ a: 1, b: [1, 2], c: { x: 1 }, gone: true }, { a: 1, b: [1, 2, 3], c: { x: 1 }, added: null });
    const m = parseMetrics('# HELP x y\nweft_tokens_total{provider="mo\\"ck",kind="in"} 12\nweft_runs_started_total 3\n\nbad line\n');
    return { d, m };
  });
  check(JSON.stringify(helpers.d) === JSON.stringify([
    { key: 'added', change: 'added', after: null }, { key: 'b', change: 'changed', before: [1, 2], after: [1, 2, 3] },
    { key: 'gone', change: 'removed', before: true }]), 'diff names the keys added, changed and removed', JSON.stringify(helpers.d));
  check(helpers.m.length === 2 && helpers.m[0].labels.provider === 'mo"ck' && helpers.m[0].value === 12 && helpers.m[1].value === 3,
    'parseMetrics reads labels (escaped quotes included) and values, skipping comments and junk', JSON.stringify(helpers.m));

  // 6. playground and operations
  // chat with an agent, streamed through /v1/chat/completions
  await call('POST', '/api/v1/agents', { id: 'echo', name: 'echo', model: 'mock:echo', instructions: 'Echo <b>it</b>.' });
  await view('#/playground', '#pg-model option[value="agent:echo"]', 'playground');
  await page.select('#pg-model', 'agent:echo');
  await page.type('#pg-msg', 'hello <i>there</i>');
  await page.click('form.chatform button[type=submit]');
  await page.waitForFunction(() => /echo: hello <i>there<\/i>/.test((document.querySelector('.chat li.assistant .text') || {}).textContent || ''));
  check(await page.evaluate(() => document.querySelectorAll('.chat i').length === 0), 'the streamed chat answer appears, as text');
  // the builder: a dry run shows the proposal, Apply stores it
  await page.type('#b-req', 'an agent that reviews code');
  await page.click('form.builder button[type=submit]');
  await page.waitForFunction(() => /would_be_created/.test(document.getElementById('b-out').textContent));
  await page.screenshot({ path: `${SHOTS}/dashboard-playground.png` });
  const before = await fetch(`${BASE}/api/v1/agents/reviewer`, { headers: { Authorization: `Bearer ${KEY}` } });
  check(before.status === 404, 'the builder\'s dry run changes nothing', String(before.status));
  await page.click('#b-out button');
  await page.waitForFunction(() => /Applied/.test(document.getElementById('b-out').textContent));
  const agent = await call('GET', '/api/v1/agents/reviewer');
  check(agent.model === 'mock:echo', 'applying the builder\'s proposal creates the agent', JSON.stringify(agent));
  check(consoleErrors.length === 0, 'the playground has no console error', consoleErrors.join(' | '));
  await view('#/operations', '#audit table', 'operations');
  await page.waitForFunction(() => document.querySelectorAll('#charts figure').length >= 3);
  // runs while the view samples: the executions chart rises
  for (let i = 0; i < 5; i++) await call('POST', '/api/v1/workflows/xss/execute', { input: `run ${i}` });
  await page.waitForFunction(() => {
    const f = document.querySelector('#charts figure');
    return Number(f.dataset.points) >= 3 && !/max 0\.00\)/.test(f.textContent);
  });
  ok('the executions chart shows the runs started while the view is open');
  await page.screenshot({ path: `${SHOTS}/dashboard-operations.png` });
  check(consoleErrors.length === 0, 'operations draws its charts with no console error', consoleErrors.join(' | '));
} catch (e) {
  fail('the browser run', (e && e.stack ? e.stack : String(e)) + (consoleErrors.length ? '\nconsole: ' + consoleErrors.join(' | ') : ''));
  if (page) await page.screenshot({ path: `${SHOTS}/dashboard-failure.png` }).catch(() => {});
} finally {
  await browser.close();
}
console.log(failures ? `# ${failures} failure(s)` : '# all checks passed');
process.exit(failures ? 1 : 0);
