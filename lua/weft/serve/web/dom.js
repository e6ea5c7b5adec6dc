// dom.js — building the page safely: every piece of data goes in as text
// (textContent, attribute values through setAttribute), never as markup;
// the graph SVG from the server is parsed and filtered to an allow-list
// before it is adopted into the page.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Append kids (strings, numbers, nodes, arrays of them; null skipped).
function append(el, kids) {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else if (k instanceof Node) el.appendChild(k);
    else el.appendChild(document.createTextNode(String(k)));
  }
  return el;
}

// Set attrs on el: "class", "text", on<Event> (functions), the rest as
// attributes (values as strings; false/null leave it out, true sets it).
function attrs(el, a) {
  for (const [k, v] of Object.entries(a || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'value' && 'value' in el) el.value = String(v);
    else if (k === 'checked' || k === 'selected' || k === 'disabled') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  return el;
}

/** An HTML element: h('button', {class: 'x', onclick: f}, 'text', child). */
export function h(tag, a, ...kids) {
  return append(attrs(document.createElement(tag), a), kids);
}

/** An SVG element (for the charts drawn here). */
export function s(tag, a, ...kids) {
  return append(attrs(document.createElementNS(SVG_NS, tag), a), kids);
}

/** Replace the children of el with kids. */
export function fill(el, ...kids) {
  el.replaceChildren();
  return append(el, kids);
}

/** A value as readable JSON text (strings as they are). */
export function show(v) {
  if (typeof v === 'string') return v;
  if (v === undefined) return '';
  try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
}

/** A <pre> holding v as text. */
export function pre(v, cls) {
  return h('pre', { class: cls || 'json' }, show(v));
}

/** A date from seconds since the epoch, as local time text. */
export function when(t) {
  if (typeof t !== 'number') return '';
  const d = new Date(t * 1000);
  return d.toLocaleString();
}

/** A duration in milliseconds as text. */
export function dur(ms) {
  if (typeof ms !== 'number' || !isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

/** A status badge. */
export function badge(status) {
  return h('span', { class: `badge st-${String(status).replace(/[^a-z_]/g, '')}` }, String(status));
}

/** Status line at the bottom of the page. */
export function say(msg, isError) {
  const el = document.getElementById('status');
  if (!el) return;
  el.textContent = msg || '';
  el.classList.toggle('error', !!isError);
}

/** An error box naming what failed. */
export function problem(what, err) {
  return h('p', { class: 'problem', role: 'alert' }, `${what}: ${err && err.message ? err.message : String(err)}`);
}

// What may stay in a graph drawn by the server: Graphviz's own elements
// and attributes, nothing that runs, loads or styles from outside.
const SVG_ELEMENTS = new Set(['svg', 'g', 'title', 'desc', 'path', 'polygon', 'polyline', 'ellipse',
  'circle', 'rect', 'line', 'text', 'tspan', 'defs', 'marker', 'lineargradient', 'radialgradient',
  'stop', 'clippath', 'a']);
const SVG_ATTRS = new Set(['id', 'class', 'width', 'height', 'viewbox', 'preserveaspectratio', 'transform',
  'x', 'y', 'x1', 'y1', 'x2', 'y2', 'cx', 'cy', 'r', 'rx', 'ry', 'd', 'points', 'fill', 'fill-opacity',
  'stroke', 'stroke-width', 'stroke-dasharray', 'stroke-opacity', 'stroke-linecap', 'stroke-linejoin',
  'font-family', 'font-size', 'font-weight', 'font-style', 'text-anchor', 'dominant-baseline',
  'opacity', 'offset', 'stop-color', 'stop-opacity', 'gradientunits', 'markerwidth', 'markerheight',
  'refx', 'refy', 'orient', 'version', 'xmlns', 'xmlns:xlink', 'role', 'aria-label']);

/** Parse SVG text from the server and keep only the allow-listed
 * elements and attributes (no script, foreignObject, event handlers,
 * style, or links): an <svg> element ready to insert, or null. */
export function safeSvg(text) {
  const doc = new DOMParser().parseFromString(String(text), 'image/svg+xml');
  const root = doc.documentElement;
  if (!root || root.localName !== 'svg' || root.namespaceURI !== SVG_NS || doc.getElementsByTagName('parsererror').length) return null;
  const walk = (el) => {
    for (const child of Array.from(el.children)) {
      const name = child.localName.toLowerCase();
      if (child.namespaceURI !== SVG_NS || !SVG_ELEMENTS.has(name)) { child.remove(); continue; }
      walk(child);
      if (name === 'a') { child.replaceWith(...Array.from(child.childNodes)); }
    }
    for (const at of Array.from(el.attributes)) {
      const n = at.name.toLowerCase();
      if (!(SVG_ATTRS.has(n) || n.startsWith('data-'))) el.removeAttribute(at.name);
      else if (/^\s*(javascript|data|vbscript):/i.test(at.value)) el.removeAttribute(at.name);
    }
  };
  walk(root);
  for (const at of Array.from(root.attributes)) {
    const n = at.name.toLowerCase();
    if (!(SVG_ATTRS.has(n) || n.startsWith('data-'))) root.removeAttribute(at.name);
  }
  // comments and processing instructions go too
  const it = doc.createNodeIterator(root, NodeFilter.SHOW_COMMENT | NodeFilter.SHOW_PROCESSING_INSTRUCTION);
  const drop = [];
  for (let n = it.nextNode(); n; n = it.nextNode()) drop.push(n);
  drop.forEach((n) => n.remove());
  return document.adoptNode(root);
}
