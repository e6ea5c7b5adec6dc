// execution.js — one execution, live: its graph with executors lit as
// events arrive (invoked, completed, failed, waiting on a request), a
// superstep timeline, the event log streamed (model tokens included,
// grouped per executor), outputs, the error with executor and traceback,
// open requests, and the state at each checkpoint of a durable run.
import { api, stream, path } from './api.js';
import { h, fill, pre, problem, when, dur, badge, show } from './dom.js';
import { graphView } from './graph.js';
import { requestForm } from './inbox.js';
import { checkpoints } from './history.js';

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/** The text of an agent_update chunk. */
function chunkText(d) {
  if (typeof d === 'string') return d;
  if (d && typeof d === 'object') {
    for (const k of ['text', 'delta', 'content']) if (typeof d[k] === 'string') return d[k];
    if (d.done) return ''; // the end of a reply: usage, finish_reason
    if (d.tool_call_delta) return ` [tool call ${show(d.tool_call_delta)}] `;
  }
  return show(d);
}

// Event data: short values on the line, longer ones in a block.
function brief(data) {
  const text = typeof data === 'string' ? data : JSON.stringify(data);
  if (text !== undefined && text.length <= 80 && !text.includes('\n')) return h('code', { class: 'inline' }, ` ${text}`);
  return pre(data);
}

