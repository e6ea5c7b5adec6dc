--- weft.journal — the one journaling hook of effectful I/O. weft.http,
-- weft.llm and weft.sandbox run each request through `journal.call`; it
-- calls the request at once unless a hook is set. weft.durable sets the
-- hook while a durable run is active (the call sites never load
-- weft.durable), and the hook records the result of each top-level call of
-- a durable invocation, or hands a re-executed invocation its recording
-- (docs/durability.md, "The I/O journal"). Uses nothing.
local _M = {}

local hook -- nil while no durable run is active: calls go straight through

--- Run fn(...) as a journaled request of kind ("http", "llm", "sandbox"):
-- request is a table {what = "short description", ...} identifying it
-- (hashed with its fields, so that a replay can tell another request from
-- the recorded one). Returns fn's results (or the recorded ones).
function _M.call(kind, request, fn, ...)
  local h = hook
  if h == nil then return fn(...) end
  return h(kind, request, fn, ...)
end

--- Set the hook (nil: none): h(kind, request, fn, ...) must return what
-- fn(...) returns. Returns the previous hook.
function _M.set(h)
  if h ~= nil and type(h) ~= "function" then error("weft.journal.set: expects a function or nil", 2) end
  local old = hook
  hook = h
  return old
end

return _M
