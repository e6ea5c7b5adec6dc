--- weft.serve.health — `GET /api/v1/health` and `GET /metrics` (Prometheus
-- text format 0.0.4): weft_runs_total{status}, weft_runs_started_total,
-- weft_supersteps_total, weft_executor_duration_seconds (histogram of
-- executor invocation durations), weft_run_duration_seconds (histogram of
-- run durations), weft_http_requests_total{method,code},
-- weft_executions_running, weft_llm_requests_total, weft_tokens_total;
-- with a worker pool (weft serve --workers) also weft_process_info and the
-- counters each live worker publishes (weft_worker_*{worker});
-- weft_guardrail_triggered_total{guard,stage,action} (weft.guard.counters:
-- the guards of this process that modified or blocked something).
-- `metrics()` makes the counters the app updates.
-- Uses weft, weft.json, weft.store, weft.serve.executions (TERMINAL).
local json = require "weft.json"

local pairs, ipairs, tostring, tonumber, type, pcall, fmt =
  pairs, ipairs, tostring, tonumber, type, pcall, string.format

local _M = {}

--- Histogram bucket bounds (seconds).
_M.BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 }

local Metrics = {}
Metrics.__index = Metrics

--- A new set of counters.
-- An empty histogram.
local function histogram()
  local b = {}
  for i = 1, #_M.BUCKETS do b[i] = 0 end
  return { buckets = b, sum = 0, count = 0 }
end

-- Record seconds in histogram h.
local function observe(h, seconds)
  for i, le in ipairs(_M.BUCKETS) do
    if seconds <= le then h.buckets[i] = h.buckets[i] + 1 end
  end
  h.sum = h.sum + seconds
  h.count = h.count + 1
end

function _M.metrics()
  return setmetatable({ runs = {}, runs_started = 0, supersteps = 0, http_counts = {},
                        exec_hist = histogram(), run_hist = histogram() }, Metrics)
end

--- Count a finished run: its status, supersteps (when not counted live) and duration.
function Metrics:run_finished(status, _, seconds)
  self.runs[status] = (self.runs[status] or 0) + 1
  observe(self.run_hist, seconds)
end

--- Record the duration of one executor invocation (seconds).
function Metrics:executor_done(seconds)
  observe(self.exec_hist, seconds)
end

--- Count an HTTP request.
function Metrics:count_http(method, code)
  local k = tostring(method) .. " " .. tostring(code)
  self.http_counts[k] = (self.http_counts[k] or 0) + 1
end

-- Sorted keys of a table.
local keys = require("weft.serve.app").sorted_keys

-- Escape a label value.
local function esc(v) return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" })) end

