// api.js — calls to the weft REST API with the key the person typed: kept
// in this tab's sessionStorage, sent as `Authorization: Bearer`, never in
// a URL. Server-sent events are read through fetch streaming (EventSource
// cannot send headers).

const KEY = 'weft.apiKey';

/** The key of this tab ('' when none). */
export function getKey() {
  try { return sessionStorage.getItem(KEY) || ''; } catch (e) { return ''; }
}

/** Keep key for this tab (empty: forget it). */
export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
  window.dispatchEvent(new CustomEvent('weft-key'));
}

/** An API error: HTTP status, error code, message, details. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

function headers(extra, json) {
  const hd = { Accept: 'application/json', ...(extra || {}) };
  const key = getKey();
  if (key) hd.Authorization = `Bearer ${key}`;
  if (json) hd['Content-Type'] = 'application/json';
  return hd;
}

// Raise the API error of a failed response res.
async function fail(res) {
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  const e = body && body.error;
  if (res.status === 401) window.dispatchEvent(new CustomEvent('weft-unauthorized'));
  if (e && typeof e === 'object') throw new ApiError(res.status, e.code || e.type, e.message, e.details);
  throw new ApiError(res.status, 'http_error', `HTTP ${res.status}`);
}

/** Call the API: the decoded JSON answer (null for 204), or raise ApiError. */
export async function api(method, path, body, opts) {
  const res = await fetch(path, {
    method, headers: headers(null, body !== undefined), cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body), signal: opts && opts.signal,
  });
  if (!res.ok) await fail(res);
  if (res.status === 204) return null;
  return res.json();
}

/** GET path as text (e.g. /metrics). */
export async function getText(path, opts) {
  const res = await fetch(path, { headers: headers({ Accept: 'text/plain' }), cache: 'no-store', signal: opts && opts.signal });
  if (!res.ok) await fail(res);
  return res.text();
}

/** Read the server-sent events of path (GET, or POST with opts.body),
 * calling onEvent({event, data, id}) for each (data decoded when JSON),
 * until the stream ends or opts.signal aborts. opts.lastEventId resumes. */
export async function stream(path, onEvent, opts) {
  opts = opts || {};
  const extra = { Accept: 'text/event-stream' };
  if (opts.lastEventId) extra['Last-Event-ID'] = String(opts.lastEventId);
  const res = await fetch(path, {
    method: opts.body === undefined ? 'GET' : 'POST', headers: headers(extra, opts.body !== undefined),
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body), signal: opts.signal, cache: 'no-store',
  });
  if (!res.ok) await fail(res);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let ev = { event: 'message', data: [], id: null };
  const dispatch = () => {
    if (ev.data.length) {
      const raw = ev.data.join('\n');
      let data = raw;
      try { data = JSON.parse(raw); } catch (e) { /* plain text */ }
      onEvent({ event: ev.event, data, id: ev.id, raw });
    }
    ev = { event: 'message', data: [], id: null };
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.search(/\r?\n/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(buf[nl] === '\r' ? nl + 2 : nl + 1);
      if (line === '') { dispatch(); continue; }
      if (line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let val = c < 0 ? '' : line.slice(c + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'event') ev.event = val;
      else if (field === 'data') ev.data.push(val);
      else if (field === 'id') ev.id = val;
    }
  }
  dispatch();
}

/** The path of an API resource with escaped id segments. */
export function path(strings, ...ids) {
  return strings.reduce((acc, s, i) => acc + s + (i < ids.length ? encodeURIComponent(ids[i]) : ''), '');
}