/** #/executions/{id} */
export async function render(main, [id], signal) {
  const head = h('div', { class: 'xhead' });
  const graphBox = h('section', { 'aria-labelledby': 'g-h' }, h('h2', { id: 'g-h' }, 'Graph'));
  const timeline = h('section', { 'aria-labelledby': 't-h' }, h('h2', { id: 't-h' }, 'Superstep timeline'));
  const tbl = h('div', { class: 'timeline' });
  timeline.append(tbl);
  const reqBox = h('section', { 'aria-labelledby': 'r-h', id: 'requests' });
  const outBox = h('section', { 'aria-labelledby': 'o-h' }, h('h2', { id: 'o-h' }, 'Outputs'));
  const outList = h('ol', { class: 'outputs' });
  outBox.append(outList);
  const errBox = h('div', { id: 'failure' });
  const logBox = h('section', { 'aria-labelledby': 'l-h' }, h('h2', { id: 'l-h' }, 'Events'));
  const groups = h('div', { class: 'log' });
  const liveNote = h('p', { class: 'muted', role: 'status', id: 'live' }, 'connecting…');
  logBox.append(liveNote, groups);
  const histBox = h('section', { 'aria-labelledby': 'c-h' }, h('h2', { id: 'c-h' }, 'State over time'));
  fill(main, h('p', null, h('a', { href: '#/executions' }, '← Executions')),
    h('h1', null, 'Execution ', h('code', null, id)), head, errBox, reqBox,
    h('div', { class: 'split' }, graphBox, outBox), timeline, logBox, histBox);

  let x;
  try {
    x = await api('GET', path`/api/v1/executions/${id}`, undefined, { signal });
  } catch (e) {
    main.append(problem(`execution ${id}`, e));
    return;
  }
  let g = null;
  const order = [];
  try {
    const doc = await api('GET', path`/api/v1/workflows/${x.workflow}/graph`, undefined, { signal });
    g = graphView(doc);
    graphBox.append(g.el);
    for (const ex of (doc.graph && doc.graph.executors) || []) order.push(ex.id);
  } catch (e) {
    if (signal.aborted) return;
    graphBox.append(problem(`graph of ${x.workflow}`, e));
  }

  const showHead = (d) => {
    fill(head, h('dl', { class: 'meta' },
      h('dt', null, 'Workflow'), h('dd', null, h('a', { href: `#/workflows/${encodeURIComponent(d.workflow)}` }, d.workflow)),
      h('dt', null, 'Status'), h('dd', { id: 'xstatus', 'data-status': d.status }, badge(d.status)),
      h('dt', null, 'Started'), h('dd', null, when(d.created_at)),
      h('dt', null, 'Duration'), h('dd', null, dur(TERMINAL.has(d.status) ? d.duration_ms : (d.created_at ? Date.now() - d.created_at * 1000 : undefined))),
      h('dt', null, 'Supersteps'), h('dd', null, d.supersteps !== undefined ? String(d.supersteps) : ''),
      d.durable ? [h('dt', null, 'Durable'), h('dd', null, 'yes (checkpointed)')] : null));
    fill(errBox);
    if (d.error) errBox.append(h('div', { class: 'problem', role: 'alert' }, h('strong', null, 'Failed: '), h('pre', { class: 'err' }, d.error)));
    fill(reqBox);
    const reqs = d.status === 'idle' ? d.requests || [] : [];
    if (reqs.length) {
      reqBox.append(h('h2', { id: 'r-h' }, 'Waiting for an answer'));
      for (const r of reqs) reqBox.append(requestForm(d.id, r, () => refresh()));
    }
  };
  showHead(x);
  fill(outList, (x.outputs || []).map((o) => h('li', null, pre(o))));
  const refresh = async () => {
    try {
      x = await api('GET', path`/api/v1/executions/${id}`, undefined, { signal });
      showHead(x);
      if (TERMINAL.has(x.status)) fill(outList, (x.outputs || []).map((o) => h('li', null, pre(o))));
    } catch (e) { /* the next event refreshes again */ }
  };

  // per executor and superstep: {t0, t1, state}
  const cells = new Map();
  const cell = (ex, ss) => {
    const k = `${ex}\u0000${ss}`;
    if (!cells.has(k)) cells.set(k, { ex, ss });
    return cells.get(k);
  };
  let maxSs = -1;
  let drawQueued = false;
  const draw = () => {
    drawQueued = false;
    const execs = order.slice();
    for (const c of cells.values()) if (!execs.includes(c.ex)) execs.push(c.ex);
    const cols = [];
    for (let i = 0; i <= maxSs; i++) cols.push(i);
    let longest = 1;
    for (const c of cells.values()) if (c.t0 && c.t1) longest = Math.max(longest, (c.t1 - c.t0) * 1000);
    fill(tbl, h('table', { class: 'grid tl' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Executor'), cols.map((i) => h('th', { scope: 'col' }, `#${i}`)))),
      h('tbody', null, execs.map((ex) => h('tr', null, h('th', { scope: 'row' }, h('code', null, ex)), cols.map((ss) => {
        const c = cells.get(`${ex}\u0000${ss}`);
        if (!c) return h('td');
        const ms = c.t0 && c.t1 ? (c.t1 - c.t0) * 1000 : undefined;
        const bar = h('span', { class: `bar x-${c.state}` });
        bar.style.width = `${Math.max(8, Math.round(((ms || 0) / longest) * 100))}%`;
        return h('td', { title: `${ex} in superstep ${ss}: ${c.state}${ms !== undefined ? ', ' + dur(ms) : ''}` },
          bar, h('span', { class: 'small' }, ms !== undefined ? dur(ms) : c.state));
      }))))));
  };
  const redraw = () => { if (!drawQueued) { drawQueued = true; requestAnimationFrame(draw); } };

  // the event log, one collapsible group per executor
  const groupOf = new Map();
  const group = (ex) => {
    const key = ex || '';
    if (groupOf.has(key)) return groupOf.get(key);
    const list = h('ol', { class: 'events' });
    const sum = h('summary', null, ex ? h('code', null, ex) : 'run', h('span', { class: 'muted count' }, ''));
    const det = h('details', { open: true, 'data-executor': key }, sum, list);
    groups.append(det);
    const gr = { det, list, sum, n: 0, tokens: new Map() };
    groupOf.set(key, gr);
    return gr;
  };
  const onEvent = (ev) => {
    const d = ev.data || {};
    const type = d.type || ev.event;
    const ex = d.executor_id;
    const ss = d.superstep;
    if (typeof ss === 'number' && ss > maxSs) maxSs = ss;
    if (type === 'executor_invoked') {
      const c = cell(ex, ss); c.t0 = d.ts; c.state = 'running'; if (g) g.light(ex, 'running', `(superstep ${ss})`); redraw();
    } else if (type === 'executor_completed') {
      const c = cell(ex, ss); c.t1 = d.ts; c.state = 'completed'; if (g) g.light(ex, 'completed', `(superstep ${ss})`); redraw();
    } else if (type === 'executor_failed') {
      const c = cell(ex, ss); c.t1 = d.ts; c.state = 'failed'; if (g) g.light(ex, 'failed', `(superstep ${ss})`); redraw();
      const data = d.data || {};
      errBox.append(h('div', { class: 'problem', role: 'alert' }, h('strong', null, 'Executor '), h('code', null, ex),
        ` failed in superstep ${ss}${data.retrying ? ' (retrying)' : ''}: `, h('pre', { class: 'err' }, String(data.error || '')),
        data.traceback ? h('details', null, h('summary', null, 'Traceback'), h('pre', { class: 'err' }, String(data.traceback))) : null));
    } else if (type === 'request_info') {
      const c = cell(ex, ss); c.state = 'waiting'; redraw();
      if (g && ex) g.light(ex, 'waiting', `(request ${(d.data || {}).request_id || ''})`);
    } else if (type === 'output') {
      if (!TERMINAL.has(x.status)) outList.append(h('li', null, pre(d.data)));
    }
    if (ev.event === 'end') {
      liveNote.textContent = `ended: ${(d && d.status) || ''}`;
      return;
    }
    const gr = group(ex);
    gr.n++;
    gr.sum.querySelector('.count').textContent = ` (${gr.n})`;
    if (type === 'agent_update') {
      const k = `${ss}`;
      let t = gr.tokens.get(k);
      if (!t) {
        t = h('pre', { class: 'tokens' });
        gr.list.append(h('li', null, h('span', { class: 'tag' }, `#${ss} agent_update`), ' ', t));
        gr.tokens.set(k, t);
      }
      t.append(document.createTextNode(chunkText(d.data)));
      return;
    }
    const data = d.data;
    gr.list.append(h('li', { 'data-type': type },
      h('span', { class: 'tag' }, `${typeof ss === 'number' ? '#' + ss + ' ' : ''}${type}`),
      data !== undefined && data !== null && type !== 'executor_failed' ? brief(data) : null));
    if (type === 'workflow_completed' || type === 'workflow_failed' || type === 'workflow_cancelled' || type === 'workflow_idle') refresh();
  };

  let last = 0;
  const follow = async () => {
    for (let tries = 0; tries < 50 && !signal.aborted; tries++) {
      try {
        liveNote.textContent = 'live';
        await stream(path`/api/v1/executions/${id}/events`, (ev) => {
          if (ev.id) last = Number(ev.id);
          onEvent(ev);
        }, { signal, lastEventId: last || undefined });
        if (signal.aborted) return;
        await refresh();
        liveNote.textContent = `stream ended: ${x.status}`;
        if (TERMINAL.has(x.status)) break;
        if (x.status === 'idle') { liveNote.textContent = 'waiting for an answer'; }
      } catch (e) {
        if (signal.aborted) return;
        liveNote.textContent = `events unavailable: ${e.message}`;
        return;
      }
    }
    loadHistory();
  };
  const loadHistory = async () => {
    // resumed from a checkpoint: this view again, following the new run
    const el = await checkpoints(id, signal, () => window.dispatchEvent(new HashChangeEvent('hashchange')));
    if (!signal.aborted) fill(histBox, h('h2', { id: 'c-h' }, 'State over time'), el);
  };
  loadHistory();
  follow();
}
