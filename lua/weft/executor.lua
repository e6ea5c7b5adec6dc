--- Executors: the nodes of a workflow graph.
-- `weft.executor(id, fn)` or `weft.executor(id, {handle = fn, kind = ...,
-- retry = {...}, timeout = s, on_error = ...})`. Options are validated here
-- so that mistakes are reported where they are made, naming the field.
local _M = {}

local type, error, setmetatable, getmetatable = type, error, setmetatable, getmetatable
local math_floor = math.floor

local Executor = {}
Executor.__index = Executor
Executor.__tostring = function(e) return "executor '" .. e.id .. "'" end
_M.Executor = Executor

local KINDS = { worker = 0, validator = 1, orchestrator = 2 }
_M.KINDS = KINDS

--- True when v can be called (a function or a table with __call).
function _M.callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and type(mt.__call) == "function"
end

--- True when v is an executor object.
function _M.is_executor(v)
  return getmetatable(v) == Executor
end

-- Raise a misuse error naming the executor and the field.
local function bad(id, msg, level)
  error(("executor '%s': %s"):format(tostring(id), msg), level or 3)
end

local function is_int(v) return type(v) == "number" and v == math_floor(v) end

local OPTION_KEYS = { handle = true, kind = true, retry = true, timeout = true,
                      on_error = true, name = true, description = true }
local RETRY_KEYS = { max_attempts = true, backoff = true, backoff_factor = true,
                     max_backoff = true }

-- Validate the retry table and return normalised numbers.
local function check_retry(id, r)
  if r == nil then return { max_attempts = 1, backoff = 0, backoff_factor = 2, max_backoff = 30 } end
  if type(r) ~= "table" then bad(id, "retry must be a table {max_attempts, backoff}", 4) end
  for k in pairs(r) do
    if not RETRY_KEYS[k] then bad(id, ("retry.%s is not an option (max_attempts, backoff, backoff_factor, max_backoff)"):format(tostring(k)), 4) end
  end
  local n = r.max_attempts or 1
  if not is_int(n) or n < 1 then bad(id, "retry.max_attempts must be an integer >= 1", 4) end
  local b = r.backoff or 0
  if type(b) ~= "number" or b < 0 or b ~= b then bad(id, "retry.backoff must be a number of seconds >= 0", 4) end
  local f = r.backoff_factor or 2
  if type(f) ~= "number" or f < 1 then bad(id, "retry.backoff_factor must be a number >= 1", 4) end
  local m = r.max_backoff or 30
  if type(m) ~= "number" or m < 0 then bad(id, "retry.max_backoff must be a number >= 0", 4) end
  return { max_attempts = n, backoff = b, backoff_factor = f, max_backoff = m }
end

--- Create an executor: `new(id, fn)` or `new(id, opts)`.
function _M.new(id, spec)
  if type(id) ~= "string" or id == "" then
    error("weft.executor: id must be a non-empty string, got " .. type(id), 2)
  end
  local opts
  if _M.callable(spec) then
    opts = { handle = spec }
  elseif type(spec) == "table" then
    opts = spec
    for k in pairs(opts) do
      if not OPTION_KEYS[k] then bad(id, ("unknown option '%s'"):format(tostring(k))) end
    end
  else
    bad(id, "expects a handler function or an options table, got " .. type(spec))
  end
  if not _M.callable(opts.handle) then bad(id, "handle must be a function") end
  local kind = opts.kind or "worker"
  if KINDS[kind] == nil then bad(id, ("kind must be 'worker', 'validator' or 'orchestrator', got '%s'"):format(tostring(kind))) end
  local timeout = opts.timeout or 0
  if type(timeout) ~= "number" or timeout < 0 or timeout ~= timeout then bad(id, "timeout must be a number of seconds >= 0") end
  local on_error = opts.on_error or "fail"
  if on_error ~= "fail" and on_error ~= "continue" then
    bad(id, ("on_error must be 'fail' or 'continue', got '%s'"):format(tostring(on_error)))
  end
  return setmetatable({
    id = id, kind = kind, handle = opts.handle, retry = check_retry(id, opts.retry),
    timeout = timeout, on_error = on_error, description = opts.description,
  }, Executor)
end

return _M
