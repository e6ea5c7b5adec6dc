// workflows.js — workflows and agents: the list (Lua scripts, declarative
// JSON workflows, agents, reload events of --watch) and one workflow (its
// graph, source or definition, version and hash, reload error, a run).
import { api, path } from './api.js';
import { h, fill, pre, problem, when } from './dom.js';
import { graphView } from './graph.js';

/** #/workflows */
export async function list(main, _, signal) {
  fill(main, h('h1', null, 'Workflows and agents'));
  const wfBox = h('section', { 'aria-labelledby': 'wf-h' }, h('h2', { id: 'wf-h' }, 'Workflows'));
  const agBox = h('section', { 'aria-labelledby': 'ag-h' }, h('h2', { id: 'ag-h' }, 'Agents'));
  const rlBox = h('section', { 'aria-labelledby': 'rl-h' }, h('h2', { id: 'rl-h' }, 'Reloads'));
  main.append(wfBox, agBox, rlBox);
  const [wfs, agents, reloads] = await Promise.allSettled([
    api('GET', '/api/v1/workflows?limit=1000', undefined, { signal }),
    api('GET', '/api/v1/agents?limit=1000', undefined, { signal }),
    api('GET', '/api/v1/reloads', undefined, { signal }),
  ]);
  if (wfs.status === 'fulfilled') {
    const items = wfs.value.items || [];
    wfBox.append(items.length ? h('table', { class: 'grid' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Id'), h('th', { scope: 'col' }, 'Kind'), h('th', { scope: 'col' }, 'Name or file'))),
      h('tbody', null, items.map((w) => h('tr', null,
        h('td', null, h('a', { href: `#/workflows/${encodeURIComponent(w.id)}` }, w.id)),
        h('td', null, w.source === 'lua' ? 'Lua script' : 'declarative (JSON)'),
        h('td', null, w.file || w.name || ''))))) : h('p', { class: 'muted' }, 'No workflows yet: start weft serve with --scripts DIR, or POST /api/v1/workflows.'));
  } else wfBox.append(problem('workflows', wfs.reason));
  if (agents.status === 'fulfilled') {
    const items = agents.value.items || [];
    agBox.append(items.length ? h('table', { class: 'grid' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Id'), h('th', { scope: 'col' }, 'Model'), h('th', { scope: 'col' }, 'Tools'), h('th', { scope: 'col' }, 'Instructions'))),
      h('tbody', null, items.map((a) => h('tr', null,
        h('td', null, h('code', null, a.id || a.name || '')), h('td', null, a.model || ''),
        h('td', null, (a.tools || []).join(', ')),
        h('td', { class: 'clip' }, a.instructions || '')))))
      : h('p', { class: 'muted' }, 'No agents.'));
  } else agBox.append(problem('agents', agents.reason));
  if (reloads.status === 'fulfilled') {
    const r = reloads.value;
    const evs = (r.events || []).slice(-20).reverse();
    fill(rlBox, h('h2', { id: 'rl-h' }, 'Reloads'), h('p', { class: 'muted' }, r.watching ? 'Scripts are watched (--watch): a saved change is reloaded.' : 'Scripts are not watched (start weft serve with --watch to reload on save).'),
      evs.length ? h('ul', { class: 'plain' }, evs.map((e) => h('li', { class: e.error ? 'bad' : '' },
        h('span', { class: 'muted' }, when(e.ts)), ' ', h('code', null, e.type || ''), ' ', e.script || e.name || '',
        e.version !== undefined ? ` → version ${e.version}` : '',
        e.error ? h('pre', { class: 'err' }, e.error) : null))) : null);
  } else rlBox.append(problem('reloads', reloads.reason));
}

/** #/workflows/{id} */
export async function detail(main, [id], signal) {
  fill(main, h('p', null, h('a', { href: '#/workflows' }, '← Workflows')), h('h1', null, 'Workflow ', h('code', null, id)));
  let doc;
  try {
    doc = await api('GET', path`/api/v1/workflows/${id}/graph`, undefined, { signal });
  } catch (e) {
    main.append(problem(`workflow ${id}`, e));
    return;
  }
  const meta = h('dl', { class: 'meta' },
    h('dt', null, 'Name'), h('dd', null, doc.name || ''),
    h('dt', null, 'Kind'), h('dd', null, doc.source === 'lua' ? 'Lua script' : 'declarative (JSON)'),
    h('dt', null, 'Hash'), h('dd', null, h('code', null, doc.hash || '')),
    doc.version !== undefined ? [h('dt', null, 'Version'), h('dd', null, String(doc.version))] : null);
  main.append(meta);
  if (doc.reload_error) main.append(h('div', { class: 'problem', role: 'alert' }, h('strong', null, 'Last reload failed: '), h('pre', { class: 'err' }, doc.reload_error)));
  const g = graphView(doc);
  const src = doc.source === 'lua'
    ? h('section', { class: 'source', 'aria-label': 'source' },
      h('h2', null, doc.reload_error ? 'Source on disk (not loaded: its last reload failed)' : 'Source'),
      pre(doc.lua || '(source not readable)', 'code'))
    : h('section', { class: 'source', 'aria-label': 'definition' }, h('h2', null, 'Definition'), pre(doc.definition));
  main.append(h('div', { class: 'split' }, h('section', { 'aria-label': 'graph' }, h('h2', null, 'Graph'), g.el), src));
  // start a run
  const input = h('textarea', { id: 'run-input', rows: 3, spellcheck: 'false' }, '');
  const out = h('div', { role: 'status' });
  const form = h('form', { class: 'run' },
    h('label', { for: 'run-input' }, 'Input (JSON, or plain text)'), input,
    h('button', { type: 'submit' }, 'Run'), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let value = input.value;
    if (value.trim() !== '') { try { value = JSON.parse(value); } catch (err) { /* a string */ } } else value = null;
    try {
      const r = await api('POST', path`/api/v1/workflows/${id}/execute`, { input: value, async: true });
      location.hash = `#/executions/${encodeURIComponent(r.id)}`;
    } catch (err) { fill(out, problem('run', err)); }
  });
  main.append(h('section', { 'aria-labelledby': 'run-h' }, h('h2', { id: 'run-h' }, 'Run it'), form));
}
