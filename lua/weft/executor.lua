--- Executors: the nodes of a workflow graph.
-- `weft.executor(id, fn)` or `weft.executor(id, {handle = fn, kind = ...,
-- retry = {...}, timeout = s, on_error = ..., guards = {...}})`. Options are validated here
-- so that mistakes are reported where they are made, naming the field.
local _M = {}

local check = require "weft.check"

local type, error, setmetatable, getmetatable, pairs = type, error, setmetatable, getmetatable, pairs

local Executor = {}
Executor.__index = Executor
Executor.__tostring = function(e) return "executor '" .. e.id .. "'" end
_M.Executor = Executor

local KINDS = { worker = 0, validator = 1, orchestrator = 2 }
_M.KINDS = KINDS

--- True when v can be called (a function or a table with __call); the
-- one definition is weft.check.callable.
_M.callable = check.callable

--- True when v is an executor object.
function _M.is_executor(v)
  return getmetatable(v) == Executor
end

local SECONDS = { type = "number", minimum = 0, unit = "seconds" }

--- The spec of executor options (weft.check).
_M.OPTIONS = check.spec("weft.executor", { properties = {
  handle = { type = "callable", required = true, expect = "a function(msg, ctx)",
             aliases = { "handler", "fn", "func", "run", "process" } },
  kind = { enum = { "worker", "validator", "orchestrator" }, aliases = { "type" } },
  retry = { type = "table", expect = "a table {max_attempts, backoff, backoff_factor, max_backoff}",
            aliases = { "retries", "retry_policy" }, properties = {
    max_attempts = { type = "integer", minimum = 1, aliases = { "attempts", "max_retries" } },
    backoff = SECONDS,
    backoff_factor = { type = "number", minimum = 1 },
    max_backoff = { type = "number", minimum = 0 },
  } },
  timeout = SECONDS,
  on_error = { enum = { "fail", "continue" } },
  name = { type = "string" },
  description = { type = "string" },
  -- weft.guard objects or functions, on the input and the messages/outputs
  guards = { type = "any", expect = "a list of weft.guard objects or functions",
             aliases = { "guardrails", "guard" } },
} })

--- Create an executor: `new(id, fn)`, `new(id, fn, opts)` (opts without
-- handle) or `new(id, opts)`.
function _M.new(id, spec, more)
  if type(id) ~= "string" or id == "" then
    error("weft.executor: id must be a non-empty string, got " .. type(id), 2)
  end
  local what = ("executor '%s'"):format(id)
  local opts
  if more ~= nil and not (check.callable(spec) and type(more) == "table") then
    error(what .. ": a third argument comes after a handler function and is an options table, got "
          .. type(spec) .. " and " .. type(more), 2)
  end
  if more ~= nil then
    if more.handle ~= nil then error(what .. ": the handler is given twice (the function and opts.handle)", 2) end
    opts = { handle = spec }
    for k, v in pairs(more) do opts[k] = v end
    opts = check.options(_M.OPTIONS, opts, 2, what)
  elseif check.callable(spec) then
    opts = { handle = spec }
  elseif type(spec) == "table" then
    opts = check.options(_M.OPTIONS, spec, 2, what)
  else
    error(what .. ": expects a handler function or an options table, got " .. type(spec), 2)
  end
  local r = opts.retry or {}
  local guards = opts.guards ~= nil and require("weft.guard").list(opts.guards, what, 2) or nil
  return setmetatable({
    id = id, kind = opts.kind or "worker", handle = opts.handle,
    retry = { max_attempts = r.max_attempts or 1, backoff = r.backoff or 0,
              backoff_factor = r.backoff_factor or 2, max_backoff = r.max_backoff or 30 },
    timeout = opts.timeout or 0, on_error = opts.on_error or "fail", description = opts.description,
    guards = guards,
  }, Executor)
end

return _M
