// app.js — the dashboard's shell: the API key form, the views (one per
// #/route) and switching between them. A view is render(main, params,
// signal); signal aborts when the person leaves it (streams, timers).
import { getKey, setKey } from './api.js';
import { h, fill, say } from './dom.js';
import * as workflows from './workflows.js';
import * as executions from './executions.js';
import * as execution from './execution.js';
import * as inbox from './inbox.js';
import * as playground from './playground.js';
import * as operations from './operations.js';

const ROUTES = [
  [/^#\/workflows\/([^/]+)$/, workflows.detail, 'workflows'],
  [/^#\/workflows$/, workflows.list, 'workflows'],
  [/^#\/executions\/([^/]+)$/, execution.render, 'executions'],
  [/^#\/executions$/, executions.list, 'executions'],
  [/^#\/inbox$/, inbox.render, 'inbox'],
  [/^#\/playground$/, playground.render, 'playground'],
  [/^#\/operations$/, operations.render, 'operations'],
];

let current = null;

function route() {
  const hash = location.hash || '#/workflows';
  const main = document.getElementById('main');
  if (current) current.abort();
  current = new AbortController();
  say('');
  for (const [re, view, nav] of ROUTES) {
    const m = hash.split('?')[0].match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll('nav a')) {
      if (a.dataset.view === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    fill(main);
    const params = m.slice(1).map((p) => { try { return decodeURIComponent(p); } catch (e) { return p; } });
    Promise.resolve(view(main, params, current.signal)).catch((e) => {
      if (e && e.name === 'AbortError') return;
      main.appendChild(h('p', { class: 'problem', role: 'alert' }, `This view failed: ${e && e.message ? e.message : e}`));
    });
    return;
  }
  fill(main, h('h1', null, 'Not found'), h('p', null, 'No view at this address. '), h('a', { href: '#/workflows' }, 'Workflows'));
}

function keyState() {
  const st = document.getElementById('keystate');
  st.textContent = getKey() ? 'key set for this tab' : 'no key';
}

function init() {
  const form = document.getElementById('keyform');
  const input = document.getElementById('apikey');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setKey(input.value.trim());
    input.value = '';
    keyState();
    route();
  });
  document.getElementById('forgetkey').addEventListener('click', () => {
    setKey('');
    keyState();
    route();
  });
  window.addEventListener('weft-unauthorized', () => {
    say(getKey() ? 'The API key was refused: type another one above.' : 'This server needs an API key: type it above.', true);
    input.focus();
  });
  window.addEventListener('hashchange', route);
  keyState();
  route();
}

init();
