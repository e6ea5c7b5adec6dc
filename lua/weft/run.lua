--- Runs: handles of workflow runs in flight and their results.
-- A handle is returned by `wf:spawn`; `h:wait()` blocks (runs the loop on
-- the main thread, yields inside an executor) and returns the result
-- `{status, outputs, events, supersteps, error, duration_ms, run_id, state}`
-- where `events` and `state` are materialised on first access.
local _M = {}

local sched = require "weft.core.sched"
local loop = require "weft.core.loop"
local context = require "weft.context" -- sets the worker body every invocation runs
local check = require "weft.check"
local json = require "weft.json"
local invocation = require "weft.invocation"

local getmetatable, type, error, setmetatable, rawget, rawset, tostring, next =
  getmetatable, type, error, setmetatable, rawget, rawset, tostring, next
local jcheck, current = json.check, invocation.current
local running = coroutine.running
local info, run_new, run_wait = sched.run_info, sched.run_new, sched.run_wait
local LIMIT_DEFAULTS = sched.LIMIT_DEFAULTS
local LIMIT_MAX = 2147483647

local Run = {}
Run.__index = Run
_M.Run = Run

-- Runs of this process by id (weak: a finished, forgotten run goes away).
local by_id = setmetatable({}, { __mode = "v" })

-- A result's lazy fields (events, state) read the C run. The metatable of a
-- result is its run table (with this function as its __index), so that
-- pairs(result) shows only data fields and the result keeps its run alive
-- without a weak table (its insert was 5% of a one-executor run).
local function result_index(t, k)
  local c = getmetatable(t).c
  if not c then return nil end
  if k == "events" then
    local ev = sched.run_events(c)
    rawset(t, "events", ev)
    return ev
  elseif k == "state" then
    local st = sched.run_state(c)
    rawset(t, "state", st)
    return st
  end
end

local LIMITS = { type = "table", noun = "limit", properties = {} }
for k in pairs(LIMIT_DEFAULTS) do
  LIMITS.properties[k] = { type = "integer", minimum = 1, maximum = LIMIT_MAX }
end

-- A list (a table whose elements 1..n are all that it holds) of values
-- passing ok(v); the empty table is a list.
local function list_of(ok)
  return function(t)
    local n = #t
    for k, v in pairs(t) do
      if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 or not ok(v) then return false end
    end
    return true
  end
end

local function host_pattern(v) return type(v) == "string" and v ~= "" and not v:find("[%s/@]") end
local function port(v) return type(v) == "number" and v % 1 == 0 and v >= 1 and v <= 65535 end
local function cidr(v)
  if type(v) ~= "string" then return false end
  local a, bits = v:match("^([%x:.]+)/(%d+)$")
  if not a then a = v:match("^[%x:.]+$") end
  if not a then return false end
  local v4 = a:find("^%d+%.%d+%.%d+%.%d+$") ~= nil
  return (v4 or a:find(":", 1, true) ~= nil) and (bits == nil or tonumber(bits) <= (v4 and 32 or 128))
end
local function nonneg(v) return type(v) == "number" and v >= 0 and v < math.huge end

--- The spec of a network policy (run option `network`,
-- weft.http.configure{network =} and request option `network`).
_M.NETWORK = { type = "table", noun = "network option", properties = {
  allow_hosts = { type = "table", expect = 'a list of host names or "*.domain" wildcards',
                  test = list_of(host_pattern) },
  block_ports = { type = "table", expect = "a list of ports (1 to 65535)", test = list_of(port) },
  allow_private = { type = "boolean" },
  allow_cidrs = { type = "table", expect = 'a list of address ranges such as "10.1.0.0/16"',
                  test = list_of(cidr) },
} }

-- prices: "provider:model" -> {input = USD per 1M tokens, output = ...}
local function prices(t)
  for k, v in pairs(t) do
    if type(k) ~= "string" or not k:find("^[^:]+:.+$") or type(v) ~= "table" then return false end
    for f, x in pairs(v) do
      if (f ~= "input" and f ~= "output") or not nonneg(x) then return false end
    end
  end
  return true
end

