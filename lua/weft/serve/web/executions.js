// executions.js — the executions list: status, workflow, started,
// duration, superstep, waiting requests; filtered by status and workflow,
// paged on the server (limit/offset), refreshed while it is open.
import { api } from './api.js';
import { h, fill, problem, when, dur, badge } from './dom.js';

const STATUSES = ['', 'pending', 'running', 'idle', 'completed', 'failed', 'cancelled'];
const PAGE = 50;
const REFRESH_MS = 3000;

/** #/executions (query in the hash: #/executions?status=&workflow=&offset=) */
export async function list(main, _, signal) {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const state = { status: q.get('status') || '', workflow: q.get('workflow') || '', offset: Number(q.get('offset')) || 0 };
  const status = h('select', { id: 'f-status' }, STATUSES.map((s) => h('option', { value: s, selected: s === state.status }, s || 'any')));
  const workflow = h('input', { id: 'f-workflow', type: 'text', value: state.workflow, placeholder: 'any', list: 'f-wf-list', spellcheck: 'false' });
  const wfList = h('datalist', { id: 'f-wf-list' });
  const body = h('tbody');
  const count = h('span', { class: 'muted', role: 'status' });
  const prev = h('button', { type: 'button' }, '← Newer');
  const next = h('button', { type: 'button' }, 'Older →');
  const err = h('div');
  const filters = h('form', { class: 'filters' },
    h('label', { for: 'f-status' }, 'Status'), status,
    h('label', { for: 'f-workflow' }, 'Workflow'), workflow, wfList,
    h('button', { type: 'submit' }, 'Filter'));
  fill(main, h('h1', null, 'Executions'), filters, err,
    h('table', { class: 'grid', id: 'executions' },
      h('thead', null, h('tr', null, ['Id', 'Workflow', 'Status', 'Started', 'Duration', 'Superstep', 'Waiting'].map((c) => h('th', { scope: 'col' }, c)))),
      body),
    h('p', { class: 'pager' }, prev, ' ', count, ' ', next));
  api('GET', '/api/v1/workflows?limit=1000', undefined, { signal })
    .then((r) => fill(wfList, (r.items || []).map((w) => h('option', { value: w.id })))).catch(() => {});

  const go = () => {
    const p = new URLSearchParams();
    if (state.status) p.set('status', state.status);
    if (state.workflow) p.set('workflow', state.workflow);
    if (state.offset) p.set('offset', String(state.offset));
    const s = p.toString();
    history.replaceState(null, '', `#/executions${s ? '?' + s : ''}`);
    load();
  };
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    state.status = status.value; state.workflow = workflow.value.trim(); state.offset = 0;
    go();
  });
  prev.addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE); go(); });
  next.addEventListener('click', () => { state.offset += PAGE; go(); });

  let timer = null;
  signal.addEventListener('abort', () => clearTimeout(timer));
  async function load() {
    clearTimeout(timer);
    if (document.hidden) { timer = setTimeout(load, REFRESH_MS); return; } // not while nobody looks
    const p = new URLSearchParams({ limit: String(PAGE), offset: String(state.offset) });
    if (state.status) p.set('status', state.status);
    if (state.workflow) p.set('workflow', state.workflow);
    try {
      const r = await api('GET', `/api/v1/executions?${p}`, undefined, { signal });
      fill(err);
      fill(body, (r.items || []).map(row));
      if (!(r.items || []).length) body.append(h('tr', null, h('td', { colspan: 7, class: 'muted' }, 'No executions.')));
      const first = r.total ? r.offset + 1 : 0;
      count.textContent = `${first}–${r.offset + (r.items || []).length} of ${r.total}`;
      prev.disabled = r.offset === 0;
      next.disabled = r.offset + (r.items || []).length >= r.total;
    } catch (e) {
      if (signal.aborted) return;
      fill(err, problem('executions', e));
    }
    if (!signal.aborted) timer = setTimeout(load, REFRESH_MS);
  }
  load();
}

// One execution as a table row.
function row(x) {
  const end = x.finished_at || (x.status === 'running' || x.status === 'pending' ? Date.now() / 1000 : x.updated_at);
  const ms = x.duration_ms !== undefined ? x.duration_ms : (end && x.created_at ? (end - x.created_at) * 1000 : undefined);
  const waiting = (x.requests || []).length;
  return h('tr', { 'data-id': x.id, 'data-status': x.status },
    h('td', null, h('a', { href: `#/executions/${encodeURIComponent(x.id)}` }, x.id)),
    h('td', null, x.workflow || ''),
    h('td', null, badge(x.status), x.resuming ? h('span', { class: 'muted' }, ' resuming') : null),
    h('td', null, when(x.created_at)),
    h('td', null, dur(ms)),
    h('td', null, x.supersteps !== undefined ? String(x.supersteps) : ''),
    h('td', null, waiting ? h('a', { href: '#/inbox' }, `${waiting} request${waiting > 1 ? 's' : ''}`) : ''));
}
