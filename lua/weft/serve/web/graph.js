// graph.js — a workflow's graph: the SVG laid out by the server
// (Graphviz, GET /api/v1/workflows/{id}/graph), filtered by safeSvg and
// inserted inline so that executors can be lit as events arrive, and the
// list of executors and edges beside it (full ids, selectable text).
import { h, safeSvg } from './dom.js';

const STATES = ['running', 'completed', 'failed', 'waiting'];

/** The executor id a Graphviz node group stands for. */
function nodeId(g) {
  if (g.dataset && (g.dataset.executor || g.dataset.id)) return g.dataset.executor || g.dataset.id;
  const t = g.querySelector('title');
  return t ? t.textContent : null;
}

/** Build the graph view of doc (the answer of …/graph): {el, light(id,
 * state), reset()}. */
export function graphView(doc) {
  const byId = new Map(); // executor id -> [elements]
  const add = (id, el) => { if (!byId.has(id)) byId.set(id, []); byId.get(id).push(el); };
  let drawing;
  const svg = doc.svg ? safeSvg(doc.svg) : null;
  if (svg) {
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', `graph of workflow ${doc.name || doc.id}`);
    svg.removeAttribute('width');
    svg.removeAttribute('height');
    // as wide as the container, but never larger than drawn (points -> px)
    const vb = (svg.getAttribute('viewBox') || '').split(/[\s,]+/).map(Number);
    if (vb.length === 4 && vb[2] > 0) svg.style.maxWidth = `${Math.ceil(vb[2] * 4 / 3)}px`;
    for (const g of svg.querySelectorAll('g.node')) {
      const id = nodeId(g);
      if (id !== null) { g.setAttribute('data-executor', id); add(id, g); }
    }
    drawing = h('div', { class: 'graph' }, svg);
  } else {
    drawing = h('p', { class: 'problem graph-missing' }, doc.svg_error || 'graph unavailable');
  }
  const desc = doc.graph || { executors: [], edges: [] };
  const rows = (desc.executors || []).map((ex) => {
    const li = h('li', { class: 'exec', 'data-executor': ex.id },
      h('code', null, ex.id), ' ', h('span', { class: 'muted' }, ex.kind || ''),
      ex.id === desc.start ? h('span', { class: 'tag' }, 'start') : null,
      h('span', { class: 'state' }, ''));
    add(ex.id, li);
    return li;
  });
  const edges = (desc.edges || []).map((e) => {
    const label = e.kind === 'switch'
      ? (e.cases || []).map((c, i) => `case ${i + 1}${c.name ? ': ' + c.name : ''} → ${c.to}`).concat(e.default ? [`default → ${e.default}`] : []).join('; ')
      : `${(e.from || []).join(', ')} → ${(e.to || []).join(', ')}`;
    return h('li', null, h('span', { class: 'tag' }, (e.kind || 'direct').replace('_', '-')), ' ',
      e.kind === 'switch' ? `${(e.from || []).join(', ')}: ` : '', label, e.name ? h('span', { class: 'muted' }, ` (${e.name})`) : null);
  });
  const el = h('div', { class: 'graphbox' }, drawing,
    h('details', { class: 'execs', open: !svg },
      h('summary', null, `Executors (${rows.length}) and edges (${edges.length})`),
      h('ul', { class: 'plain' }, rows), h('ul', { class: 'plain edges' }, edges)));
  return {
    el,
    /** Mark executor id with state (running, completed, failed, waiting). */
    light(id, state, note) {
      for (const n of byId.get(id) || []) {
        for (const s of STATES) n.classList.remove(`x-${s}`);
        n.classList.add(`x-${state}`);
        n.setAttribute('data-state', state);
        const st = n.querySelector && n.querySelector('.state');
        if (st) st.textContent = note ? `${state} ${note}` : state;
      }
    },
    /** Unlight every executor. */
    reset() {
      for (const list of byId.values()) for (const n of list) {
        for (const s of STATES) n.classList.remove(`x-${s}`);
        n.removeAttribute('data-state');
      }
    },
  };
}