--- The spec of a run budget (run option `budget`).
_M.BUDGET = { type = "table", noun = "budget option", properties = {
  seconds = { type = "number", expect = "a number of seconds > 0",
              test = function(v) return v > 0 and v < math.huge end },
  tokens = { type = "integer", minimum = 1 },
  cost = { type = "number", minimum = 0, expect = "an amount of USD >= 0",
           test = function(v) return v < math.huge end },
  prices = { type = "table", test = prices,
             expect = 'a table of "provider:model" = {input = USD per 1M tokens, output = ...}' },
} }

-- The budget of the process's runs (set_budget), or nil.
local process_budget

--- The spec of run options (weft.check); workflow defaults share its
-- entries.
_M.OPTIONS = check.spec("run", { properties = {
  max_supersteps = { type = "integer", minimum = 1 },
  max_concurrency = { type = "integer", minimum = 0 },
  on_undelivered = { enum = { "event", "error" } },
  limits = LIMITS,
  on_event = { type = "function", expect = "a function(event)" },
  run_id = { type = "string", minLength = 1 },
  events = { type = "boolean" },
  propagate = { type = "boolean" },
  store = { type = "any" },
  script = { type = "any" },
  -- submit to the worker pool of this store instead (weft.pool.spawn)
  queue = { type = "any", expect = "a store or a store URL" },
  workflow = { type = "string", minLength = 1 },
  lease = { type = "table", properties = { ttl = { type = "number", minimum = 0.001 },
    renew = { type = "number", minimum = 0.001 }, wait = { type = "boolean" },
    -- while waiting: a function returning true stops the wait (cancelled)
    cancel = { type = "callable" } } },
  -- guardrails (weft.guardrails' policy), network policy and budget: kept
  -- on the run table (run.guardrails, run.network, run.budget) and
  -- inherited by nested runs
  guardrails = { type = "table" },
  network = _M.NETWORK,
  budget = _M.BUDGET,
} })
local LIMITS_SPEC = check.spec("run", LIMITS)
local BUDGET_SPEC = check.spec("run", { properties = { budget = _M.BUDGET } })

--- The default limits on what invocations buffer until the barrier
-- (`{messages_per_invocation = 100000, ...}`; a copy).
function _M.limit_defaults()
  local t = {}
  for k, v in pairs(LIMIT_DEFAULTS) do t[k] = v end
  return t
end

--- Validate a `limits` table of run options or workflow defaults; raises
-- "<what>: ..." at the caller's caller (level counts from there).
function _M.check_limits(t, what, level)
  check.options(LIMITS_SPEC, { limits = t }, (level or 1) + 1, what)
  return t -- not a tail call: error levels
end

--- Limits of b over those of a (either may be nil): a new table.
function _M.merge_limits(a, b)
  if a == nil or b == nil then return a or b end
  local t = {}
  for k, v in pairs(a) do t[k] = v end
  for k, v in pairs(b) do t[k] = v end
  return t
end

-- Validate run options, raising at the caller's level; no options (nil
-- or {}) skip the spec walk (nil gives an empty table, as check.options).
-- The options of a run given none (shared, never written: a write raises).
local NO_OPTS = setmetatable({}, { __newindex = function() error("run: NO_OPTS is read-only", 2) end })

local function check_opts(opts, level)
  if opts == nil then return NO_OPTS end
  if type(opts) == "table" and next(opts) == nil then return opts end
  local o = check.options(_M.OPTIONS, opts, level + 1)
  return o -- not a tail call: error levels
end

-- A run started inside an executor is nested: its agent_update events are
-- republished live on the parent invocation, with data.path the executor
-- ids from the outermost run down to the one that streamed.
-- (The options of a nested run are built apart from propagating so that its
-- common path, no parent, closes no upvalues: UCLO is NYI for the JIT and
-- aborted the trace of every run.)
local function nested_opts(opts, parent)
  local pexec = parent.executor_id
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  -- the policies of the enclosing run hold in the nested one unless it
  -- gives its own
  local prun = parent._run
  if o.guardrails == nil then o.guardrails = prun.guardrails end
  if o.network == nil then o.network = prun.network end
  if o.budget == nil then o.budget = prun.budget end
  o._parent_run = prun
  local user = opts.on_event
  o.on_event = function(ev)
    if ev.type == "agent_update" then
      local data, path = {}, { pexec }
      local inner = type(ev.data) == "table" and ev.data or { value = ev.data }
      for k, v in pairs(inner) do data[k] = v end
      if type(inner.path) == "table" then
        for i = 1, #inner.path do path[i + 1] = inner.path[i] end
      else
        path[2] = ev.executor_id
      end
      data.path = path
      parent:emit_live("agent_update", ev.name, data)
    end
    if user then user(ev) end
  end
  return o
