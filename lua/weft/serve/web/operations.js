// operations.js — the figures of /metrics as small charts drawn here
// (inline SVG: executions per second, run durations, tokens by provider,
// errors), sampled while the view is open, and the audit log (admin keys).
import { api, getText } from './api.js';
import { h, s, fill, problem } from './dom.js';

const EVERY_MS = 3000;
const KEEP = 60;

/** Parse Prometheus text: [{name, labels: {}, value}]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const value = Number(m[4]);
    if (Number.isNaN(value) && m[4] !== 'NaN') continue; // not a sample
    const labels = {};
    if (m[3]) {
      for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
    }
    out.push({ name: m[1], labels, value });
  }
  return out;
}

const sum = (ms, name, pred) => ms.filter((m) => m.name === name && (!pred || pred(m.labels))).reduce((a, m) => a + m.value, 0);

// A small line chart of points [[t, v]...] with a title and the last value.
function chart(title, points, unit) {
  const W = 260, H = 60;
  const vs = points.map((p) => p[1]);
  const max = Math.max(1e-9, ...vs);
  const t0 = points.length ? points[0][0] : 0;
  const t1 = points.length ? points[points.length - 1][0] : 1;
  const xy = points.map(([t, v]) => `${((t - t0) / Math.max(1e-9, t1 - t0)) * W},${H - (v / max) * (H - 4) - 2}`).join(' ');
  const last = vs.length ? vs[vs.length - 1] : 0;
  return h('figure', { class: 'chart', 'data-points': String(points.length) },
    s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}: ${last.toFixed(2)} ${unit}` },
      s('polyline', { points: points.length > 1 ? xy : `0,${H - 2} ${W},${H - 2}`, class: 'line' })),
    h('figcaption', null, title, ': ', h('strong', null, `${last.toFixed(last < 10 ? 2 : 0)} ${unit}`), h('span', { class: 'muted' }, ` (max ${max.toFixed(2)})`)));
}

/** #/operations */
export async function render(main, _, signal) {
  const charts = h('div', { class: 'charts', id: 'charts' });
  const totals = h('div');
  const audit = h('div', { id: 'audit' });
  fill(main, h('h1', null, 'Operations'),
    h('section', { 'aria-labelledby': 'm-h' }, h('h2', { id: 'm-h' }, 'Metrics'), h('p', { class: 'muted' }, `From /metrics, every ${EVERY_MS / 1000} s while this view is open.`), charts, totals),
    h('section', { 'aria-labelledby': 'a-h' }, h('h2', { id: 'a-h' }, 'Audit log'), audit));
  const series = { rate: [], dur: [], errors: [], tokens: {} };
  let prev = null;
  let timer = null;
  signal.addEventListener('abort', () => clearTimeout(timer));
  const push = (arr, p) => { arr.push(p); if (arr.length > KEEP) arr.shift(); };
  async function sample() {
    try {
      const ms = parseMetrics(await getText('/metrics', { signal }));
      const t = Date.now() / 1000;
      const cur = {
        t, started: sum(ms, 'weft_runs_started_total'),
        dsum: sum(ms, 'weft_run_duration_seconds_sum'), dcount: sum(ms, 'weft_run_duration_seconds_count'),
        failed: sum(ms, 'weft_runs_total', (l) => l.status === 'failed') + sum(ms, 'weft_http_requests_total', (l) => /^5/.test(l.code || '')),
        tokens: {},
      };
      for (const m of ms) if (m.name === 'weft_tokens_total') cur.tokens[m.labels.provider || '?'] = (cur.tokens[m.labels.provider || '?'] || 0) + m.value;
      if (prev) {
        const dt = Math.max(1e-3, t - prev.t);
        push(series.rate, [t, Math.max(0, cur.started - prev.started) / dt]);
        const dc = cur.dcount - prev.dcount;
        push(series.dur, [t, dc > 0 ? ((cur.dsum - prev.dsum) / dc) * 1000 : (series.dur.length ? series.dur[series.dur.length - 1][1] : 0)]);
        push(series.errors, [t, Math.max(0, cur.failed - prev.failed)]);
        for (const [p, v] of Object.entries(cur.tokens)) {
          series.tokens[p] = series.tokens[p] || [];
          push(series.tokens[p], [t, Math.max(0, v - (prev.tokens[p] || 0)) / dt]);
        }
      }
      prev = cur;
      fill(charts, chart('Executions started', series.rate, '/s'), chart('Mean run duration', series.dur, 'ms'),
        chart('Errors (failed runs, HTTP 5xx)', series.errors, 'per sample'),
        Object.entries(series.tokens).map(([p, pts]) => chart(`Tokens, ${p}`, pts, '/s')));
      fill(totals, h('table', { class: 'grid small' }, h('caption', null, 'Totals since the server started'),
        h('tbody', null,
          h('tr', null, h('th', { scope: 'row' }, 'Executions started'), h('td', null, String(cur.started))),
          ['completed', 'failed', 'cancelled'].map((st) => h('tr', null, h('th', { scope: 'row' }, `Runs ${st}`), h('td', null, String(sum(ms, 'weft_runs_total', (l) => l.status === st))))),
          h('tr', null, h('th', { scope: 'row' }, 'Running now'), h('td', null, String(sum(ms, 'weft_executions_running')))),
          Object.entries(cur.tokens).map(([p, v]) => h('tr', null, h('th', { scope: 'row' }, `Tokens, ${p}`), h('td', null, String(v)))))));
    } catch (e) {
      if (signal.aborted) return;
      fill(charts, problem('metrics', e));
    }
    if (!signal.aborted) timer = setTimeout(sample, prev && series.rate.length ? EVERY_MS : 500);
  }
  sample();

  const day = new Date().toISOString().slice(0, 10);
  const date = h('input', { type: 'date', id: 'audit-date', value: day });
  const rows = h('div');
  const form = h('form', { class: 'filters' }, h('label', { for: 'audit-date' }, 'Day (UTC)'), date, h('button', { type: 'submit' }, 'Show'));
  audit.append(form, rows);
  const load = async () => {
    try {
      const r = await api('GET', `/api/v1/audit?limit=200&date=${encodeURIComponent(date.value || day)}`, undefined, { signal });
      const items = (r.items || []).slice().reverse();
      fill(rows, items.length ? h('table', { class: 'grid' },
        h('thead', null, h('tr', null, ['Time', 'Key', 'Method', 'Path', 'Status'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, items.map((a) => h('tr', null, h('td', null, a.time || ''), h('td', null, a.key === null ? '(none)' : String(a.key)),
          h('td', null, a.method || ''), h('td', null, h('code', null, a.path || '')), h('td', null, String(a.status || ''))))))
        : h('p', { class: 'muted' }, 'Nothing changed that day.'),
      r.total > items.length ? h('p', { class: 'muted' }, `the last ${items.length} of ${r.total}`) : null);
    } catch (e) {
      if (signal.aborted) return;
      if (e.status === 403) fill(rows, h('p', { class: 'muted' }, 'The audit log needs an admin key.'));
      else if (e.status === 404) fill(rows, h('p', { class: 'muted' }, 'The audit log is kept only when weft serve has API keys (--keys).'));
      else fill(rows, problem('audit', e));
    }
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  load();
}
