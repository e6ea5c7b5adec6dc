// playground.js — talk to an agent or a workflow-as-model through
// /v1/chat/completions (streamed), and the builder: describe an agent or
// a workflow, review the proposed actions (dry run), apply them.
import { api, stream } from './api.js';
import { h, fill, pre, problem } from './dom.js';

/** #/playground */
export async function render(main, _, signal) {
  const model = h('select', { id: 'pg-model' });
  const transcript = h('ol', { class: 'chat', 'aria-live': 'polite' });
  const msg = h('textarea', { id: 'pg-msg', rows: 3 });
  const send = h('button', { type: 'submit' }, 'Send');
  const chatErr = h('div');
  const chat = h('form', { class: 'chatform' },
    h('label', { for: 'pg-model' }, 'Model'), model,
    transcript, h('label', { for: 'pg-msg' }, 'Message'), msg, send, chatErr);
  const req = h('textarea', { id: 'b-req', rows: 3, placeholder: 'e.g. an agent "reviewer" that reviews Lua code with mock:reviewer' });
  const proposal = h('div', { id: 'b-out', role: 'status' });
  const builder = h('form', { class: 'builder' }, h('label', { for: 'b-req' }, 'Describe an agent or workflow'), req,
    h('button', { type: 'submit' }, 'Propose (dry run)'), proposal);
  fill(main, h('h1', null, 'Playground'),
    h('section', { 'aria-labelledby': 'c-h' }, h('h2', { id: 'c-h' }, 'Chat'), chat),
    h('section', { 'aria-labelledby': 'b-h' }, h('h2', { id: 'b-h' }, 'Builder'),
      h('p', { class: 'muted' }, 'The builder model proposes declarative changes (never code); nothing changes until you apply them. Needs an admin key.'), builder));
  try {
    const r = await api('GET', '/v1/models', undefined, { signal });
    fill(model, (r.data || []).map((m) => h('option', { value: m.id }, m.id)));
    if (!(r.data || []).length) fill(chatErr, h('p', { class: 'muted' }, 'No agent or workflow to talk to yet.'));
  } catch (e) { fill(chatErr, problem('models', e)); }

  const history = [];
  chat.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = msg.value;
    if (!text.trim() || !model.value) return;
    msg.value = '';
    history.push({ role: 'user', content: text });
    transcript.append(h('li', { class: 'user' }, h('span', { class: 'who' }, 'you'), h('div', { class: 'text' }, text)));
    const answer = h('div', { class: 'text' });
    transcript.append(h('li', { class: 'assistant' }, h('span', { class: 'who' }, model.value), answer));
    send.disabled = true;
    fill(chatErr);
    let full = '';
    try {
      await stream('/v1/chat/completions', (ev) => {
        if (ev.raw === '[DONE]') return;
        const d = ev.data || {};
        if (d.error) { chatErr.append(problem('model', d.error)); return; }
        const delta = d.choices && d.choices[0] && d.choices[0].delta;
        if (delta && typeof delta.content === 'string') { full += delta.content; answer.append(document.createTextNode(delta.content)); }
      }, { body: { model: model.value, messages: history, stream: true }, signal });
      history.push({ role: 'assistant', content: full });
    } catch (err) { if (!signal.aborted) chatErr.append(problem('chat', err)); }
    send.disabled = false;
  });

  const propose = async (dry) => {
    fill(proposal, h('p', { class: 'muted' }, dry ? 'asking the builder…' : 'applying…'));
    try {
      const r = await api('POST', '/api/v1/builder/execute', { request: req.value, dry_run: dry }, { signal });
      const apply = h('button', { type: 'button' }, 'Apply');
      apply.addEventListener('click', () => propose(false));
      fill(proposal, h('p', null, r.summary || ''),
        h('table', { class: 'grid' }, h('thead', null, h('tr', null, ['Action', 'Id', 'Result'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', null, (r.actions || []).map((a) => h('tr', null, h('td', null, a.op), h('td', null, h('code', null, a.id || '')), h('td', null, a.status || ''))))),
        dry ? apply : h('p', null, 'Applied.'), h('details', null, h('summary', null, 'Answer'), pre(r)));
    } catch (err) {
      fill(proposal, problem('builder', err), err.details && err.details.problems ? pre(err.details.problems) : null);
    }
  };
  builder.addEventListener('submit', (e) => { e.preventDefault(); if (req.value.trim()) propose(true); });
}
