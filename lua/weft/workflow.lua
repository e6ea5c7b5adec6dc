--- Workflow builder and built workflows.
-- `weft.workflow(name):start(a):edge(a, b):build()` collects executors and
-- edges, validates them (naming the offender), compiles them into a C graph
-- (weft.core.sched) and returns a Workflow that can run, spawn and stream.
local _M = {}

local sched = require "weft.core.sched"
local executor = require "weft.executor"
local run = require "weft.run"
local check = require "weft.check"

local type, error, tostring, pairs, ipairs, setmetatable, getmetatable =
  type, error, tostring, pairs, ipairs, setmetatable, getmetatable
local concat, fmt, pcall = table.concat, string.format, pcall
local dump, getupvalue, getinfo = string.dump, debug.getupvalue, debug.getinfo
local callable, is_executor = check.callable, executor.is_executor
local options = check.options

local EDGE = { direct = 0, conditional = 0, switch = 1, fan_out = 2, fan_in = 3 }

local Builder = {}
Builder.__index = Builder
local Workflow = {}
Workflow.__index = Workflow
_M.Builder, _M.Workflow = Builder, Workflow

-- Option specs of the builder's functions (checked at the call).
local WHEN = { type = "callable", expect = "callable (a function(msg) -> truthy)",
               aliases = { "condition", "cond", "predicate", "if", "filter" } }
local EDGE_OPTS = check.spec("edge", { properties = { when = WHEN, name = { type = "string" } } })
local CASE_OPTS = check.spec("switch", { properties = {
  when = WHEN, to = { type = "any", aliases = { "target", "then" } }, name = { type = "string" },
  default = { type = "any" } } })
local SWITCH_OPTS = check.spec("switch", { properties = { name = { type = "string" } } })
local FAN_OUT_OPTS = check.spec("fan_out", { properties = {
  select = { type = "callable", expect = "callable (a function(msg, n) -> list of 1-based indices)",
             aliases = { "selector", "selection", "selection_func", "choose" } },
  name = { type = "string" } } })
local FAN_IN_OPTS = check.spec("fan_in", { properties = { name = { type = "string" } } })
local REDUCER = { type = "callable", expect = "callable (a reducer function(old, new))" }

-- Names of the built-in reducers by function (weft.reduce.*), on first use.
local builtin_reducers
local function builtin_name(fn)
  if not builtin_reducers then
    builtin_reducers = {}
    for k, f in pairs(require "weft.reduce") do builtin_reducers[f] = "weft.reduce." .. k end
  end
  return builtin_reducers[fn]
end

