--- The executor context (`ctx`) and the worker body that runs invocations.
-- Each invocation gets a fresh ctx table; its methods call the scheduler's
-- primitives in C (weft.core.sched), which buffer sends, outputs, events and
-- state writes until the superstep's barrier. A run may bring its own
-- invocation function (`run.invoke`) and context type (`subtype()`):
-- weft.durable does, to record effects; this module knows nothing of it.
local _M = {}

local sched = require "weft.core.sched"
local json = require "weft.json"
local check = require "weft.check"

local type, error, tostring, setmetatable, getmetatable, xpcall, ipairs, pcall =
  type, error, tostring, setmetatable, getmetatable, xpcall, ipairs, pcall
local yield = coroutine.yield
local traceback = debug.traceback
local jcheck, fix_utf8 = json.check, json.fix_utf8
local csend, coutput, cemit, clog = sched.send, sched.output, sched.emit, sched.log
local cset, cget, crunning = sched.set_state, sched.get_state, sched.running
local cprev = sched.previous_errors
local clive, cwait = sched.emit_live, sched.request_wait
local DONE = sched.DONE
local guard_mod -- weft.guard, loaded by the first guarded invocation

local Ctx = {}
Ctx.__index = Ctx
_M.Ctx = Ctx

-- Ctx and its subtypes (their metatables), for the dotted-call check.
local types = { [Ctx] = true }

--- A new context type: a metatable whose methods default to Ctx's; a
-- run's `invoke` sets it on the ctx of its invocations (weft.durable's
-- recording ctx).
function _M.subtype()
  local T = setmetatable({}, { __index = Ctx })
  T.__index = T
  types[T] = true
  return T
end