end

local function propagating(opts)
  -- the main thread is never inside an invocation (executors run in tasks)
  if opts.propagate == false or running() == nil then return opts end
  local parent = current()
  if not parent then return opts end
  return nested_opts(opts, parent)
end

-- The tracer every run's options go through (weft.otel's, while tracing
-- is on; nil otherwise: one upvalue test per run).
local tracer

--- Set the tracer: fn(wf, opts) -> opts is called as each run starts
-- (weft.otel wraps opts.on_event with it); nil removes it.
function _M.set_tracer(fn)
  if fn ~= nil and type(fn) ~= "function" then error("run.set_tracer: expects a function or nil", 2) end
  tracer = fn
end

--- Start a run of workflow wf (used by Workflow:spawn / :run).
function _M.spawn(wf, input, opts, level)
  level = level or 1
  opts = check_opts(opts, level + 1)
  if input ~= nil then
    local t = type(input)
    if t ~= "string" and t ~= "boolean" then
      local e = jcheck(input, "input")
      if e then error("run: " .. e, level + 1) end
    end
  end
  if opts.queue ~= nil then return require("weft.pool").spawn(wf, input, opts) end
  return _M.start(wf, input, opts, level + 1)
end

--- Create and start the run (restore: a rebuilt checkpoint, d: durable
-- state from weft.durable, gate: call run.checkpoint at every barrier even
-- without a store — weft.host switches versions there).
function _M.start(wf, input, opts, level, d, restore, gate)
  local dflt = wf._defaults
  if dflt then
    local o = {}
    for k, v in pairs(dflt) do if k ~= "input" then o[k] = v end end
    for k, v in pairs(opts) do o[k] = v end
    o.limits = _M.merge_limits(dflt.limits, opts.limits)
    opts = o
    if (input == nil or input == "") and dflt.input ~= nil then input = dflt.input end
  end
  opts = propagating(opts)
  if tracer then opts = tracer(wf, opts) end
  if opts.store and not d then
    d = require("weft.durable").begin(wf, opts, input)
  end
  local id -- the run record must exist before the first checkpoint
  if d then id = opts.run_id or (d.record and d.record.run_id) end
  -- (the table is made with room for the fields every run gets: no resize)
  local none
  local r = setmetatable({ wf = wf, id = id, c = none, _result = none, __index = result_index }, Run)
  -- the policies, only when given (four more keys in the constructor made
  -- every run table's hash part twice as big)
  local g, net, parent = opts.guardrails, opts.network, opts._parent_run
  -- the budget: the run's, its guardrails', else the process's for a run
  -- that is not nested (a nested run is held to its parent's)
  local bud = opts.budget or (g and g.budget) or (parent == nil and process_budget) or nil
  if g or net or bud or parent then
    r.guardrails, r.network = g, net
    r.budget, r._parent = bud, parent
  end
  -- absent keys cost nothing in run_new: defaults are left out, and a run
  -- with none at all passes no table
  local ro
  if opts ~= NO_OPTS or r.id or d or gate or restore then
    ro = {
      id = r.id or opts.run_id, max_supersteps = opts.max_supersteps,
      max_concurrency = opts.max_concurrency, limits = opts.limits, keep_events = opts.events == false and 0 or nil,
      on_event = opts.on_event, durable = (d or gate) and 1 or nil, restore = restore,
      undelivered_error = opts.on_undelivered == "error" and 1 or nil,
    }
  end
  local c, rid = run_new(wf._graph, r, restore and nil or input, ro)
  if not c then error("run: " .. tostring(rid), level + 1) end
  r.c, r.id = c, rid
  if d then require("weft.durable").attach(r, d) end
  if rawget(r, "budget") then require("weft.budget").start(r) end
  by_id[r.id] = r
  return r
end

--- Set the budget of every run of this process that gives none and is
-- not nested (weft.guardrails.install: weft serve --guardrails'
-- execution_limits); nil removes it.
function _M.set_budget(b)
  if b ~= nil then check.options(BUDGET_SPEC, { budget = b }, 2, "weft.run.set_budget") end
  process_budget = b
end

--- End run r as failed with message msg (a budget it went past), at once:
-- its running invocations are aborted, its result, its workflow_failed
-- event and a durable run's record say failed with msg. The caller may be
-- an invocation of r: it goes on until its next yield, where it is
-- dropped, and starts no wait meanwhile (its weft I/O returns nil, err,
-- "cancelled"). A no-op once r has ended.
function _M.fail(r, msg)
  if r.c == nil then return end
  sched.run_fail(r.c, msg)
end

--- The handle of a run of this process by id, or nil.
function _M.find(id) return by_id[id] end

--- The run's status: "pending", "running", "completed", "failed", "cancelled", "idle".
function Run:status()
  return (info(self.c))
end

--- Cancel the run (running invocations are aborted).
function Run:cancel()
  sched.run_cancel(self.c)
end

--- The outstanding requests of an idle run: a list sorted by request id of
-- `{request_id, executor_id, superstep, request}`.
function Run:requests()
  local out = {}
  local st = info(self.c)
  if st ~= "idle" and st ~= "running" then return out end
  for _, id in ipairs(context.request_ids(self)) do
    local _, exec, superstep, req = context.request_get(self, id)
    out[#out + 1] = { request_id = id, executor_id = exec, superstep = superstep, request = req }
  end
  table.sort(out, function(a, b) return a.request_id < b.request_id end)
  return out
end

--- Answer the outstanding request request_id with value: the waiting
-- invocation resumes (true), or nil, err for an unknown request.
function Run:respond(request_id, value)
  local seq = context.request_get(self, request_id)
  if not seq then
    return nil, ("run %s has no outstanding request '%s'"):format(self.id, tostring(request_id))
  end
  if value ~= nil then
    local t = type(value)
    if t ~= "string" and t ~= "boolean" then
      local e = jcheck(value, "response")
      if e then error("respond: " .. e, 2) end
    end
  end
  local ok, err = sched.request_answer(self.c, seq, value)
  if not ok then return nil, err end
  context.request_drop(self, request_id)
  return true
end

--- The result table if the run has ended (or is idle), else nil.
function Run:result()
  local res = rawget(self, "_result")
  if res then return res end
  local status, err, supersteps, duration, id, finished, idle = info(self.c)
  if not finished and not idle then return nil end
  res = setmetatable({
    status = status, error = err, supersteps = supersteps, duration_ms = duration,
    run_id = id, outputs = sched.run_outputs(self.c),
  }, self)
  if idle then
    res.requests = self:requests()
  else
    self._result = res -- final: cache it
  end
  return res
end

--- Wait for the end of the run (or its pause on requests) and return its
-- result.
function Run:wait()
  run_wait(self.c)
  local res = self:result()
  if self.durable then require("weft.durable").finish(self, res) end
  return res
end

--- Wait for every handle; results in the same order.
function _M.wait_all(handles)
  if type(handles) ~= "table" then error("weft.wait_all: expects a list of run handles", 2) end
  local out = {}
  for i = 1, #handles do
    local h = handles[i]
    if getmetatable(h) ~= Run then error(("weft.wait_all: element %d is not a run handle"):format(i), 2) end
    out[i] = h:wait()
  end
  return out
end

--- Iterator over the events of a new run of wf, as they are published.
function _M.stream(wf, input, opts)
  opts = check_opts(opts, 2)
  local q, head, tail, user = {}, 1, 0, opts.on_event
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.on_event = function(ev)
    tail = tail + 1
    q[tail] = ev
    if user then user(ev) end
  end
  local h = _M.spawn(wf, input, o, 2)
  return function()
    while head > tail do
      if h:result() then return nil end
      if loop.in_task() then
        loop.sleep(0)
      elseif not loop.step() and head > tail and not h:result() then
        error("stream: run " .. h.id .. " cannot progress", 2)
      end
    end
    local ev = q[head]
    q[head] = nil
    head = head + 1
    return ev
  end, h
end

return _M
