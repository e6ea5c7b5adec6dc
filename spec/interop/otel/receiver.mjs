// spec/interop/otel/receiver.mjs — an OTLP/HTTP trace receiver for
// spec/integration/otel_spec.lua. It decodes every POSTed export request
// with the official OTLP definitions shipped by @opentelemetry/otlp-transformer
// (its protobufjs module generated from opentelemetry-proto):
//   * application/x-protobuf: ExportTraceServiceRequest.decode;
//   * application/json: the OTLP/JSON mapping (hex trace and span ids,
//     lowerCamelCase field names, integer enums, 64-bit integers as strings)
//     turned into the message by ExportTraceServiceRequest.fromObject, after
//     checking that every field name exists in the official message (a
//     misspelt field would otherwise be dropped silently).
// Each request is appended as one JSON line to OUT:
//   {path, contentType, headers, errors: [...], resources: [{attributes,
//    scopes: [{name, version, spans: [...]}]}]}
// with spans as {traceId, spanId, parentSpanId (hex, "" for a root), name,
// kind, start, end (unix nanoseconds as strings), attributes {key -> value},
// status {code, message}}. It answers 200 with an empty
// ExportTraceServiceResponse in the request's encoding.
//
// Usage: node receiver.mjs OUT   (prints "listening PORT" once ready;
// port 0 = any: the port is chosen by the system)
import http from 'node:http';
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const v1 = root.opentelemetry.proto;
const Request = v1.collector.trace.v1.ExportTraceServiceRequest;
const Response = v1.collector.trace.v1.ExportTraceServiceResponse;

const out = process.argv[2];
if (!out) {
  console.error('usage: node receiver.mjs OUT');
  process.exit(2);
}

// The field names of each message type of the OTLP/JSON form we check.
function fieldsOf(Type) {
  return new Set(Object.keys(new Type()).concat(Object.keys(Type.prototype)));
}
const FIELDS = {
  request: fieldsOf(Request),
  resourceSpans: fieldsOf(v1.trace.v1.ResourceSpans),
  resource: fieldsOf(v1.resource.v1.Resource),
  scopeSpans: fieldsOf(v1.trace.v1.ScopeSpans),
  scope: fieldsOf(v1.common.v1.InstrumentationScope),
  span: fieldsOf(v1.trace.v1.Span),
  status: fieldsOf(v1.trace.v1.Status),
  keyValue: fieldsOf(v1.common.v1.KeyValue),
  anyValue: fieldsOf(v1.common.v1.AnyValue),
};

// Check that object o (of message kind) has only known fields.
function known(o, kind, where, errors) {
  if (o === null || typeof o !== 'object') return;
  for (const k of Object.keys(o)) {
    if (!FIELDS[kind].has(k)) errors.push(`${where}: unknown field '${k}' for ${kind}`);
  }
}

function checkAttrs(list, where, errors) {
  (list || []).forEach((kv, i) => {
    known(kv, 'keyValue', `${where}[${i}]`, errors);
    known(kv.value, 'anyValue', `${where}[${i}].value`, errors);
    const arr = kv.value && kv.value.arrayValue;
    if (arr) (arr.values || []).forEach((v, j) => known(v, 'anyValue', `${where}[${i}].value.arrayValue.values[${j}]`, errors));
  });
}

