// history.js — state over time of a durable execution: its checkpoints
// (GET …/checkpoints), the shared state, outputs and pending messages at
// one (GET …/checkpoints/{n}), and what changed between two of them.
import { api, path } from './api.js';
import { h, fill, pre, problem, show } from './dom.js';

/** The keys of a and b with what changed from a to b:
 * [{key, change: added|removed|changed, before, after}]. */
export function diff(a, b) {
  const out = [];
  const keys = new Set([...Object.keys(a || {}), ...Object.keys(b || {})]);
  for (const k of [...keys].sort()) {
    const inA = a && Object.prototype.hasOwnProperty.call(a, k);
    const inB = b && Object.prototype.hasOwnProperty.call(b, k);
    if (inA && !inB) out.push({ key: k, change: 'removed', before: a[k] });
    else if (!inA && inB) out.push({ key: k, change: 'added', after: b[k] });
    else if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push({ key: k, change: 'changed', before: a[k], after: b[k] });
  }
  return out;
}

/** "Resume from here": a button for the checkpoint chosen as B, then a
 * confirm step (with "force" for a changed definition) that posts
 * POST …/resume {from, force}; onResumed() once the server took it. */
function resumeBox(id, b, onResumed) {
  const box = h('div', { class: 'resume', id: 'resume' });
  const start = () => {
    const seq = b.seq;
    const force = h('input', { type: 'checkbox', id: 'resume-force' });
    const status = h('p', { role: 'status', class: 'muted' });
    const ok = h('button', { type: 'button', id: 'resume-confirm' }, `Confirm: resume from checkpoint ${seq}`);
    const no = h('button', { type: 'button', id: 'resume-cancel' }, 'Cancel');
    no.addEventListener('click', () => { fill(box, askButton()); box.querySelector('button').focus(); });
    ok.addEventListener('click', async () => {
      ok.disabled = true;
      no.disabled = true;
      status.textContent = 'resuming…';
      try {
        await api('POST', path`/api/v1/executions/${id}/resume`, { from: seq, force: force.checked });
        status.textContent = `resumed from checkpoint ${seq}`;
        onResumed();
      } catch (e) {
        fill(status);
        status.append(problem('resume', e));
        ok.disabled = false;
        no.disabled = false;
      }
    });
    fill(box,
      h('p', null, `Resume this execution from checkpoint ${seq}? Everything after it runs again (model calls and other effects included); the state and outputs are those at checkpoint ${seq}.`),
      h('p', null, force, h('label', { for: 'resume-force' }, ' even if the workflow changed since (force)')),
      h('p', null, ok, ' ', no), status);
    ok.focus();
  };
  const askButton = () => {
    const btn = h('button', { type: 'button', id: 'resume-ask' }, `Resume from checkpoint ${b.seq}…`);
    btn.addEventListener('click', start);
    return btn;
  };
  box.refresh = () => fill(box, askButton());
  box.refresh();
  return box;
}

/** The "state over time" element of execution id; onResumed() is called
 * once the execution was resumed from a checkpoint ("resume from here"). */
export async function checkpoints(id, signal, onResumed) {
  let r;
  try {
    r = await api('GET', path`/api/v1/executions/${id}/checkpoints`, undefined, { signal });
  } catch (e) {
    if (e.code === 'not_durable') return h('p', { class: 'muted' }, 'This execution is not durable: it has no checkpoints (weft serve keeps them when it has a store).');
    return problem('checkpoints', e);
  }
  const list = r.checkpoints || [];
  if (!list.length) return h('p', { class: 'muted' }, 'No checkpoint yet.');
  const a = { seq: list[0].seq };
  const b = { seq: list[list.length - 1].seq };
  const view = h('div', { class: 'state-view' });
  const radio = (name, seq, sel) => {
    const rid = `ck-${name}-${seq}`;
    const inp = h('input', { type: 'radio', name: `ck-${name}`, id: rid, value: String(seq), checked: sel.seq === seq });
    inp.addEventListener('change', () => { sel.seq = seq; showStates(); });
    return h('label', { for: rid, class: 'radio' }, inp, h('span', { class: 'sr' }, `${name} = checkpoint ${seq}`));
  };
  const table = h('table', { class: 'grid' },
    h('caption', null, 'Pick two checkpoints: A (before) and B (after).'),
    h('thead', null, h('tr', null, ['A', 'B', 'Checkpoint', 'After superstep', 'Keys written', 'Outputs', 'Messages pending'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, list.map((c) => h('tr', null,
      h('td', null, radio('A', c.seq, a)), h('td', null, radio('B', c.seq, b)),
      h('td', null, String(c.seq), c.full ? h('span', { class: 'tag' }, 'full') : null),
      h('td', null, c.superstep !== undefined ? String(c.superstep) : ''),
      h('td', null, (c.writes || []).join(', ')),
      h('td', null, String(c.outputs || 0)), h('td', null, String(c.pending || 0))))));
  const resume = r.resumable && onResumed ? resumeBox(id, b, onResumed) : null;
  async function showStates() {
    if (resume) resume.refresh();
    fill(view, h('p', { class: 'muted' }, 'loading…'));
    try {
      const [sa, sb] = await Promise.all([
        api('GET', path`/api/v1/executions/${id}/checkpoints/${String(a.seq)}`, undefined, { signal }),
        api('GET', path`/api/v1/executions/${id}/checkpoints/${String(b.seq)}`, undefined, { signal }),
      ]);
      const changes = diff(sa.state, sb.state);
      fill(view,
        h('h3', null, `Changes from checkpoint ${a.seq} to ${b.seq}`),
        changes.length ? h('table', { class: 'grid diff' },
          h('thead', null, h('tr', null, ['Key', 'Change', `At ${a.seq}`, `At ${b.seq}`].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', null, changes.map((c) => h('tr', { class: `d-${c.change}` },
            h('td', null, h('code', null, c.key)), h('td', null, c.change),
            h('td', null, c.before !== undefined ? pre(c.before) : ''), h('td', null, c.after !== undefined ? pre(c.after) : '')))))
          : h('p', { class: 'muted' }, 'The shared state is the same.'),
        h('div', { class: 'split' },
          h('section', null, h('h3', null, `State at checkpoint ${b.seq}`), pre(sb.state)),
          h('section', null, h('h3', null, `Messages pending at checkpoint ${b.seq}`),
            (sb.pending || []).length ? h('ul', { class: 'plain' }, sb.pending.map((m) => h('li', null, 'from ', h('code', null, show(m.from)), pre(m.message))))
              : h('p', { class: 'muted' }, 'none'),
            h('h3', null, `Outputs up to checkpoint ${b.seq}`), pre(sb.outputs))));
    } catch (e) {
      if (!signal.aborted) fill(view, problem('state', e));
    }
  }
  showStates();
  return h('div', null, r.resumable ? h('p', { class: 'muted' }, 'This run can be continued from a checkpoint: pick it as B, then resume (or weft runs resume RUN --from N, docs/durability.md).') : null,
    table, resume, view);
}