--- The Prometheus text of app's metrics.
function _M.prometheus(app, srv)
  local m, out = app.metrics, {}
  local function add(...) out[#out + 1] = fmt(...) end
  add("# HELP weft_runs_total Workflow runs that ended, by status.")
  add("# TYPE weft_runs_total counter")
  for _, st in ipairs(keys(m.runs)) do add('weft_runs_total{status="%s"} %d', esc(st), m.runs[st]) end
  add("# HELP weft_runs_started_total Workflow runs started through the API.")
  add("# TYPE weft_runs_started_total counter")
  add("weft_runs_started_total %d", m.runs_started)
  add("# HELP weft_supersteps_total Supersteps completed by runs started through the API.")
  add("# TYPE weft_supersteps_total counter")
  add("weft_supersteps_total %d", m.supersteps)
  local function hist(name, help, h)
    add("# HELP %s %s", name, help)
    add("# TYPE %s histogram", name)
    for i, le in ipairs(_M.BUCKETS) do add('%s_bucket{le="%s"} %d', name, tostring(le), h.buckets[i]) end
    add('%s_bucket{le="+Inf"} %d', name, h.count)
    add("%s_sum %.6f", name, h.sum)
    add("%s_count %d", name, h.count)
  end
  hist("weft_executor_duration_seconds", "Duration of executor invocations.", m.exec_hist)
  hist("weft_run_duration_seconds", "Duration of workflow runs.", m.run_hist)
  local running = 0
  for _, x in pairs(app.executions) do
    if x.status == "running" or x.status == "idle" then running = running + 1 end
  end
  add("# HELP weft_executions_running Executions running or waiting for a response.")
  add("# TYPE weft_executions_running gauge")
  add("weft_executions_running %d", running)
  add("# HELP weft_http_requests_total API requests by method and status code.")
  add("# TYPE weft_http_requests_total counter")
  for _, k in ipairs(keys(m.http_counts)) do
    local method, code = k:match("^(%S+) (%S+)$")
    add('weft_http_requests_total{method="%s",code="%s"} %d', esc(method), esc(code), m.http_counts[k])
  end
  if srv then
    add("# HELP weft_http_connections Open HTTP connections.")
    add("# TYPE weft_http_connections gauge")
    add("weft_http_connections %d", srv:connections())
    add("# HELP weft_http_streams Open streamed responses (server-sent events).")
    add("# TYPE weft_http_streams gauge")
    add("weft_http_streams %d", srv:streams())
  end
  local llm = package.loaded["weft.llm"]
  local c = llm and llm.counters or { requests = {}, tokens = {} }
  add("# HELP weft_llm_requests_total Model calls of this process, by provider and outcome.")
  add("# TYPE weft_llm_requests_total counter")
  for _, p in ipairs(keys(c.requests)) do
    for _, st in ipairs(keys(c.requests[p])) do
      add('weft_llm_requests_total{provider="%s",status="%s"} %d', esc(p), esc(st), c.requests[p][st])
    end
  end
  if app.pool then _M.pool_metrics(app, add) end
  local gc = package.loaded["weft.guard"]
  gc = gc and gc.counters or {}
  add("# HELP weft_guardrail_triggered_total Guard verdicts other than allow in this process.")
  add("# TYPE weft_guardrail_triggered_total counter")
  for _, g in ipairs(keys(gc)) do
    for _, st in ipairs(keys(gc[g])) do
      for _, a in ipairs(keys(gc[g][st])) do
        add('weft_guardrail_triggered_total{guard="%s",stage="%s",action="%s"} %d', esc(g), esc(st), esc(a),
          gc[g][st][a])
      end
    end
  end
  add("# HELP weft_tokens_total Tokens used by model calls of this process.")
  add("# TYPE weft_tokens_total counter")
  for _, p in ipairs(keys(c.tokens)) do
    add('weft_tokens_total{provider="%s",kind="input"} %d', esc(p), c.tokens[p].input)
    add('weft_tokens_total{provider="%s",kind="output"} %d', esc(p), c.tokens[p].output)
  end
  return table.concat(out, "\n") .. "\n"
end

--- Seconds after which a worker that published no counters is left out
-- of /metrics (it died or stopped).
_M.WORKER_STALE = 120

-- The live workers of app's pool: their published counters (record
-- "workers", name), sorted by name.
local function workers(app)
  local out, now = {}, require("weft").now()
  for _, row in ipairs(app.store:scan("workers", "") or {}) do
    local ok, t = pcall(json.decode, row.value)
    if ok and type(t) == "table" and now - (tonumber(t.updated) or 0) < _M.WORKER_STALE then out[#out + 1] = t end
  end
  table.sort(out, function(a, b) return tostring(a.name) < tostring(b.name) end)
  return out
end

--- Add the pool's lines to /metrics (add(fmt, ...)): which process this is
-- and, per live worker (label worker), the counters it published.
function _M.pool_metrics(app, add)
  local me = require("weft.store").owner()
  add("# HELP weft_process_info This process: an API replica of a worker pool.")
  add("# TYPE weft_process_info gauge")
  add('weft_process_info{name="%s",role="api",queue="%s"} 1', esc(me.host .. ":" .. me.pid), esc(app.pool.queue))
  local ws = workers(app)
  add("# HELP weft_worker_executions_running Executions a worker of the pool runs now.")
  add("# TYPE weft_worker_executions_running gauge")
  for _, t in ipairs(ws) do add('weft_worker_executions_running{worker="%s"} %d', esc(t.name), t.running or 0) end
  add("# HELP weft_worker_executions_total Executions a worker took, by what became of them.")
  add("# TYPE weft_worker_executions_total counter")
  for _, t in ipairs(ws) do
    for _, k in ipairs({ "started", "resumed", "completed", "failed", "cancelled", "idle", "deferred", "reclaimed" }) do
      add('weft_worker_executions_total{worker="%s",outcome="%s"} %d', esc(t.name), k, tonumber(t[k]) or 0)
    end
  end
  add("# HELP weft_worker_llm_requests_total Model calls of a worker, by provider and outcome.")
  add("# TYPE weft_worker_llm_requests_total counter")
  for _, t in ipairs(ws) do
    for _, p in ipairs(keys(type(t.llm_requests) == "table" and t.llm_requests or {})) do
      for _, st in ipairs(keys(t.llm_requests[p])) do
        add('weft_worker_llm_requests_total{worker="%s",provider="%s",status="%s"} %d', esc(t.name), esc(p),
          esc(st), tonumber(t.llm_requests[p][st]) or 0)
      end
    end
  end
end

--- Install /api/v1/health and /metrics on app.
function _M.install(app)
  app:route("GET", "/api/v1/health", function(self)
    local weft = require "weft"
    local running = 0
    for _, x in pairs(self.executions) do
      if x.status == "running" or x.status == "idle" then running = running + 1 end
    end
    local body = { status = "ok", version = weft.version, uptime_seconds = weft.now() - self.started,
                   store = self.store.kind, durable = self.durable, executions_running = running }
    if self.pool then
      body.queue, body.workers = self.pool.queue, #workers(self)
      local info = self.store:queue_info(self.pool.queue)
      body.queued = info and info.waiting or nil
    end
    return 200, body
  end)

  app:route("GET", "/metrics", function(self, req, _, res)
    res:status(200)
    res:header("content-type", "text/plain; version=0.0.4; charset=utf-8")
    res:send(_M.prometheus(self, req.server))
    res.status_code = 200
  end)
end

return _M
