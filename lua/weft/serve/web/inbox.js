// inbox.js — requests to humans: the executions paused on
// ctx:request_info with their requests, a form for each (built from the
// request's JSON schema when it carries one, a JSON editor otherwise);
// answering posts …/responses and follows the run as it continues.
import { api, path } from './api.js';
import { h, fill, pre, problem, when, badge } from './dom.js';

// The JSON schema a request carries (request.schema, an object schema).
function schemaOf(req) {
  const s = req && typeof req === 'object' ? req.schema : null;
  return s && typeof s === 'object' && s.type === 'object' && s.properties && typeof s.properties === 'object' ? s : null;
}

// Form fields for object schema s: {els, read() -> value}.
function schemaFields(s, prefix) {
  const els = [];
  const readers = [];
  const required = new Set(Array.isArray(s.required) ? s.required : []);
  for (const [name, p] of Object.entries(s.properties)) {
    const fid = `${prefix}-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const label = h('label', { for: fid }, p.title || name, required.has(name) ? ' *' : '');
    let input;
    let read;
    if (p.type === 'boolean') {
      input = h('input', { type: 'checkbox', id: fid, checked: p.default === true });
      read = () => input.checked;
    } else if (Array.isArray(p.enum)) {
      input = h('select', { id: fid, required: required.has(name) }, p.enum.map((v) => h('option', { value: JSON.stringify(v) }, String(v))));
      read = () => JSON.parse(input.value);
    } else if (p.type === 'number' || p.type === 'integer') {
      input = h('input', { type: 'number', id: fid, step: p.type === 'integer' ? '1' : 'any', required: required.has(name),
        value: p.default !== undefined ? String(p.default) : undefined });
      read = () => (input.value === '' ? undefined : Number(input.value));
    } else if (p.type === 'string') {
      input = h('input', { type: 'text', id: fid, required: required.has(name), value: p.default !== undefined ? String(p.default) : undefined });
      read = () => (input.value === '' && !required.has(name) ? undefined : input.value);
    } else {
      input = h('textarea', { id: fid, rows: 2, spellcheck: 'false' }, p.default !== undefined ? JSON.stringify(p.default) : '');
      read = () => (input.value.trim() === '' ? undefined : JSON.parse(input.value));
    }
    els.push(h('div', { class: p.type === 'boolean' ? 'field check' : 'field' }, label, input,
      p.description ? h('span', { class: 'muted small' }, p.description) : null));
    readers.push([name, read]);
  }
  return { els, read: () => { const v = {}; for (const [n, r] of readers) { const x = r(); if (x !== undefined) v[n] = x; } return v; } };
}

let formSeq = 0;

/** A form answering request req ({request_id, executor_id, superstep,
 * request}) of execution id; then(status) is called once the run goes on. */
export function requestForm(id, req, then) {
  const n = ++formSeq;
  const schema = schemaOf(req.request);
  const status = h('div', { class: 'answer-status', role: 'status' });
  let fields;
  let editor;
  if (schema) fields = schemaFields(schema, `rq${n}`);
  else editor = h('textarea', { id: `rq${n}-json`, rows: 4, spellcheck: 'false', class: 'jsonedit' }, 'true');
  const button = h('button', { type: 'submit' }, 'Answer');
  const form = h('form', { class: 'answer' },
    schema ? fields.els : [h('label', { for: `rq${n}-json` }, 'Answer (JSON; text that is not JSON is sent as a string)'), editor],
    button, status);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let value;
    try {
      if (schema) value = fields.read();
      else { try { value = JSON.parse(editor.value); } catch (err) { value = editor.value; } }
    } catch (err) { fill(status, problem('answer', err)); return; }
    button.disabled = true;
    try {
      const r = await api('POST', path`/api/v1/executions/${id}/responses`, { request_id: req.request_id, value });
      fill(status, h('p', null, 'Answered: the run is ', badge(r.status), ' …'));
      follow(id, status).then((st) => { if (then) then(st); });
    } catch (err) {
      button.disabled = false;
      fill(status, problem('answer', err));
    }
  });
  // the question on its own line; the rest of the request (not the
  // schema, which the form shows) as JSON
  const q = req.request;
  let text = null;
  let rest = q;
  if (q && typeof q === 'object' && !Array.isArray(q)) {
    rest = { ...q };
    for (const k of ['question', 'prompt', 'message']) {
      if (typeof rest[k] === 'string') { text = rest[k]; delete rest[k]; break; }
    }
    if (schema) delete rest.schema;
    if (!Object.keys(rest).length) rest = undefined;
  } else if (typeof q === 'string') { text = q; rest = undefined; }
  return h('article', { class: 'request card', 'data-request': req.request_id, 'data-execution': id },
    h('h3', null, 'Request ', h('code', null, req.request_id), req.executor_id ? [' from ', h('code', null, req.executor_id)] : null),
    text !== null ? h('p', { class: 'question' }, text) : null,
    rest !== undefined ? h('details', { open: text === null }, h('summary', null, 'Request data'), pre(rest)) : null,
    form);
}

// Watch execution id after an answer (its summary, every half second)
// until it ends or pauses again; say so in el. Returns the status.
async function follow(id, el) {
  let x = null;
  for (;;) {
    try { x = await api('GET', path`/api/v1/executions/${id}`); } catch (e) { el.append(problem('execution', e)); return null; }
    if (x.status !== 'running' && x.status !== 'pending') break;
    await new Promise((ok) => setTimeout(ok, 500));
  }
  const st = x.status;
  fill(el, h('p', { class: 'continued', 'data-status': st }, 'The run continued and is now ', badge(st), '. ',
    h('a', { href: `#/executions/${encodeURIComponent(id)}` }, 'Open the execution')),
  st === 'idle' ? h('p', null, 'It asks again: reload this view to answer.') : null,
  (x.outputs || []).length ? [h('p', null, 'Outputs:'), pre(x.outputs)] : null);
  return st;
}

/** #/inbox */
export async function render(main, _, signal) {
  const box = h('div', { id: 'inbox' });
  fill(main, h('h1', null, 'Requests waiting for an answer'), box);
  let r;
  try {
    r = await api('GET', '/api/v1/executions?status=idle&limit=200', undefined, { signal });
  } catch (e) {
    box.append(problem('executions', e));
    return;
  }
  const items = r.items || [];
  if (!items.length) { box.append(h('p', { class: 'muted' }, 'No execution is waiting for an answer.')); return; }
  for (const x of items) {
    box.append(h('section', { class: 'waiting', 'data-execution': x.id },
      h('h2', null, h('a', { href: `#/executions/${encodeURIComponent(x.id)}` }, x.id), ' ', h('span', { class: 'muted' }, `${x.workflow} · since ${when(x.updated_at || x.created_at)}`)),
      (x.requests || []).map((q) => requestForm(x.id, q))));
  }
  if (r.total > items.length) box.append(h('p', { class: 'muted' }, `${r.total - items.length} more: answer these first.`));
}