// OTLP/JSON -> the message (ids hex -> bytes), noting unknown fields and
// malformed ids.
function fromJson(text, errors) {
  const o = JSON.parse(text);
  known(o, 'request', 'request', errors);
  for (const [ri, rs] of (o.resourceSpans || []).entries()) {
    known(rs, 'resourceSpans', `resourceSpans[${ri}]`, errors);
    known(rs.resource, 'resource', `resourceSpans[${ri}].resource`, errors);
    checkAttrs(rs.resource && rs.resource.attributes, `resourceSpans[${ri}].resource.attributes`, errors);
    for (const [si, ss] of (rs.scopeSpans || []).entries()) {
      const w = `resourceSpans[${ri}].scopeSpans[${si}]`;
      known(ss, 'scopeSpans', w, errors);
      known(ss.scope, 'scope', `${w}.scope`, errors);
      for (const [pi, sp] of (ss.spans || []).entries()) {
        const ws = `${w}.spans[${pi}]`;
        known(sp, 'span', ws, errors);
        known(sp.status, 'status', `${ws}.status`, errors);
        checkAttrs(sp.attributes, `${ws}.attributes`, errors);
        for (const [f, n] of [['traceId', 32], ['spanId', 16], ['parentSpanId', 16]]) {
          if (sp[f] === undefined || (f === 'parentSpanId' && sp[f] === '')) continue;
          if (typeof sp[f] !== 'string' || !new RegExp(`^[0-9a-f]{${n}}$`).test(sp[f])) {
            errors.push(`${ws}.${f}: not ${n} lower-case hex digits: ${JSON.stringify(sp[f])}`);
          } else {
            sp[f] = Buffer.from(sp[f], 'hex');
          }
        }
        for (const f of ['startTimeUnixNano', 'endTimeUnixNano']) {
          if (typeof sp[f] !== 'string' || !/^[0-9]+$/.test(sp[f])) {
            errors.push(`${ws}.${f}: not a decimal string: ${JSON.stringify(sp[f])}`);
          }
        }
      }
    }
  }
  const err = Request.verify(Request.fromObject(o));
  if (err) errors.push(`verify: ${err}`);
  return Request.fromObject(o);
}

const hex = (b) => Buffer.from(b || []).toString('hex');

// An AnyValue -> a plain value.
function plain(v) {
  if (!v) return null;
  if (v.stringValue != null) return v.stringValue;
  if (v.boolValue != null) return v.boolValue;
  if (v.intValue != null) return Number(v.intValue.toString());
  if (v.doubleValue != null) return v.doubleValue;
  if (v.arrayValue != null) return (v.arrayValue.values || []).map(plain);
  return null;
}

function attrs(list) {
  const o = {};
  for (const kv of list || []) o[kv.key] = plain(kv.value);
  return o;
}

// The decoded message -> the recorded form.
function record(msg) {
  return (msg.resourceSpans || []).map((rs) => ({
    attributes: attrs(rs.resource && rs.resource.attributes),
    scopes: (rs.scopeSpans || []).map((ss) => ({
      name: ss.scope && ss.scope.name,
      version: ss.scope && ss.scope.version,
      spans: (ss.spans || []).map((sp) => ({
        traceId: hex(sp.traceId),
        spanId: hex(sp.spanId),
        parentSpanId: hex(sp.parentSpanId),
        name: sp.name,
        kind: sp.kind,
        start: sp.startTimeUnixNano.toString(),
        end: sp.endTimeUnixNano.toString(),
        attributes: attrs(sp.attributes),
        status: { code: (sp.status && sp.status.code) || 0, message: (sp.status && sp.status.message) || '' },
      })),
    })),
  }));
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const ctype = (req.headers['content-type'] || '').split(';')[0].trim();
    const errors = [];
    let resources = [];
    try {
      let msg;
      if (ctype === 'application/x-protobuf') {
        msg = Request.decode(body);
      } else if (ctype === 'application/json') {
        msg = fromJson(body.toString('utf8'), errors);
      } else {
        errors.push(`unexpected content type '${ctype}'`);
      }
      if (msg) resources = record(msg);
    } catch (e) {
      errors.push(`decoding: ${e.message}`);
    }
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-') || k === 'authorization') headers[k] = v;
    fs.appendFileSync(out, JSON.stringify({ method: req.method, path: req.url, contentType: ctype, headers, errors, resources }) + '\n');
    if (ctype === 'application/json') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(Response.toObject(Response.create())));
    } else {
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
      res.end(Buffer.from(Response.encode(Response.create()).finish()));
    }
  });
});

server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
