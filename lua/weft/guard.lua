--- weft.guard — guards (see docs/guardrails.md): checks run on a value at
-- a stage ("input", "output", "tool_call", "tool_result") whose verdict
-- allows it, modifies it (e.g. masked text) or blocks it (the caller fails
-- with a guardrail error). `new{name, stages, check, whole}` makes a guard;
-- `apply(list, stage, value, info, sink)` runs a list of guards on a value
-- and returns the value, possibly replaced (tables are copied where they
-- change, never written), or raises the block error. Built-in guards:
-- `size`, `schema`, `fn` here, and `pii`, `words`, `injection`, `judge`
-- loaded on first use from weft.guard.<name>.
-- Uses weft.check, weft.json, weft.schema (for the schema guard).
local check = require "weft.check"
local json = require "weft.json"

local type, pairs, ipairs, tostring, error, setmetatable, getmetatable, pcall, next, require, tonumber, select =
  type, pairs, ipairs, tostring, error, setmetatable, getmetatable, pcall, next, require, tonumber, select
local sformat, concat = string.format, table.concat
local callable = check.callable

local _M = {}

--- The stages, in the order a call meets them.
_M.STAGES = { "input", "output", "tool_call", "tool_result" }
local STAGE_SET = {}
for _, s in ipairs(_M.STAGES) do STAGE_SET[s] = true end

local Guard = {}
Guard.__index = Guard
Guard.__tostring = function(g) return "guard '" .. g.name .. "'" end
_M.Guard = Guard

--- The error a block raises: a table with message, code = "guardrail",
-- guard, stage, field and reason; tostring gives the message.
local GuardError = {}
GuardError.__index = GuardError
GuardError.__tostring = function(e) return e.message end
_M.GuardError = GuardError

--- True when v is a guard.
function _M.is_guard(v) return getmetatable(v) == Guard end

