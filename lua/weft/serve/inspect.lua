--- weft.serve.inspect — the read endpoints the dashboard (docs/dashboard.md)
-- needs beyond the REST API:
--   GET /api/v1/workflows/{id}/graph   the graph drawn (SVG, weft.graphviz),
--       its description, the definition hash, and the Lua source or the
--       declarative definition;
--   GET /api/v1/executions/{id}/checkpoints       the checkpoint log of a
--       durable execution (per checkpoint: superstep, keys written, full
--       snapshot or not, outputs and pending messages counted);
--   GET /api/v1/executions/{id}/checkpoints/{n}   the shared state,
--       outputs and pending messages at checkpoint n.
-- GET: the `read` scope, like every GET of the API.
-- Uses weft.json, weft.durable, weft.graphviz, weft.serve.{errors, workflows}.
local json = require "weft.json"
local errors = require "weft.serve.errors"

local type, ipairs, tostring, tonumber, pcall = type, ipairs, tostring, tonumber, pcall
local throw = errors.throw

local _M = {}

--- The SVG of workflow description desc, or nil, err (weft.graphviz.svg;
-- "graph unavailable: ..." when this weft cannot draw).
function _M.svg(desc)
  local ok, gv = pcall(require, "weft.graphviz")
  if not ok or type(gv) ~= "table" or type(gv.svg) ~= "function" then
    return nil, "graph unavailable: this weft has no Graphviz layout (weft.graphviz.svg)"
  end
  local ok2, svg, err = pcall(gv.svg, desc)
  if not ok2 then return nil, "graph unavailable: " .. errors.scrub(tostring(svg)) end
  if type(svg) ~= "string" then return nil, "graph unavailable: " .. errors.scrub(tostring(err)) end
  return svg
end

-- The Lua source of script id of app (nil when it is not a script).
local function script_source(app, id)
  if not app.scripts_dir then return nil end
  local f = io.open(app.scripts_dir .. "/" .. id .. ".lua", "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- The durable run record of execution id (404 when it has none).
local function record(app, id)
  local durable = require "weft.durable"
  local ok, rec, err = pcall(durable.record, app.store, id)
  if not ok then throw(500, "corrupt_run", errors.scrub(tostring(rec))) end
  if not rec then
    if err and not tostring(err):find("unknown run", 1, true) then
      throw(503, "store_unavailable", "store: " .. tostring(err))
    end
    throw(404, "not_durable", ("execution '%s' has no checkpoints (it is not durable, or unknown)"):format(id),
      { id = id })
  end
  return rec
end

-- The checkpoint rows of execution id from..to (store log "ckpt").
local function rows(app, id, from, to)
  local list, err = app.store:range("ckpt", id, from, to)
  if not list then throw(503, "store_unavailable", "store: " .. tostring(err)) end
  return list
end

-- Decode checkpoint row r (500 naming it when corrupt).
local function entry(id, r)
  local ok, e = pcall(json.decode, r.value)
  if not ok or type(e) ~= "table" then
    throw(500, "corrupt_checkpoint", ("checkpoint %d of execution '%s' is not valid JSON"):format(r.seq, id))
  end
  return e
end

-- weft.durable.state_at's failure codes -> HTTP status and error code.
local STATE_ERRORS = {
  unknown = { 404, "not_durable" }, no_checkpoint = { 404, "not_found" }, no_snapshot = { 404, "no_snapshot" },
  missing = { 404, "not_found" }, corrupt = { 500, "corrupt_checkpoint" }, reducer = { 500, "reducer_failed" },
  store = { 503, "store_unavailable" },
}

-- State, outputs and pending messages at checkpoint n of execution id:
-- weft.durable's fold (the one a resume from n starts with), with the
-- reducers of wf (nil when it cannot be loaded: written values replace).
local function state_at(app, id, n, wf)
  local st, err, code = require("weft.durable").state_at(wf, app.store, id, n)
  if not st then
    local e = STATE_ERRORS[code] or STATE_ERRORS.store
    throw(e[1], e[2], errors.scrub(tostring(err)), { checkpoint = n })
  end
  local outputs = json.array()
  for i, v in ipairs(st.outputs) do outputs[i] = v end
  return json.object(st.state), outputs, st
end

--- How many drawn graphs are kept (by definition hash).
_M.MAX_CACHED = 256

--- Install the inspection routes on app.
function _M.install(app)
  app:route("GET", "/api/v1/workflows/{id}/graph", function(self, _, p)
    local workflows = require "weft.serve.workflows"
    local wf = workflows.get(self, p.id) -- 404 / 500 script_error
    local desc = wf:describe()
    local out = { id = p.id, name = wf.name, graph = desc }
    local okh, h = pcall(require("weft.durable").hash, wf)
    if okh then out.hash = h end
    local d = self:def_get("workflow", p.id)
    if d then
      out.source, out.definition = "json", d
    else
      out.source, out.lua = "lua", script_source(self, p.id)
      local v = self.host and self.host:info(p.id)
      if v then out.version, out.reload_error = v.version, errors.scrub(v.error) end
    end
    -- the layout blocks the loop (~1-2 ms for 20 executors): drawn once
    -- per definition hash
    local cache = self.graph_svgs or { n = 0 }
    self.graph_svgs = cache
    local hit = out.hash and cache[out.hash]
    if not hit then
      local svg, err = _M.svg(desc)
      hit = { svg = svg, err = err }
      if out.hash and svg then
        if cache.n >= _M.MAX_CACHED then cache = { n = 0 }; self.graph_svgs = cache end
        cache[out.hash], cache.n = hit, cache.n + 1
      end
    end
    if hit.svg then out.svg = hit.svg else out.svg_error = hit.err end
    return 200, out
  end)

  app:route("GET", "/api/v1/executions/{id}/checkpoints", function(self, _, p)
    local rec = record(self, p.id)
    local list = json.array()
    local fulls = {}
    for _, f in ipairs(rec.fulls or {}) do fulls[f] = true end
    for _, r in ipairs(rows(self, p.id, 1, 0)) do
      local e = entry(p.id, r)
      local keys = json.array()
      for _, w in ipairs(e.writes or {}) do keys[#keys + 1] = w[1] end
      list[#list + 1] = { seq = r.seq, superstep = e.superstep, supersteps = e.supersteps,
        full = fulls[r.seq] == true, writes = keys, outputs = #(e.outputs or {}),
        pending = #(e.pending or {}) }
    end
    return 200, { id = p.id, workflow = rec.workflow, status = rec.status, checkpoints = list,
                  resumable = rec.status ~= "completed" and rec.status ~= "cancelled" }
  end)

  app:route("GET", "/api/v1/executions/{id}/checkpoints/{seq}", function(self, _, p)
    local id, n = p.id, tonumber(p.seq)
    if not n or n < 1 or n ~= math.floor(n) then
      throw(400, "bad_request", ("checkpoint must be an integer >= 1, got %q"):format(p.seq), { field = "seq" })
    end
    local rec = record(self, id)
    local okw, wf = pcall(require("weft.serve.workflows").get, self, rec.workflow)
    local state, outputs, e = state_at(self, id, n, okw and wf or nil)
    -- a pending message names its sender by index in the graph's order
    local execs = okw and wf:describe().executors or {}
    local pending = json.array()
    for i, m in ipairs(e.pending or {}) do
      local src = execs[tonumber(m.src) or 0]
      pending[i] = { from = src and src.id or m.src, message = m.msg }
    end
    return 200, { id = id, seq = n, superstep = e.superstep, supersteps = e.supersteps, state = state,
                  outputs = outputs, pending = pending }
  end)
end

return _M