-- Raise (at the user's call site) unless the table v is JSON-serialisable
-- (strings valid UTF-8, so that what is stored can be read back). Other
-- values are checked by the C primitive the value is handed to, which
-- fails with the code "json" (see fail).
local function checked(v, root, fname)
  if type(v) == "table" then
    local e = jcheck(v, root)
    if e then error(fname .. ": " .. e, 3) end
  end
end

-- Raise (at the user's call site) with the primitive's error: a value the
-- primitive refused as not JSON (code "json") is described by json.check,
-- named root; a stale ctx (its invocation ended) is named as such.
local function fail(self, fname, err, code, v, root)
  if code == "json" then
    err = jcheck(v, root) or err
  elseif not crunning(self._run.c, self._seq) then
    err = ("invocation of '%s' is no longer running"):format(self.executor_id)
  end
  error(fname .. ": " .. tostring(err), 3)
end

-- Raise for a method called with a dot (`ctx.send(x)`: self is not a
-- ctx) at the user's call site; nothing otherwise. Only called on the
-- error paths, so that the hot path pays nothing.
local function dotted(self, name)
  if not types[getmetatable(self)] then
    error(("ctx:%s: called as ctx.%s(...) (with a dot); call it with a colon: ctx:%s(...)")
      :format(name, name, name), 3)
  end
end

-- Value v after the guards of list at stage (field: the root of the
-- paths the events name); a block raises the guardrail error (code
-- "guardrail"), which fails the invocation. Verdicts go to ctx._gsink
-- when a run's invoke set one (weft.durable records them), else to
-- weft.guard.triggered.
local function guarded(self, list, stage, v, field)
  if not list then return v end
  return guard_mod.apply(list, stage, v, { field = field, executor_id = self.executor_id,
                                           run_id = self.run_id }, self._gsink or guard_mod.triggered)
end

--- Send msg to successors; target (id or executor) restricts delivery.
-- Returns the message as buffered (after the output guards: e.g. masked).
function Ctx:send(msg, target)
  if msg == nil then
    dotted(self, "send")
    error("ctx:send: message is nil", 2)
  end
  local gp = self._guards
  if gp then msg = guarded(self, gp.output, "output", msg, "message") end
  checked(msg, "message", "ctx:send")
  local t
  if target ~= nil then
    t = self._run.wf._index[target]
    if not t then
      local name = type(target) == "table" and tostring(target) or ("'" .. tostring(target) .. "'")
      error(("ctx:send: unknown target executor %s%s"):format(name,
        check.did_you_mean(tostring(target), self._run.wf._ids)), 2)
    end
  end
  local ok, err, code = csend(self._run.c, self._seq, msg, t)
  if not ok then fail(self, "ctx:send", err, code, msg, "message") end
  return msg
end

--- Yield a workflow output (visible to the caller after the barrier).
-- Returns the value as buffered (after the output guards: e.g. masked).
function Ctx:yield_output(value)
  if value == nil then
    dotted(self, "yield_output")
    error("ctx:yield_output: value is nil", 2)
  end
  local gp = self._guards
  if gp then value = guarded(self, gp.output, "output", value, "output") end
  checked(value, "output", "ctx:yield_output")
  local ok, err, code = coutput(self._run.c, self._seq, value)
  if not ok then fail(self, "ctx:yield_output", err, code, value, "output") end
  return value
end

--- Emit a custom event {type = "custom", name = name, data = data}.
function Ctx:emit(name, data)
  if type(name) ~= "string" or name == "" then
    dotted(self, "emit")
    error("ctx:emit: name must be a non-empty string", 2)
  end
  if data ~= nil then checked(data, "data", "ctx:emit") end
  local ok, err, code = cemit(self._run.c, self._seq, name, data)
  if not ok then
    if code == "json" and jcheck(name, "name") then
      fail(self, "ctx:emit", err, code, name, "name")
    end
    fail(self, "ctx:emit", err, code, data, "data")
  end
end

local LEVELS = { debug = true, info = true, warn = true, error = true }

--- Log a message as a `log` event (level: debug, info, warn, error).
function Ctx:log(level, msg)
  if not LEVELS[level] then
    dotted(self, "log")
    error(("ctx:log: level must be 'debug', 'info', 'warn' or 'error', got '%s'"):format(tostring(level)), 2)
  end
  msg = fix_utf8(tostring(msg)) -- a log line: bytes that are not UTF-8 become U+FFFD
  local ok, err = clog(self._run.c, self._seq, level, msg)
  if not ok then fail(self, "ctx:log", err) end
end

--- Read shared state: last superstep's snapshot plus this invocation's writes.
function Ctx:get_state(key)
  if type(key) ~= "string" then
    dotted(self, "get_state")
    error("ctx:get_state: key must be a string", 2)
  end
  if not crunning(self._run.c, self._seq) then
    error(("ctx:get_state: invocation of '%s' is no longer running"):format(self.executor_id), 2)
  end
  return cget(self._run.c, self._seq, key)
end

--- Write shared state (visible to others from the next superstep; nil deletes).
function Ctx:set_state(key, value)
  if type(key) ~= "string" or key == "" then
    dotted(self, "set_state")
    error("ctx:set_state: key must be a non-empty string", 2)
  end
  if type(value) == "table" then checked(value, "state." .. key, "ctx:set_state") end
  local ok, err, code = cset(self._run.c, self._seq, key, value)
  if not ok then
    if code == "json" and jcheck(key, "key") then
      fail(self, "ctx:set_state", err, code, key, "key")
    end
    fail(self, "ctx:set_state", err, code, value, "state." .. key)
  end
end

--- Ask a human (or any caller) for input: publishes a `request_info` event
-- `{request_id, executor_id, request}` and suspends this invocation until
-- `wf:respond(run_id, request_id, value)`; returns the value. The run is
-- `idle` while every unfinished invocation waits on a request.
function Ctx:request_info(req)
  if req == nil then
    dotted(self, "request_info")
    error("ctx:request_info: request is nil", 2)
  end
  local e = jcheck(req, "request")
  if e then error("ctx:request_info: " .. e, 2) end
  if not crunning(self._run.c, self._seq) then
    error(("ctx:request_info: invocation of '%s' is no longer running"):format(self.executor_id), 2)
  end
  local run = self._run
  self._nreq = (self._nreq or 0) + 1
  -- deterministic: a replayed invocation asks the same ids again
  local id = ("req-%d-%d-%d-%d"):format(self.superstep, self._order, self.attempt, self._nreq)
  local hook = run.on_request
  if hook then
    local answered, value = hook(run, self, id, req)
    if answered then return value end
  end
  _M.request_add(run, id, self._seq, self.executor_id, self.superstep, req)
  local ok, err = clive(self._run.c, self._seq, "request_info", self.executor_id,
                        { request_id = id, request = req })
  if not ok then fail(self, "ctx:request_info", err) end
  local value = cwait(self._run.c, self._seq)
  _M.request_drop(run, id)
  return value
end

-- The outstanding requests of a run are kept in run._requests as one flat
-- list of 5-tuples (request id, invocation seq, executor id, superstep,
-- request): a paused run holds one small array, not a table of tables.
local REQ = 5

--- Record outstanding request id of run (asked by invocation seq).
function _M.request_add(run, id, seq, executor_id, superstep, req)
  local t = run._requests
  if not t then
    run._requests = { id, seq, executor_id, superstep, req }
    return
  end
  local n = #t
  t[n + 1], t[n + 2], t[n + 3], t[n + 4], t[n + 5] = id, seq, executor_id, superstep, req
end

--- The seq, executor id, superstep and request of run's outstanding
-- request id, or nil.
function _M.request_get(run, id)
  local t = run._requests
  if not t then return nil end
  for i = 1, #t, REQ do
    if t[i] == id then return t[i + 1], t[i + 2], t[i + 3], t[i + 4] end
  end
end

--- Forget run's outstanding request id (no-op when unknown).
function _M.request_drop(run, id)
  local t = run._requests
  if not t then return end
  local n = #t
  for i = 1, n, REQ do
    if t[i] == id then
      for k = 0, REQ - 1 do t[i + k] = t[n - REQ + 1 + k] end
      for k = n, n - REQ + 1, -1 do t[k] = nil end
      return
    end
  end
end

--- The ids of run's outstanding requests, in the order asked (a new list).
function _M.request_ids(run)
  local t, out = run._requests, {}
  if t then
    for i = 1, #t, REQ do out[#out + 1] = t[i] end
  end
  return out
end

local NO_ERRORS = setmetatable({}, { __newindex = function() error("ctx.previous_errors is read-only", 2) end })
-- The fields of a first attempt, read through the metatable: a ctx is made
-- with six fields, so that it keeps room for the ones it may get later
-- (_nreq) without growing its hash part (8 -> 16 slots: 192 bytes).
Ctx.attempt, Ctx.previous_errors = 1, NO_ERRORS

-- Error handler of an invocation: keep the message and the stack.
local function on_error(e)
  -- as UTF-8 (bytes that are not become U+FFFD), so that events and stored
  -- run records carrying it can be read back
  local msg = fix_utf8(type(e) == "string" and e or tostring(e))
  local tb = fix_utf8(traceback(msg, 2))
  -- drop the frames of the worker body below the handler
  local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")
  -- no_retry: a guardrail block would block again (the scheduler does not retry it)
  return { message = msg, traceback = cut and tb:sub(1, cut - 1) or tb, no_retry = (guard_mod or require "weft.guard").is_block(e) or nil }
end

-- The process-wide guards by stage (weft serve --guardrails), and a
-- count of their changes (plans made before a change are remade).
local server_guards, server_gen = nil, 0

--- Set the guardrails of every run and agent of this process (a policy of
-- weft.guardrails.load or a list of guards; nil removes them); they come
-- before a run's own.
function _M.set_guardrails(policy)
  guard_mod = guard_mod or require "weft.guard"
  server_guards = policy ~= nil and guard_mod.by_stage(policy, "guardrails") or nil
  server_gen = server_gen + 1
end

--- The guard plan of run (weft.guard.plan): the workflow's own when there
-- are no guardrails (the run's or the process's), else one made for them
-- and the run's graph (kept on the run until its graph or the process's
-- guardrails change); nil when nothing is guarded. Without a run (an agent
-- called outside executors): {agent = the process's guards by stage} or nil.
function _M.guard_plan(run)
  if run == nil then return server_guards and { agent = server_guards } or nil end
  local wf = run.wf
  local pol = run.guardrails
  if pol == nil and not server_guards then return wf._plan or nil end
  if run._gplan_wf == wf and run._gplan_gen == server_gen then return run._gplan or nil end
  guard_mod = guard_mod or require "weft.guard"
  local rg = pol ~= nil and guard_mod.by_stage(pol, "run option guardrails") or nil
  if server_guards then
    local both = {}
    for _, st in ipairs(guard_mod.STAGES) do both[st] = guard_mod.concat(server_guards[st], rg and rg[st]) end
    rg = both
  end
  local plan = guard_mod.plan(rg, wf._guards, wf._exec_guards, #wf._ids)
  run._gplan, run._gplan_wf, run._gplan_gen = plan or false, wf, server_gen
  return plan
end

--- Run the handler of executor exec on msg with ctx, after the input
-- guards of the invocation (ctx._guards.input, set by a guarded
-- invocation). A run's invoke calls it where the handler runs (weft.durable:
-- inside the journaled invocation, so that a judge's call on the input is
-- journaled like the handler's calls).
function _M.handle(run, exec, msg, ctx)
  local gp = ctx._guards
  if gp and gp.input then msg = guarded(ctx, gp.input, "input", msg, "input") end
  return run.wf._handlers[exec](msg, ctx)
end
local handle = _M.handle

-- An invocation with guards (plan entry gp): a retry after a guardrail
-- block fails again at once (a block is not retried: the same input meets
-- the same guards), then the run's invoke or handle (which runs the input
-- guards on msg, then the handler) with ctx carrying the guards.
local function guarded_invoke(run, exec, msg, ctx, gp)
  guard_mod = guard_mod or require "weft.guard"
  if ctx.attempt > 1 then
    local pe = ctx.previous_errors
    local last = pe[#pe]
    if last and guard_mod.is_block(last.message) then error(last.message, 0) end
  end
  ctx._guards = gp
  local invoke = run.invoke
  if invoke then return invoke(run, exec, msg, ctx) end
  return handle(run, exec, msg, ctx)
end

-- Run an invocation of a run that has guards somewhere: ok, err as the
-- worker's xpcall gives them. A plan that cannot be made (a bad run option
-- guardrails) fails the invocation.
local function guarded_call(run, exec, msg, ctx)
  local pok, plan = pcall(_M.guard_plan, run)
  if not pok then return false, on_error(plan) end
  local gp = plan and plan[exec]
  if gp then return xpcall(guarded_invoke, on_error, run, exec, msg, ctx, gp) end
  if run.invoke then return xpcall(run.invoke, on_error, run, exec, msg, ctx) end
  return xpcall(run.wf._handlers[exec], on_error, msg, ctx)
end

--- The body of every task coroutine: run invocations until abandoned.
-- Receives (run, seq, exec, superstep, attempt, msg) from C at each resume
-- and yields (DONE, ok, err) at the end of each invocation. A run with
-- `invoke` runs each invocation as invoke(run, exec, msg, ctx).
function _M.worker(run, seq, exec, superstep, attempt, msg, order)
  while true do
    local c = run.c
    local ctx
    if attempt > 1 then
      ctx = setmetatable({
        run_id = run.id, executor_id = run.wf._ids[exec], superstep = superstep,
        attempt = attempt, previous_errors = cprev(c, seq),
        _run = run, _seq = seq, _order = order,
      }, Ctx)
    else -- a first attempt: attempt and previous_errors are Ctx's defaults
      ctx = setmetatable({
        run_id = run.id, executor_id = run.wf._ids[exec], superstep = superstep,
        _run = run, _seq = seq, _order = order,
      }, Ctx)
    end
    local ok, err
    local invoke = run.invoke
    -- guards: the workflow's plan is false when it has none; the run's
    -- guardrails or the process's make one
    if run.wf._plan or run.guardrails ~= nil or server_guards then
      ok, err = guarded_call(run, exec, msg, ctx)
    elseif invoke then
      ok, err = xpcall(invoke, on_error, run, exec, msg, ctx)
    else
      ok, err = xpcall(run.wf._handlers[exec], on_error, msg, ctx)
    end
    run, seq, exec, superstep, attempt, msg, order = yield(DONE, ok, err)
  end
end

sched.set_worker(_M.worker)

return _M