--- True when e is the error of a block (the error object, or its message
-- as an invocation's previous_errors keep it).
function _M.is_block(e)
  if getmetatable(e) == GuardError then return true end
  if type(e) == "table" then e = e.message end
  return type(e) == "string" and e:find("guardrail [^ ]+ blocked ") ~= nil
end

-- The set of stages of a guard from a list (nil: all), raising at level.
local function stage_set(stages, what, level)
  if stages == nil then return STAGE_SET, _M.STAGES end
  if type(stages) == "string" then stages = { stages } end
  if type(stages) ~= "table" or next(stages) == nil then
    error(what .. ": stages must be a non-empty list of 'input', 'output', 'tool_call', 'tool_result'", level + 1)
  end
  local set, list = {}, {}
  for i, s in ipairs(stages) do
    if not STAGE_SET[s] then
      error(sformat("%s: stages[%d] must be one of 'input', 'output', 'tool_call', 'tool_result', got %s",
        what, i, check.show(s)), level + 1)
    end
    set[s] = true
    list[#list + 1] = s
  end
  return set, list
end

--- A guard: `new{name = "pii", stages = {...} (default all), check =
-- fn(self, value, info) -> verdict, whole = false}`. With whole false the
-- check is called once per string found in the value (info.field is its
-- path); with whole true once with the whole value. Other fields of opts
-- stay on the guard (its options, for check to read).
function _M.new(opts, level)
  level = (level or 1) + 1
  if type(opts) ~= "table" then
    error("weft.guard.new: expects a table {name, stages, check, whole}, got " .. type(opts), level)
  end
  local name = opts.name
  if type(name) ~= "string" or name == "" or name:find("[%s]") then
    error("weft.guard.new: name must be a non-empty string without spaces, got " .. check.show(name), level)
  end
  local what = "guard '" .. name .. "'"
  if not callable(opts.check) then
    error(what .. ": check must be a function(self, value, info) -> verdict, got " .. type(opts.check), level)
  end
  if opts.whole ~= nil and type(opts.whole) ~= "boolean" then
    error(what .. ": whole must be a boolean, got " .. type(opts.whole), level)
  end
  local g = {}
  for k, v in pairs(opts) do g[k] = v end
  g.stages, g.stage_list = stage_set(opts.stages, what, level)
  g.whole = opts.whole == true
  return setmetatable(g, Guard)
end

--- A custom guard from a function: `fn(name, f [, {stages, whole}])`;
-- f(value, info) -> verdict sees the whole value unless whole = false.
function _M.fn(name, f, opts)
  if not callable(f) then
    error("weft.guard.fn: expects a name and a function(value, info) -> verdict, got " .. type(f), 2)
  end
  opts = opts or {}
  local whole = true
  if opts.whole == false then whole = false end
  return _M.new({ name = name, stages = opts.stages, whole = whole,
                  check = function(_, value, info) return f(value, info) end }, 2)
end

--- A list of guards from what a user gave (guards, plain functions — named
-- "custom" — or a single guard), raising "<what>: guards[i] ..." at level.
-- Returns a new list, or nil when empty.
function _M.list(guards, what, level)
  level = (level or 1) + 1
  if guards == nil then return nil end
  if _M.is_guard(guards) or type(guards) == "function" then guards = { guards } end
  if type(guards) ~= "table" then
    error(what .. ": guards must be a list of weft.guard objects or functions, got " .. type(guards), level)
  end
  local out = {}
  for i, g in ipairs(guards) do
    if type(g) == "function" then
      g = _M.fn("custom", g)
    elseif not _M.is_guard(g) then
      error(sformat("%s: guards[%d] must be a weft.guard object (weft.guard.new, weft.guard.pii{...}, ...) "
        .. "or a function(value, info), got %s", what, i, type(g)), level)
    end
    out[#out + 1] = g
  end
  for k in pairs(guards) do
    if type(k) ~= "number" then
      error(sformat("%s: guards must be a list, found key %s", what, check.show(k)), level)
    end
  end
  if #out == 0 then return nil end
  return out
end

--- The concatenation of guard lists (each may be nil): a new list, or nil.
function _M.concat(...)
  local out
  for i = 1, select("#", ...) do
    local l = select(i, ...)
    if l then
      out = out or {}
      for _, g in ipairs(l) do out[#out + 1] = g end
    end
  end
  return out
end

-- ---- applying -------------------------------------------------------------

local MAX_DEPTH = 100

-- Path of key k below path p: p.k, p[3] or p["odd key"].
local function sub_path(p, k)
  if type(k) == "number" then return sformat("%s[%d]", p, k) end
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return p .. "." .. k end
  return sformat("%s[%q]", p, tostring(k))
end

-- Raise the block of guard g at info.
local function block(g, info, reason)
  local e = setmetatable({
    message = sformat("guardrail %s blocked %s %s: %s", g.name, info.stage, info.field, reason),
    code = "guardrail", guard = g.name, stage = info.stage, field = info.field, reason = reason,
  }, GuardError)
  error(e, 0)
end

-- Call g's check; the verdict as (action, value, reason): action nil for
-- allow. A check that raises or answers nonsense is a block.
local function verdict(g, value, info)
  local ok, v = pcall(g.check, g, value, info)
  if not ok then
    if getmetatable(v) == GuardError then error(v, 0) end -- a nested guard's block
    local msg = tostring(v):match("^[^\n]*")
    return "block", nil, "guard error: " .. msg
  end
  if v == nil or v == true then return nil end
  if type(v) ~= "table" then
    return "block", nil, "guard error: verdict must be nil, true or a table {action, value, reason}, got "
      .. type(v)
  end
  local a = v.action
  if a == "allow" then return nil end
  local reason = v.reason
  if reason ~= nil and type(reason) ~= "string" then reason = tostring(reason) end
  if a == "block" then return "block", nil, reason or "blocked" end
  if a == "modify" then
    if v.value == nil then
      return "block", nil, "guard error: a modify verdict must give a value"
    end
    return "modify", v.value, reason or "modified"
  end
  return "block", nil, "guard error: verdict action must be 'allow', 'modify' or 'block', got "
    .. check.show(a)
end

-- Report a non-allow verdict to sink (a function(event)).
local function report(sink, g, info, action, reason)
  if sink then
    sink({ guard = g.name, stage = info.stage, field = info.field, action = action,
           reason = reason, executor_id = info.executor_id, agent = info.agent, tool = info.tool })
  end
end

-- Run g's check on value at info.field (the whole value or one string).
local function run_one(g, value, info, sink)
  local action, new, reason = verdict(g, value, info)
  if not action then return value end
  report(sink, g, info, action, reason)
  if action == "block" then block(g, info, reason) end
  return new
end

-- Walk value (at path) calling g's check on each string; returns the value,
-- a copy where something below changed.
local function walk(g, value, path, info, sink, depth)
  local t = type(value)
  if t == "string" then
    info.field = path
    return run_one(g, value, info, sink)
  end
  if t ~= "table" then return value end
  if depth > MAX_DEPTH then
    error(sformat("weft.guard: %s is nested deeper than %d levels (a cycle?)", path, MAX_DEPTH), 0)
  end
  local copy
  -- array part in order first, so that fields are met as a reader would
  local n = #value
  for i = 1, n do
    local v = value[i]
    local nv = walk(g, v, sub_path(path, i), info, sink, depth + 1)
    if nv ~= v then
      copy = copy or _M.copy(value)
      copy[i] = nv
    end
  end
  for k, v in pairs(value) do
    if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then
      local nv = walk(g, v, sub_path(path, k), info, sink, depth + 1)
      if nv ~= v then
        copy = copy or _M.copy(value)
        copy[k] = nv
      end
    end
  end
  return copy or value
end

--- A shallow copy of table t, keeping its metatable (JSON array/object
-- markers).
function _M.copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return setmetatable(c, getmetatable(t))
end

--- Run the guards of list that watch stage on value; returns the value,
-- possibly replaced, or raises the block error (code "guardrail").
-- info: {field = root path (default the stage), executor_id, agent, tool,
-- run_id}; its stage and field are set here. sink(event) receives each
-- non-allow verdict {guard, stage, field, action, reason, executor_id,
-- agent, tool} (no content).
function _M.apply(list, stage, value, info, sink)
  if list == nil then return value end
  info = info or {}
  local root = info.field or stage
  info.stage = stage
  for i = 1, #list do
    local g = list[i]
    if g.stages[stage] then
      if g.whole then
        info.field = root
        value = run_one(g, value, info, sink)
      else
        value = walk(g, value, root, info, sink, 0)
      end
    end
  end
  info.field = root
  return value
end

--- True when some guard of list watches stage.
function _M.watches(list, stage)
  if list == nil then return false end
  for i = 1, #list do
    if list[i].stages[stage] then return true end
  end
  return false
end

-- ---- plans: which guards watch what, per run ---------------------------------

--- Guards by stage from a policy (weft.guardrails), a `{guards = {input =
-- list, ...}}` table, or a plain list of guards (each at its stages):
-- `{input = list|nil, output = ..., tool_call = ..., tool_result = ...}`.
function _M.by_stage(v, what)
  if v == nil then return nil end
  what = what or "guardrails"
  local t = v
  if type(v) == "table" and not _M.is_guard(v) and v[1] == nil and type(v.guards) == "table" then
    t = v.guards
  end
  if type(t) ~= "table" and type(t) ~= "function" then
    error(what .. ": must be a policy (weft.guardrails.load) or a list of guards, got " .. type(t), 0)
  end
  local out = {}
  if _M.is_guard(t) or type(t) == "function" or t[1] ~= nil then
    for _, g in ipairs(_M.list(t, what) or {}) do
      for _, s in ipairs(g.stage_list) do
        out[s] = out[s] or {}
        out[s][#out[s] + 1] = g
      end
    end
    return out
  end
  for k, l in pairs(t) do
    if not STAGE_SET[k] then
      error(sformat("%s.guards: unknown stage %s (input, output, tool_call, tool_result)", what, check.show(k)), 0)
    end
    out[k] = _M.list(l, what .. ".guards." .. k)
  end
  return out
end

--- The guards of list l that watch stage s, after those of list a (a new
-- list), or nil when there are none.
local function at_stage(a, l, s)
  local out
  if a then
    out = {}
    for i = 1, #a do out[i] = a[i] end
  end
  if l then
    for _, g in ipairs(l) do
      if g.stages[s] then
        out = out or {}
        out[#out + 1] = g
      end
    end
  end
  return out
end

_M.at_stage = at_stage

--- The guard plan of a run: run (by stage, see by_stage), workflow guards
-- (a list) and executor guards (lists by executor index, n executors):
-- `plan[i] = {input = list, output = list}` for each executor i that has
-- guards, and `plan.agent = {input, output, tool_call, tool_result}` the
-- guards of agents' model calls in the run (run and workflow guards); nil
-- when there are none at all. Order: run, workflow, executor.
function _M.plan(run_guards, wf_guards, exec_guards, n)
  local plan
  local base = {}
  for _, s in ipairs(_M.STAGES) do
    base[s] = at_stage(run_guards and run_guards[s], wf_guards, s)
  end
  for i = 1, n do
    local eg = exec_guards and exec_guards[i]
    local inp = at_stage(base.input, eg, "input")
    local out = at_stage(base.output, eg, "output")
    if inp or out then
      plan = plan or {}
      plan[i] = { input = inp, output = out }
    end
  end
  if next(base) ~= nil then
    plan = plan or {}
    plan.agent = base
  end
  return plan
end

-- ---- what a triggered guard does ---------------------------------------------

--- Non-allow verdicts of this process: counters[guard][stage][action].
_M.counters = {}

local observers = {}

--- Call fn(event) on every non-allow verdict of this process (serve's
-- audit log); returns a function that removes it.
function _M.observe(fn)
  if not callable(fn) then error("weft.guard.observe: expects a function(event)", 2) end
  observers[#observers + 1] = fn
  return function()
    for i = #observers, 1, -1 do
      if observers[i] == fn then table.remove(observers, i) end
    end
  end
end

local task_current, sched_emit

--- The sink of the guards of an invocation: counts the event, hands it to
-- the observers and publishes it as the custom event guardrail_triggered
-- of the invocation the caller works for (at the barrier, as ctx:emit;
-- kept when the attempt fails). Outside any executor it is only counted
-- and observed.
function _M.triggered(ev)
  local c = _M.counters
  local bg = c[ev.guard]
  if not bg then bg = {}; c[ev.guard] = bg end
  local bs = bg[ev.stage]
  if not bs then bs = {}; bg[ev.stage] = bs end
  bs[ev.action] = (bs[ev.action] or 0) + 1
  if not task_current then
    task_current = require("weft.task").current
    sched_emit = require("weft.core.sched").emit
  end
  local run, seq = task_current()
  if run then
    ev.run_id = ev.run_id or run.id
    sched_emit(run.c, seq, "guardrail_triggered", ev)
  end
  for i = 1, #observers do
    local ok, err = pcall(observers[i], ev)
    if not ok then io.stderr:write("weft.guard: observer: ", tostring(err), "\n") end
  end
end

--- apply() with the sink `triggered`, returning the value or nil, the
-- block message and "guardrail" instead of raising.
function _M.try(list, stage, value, info)
  local ok, v = pcall(_M.apply, list, stage, value, info, _M.triggered)
  if ok then return v end
  if getmetatable(v) == GuardError then return nil, v.message, "guardrail" end
  error(v, 0)
end

-- ---- sizes ------------------------------------------------------------------

local UNITS = { B = 1, KB = 1e3, MB = 1e6, GB = 1e9, TB = 1e12,
                KIB = 1024, MIB = 1024 ^ 2, GIB = 1024 ^ 3, TIB = 1024 ^ 4 }

--- Bytes from a number or a string with a unit ("10MB", "512 KiB", "1.5GB";
-- KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024): the number, or nil
-- and the problem.
function _M.parse_bytes(v)
  if type(v) == "number" then
    if v >= 0 and v % 1 == 0 then return v end
    return nil, "must be a non-negative integer of bytes"
  end
  if type(v) ~= "string" then return nil, "must be a number of bytes or a string such as \"10MB\"" end
  local num, unit = v:match("^%s*([%d%.]+)%s*(%a*)%s*$")
  local n = tonumber(num)
  local m = UNITS[(unit or ""):upper() ~= "" and unit:upper() or "B"]
  if not n or not m then
    return nil, sformat("must be a size such as \"10MB\" (units B, KB, MB, GB, KiB, MiB, GiB), got %q", v)
  end
  return math.floor(n * m + 0.5)
end

-- Bytes of the strings (keys and values) in v, and the largest entry count
-- of a table in it; stops counting past the limits.
local function measure(v, depth)
  local t = type(v)
  if t == "string" then return #v, 0 end
  if t == "number" or t == "boolean" then return 8, 0 end
  if t ~= "table" or depth > MAX_DEPTH then return 0, 0 end
  local bytes, items, n = 0, 0, 0
  for k, x in pairs(v) do
    n = n + 1
    if type(k) == "string" then bytes = bytes + #k end
    local b, i = measure(x, depth + 1)
    bytes = bytes + b
    if i > items then items = i end
  end
  if n > items then items = n end
  return bytes, items
end

--- A size guard: `size{max_bytes = n | "10MB", max_items = n, stages}`:
-- blocks a value whose strings (keys and values, 8 bytes per number)
-- pass max_bytes, or with a table of more than max_items entries.
function _M.size(opts)
  if type(opts) ~= "table" then error("weft.guard.size: expects a table {max_bytes, max_items}", 2) end
  local max_bytes, max_items
  if opts.max_bytes ~= nil then
    local b, err = _M.parse_bytes(opts.max_bytes)
    if not b then error("weft.guard.size: max_bytes " .. err, 2) end
    max_bytes = b
  end
  if opts.max_items ~= nil then
    if type(opts.max_items) ~= "number" or opts.max_items < 0 or opts.max_items % 1 ~= 0 then
      error("weft.guard.size: max_items must be a non-negative integer", 2)
    end
    max_items = opts.max_items
  end
  if not max_bytes and not max_items then
    error("weft.guard.size: give max_bytes and/or max_items", 2)
  end
  for k in pairs(opts) do
    if k ~= "max_bytes" and k ~= "max_items" and k ~= "stages" and k ~= "name" then
      error("weft.guard.size: unknown option " .. check.show(k) .. " (options: max_bytes, max_items, stages, name)", 2)
    end
  end
  return _M.new({ name = opts.name or "size", stages = opts.stages, whole = true,
    max_bytes = max_bytes, max_items = max_items,
    check = function(self, value)
      local bytes, items = measure(value, 0)
      if self.max_bytes and bytes > self.max_bytes then
        return { action = "block", reason = sformat("%d bytes, limit %d", bytes, self.max_bytes) }
      end
      if self.max_items and items > self.max_items then
        return { action = "block", reason = sformat("%d items, limit %d", items, self.max_items) }
      end
    end }, 2)
end

-- Replace quoted text in a schema error by "…", so that a reason names the
-- path and the problem but not the value.
local function redact(msg)
  return (msg:gsub('"[^"]*"', '"…"'))
end

--- A format guard: `schema{schema = JSON schema (weft.schema's subset),
-- stages = {"output"} (default)}`: blocks a value that does not conform;
-- a string is decoded as JSON first unless the schema is of type string.
function _M.schema(opts)
  if type(opts) ~= "table" or type(opts.schema) ~= "table" then
    error("weft.guard.schema: expects a table {schema = a JSON schema}", 2)
  end
  local wschema = require "weft.schema"
  local ok, err = wschema.check(opts.schema, "weft.guard.schema: schema")
  if not ok then error(err, 2) end
  local s = opts.schema
  local as_text = s.type == "string"
  return _M.new({ name = opts.name or "schema", stages = opts.stages or { "output" }, whole = true,
    check = function(_, value)
      if type(value) == "string" and not as_text then
        local v, derr = json.decode(value)
        if v == nil and derr then
          return { action = "block", reason = "not JSON: " .. redact(tostring(derr)) }
        end
        value = v
      end
      local e = wschema.validate(s, value, "value")
      if e then return { action = "block", reason = "does not match the schema: " .. redact(e) } end
    end }, 2)
end

-- Detectors of weft.guard.<name>, loaded on first use.
for _, name in ipairs({ "pii", "words", "injection", "judge" }) do
  local mod = "weft.guard." .. name
  --- A built-in guard of module weft.guard.<name> (see docs/guardrails.md).
  _M[name] = function(opts)
    local g = require(mod).new(opts)
    return g
  end
end

--- All built-in guard constructors by name (for declarative specs).
_M.BUILTIN = { size = true, schema = true, pii = true, words = true, injection = true, judge = true }

--- A guard from a declarative spec `{type = "pii", action = "mask", ...}`
-- (the other fields are the constructor's options); raises naming path.
function _M.from_spec(spec, path)
  path = path or "guard"
  if type(spec) ~= "table" then error(path .. ": must be an object {type = ...}, got " .. type(spec), 0) end
  local t = spec.type
  if type(t) ~= "string" or not _M.BUILTIN[t] then
    local names = {}
    for k in pairs(_M.BUILTIN) do names[#names + 1] = k end
    table.sort(names)
    error(sformat("%s.type: must be one of %s, got %s%s", path, concat(names, ", "), check.show(t),
      type(t) == "string" and check.did_you_mean(t, names) or ""), 0)
  end
  local o = {}
  for k, v in pairs(spec) do
    if k ~= "type" then o[k] = v end
  end
  local ok, g = pcall(_M[t], o)
  if not ok then
    error(path .. ": " .. tostring(g):gsub("^[^:]*:%d+: ", ""), 0)
  end
  return g
end

return _M
