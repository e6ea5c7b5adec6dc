--- weft.otel — OpenTelemetry traces of runs, exported over OTLP/HTTP
-- (docs/interop.md, "Traces (OpenTelemetry)"). Off until `setup` (or the
-- CLI, from the standard OTEL_* variables) turns it on; while off nothing
-- here is loaded by a run and a run pays one upvalue test.
--
-- Spans are built from what runs already publish:
--   * the run's events (weft.run's tracer hook wraps each run's on_event):
--     `weft.run <workflow>` (the trace's root; a run started inside an
--     executor is a child of that executor's span), `weft.superstep <n>`,
--     `weft.executor <id>` (one per attempt), with the events' timestamps;
--   * the observer of weft.journal (every model call, HTTP request, sandbox
--     run, MCP call and tool call goes through journal.call): model calls
--     become `chat <model>` spans with the GenAI semantic conventions
--     (gen_ai.*: provider, model, token usage, finish reasons), tool calls
--     `execute_tool <name>` spans.
-- The observer and weft.run's tracer are set by setup and removed by
-- shutdown: while tracing is off, nothing is in the way.
--
-- Finished spans wait in a bounded queue (spans beyond it are dropped and
-- counted) and are exported in batches by a weft.go task over weft.http,
-- when a top-level run ends or a batch is full, and by flush(). An export
-- failure is counted (stats()) and never reaches a run. Payloads are OTLP
-- protobuf (http/protobuf, the default) or OTLP JSON (http/json).
-- Uses weft.run, weft.journal, weft.invocation, weft.task,
-- weft.http, weft.json, weft.urandom, weft.core.loop, ffi (protobuf numbers).
local _M = {}

local json = require "weft.json"
local urandom = require "weft.urandom"
local loop = require "weft.core.loop"
local ffi = require "ffi"

local type, pairs, ipairs, tostring, tonumber, error, pcall, select, setmetatable, next, unpack =
  type, pairs, ipairs, tostring, tonumber, error, pcall, select, setmetatable, next, unpack
local floor, huge = math.floor, math.huge
local format, char, concat = string.format, string.char, table.concat
local running = coroutine.running
local now = loop.now

-- OTLP span kinds and status codes (opentelemetry/proto/trace/v1).
local KIND_INTERNAL, KIND_CLIENT = 1, 3
local STATUS_ERROR = 2

--- Defaults of the configuration (the OTel SDK's, where it has one).
_M.DEFAULTS = {
  endpoint = "http://localhost:4318/v1/traces", protocol = "http/protobuf", service_name = "weft",
  timeout = 10, max_queue = 2048, batch_size = 512,
}

local cfg         -- the configuration while tracing is on, else nil
local queue, qn = {}, 0 -- finished spans waiting for export
local exporting   -- the weft.go task exporting, or nil
local counts = { exported = 0, dropped = 0, failed_exports = 0 }
local last_error  -- of the last failed export (or queue overflow)
local reported = 0 -- counts.dropped at the end of the last flush

---------------------------------------------------------------------------
-- Configuration
---------------------------------------------------------------------------

-- Percent-decode s (OTEL_EXPORTER_OTLP_HEADERS values are URL-encoded).
local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- "k1=v1,k2=v2" (the OTel list format) -> {k1 = v1, ...}, or nil, err
-- naming the variable.
local function parse_list(s, var)
  local t = {}
  for item in s:gmatch("[^,]+") do
    local k, v = item:match("^%s*([^=]-)%s*=%s*(.-)%s*$")
    if not k or k == "" then
      return nil, format("%s: '%s' is not key=value", var, item)
    end
    t[unescape(k)] = unescape(v)
  end
  return t
end

-- A number of milliseconds from variable var (nil when unset).
local function millis(getenv, var)
  local s = getenv(var)
  if s == nil or s == "" then return nil end
  local n = tonumber(s)
  if not n or n <= 0 or n == huge then return nil, format("%s: '%s' is not a number of milliseconds > 0", var, s) end
  return n / 1000
end

-- A positive integer from variable var (nil when unset).
local function count_var(getenv, var)
  local s = getenv(var)
  if s == nil or s == "" then return nil end
  local n = tonumber(s)
  if not n or n < 1 or n ~= floor(n) then return nil, format("%s: '%s' is not a positive integer", var, s) end
  return n
end

--- The configuration the standard OTEL_* variables give (getenv defaults
-- to os.getenv): a table for setup, false when tracing is off (no
-- endpoint, OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none), or nil
-- and an error naming the variable.
function _M.env_config(getenv)
  getenv = getenv or os.getenv
  local function var(name)
    local v = getenv(name)
    if v == nil or v == "" then return nil end
    return v
  end
  if (var("OTEL_SDK_DISABLED") or ""):lower() == "true" then return false end
  local exporter = var("OTEL_TRACES_EXPORTER")
  if exporter then
    exporter = exporter:lower()
    if exporter == "none" then return false end
    if exporter ~= "otlp" then
      return nil, format("OTEL_TRACES_EXPORTER: '%s' is not supported (otlp or none)", exporter)
    end
  end
  local c = {}
  local traces_ep, base = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), var("OTEL_EXPORTER_OTLP_ENDPOINT")
  if traces_ep then
    c.endpoint = traces_ep -- used as is (the spec: no path appended)
  elseif base then
    c.endpoint = base:gsub("/+$", "") .. "/v1/traces"
  elseif not exporter then
    return false -- off by default: no endpoint and no explicit exporter
  end
  local proto = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or var("OTEL_EXPORTER_OTLP_PROTOCOL")
  if proto then c.protocol = proto end
  local headers = {}
  for _, name in ipairs({ "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS" }) do
    local s = var(name)
    if s then
      local t, err = parse_list(s, name)
      if not t then return nil, err end
      for k, v in pairs(t) do headers[k] = v end -- the traces variable wins
    end
  end
  if next(headers) then c.headers = headers end
  local t, err = millis(getenv, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
  if err then return nil, err end
  if not t then
    t, err = millis(getenv, "OTEL_EXPORTER_OTLP_TIMEOUT")
    if err then return nil, err end
  end
  c.timeout = t
  c.max_queue, err = count_var(getenv, "OTEL_BSP_MAX_QUEUE_SIZE")
  if err then return nil, err end
  c.batch_size, err = count_var(getenv, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
  if err then return nil, err end
  local ra = var("OTEL_RESOURCE_ATTRIBUTES")
  if ra then
    c.resource, err = parse_list(ra, "OTEL_RESOURCE_ATTRIBUTES")
    if not c.resource then return nil, err end
  end
  c.service_name = var("OTEL_SERVICE_NAME")
  return c
end

local PROTOCOLS = { ["http/protobuf"] = true, ["http/json"] = true }

-- Check setup's options (raising at level on misuse); a normalised copy
-- over the defaults, or nil, err for a protocol weft does not speak.
local function normalise(o, level)
  if type(o) ~= "table" then error("weft.otel.setup: expects a table of options", level + 1) end
  local c = {}
  for k, v in pairs(_M.DEFAULTS) do c[k] = v end
  local KNOWN = { endpoint = "string", protocol = "string", service_name = "string", timeout = "number",
                  max_queue = "number", batch_size = "number", headers = "table", resource = "table" }
  for k, v in pairs(o) do
    local want = KNOWN[k]
    if not want then error(format("weft.otel.setup: unknown option '%s'", tostring(k)), level + 1) end
    if type(v) ~= want then
      error(format("weft.otel.setup: %s must be a %s, got %s", k, want, type(v)), level + 1)
    end
    c[k] = v
  end
  if not c.endpoint:match("^https?://") then
    error(format("weft.otel.setup: endpoint must be an http:// or https:// URL, got '%s'", c.endpoint), level + 1)
  end
  if c.timeout <= 0 then error("weft.otel.setup: timeout must be > 0 seconds", level + 1) end
  for _, k in ipairs({ "max_queue", "batch_size" }) do
    if c[k] < 1 or c[k] ~= floor(c[k]) then error("weft.otel.setup: " .. k .. " must be a positive integer", level + 1) end
  end
  for _, k in ipairs({ "headers", "resource" }) do
    for hk, hv in pairs(c[k] or {}) do
      if type(hk) ~= "string" or (type(hv) ~= "string" and (k == "headers" or type(hv) ~= "number" and type(hv) ~= "boolean")) then
        error(format("weft.otel.setup: %s must map names to strings, got %s = %s", k, tostring(hk), type(hv)), level + 1)
      end
    end
  end
  if not PROTOCOLS[c.protocol] then
    return nil, format("traces: protocol '%s' is not supported (http/protobuf or http/json; OTLP over gRPC is not)",
                       c.protocol)
  end
  return c
end

---------------------------------------------------------------------------
-- Spans
---------------------------------------------------------------------------

-- A random id of n bytes as hex (/dev/urandom; math.random if unreadable).
local function new_id(n)
  local h = urandom.hex(n)
  if h then return h end
  local t = {}
  for i = 1, n do t[i] = format("%02x", math.random(0, 255)) end
  return concat(t)
end

-- Span ids: 4 random bytes of this process, then a counter (unique in the
-- process, and so in every trace it makes; half the cost of a span).
local id_prefix, id_count = new_id(4), 0

-- A started span: {name, trace, id, parent, kind, start, attrs = {k, v,
-- k, v, ...}}; finish() sets its end and status and queues it.
local function span(name, trace, parent, kind, start)
  id_count = id_count + 1
  if id_count > 0xffffffff then id_prefix, id_count = new_id(4), 1 end
  return { name = name, trace = trace or new_id(16), id = format("%s%08x", id_prefix, id_count), parent = parent,
           kind = kind or KIND_INTERNAL, start = start or now(), attrs = {} }
end

-- Add attribute k = v (string, number, boolean or a list of strings).
local function attr(s, k, v)
  if v == nil then return end
  local a = s.attrs
  a[#a + 1] = k
  a[#a + 1] = v
end

-- End span s at time t (default now) with an error message (nil: status
-- unset) and queue it for export; a full queue drops it (counted).
local function finish(s, t, err)
  if s.finish then return end
  s.finish = t or now()
  if err ~= nil then s.status, s.message = STATUS_ERROR, tostring(err) end
  if not cfg then return end
  if qn >= cfg.max_queue then
    counts.dropped = counts.dropped + 1
    last_error = format("the span queue is full (max_queue %d): spans dropped", cfg.max_queue)
    return
  end
  qn = qn + 1
  queue[qn] = s
end

-- Per run id: {trace, root (the run span), parent (the parent span id),
-- name, ss = {n -> span}, ex = {key -> list of open executor spans}}.
local runs = {}

-- The key of an executor invocation in runs[id].ex.
local function inv_key(superstep, exec, attempt)
  return superstep .. "\0" .. exec .. "\0" .. (attempt or 1)
end

-- The open span of the invocation inv (weft.invocation), or nil.
local function inv_span(inv)
  local r = runs[inv.run_id]
  if not r then return nil end
  local list = r.ex[inv_key(inv.superstep, inv.executor_id, inv.attempt)]
  return list and list[1], r
end

-- Spans of model and tool calls open in each coroutine (the innermost).
local active = setmetatable({}, { __mode = "k" })

-- The (trace, parent span id) a span started by the calling coroutine
-- belongs to: the innermost call span of this coroutine, else the span of
-- the executor invocation it works for, else none (a new trace).
local function context_of()
  local co = running()
  local a = co and active[co]
  if a then return a.trace, a.id end
  local inv = require("weft.invocation").current()
  if inv then
    local s = inv_span(inv)
    if s then return s.trace, s.id end
  end
  return nil, nil
end

-- Start a call span (model or tool call) in the calling coroutine's
-- context; returns it and the coroutine (for end_call).
local function begin_call(name, kind)
  local trace, parent = context_of()
  local s = span(name, trace, parent, kind)
  local co = running()
  if co then
    s.prev = active[co]
    active[co] = s
  end
  return s, co
end

-- End call span s of coroutine co (err: its error, or nil).
local function end_call(s, co, err)
  if co then active[co] = s.prev end
  s.prev = nil
  finish(s, nil, err)
end

local schedule -- below: start an export task

-- Close what a run left open at time t (executors, superstep) with err.
local function close_open(r, t, err)
  for _, list in pairs(r.ex) do
    for i = 1, #list do finish(list[i], t, err) end
  end
  r.ex = {}
  for _, s in pairs(r.ss) do finish(s, t, err) end
  r.ss = {}
end

-- Run ends: event type -> status attribute.
local ENDS = { workflow_completed = "completed", workflow_failed = "failed", workflow_idle = "idle",
               workflow_cancelled = "cancelled" }

-- The spans of one run from its events: returns on_event(ev). ptrace,
-- pid: the trace and span the run was started in (a model or tool call,
-- or an executor invocation), or nil for a new trace.
local function run_tracer(wf, ptrace, pid)
  local r -- runs[run_id], made by the first event
  return function(ev)
    local et, ts = ev.type, ev.ts
    if not r then
      r = { trace = ptrace or new_id(16), parent = pid, ss = {}, ex = {} }
      runs[ev.run_id] = r
    end
    if not r.root then -- workflow_started, or the first event of a resumed run
      local name = (et == "workflow_started" and type(ev.data) == "table" and ev.data.workflow)
        or (type(wf) == "table" and wf.name) or "workflow"
      r.root = span("weft.run " .. tostring(name), r.trace, r.resumed or r.parent, KIND_INTERNAL, ts)
      attr(r.root, "weft.workflow.name", tostring(name))
      attr(r.root, "weft.run.id", ev.run_id)
      if r.resumed then attr(r.root, "weft.run.resumed", true) end
    end
    if et == "superstep_started" then
      local s = span("weft.superstep " .. tostring(ev.superstep), r.trace, r.root.id, KIND_INTERNAL, ts)
      attr(s, "weft.superstep", ev.superstep)
      attr(s, "weft.run.id", ev.run_id)
      r.ss[ev.superstep] = s
    elseif et == "superstep_completed" then
      local s = r.ss[ev.superstep]
      if s then
        r.ss[ev.superstep] = nil
        finish(s, ts)
      end
    elseif et == "executor_invoked" then
      local attempt = type(ev.data) == "table" and ev.data.attempt or 1
      local ss = r.ss[ev.superstep]
      local s = span("weft.executor " .. tostring(ev.executor_id), r.trace, ss and ss.id or r.root.id,
                     KIND_INTERNAL, ts)
      attr(s, "weft.executor.id", ev.executor_id)
      attr(s, "weft.executor.attempt", attempt)
      attr(s, "weft.superstep", ev.superstep)
      attr(s, "weft.run.id", ev.run_id)
      local key = inv_key(ev.superstep, ev.executor_id, attempt)
      local list = r.ex[key]
      if list then list[#list + 1] = s else r.ex[key] = { s } end
    elseif et == "executor_completed" or et == "executor_failed" then
      local d = type(ev.data) == "table" and ev.data or {}
      local key = inv_key(ev.superstep, ev.executor_id, d.attempt)
      local list = r.ex[key]
      local s = list and table.remove(list, 1)
      if list and #list == 0 then r.ex[key] = nil end
      if s then
        if et == "executor_failed" then
          attr(s, "weft.executor.status", "failed")
          attr(s, "weft.executor.retrying", d.retrying == true)
          if d.timed_out then attr(s, "weft.executor.timed_out", true) end
          finish(s, ts, d.error or "failed")
        else
          attr(s, "weft.executor.status", "completed")
          finish(s, ts)
        end
      end
    elseif ENDS[et] then
      local err = et == "workflow_failed" and (type(ev.data) == "table" and ev.data.error or "failed") or nil
      close_open(r, ts, err or (et == "workflow_cancelled" and "cancelled") or nil)
      local root = r.root
      attr(root, "weft.run.status", ENDS[et])
      finish(root, ts, err)
      if et == "workflow_idle" then
        -- a paused run may go on in this process: its next spans go to a
        -- new run span of the same trace, a child of this one
        r.root, r.resumed = nil, root.id
      else
        runs[ev.run_id] = nil
      end
      if not r.parent then schedule() end
    end
    if cfg and qn >= cfg.batch_size then schedule() end
  end
end

---------------------------------------------------------------------------
-- Hooks (installed while tracing is on)
---------------------------------------------------------------------------

local hooked -- true while the hooks are installed

-- weft.run's tracer: every run's on_event goes through run_tracer too.
local function trace_run(wf, opts)
  local on_ev = run_tracer(wf, context_of())
  local user = opts.on_event
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.on_event = function(ev)
    local ok, err = pcall(on_ev, ev)
    if not ok then last_error = "tracer: " .. tostring(err) end
    if user then return user(ev) end
  end
  return o
end

-- An attribute value of a reply, if a string.
local function str(v) return type(v) == "string" and v or nil end

-- Set the GenAI attributes of model call s from its result.
local function chat_result(s, res)
  local u = type(res.usage) == "table" and res.usage or {}
  attr(s, "gen_ai.usage.input_tokens", tonumber(u.input_tokens))
  attr(s, "gen_ai.usage.output_tokens", tonumber(u.output_tokens))
  if str(res.finish_reason) then attr(s, "gen_ai.response.finish_reasons", { res.finish_reason }) end
  local raw = type(res.raw) == "table" and res.raw or {}
  attr(s, "gen_ai.response.model", str(res.model) or str(raw.model))
  attr(s, "gen_ai.response.id", str(raw.id))
end

-- Results with their count (they may hold nils).
local function pack(...) return { n = select("#", ...), ... } end

-- Tool calls ("tool"): an `execute_tool` span per call.
local function traced_tool(call, kind, request, fn, tool, args, ctx)
  local name = tostring(tool.name)
  local s, co = begin_call("execute_tool " .. name, KIND_INTERNAL)
  attr(s, "gen_ai.operation.name", "execute_tool")
  attr(s, "gen_ai.tool.name", name)
  attr(s, "gen_ai.tool.type", "function")
  attr(s, "gen_ai.tool.call.id", type(ctx) == "table" and str(ctx.call_id) or nil)
  local ok, good, text = pcall(call, kind, request, fn, tool, args, ctx)
  if not ok then
    end_call(s, co, good)
    error(good, 0)
  end
  if good then end_call(s, co) else
    attr(s, "error.type", "tool_error")
    end_call(s, co, text)
  end
  return good, text
end

-- The journal's observer while tracing: model calls ("llm") get a `chat`
-- span, tool calls an `execute_tool` span; other requests pass.
local function traced_call(kind, request, call, fn, ...)
  if kind == "tool" then return traced_tool(call, kind, request, fn, ...) end
  if kind ~= "llm" or type(request) ~= "table" or type(request.what) ~= "string" then
    return call(kind, request, fn, ...)
  end
  local provider, model = request.what:match("^([%w_%-]+):(.+)$")
  model = model or request.what
  local s, co = begin_call("chat " .. model, KIND_CLIENT)
  attr(s, "gen_ai.operation.name", "chat")
  attr(s, "gen_ai.provider.name", provider)
  attr(s, "gen_ai.system", provider)
  attr(s, "gen_ai.request.model", model)
  local r = pack(pcall(call, kind, request, fn, ...))
  if not r[1] then
    end_call(s, co, r[2])
    error(r[2], 0)
  end
  local res, err, code = r[2], r[3], r[4]
  if type(res) == "table" then
    chat_result(s, res)
    end_call(s, co)
  else
    attr(s, "error.type", tostring(code or "error"))
    end_call(s, co, err or "model call failed")
  end
  return unpack(r, 2, r.n)
end

-- Install (on) or remove the hooks.
local function hooks(on)
  local run, journal = require "weft.run", require "weft.journal"
  if on then
    if hooked then return end
    hooked = true
    journal.observe(traced_call)
    run.set_tracer(trace_run)
  elseif hooked then
    hooked = nil
    journal.observe(nil)
    run.set_tracer(nil)
  end
end

---------------------------------------------------------------------------
-- OTLP encoding
---------------------------------------------------------------------------

-- Unix nanoseconds of time t: seconds and the nanoseconds within them.
local function nanos(t)
  local s = floor(t)
  local ns = floor((t - s) * 1e9 + 0.5)
  if ns >= 1e9 then s, ns = s + 1, ns - 1e9 end
  return s, ns
end

-- OTLP JSON (ids in hex, 64-bit numbers as strings).
local function json_value(v)
  local t = type(v)
  if t == "string" then return { stringValue = v }
  elseif t == "boolean" then return { boolValue = v }
  elseif t == "number" then
    if v == floor(v) and v > -2^53 and v < 2^53 then return { intValue = format("%d", v) } end
    return { doubleValue = v }
  elseif t == "table" then
    local vals = json.array()
    for i = 1, #v do vals[i] = json_value(v[i]) end
    return { arrayValue = { values = vals } }
  end
  return { stringValue = tostring(v) }
end

local function json_attrs(list)
  local out = json.array()
  for i = 1, #list, 2 do out[#out + 1] = { key = list[i], value = json_value(list[i + 1]) } end
  return out
end

local function json_payload(spans, resource)
  local js = json.array()
  for i, s in ipairs(spans) do
    local ss, sn = nanos(s.start)
    local es, en = nanos(s.finish)
    js[i] = {
      traceId = s.trace, spanId = s.id, parentSpanId = s.parent, name = s.name, kind = s.kind,
      startTimeUnixNano = format("%d%09d", ss, sn), endTimeUnixNano = format("%d%09d", es, en),
      attributes = json_attrs(s.attrs),
      status = s.status and { code = s.status, message = s.message } or json.object(),
    }
  end
  return json.encode({ resourceSpans = { {
    resource = { attributes = json_attrs(resource) },
    scopeSpans = { { scope = { name = "weft", version = require("weft.core").version }, spans = js } },
  } } }, { invalid_utf8 = "replace" })
end

-- OTLP protobuf (opentelemetry/proto/collector/trace/v1).
local function varint(n, out)
  if n < 128 and n >= 0 then
    out[#out + 1] = char(n)
    return
  end
  if n < 0 then -- int64 two's complement: ten bytes
    local u = ffi.new("uint64_t", ffi.new("int64_t", n))
    for _ = 1, 9 do
      out[#out + 1] = char(tonumber(u % 128) + 128)
      u = u / 128
    end
    out[#out + 1] = char(tonumber(u))
    return
  end
  while n >= 128 do
    out[#out + 1] = char(n % 128 + 128)
    n = floor(n / 128)
  end
  out[#out + 1] = char(n)
end

local function tag(field, wire, out) varint(field * 8 + wire, out) end

local function bytes_field(field, s, out) -- wire type 2: length-delimited
  tag(field, 2, out)
  varint(#s, out)
  out[#out + 1] = s
end

local LE = ffi.abi("le")
local u64 = ffi.new("union { uint64_t u; double d; char b[8]; }")
local function fixed64(s, ns) -- seconds + nanoseconds -> 8 bytes LE
  u64.u = s * 1000000000ULL + ns
  local b = ffi.string(u64.b, 8)
  return LE and b or b:reverse()
end

local function double_le(v)
  u64.d = v
  local b = ffi.string(u64.b, 8)
  return LE and b or b:reverse()
end

local bit = require "bit"
local band, rshift = bit.band, bit.rshift
local sub = string.sub
-- Hex ids (16 or 32 digits) -> their bytes, 8 digits at a time.
local function hex_bytes(h)
  local out = {}
  for i = 1, #h, 8 do
    local n = tonumber(sub(h, i, i + 7), 16)
    out[#out + 1] = char(band(rshift(n, 24), 255), band(rshift(n, 16), 255), band(rshift(n, 8), 255), band(n, 255))
  end
  return concat(out)
end

local function pb_value(v)
  local out, t = {}, type(v)
  if t == "string" then bytes_field(1, v, out)
  elseif t == "boolean" then tag(2, 0, out); varint(v and 1 or 0, out)
  elseif t == "number" then
    if v == floor(v) and v > -2^53 and v < 2^53 then tag(3, 0, out); varint(v, out)
    else tag(4, 1, out); out[#out + 1] = double_le(v) end
  elseif t == "table" then
    local arr = {}
    for i = 1, #v do bytes_field(1, pb_value(v[i]), arr) end
    bytes_field(5, concat(arr), out)
  else bytes_field(1, tostring(v), out) end
  return concat(out)
end

local function pb_attrs(field, list, out)
  for i = 1, #list, 2 do
    local kv = {}
    bytes_field(1, list[i], kv)
    bytes_field(2, pb_value(list[i + 1]), kv)
    bytes_field(field, concat(kv), out)
  end
end

local function pb_span(s)
  local out = {}
  bytes_field(1, hex_bytes(s.trace), out)
  bytes_field(2, hex_bytes(s.id), out)
  if s.parent then bytes_field(4, hex_bytes(s.parent), out) end
  bytes_field(5, s.name, out)
  tag(6, 0, out); varint(s.kind, out)
  tag(7, 1, out); out[#out + 1] = fixed64(nanos(s.start))
  tag(8, 1, out); out[#out + 1] = fixed64(nanos(s.finish))
  pb_attrs(9, s.attrs, out)
  if s.status then
    local st = {}
    bytes_field(2, s.message or "", st)
    tag(3, 0, st); varint(s.status, st)
    bytes_field(15, concat(st), out)
  end
  return concat(out)
end

local function pb_payload(spans, resource)
  local scope = {}
  bytes_field(1, "weft", scope)
  bytes_field(2, require("weft.core").version, scope)
  local ss = {}
  bytes_field(1, concat(scope), ss)
  for _, s in ipairs(spans) do bytes_field(2, pb_span(s), ss) end
  local res = {}
  pb_attrs(1, resource, res)
  local rs = {}
  bytes_field(1, concat(res), rs)
  bytes_field(2, concat(ss), rs)
  local out = {}
  bytes_field(1, concat(rs), out)
  return concat(out)
end

--- The OTLP export request of spans (a list of finished spans) as
-- protocol ("http/protobuf" or "http/json") wants it: body, content type.
function _M.encode(spans, protocol, resource)
  resource = resource or { "service.name", "weft" }
  if protocol == "http/json" then return json_payload(spans, resource), "application/json" end
  return pb_payload(spans, resource), "application/x-protobuf"
end

---------------------------------------------------------------------------
-- Export
---------------------------------------------------------------------------

-- The resource attributes of the configuration (a flat k, v list).
local function resource_of(c)
  local list = { "service.name", c.service_name, "telemetry.sdk.name", "weft",
                 "telemetry.sdk.language", "lua", "telemetry.sdk.version", require("weft.core").version }
  local keys = {}
  for k in pairs(c.resource or {}) do if k ~= "service.name" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do list[#list + 1] = k; list[#list + 1] = c.resource[k] end
  return list
end

-- Export one batch of the queue (the oldest spans); failures are counted.
local function export_batch()
  local c = cfg
  if not c or qn == 0 then return end
  local n = qn < c.batch_size and qn or c.batch_size
  local batch = {}
  for i = 1, n do batch[i] = queue[i] end
  for i = n + 1, qn do queue[i - n] = queue[i] end
  for i = qn - n + 1, qn do queue[i] = nil end
  qn = qn - n
  local ok, body, ctype = pcall(_M.encode, batch, c.protocol, c.resource_list)
  local res, err
  if ok then
    local headers, secret = { ["Content-Type"] = ctype }, {}
    for k, v in pairs(c.headers or {}) do
      headers[k] = v
      secret[#secret + 1] = k -- OTLP headers carry credentials: redacted from what weft writes
    end
    ok, res, err = pcall(require("weft.http").request, { method = "POST", url = c.endpoint, headers = headers,
      body = body, timeout = c.timeout, connect_timeout = c.timeout, secret_headers = secret })
    if not ok then res, err = nil, res end
  else
    err = "encoding: " .. tostring(body)
  end
  if res and res.status >= 200 and res.status < 300 then
    counts.exported = counts.exported + n
    return
  end
  counts.failed_exports = counts.failed_exports + 1
  counts.dropped = counts.dropped + n
  if res then
    err = format("HTTP %d from %s: %s", res.status, c.endpoint, (tostring(res.body or "")):sub(1, 200))
  else
    err = format("%s: %s", c.endpoint, tostring(err))
  end
  last_error = err
end

-- Export until the queue is empty (the body of the export task).
local function drain()
  while qn > 0 and cfg do export_batch() end
end

-- Start the export task unless one runs (or the caller is an executor:
-- its task would be taken for the invocation's; the run's end schedules).
schedule = function()
  if exporting or qn == 0 or not cfg then return end
  local task = require "weft.task"
  if task.current() then return end
  exporting = task.go(function()
    local ok, err = pcall(drain)
    if not ok then last_error = tostring(err) end
    exporting = nil
  end)
end

---------------------------------------------------------------------------
-- API
---------------------------------------------------------------------------

-- Turn tracing on with options o (raising at level on misuse): true, or
-- nil and an error for a protocol weft does not export.
local function apply(o, level)
  local c, err = normalise(o, level + 1)
  if not c then return nil, err end
  c.resource_list = resource_of(c)
  cfg = c
  hooks(true)
  return true
end

--- Turn tracing on: setup{endpoint = "http://host:4318/v1/traces",
-- protocol = "http/protobuf" | "http/json", headers = {name = value},
-- service_name, resource = {k = v}, timeout (seconds), max_queue,
-- batch_size}; absent options keep their defaults (DEFAULTS). true, or
-- nil and an error for a protocol weft does not export; misuse raises.
function _M.setup(opts)
  local ok, err = apply(opts or {}, 2)
  return ok, err
end

--- Turn tracing on from the standard OTEL_* variables (env_config):
-- true when on, false when they leave it off, or nil and an error naming
-- the variable (tracing stays off). Never raises.
function _M.setup_from_env(getenv)
  local c, err = _M.env_config(getenv)
  if not c then return c, err end
  local ok, on, e = pcall(apply, c, 1)
  if not ok then return nil, (tostring(on):gsub("^weft%.otel%.setup: ", "traces: ")) end
  return on, e
end

--- True while tracing is on.
function _M.enabled() return cfg ~= nil end

--- Export every finished span now (waiting for an export in progress):
-- true, or nil and the last export error when spans were lost since the
-- previous flush (never raises).
function _M.flush()
  if not cfg then return true end
  if exporting then pcall(exporting.wait, exporting) end
  drain()
  local lost = counts.dropped - reported
  reported = counts.dropped
  if lost > 0 then return nil, format("%d span(s) lost: %s", lost, tostring(last_error)) end
  return true
end

--- Flush, then turn tracing off (hooks removed, spans of runs still in
-- flight are not exported). Returns what flush returns.
function _M.shutdown()
  if not cfg then return true end
  local ok, err = _M.flush()
  cfg = nil
  hooks(false)
  runs = {}
  return ok, err
end

--- Counters since the process started: {queued, exported, dropped,
-- failed_exports, last_error}.
function _M.stats()
  return { queued = qn, exported = counts.exported, dropped = counts.dropped,
           failed_exports = counts.failed_exports, last_error = last_error }
end

return _M