-- What makes a reducer the same across builds (compared by the scheduler
-- when a run switches graphs): a built-in by its name; a Lua function by
-- its bytecode without debug info (so moving it to other lines does not
-- count) and its upvalues (numbers, strings, booleans by value, functions
-- by the same rule, anything else by identity); a C function or callable
-- table by identity. path: the functions being signed (cycles).
local function reducer_sig(fn, path)
  local name = builtin_name(fn)
  if name then return name end
  if type(fn) ~= "function" then return type(fn) .. "@" .. tostring(fn) end
  local ok, code = pcall(dump, fn, true)
  if not ok then return "cfunction@" .. tostring(fn) end
  path = path or { n = 0 }
  if path[fn] then return "cycle:" .. path[fn] end
  path.n = path.n + 1
  path[fn] = path.n
  local parts = { #code .. ":" .. code }
  local i = 1
  while true do
    local uname, v = getupvalue(fn, i)
    if uname == nil then break end
    local t = type(v)
    if t == "function" then
      parts[#parts + 1] = reducer_sig(v, path)
    elseif t == "number" then
      parts[#parts + 1] = fmt("%.17g", v)
    elseif t == "string" then
      parts[#parts + 1] = fmt("%q", v)
    elseif t == "boolean" or t == "nil" then
      parts[#parts + 1] = tostring(v)
    else
      parts[#parts + 1] = t .. "@" .. tostring(v)
    end
    i = i + 1
  end
  path[fn] = nil
  return "(" .. concat(parts, ",") .. ")"
end

-- A reducer as users know it: its built-in name or where it is defined.
local function reducer_label(fn)
  local name = builtin_name(fn)
  if name then return name end
  local info = type(fn) == "function" and getinfo(fn, "S")
  if info and info.what == "Lua" then
    return fmt("the function at %s:%d", info.short_src, info.linedefined)
  end
  return tostring(fn)
end

--- Start building a workflow named name.
function _M.new(name)
  if type(name) ~= "string" or name == "" then
    error("weft.workflow: name must be a non-empty string", 2)
  end
  -- where the workflow was declared, for errors raised by a tail-called
  -- :build() (`return weft.workflow(...):build()` leaves no caller frame)
  local info = debug.getinfo(2, "Sl")
  local site = info and info.currentline and info.currentline > 0
    and (info.short_src .. ":" .. info.currentline) or nil
  return setmetatable({
    name = name, _order = {}, _seen = {}, _edges = {}, _reducers = {}, _rkeys = {},
    _site = site,
  }, Builder)
end

-- Remember an executor object (graph order = first appearance).
local function register(b, ex)
  if is_executor(ex) and not b._seen[ex] then
    b._seen[ex] = true
    b._order[#b._order + 1] = ex
  end
end

-- Check the shape of a reference at the call site.
local function check_ref(v, what)
  if type(v) ~= "string" and not is_executor(v) then
    error(("%s must be an executor or an executor id, got %s"):format(what, type(v)), 3)
  end
  return v
end

-- Display name of a reference for messages.
local function rname(r) return type(r) == "string" and r or r.id end

-- Check the options of a builder method against spec and return them (a
-- table): the error points at the method's caller, or at the
-- weft.workflow() call when that frame is gone (a tail call).
local function opts_of(self, spec, opts, what)
  local err = check.problem(spec, opts == nil and {} or opts, what)
  if not err then return opts or {} end
  local info = debug.getinfo(3, "l")
  if info and info.currentline and info.currentline > 0 then error(err, 3) end
  error((self._site and (self._site .. ": ") or "") .. err, 0)
end

--- Set the start executor (object or id).
function Builder:start(ex)
  self._start = check_ref(ex, "start")
  register(self, ex)
  return self
end

--- Register one or more executor objects.
function Builder:add(...)
  for i = 1, select("#", ...) do
    local ex = select(i, ...)
    if not is_executor(ex) then
      error(("add: argument %d must be an executor object (weft.executor), got %s"):format(i, type(ex)), 2)
    end
    register(self, ex)
  end
  return self
end

--- Direct edge from -> to, conditional with opts.when (opts.name labels it).
function Builder:edge(from, to, opts)
  check_ref(from, "edge: from"); check_ref(to, "edge: to")
  if callable(opts) then opts = { when = opts } end
  opts = opts_of(self, EDGE_OPTS, opts, ("edge '%s -> %s'"):format(rname(from), rname(to)))
  register(self, from); register(self, to)
  self._edges[#self._edges + 1] = {
    kind = opts.when ~= nil and "conditional" or "direct", from = { from }, to = { to },
    when = opts.when, name = opts.name, has_when = opts.when ~= nil,
  }
  return self
end

--- Switch: the first case whose when(msg) holds, else the default case.
function Builder:switch(from, cases)
  check_ref(from, "switch: from")
  if type(cases) ~= "table" then error("switch: cases must be a list of {when = fn, to = ex} and {default = ex}", 2) end
  local at = ("switch from '%s'"):format(rname(from))
  local named = {}
  for k, v in pairs(cases) do if type(k) ~= "number" then named[k] = v end end
  opts_of(self, SWITCH_OPTS, named, at)
  register(self, from)
  local e = { kind = "switch", from = { from }, to = {}, whens = {}, names = {}, name = cases.name }
  for i, c in ipairs(cases) do
    if type(c) ~= "table" then error(("%s: case %d must be a table"):format(at, i), 2) end
    opts_of(self, CASE_OPTS, c, ("%s: case %d"):format(at, i))
    if c.default ~= nil then
      if e.default ~= nil then error(("%s: more than one default case"):format(at), 2) end
      e.default = check_ref(c.default, "switch: default")
      register(self, c.default)
    else
      if c.to == nil then error(("%s: case %d has no 'to'"):format(at, i), 2) end
      if c.when == nil then error(("%s: case %d has no 'when' (use {default = ex} for the fallback)"):format(at, i), 2) end
      check_ref(c.to, "switch: to")
      register(self, c.to)
      local k = #e.to + 1
      e.to[k], e.whens[k], e.names[k] = c.to, c.when, c.name
    end
  end
  self._edges[#self._edges + 1] = e
  return self
end

--- Fan-out from -> every target, or those chosen by opts.select(msg, n).
function Builder:fan_out(from, targets, opts)
  check_ref(from, "fan_out: from")
  if type(targets) ~= "table" or #targets == 0 then error("fan_out: targets must be a non-empty list", 2) end
  opts = opts_of(self, FAN_OUT_OPTS, opts, ("fan_out from '%s'"):format(rname(from)))
  register(self, from)
  local to = {}
  for i, t in ipairs(targets) do to[i] = check_ref(t, "fan_out: target"); register(self, t) end
  self._edges[#self._edges + 1] = {
    kind = "fan_out", from = { from }, to = to, select = opts.select,
    has_select = opts.select ~= nil, name = opts.name,
  }
  return self
end

--- Fan-in: once every source has sent, deliver their messages as one list.
function Builder:fan_in(sources, to, opts)
  if type(sources) ~= "table" or #sources == 0 then error("fan_in: sources must be a non-empty list", 2) end
  check_ref(to, "fan_in: to")
  opts = opts_of(self, FAN_IN_OPTS, opts, ("fan_in to '%s'"):format(rname(to)))
  local from = {}
  for i, s in ipairs(sources) do from[i] = check_ref(s, "fan_in: source"); register(self, s) end
  register(self, to)
  self._edges[#self._edges + 1] = { kind = "fan_in", from = from, to = { to }, name = opts.name }
  return self
end

local DEFAULTS = check.spec("defaults", { properties = {
  max_supersteps = run.OPTIONS.properties.max_supersteps,
  max_concurrency = run.OPTIONS.properties.max_concurrency,
  on_undelivered = run.OPTIONS.properties.on_undelivered,
  limits = run.OPTIONS.properties.limits,
  -- guardrails (a policy), network policy and budget of every run
  guardrails = run.OPTIONS.properties.guardrails,
  network = run.OPTIONS.properties.network,
  budget = run.OPTIONS.properties.budget,
  input = { type = "any" },
} })

-- Validate a defaults table (raises at the caller of the caller).
local function check_defaults(d)
  if type(d) ~= "table" then error("defaults: expects a table {max_supersteps = n, ...}", 3) end
  options(DEFAULTS, d, 3)
  return d -- not a tail call: error levels
end

--- Default run options of the built workflow (max_supersteps,
-- max_concurrency, limits, guardrails, network, budget), used when a run does not give its own (resumed
-- runs too; a run's `limits` override these limit by limit), and `input`,
-- used when a run's input is nil or "" (what `weft run` gives without
-- --input).
function Builder:defaults(d)
  self._defaults = check_defaults(d)
  return self
end

--- Guards of every executor of the workflow (weft.guard objects or
-- functions), after the run's guardrails and before each executor's own:
-- `:guards{weft.guard.pii{}, ...}`; agents run by its executors apply them
-- to their model calls too. Adds to earlier calls.
function Builder:guards(list)
  local l = require("weft.guard").list(list, ("workflow '%s': guards"):format(self.name), 2)
  if l then
    self._guards = self._guards or {}
    for _, g in ipairs(l) do self._guards[#self._guards + 1] = g end
  end
  return self
end

--- Declare per-key state reducers: `:state{ key = weft.reduce.append }`.
function Builder:state(spec)
  if type(spec) ~= "table" then error("state: expects a table {key = reducer}", 2) end
  for k, fn in pairs(spec) do
    if type(k) ~= "string" then error("state: keys must be strings", 2) end
    check.arg("state", ("reducer of key '%s'"):format(k), fn, REDUCER, 2)
    if not self._reducers[k] then self._rkeys[#self._rkeys + 1] = k end
    self._reducers[k] = fn
  end
  return self
end

-- Label of an edge description for error messages, like the C labels.
local function label(e)
  local from, to = {}, {}
  for i, r in ipairs(e.from) do from[i] = rname(r) end
  for i, r in ipairs(e.to) do to[i] = rname(r) end
  if e.default then to[#to + 1] = rname(e.default) end
  local l
  if #from > 1 then l = "[" .. concat(from, ", ") .. "] -> " .. to[1]
  elseif #to > 1 then l = from[1] .. " -> [" .. concat(to, ", ") .. "]"
  else l = from[1] .. " -> " .. (to[1] or "?") end
  if e.name then l = l .. " (" .. e.name .. ")" end
  return "edge '" .. l .. "'"
end

-- Validation failure: carries the message up to Builder:build.
local BuildError = {}

-- Compile the builder (raises BuildError tables for validation failures).
local function compile(self)
  local name = self.name
  local function fail(msg)
    error(setmetatable({ msg = ("workflow '%s': %s"):format(name, msg) }, BuildError), 0)
  end
  if self._start == nil then fail("no start executor") end

  -- executors by id, in graph order (start first)
  local order, byid = {}, {}
  local function put(ex)
    local prev = byid[ex.id]
    if prev == nil then
      byid[ex.id] = ex
      order[#order + 1] = ex
    elseif prev ~= ex then
      fail(("duplicate executor id '%s'"):format(ex.id))
    end
  end
  if is_executor(self._start) then put(self._start) end
  for _, ex in ipairs(self._order) do put(ex) end
  -- "unknown executor 'x'; did you mean 'y'?" among the ids
  local function unknown(r)
    local ids = {}
    for i, ex in ipairs(order) do ids[i] = ex.id end
    return ("unknown executor '%s'%s"):format(rname(r), check.did_you_mean(rname(r), ids))
  end
  if type(self._start) == "string" and not byid[self._start] then
    fail("start: " .. unknown(self._start))
  end
  local start = byid[rname(self._start)]
  -- move start to the front of graph order
  for i, ex in ipairs(order) do
    if ex == start then table.remove(order, i); table.insert(order, 1, ex); break end
  end
  local index, ids, handlers = {}, {}, {}
  local exec_guards -- executor index -> its guards
  for i, ex in ipairs(order) do
    index[ex.id], index[ex], ids[i], handlers[i] = i, i, ex.id, ex.handle
    if ex.guards then
      exec_guards = exec_guards or {}
      exec_guards[i] = ex.guards
    end
  end
  -- the guard plan of runs without guardrails (false: nothing guarded,
  -- the invocations' one check)
  local plan = false
  if exec_guards or self._guards then
    plan = require("weft.guard").plan(nil, self._guards, exec_guards, #order) or false
  end
  local function resolve(e, r)
    local i = index[r]
    if not i then fail(("%s: %s"):format(label(e), unknown(r))) end
    if type(r) ~= "string" and order[i] ~= r then
      fail(("duplicate executor id '%s'"):format(r.id))
    end
    return i
  end

  local g = sched.graph_new(name)
  for _, ex in ipairs(order) do
    local r = ex.retry
    local _, err = sched.graph_add_exec(g, ex.id, executor.KINDS[ex.kind], r.max_attempts,
      r.backoff, r.backoff_factor, r.max_backoff, ex.timeout, ex.on_error == "continue")
    if err then fail((err:gsub("^workflow '[^']*': ", ""))) end
  end
  sched.graph_set_start(g, index[start.id])

  local fns = { conds = {}, selects = {}, reducers = {} }
  local desc_edges = {}
  for _, e in ipairs(self._edges) do
    local src, tgt, conds = {}, {}, nil
    for i, r in ipairs(e.from) do src[i] = resolve(e, r) end
    for i, r in ipairs(e.to) do tgt[i] = resolve(e, r) end
    local dflt = e.default ~= nil and resolve(e, e.default) or nil
    local efns
    -- conditions and selectors were checked when the edge was added
    if e.kind == "conditional" then
      conds, efns = { true }, { e.when }
    elseif e.kind == "switch" then
      conds, efns = {}, {}
      for i = 1, #e.to do conds[i], efns[i] = true, e.whens[i] end
      if #e.to == 0 and dflt == nil then fail(("switch from '%s': no cases"):format(rname(e.from[1]))) end
    end
    local idx, err = sched.graph_add_edge(g, EDGE[e.kind], e.name, src, tgt, conds, dflt, e.has_select)
    if not idx then fail(err) end
    fns.conds[idx] = efns
    if e.has_select then fns.selects[idx] = e.select end
    desc_edges[#desc_edges + 1] = e
  end
  for _, k in ipairs(self._rkeys) do
    local fn = self._reducers[k]
    fns.reducers[sched.graph_add_reducer(g, k, reducer_sig(fn), reducer_label(fn))] = fn
  end
  local ok, err = sched.graph_finalize(g, fns)
  if not ok then fail((err:gsub("^workflow '[^']*': ", ""))) end

  return setmetatable({
    name = name, start = start.id, _graph = g, _order = order, _index = index,
    _ids = ids, _handlers = handlers, _edges = desc_edges, _reducer_fns = self._reducers,
    _defaults = self._defaults, _guards = self._guards, _exec_guards = exec_guards, _plan = plan,
  }, Workflow)
end

--- Validate and compile; returns a Workflow or raises naming the offender.
-- The error points at the caller of :build(), or at the weft.workflow() call
-- when :build() was tail-called.
function Builder:build()
  local ok, res = pcall(compile, self)
  if ok then return res end
  if getmetatable(res) ~= BuildError then error(res, 0) end
  local caller = debug.getinfo(2, "Sl")
  if caller and caller.currentline and caller.currentline > 0 then
    error(res.msg, 2)
  end
  error((self._site and (self._site .. ": ") or "") .. res.msg, 0)
end

--- Set default run options on a built workflow (see Builder:defaults);
-- returns the workflow.
function Workflow:set_defaults(d)
  local merged = {}
  for k, v in pairs(self._defaults or {}) do merged[k] = v end
  for k, v in pairs(check_defaults(d)) do merged[k] = v end
  merged.limits = run.merge_limits((self._defaults or {}).limits, d.limits)
  self._defaults = merged
  return self
end

--- Describe the graph: {name, start, executors = {{id, kind}}, edges = {...}}.
function Workflow:describe()
  local execs, edges = {}, {}
  for i, ex in ipairs(self._order) do execs[i] = { id = ex.id, kind = ex.kind } end
  for i, e in ipairs(self._edges) do
    local d = { kind = e.kind, from = {}, to = {}, name = e.name }
    for j, r in ipairs(e.from) do d.from[j] = rname(r) end
    for j, r in ipairs(e.to) do d.to[j] = rname(r) end
    if e.kind == "switch" then
      d.cases = {}
      for j, r in ipairs(e.to) do d.cases[j] = { to = rname(r), name = e.names[j] } end
      if e.default ~= nil then
        d.default = rname(e.default)
        d.to[#d.to + 1] = d.default
      end
    elseif e.kind == "fan_out" and e.has_select then
      d.select = true
    end
    edges[i] = d
  end
  local json = require "weft.json"
  return { name = self.name, start = self.start, executors = json.array(execs), edges = json.array(edges) }
end

--- Start a run and return its handle (see weft.run).
function Workflow:spawn(input, opts)
  return run.spawn(self, input, opts, 2)
end

--- Run to the end and return the result table.
function Workflow:run(input, opts)
  return run.spawn(self, input, opts, 2):wait()
end

--- Answer request request_id of run run_id: a run of this process resumes
-- at once; with opts.store, the answer is stored and the run is restored
-- from its last checkpoint in this process (returning its handle). true
-- (or the handle), or nil, err (unknown run or request, a run that ended,
-- another definition hash: then nothing is stored). true without a handle
-- when another process owns the run: it continues it with the answer.
function Workflow:respond(run_id, request_id, value, opts)
  local h = run.find(run_id)
  if h and h.wf == self then
    local ok, err = h:respond(request_id, value)
    if ok and h.durable then
      require("weft.durable").answer(h.durable.store, run_id, request_id, value)
    end
    return ok, err
  end
  if not (opts and opts.store) then
    return nil, ("workflow '%s' has no run '%s' in this process"):format(self.name, tostring(run_id))
  end
  local durable = require "weft.durable"
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.store = durable.store(opts.store)
  -- checked before the answer is stored: a refusal changes nothing
  local ok, lease = pcall(durable.respond, self, run_id, request_id, value, o)
  if not ok then return nil, tostring(lease) end
  if not lease then return true end -- its owner (another process) continues it
  o._lease = lease
  return self:resume(run_id, o)
end

--- Resume a durable run from its last checkpoint (or opts.from) in this
-- process; returns its handle. opts: store (required), from, force,
-- on_event, max_supersteps, max_concurrency. A definition whose hash
-- differs from the checkpoint's is refused unless force.
function Workflow:resume(run_id, opts)
  if type(opts) ~= "table" or opts.store == nil then
    error("resume: options must give the store ({store = url})", 2)
  end
  local durable = require "weft.durable"
  local ok, d, restore, input = pcall(durable.resume, self, run_id, opts)
  if not ok then error("resume: " .. tostring(d), 2) end
  local o = {}
  for k, v in pairs(opts) do
    if k ~= "from" and k ~= "force" then o[k] = v end
  end
  o.run_id = run_id
  return run.start(self, input, o, 2, d, restore)
end

--- Iterate the events of a new run as they are published.
function Workflow:stream(input, opts)
  return run.stream(self, input, opts)
end

--- True when v is a built workflow.
function _M.is_workflow(v) return getmetatable(v) == Workflow end
--- True when v is an unbuilt workflow builder.
function _M.is_builder(v) return getmetatable(v) == Builder end

return _M
