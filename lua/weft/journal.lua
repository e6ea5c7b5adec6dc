--- weft.journal — the one journaling hook of effectful I/O. weft.http,
-- weft.llm, weft.sandbox and weft.mcp run each request through
-- `journal.call`; it
-- calls the request at once unless a hook is set. weft.durable sets the
-- hook while a durable run is active (the call sites never load
-- weft.durable), and the hook records the result of each top-level call of
-- a durable invocation, or hands a re-executed invocation its recording
-- (docs/durability.md, "The I/O journal"). Uses nothing.
local _M = {}

local hook -- nil while no durable run is active: calls go straight through
local observer -- nil unless something watches the calls (weft.otel)

-- A call past the observer: through the hook when one is set.
local function journaled(kind, request, fn, ...)
  local h = hook
  if h == nil then return fn(...) end
  return h(kind, request, fn, ...)
end

--- Run fn(...) as a journaled request of kind ("http", "llm", "sandbox",
-- "mcp"): request is a table {what = "short description", ...}
-- identifying it (hashed with its fields, so that a replay can tell another
-- request from the recorded one). Returns fn's results (or the recorded
-- ones).
function _M.call(kind, request, fn, ...)
  local o = observer
  if o ~= nil then return o(kind, request, journaled, fn, ...) end
  local h = hook
  if h == nil then return fn(...) end
  return h(kind, request, fn, ...)
end

-- A call that is observed but never journaled.
local function unjournaled(_, _, fn, ...) return fn(...) end

--- Run fn(...) as a request of kind the observer sees but the journal never
-- records: tool calls (a tool handler gets the invocation's ctx, so a
-- re-executed invocation runs it again: docs/durability.md).
function _M.observed(kind, request, fn, ...)
  local o = observer
  if o == nil then return fn(...) end
  return o(kind, request, unjournaled, fn, ...)
end

--- Set the observer (nil: none): o(kind, request, call, fn, ...) sees every
-- request of journal.call and journal.observed and must return
-- call(kind, request, fn, ...) (what the hook or fn returns), e.g. timing
-- it (weft.otel's spans). Returns the previous observer.
function _M.observe(o)
  if o ~= nil and type(o) ~= "function" then error("weft.journal.observe: expects a function or nil", 2) end
  local old = observer
  observer = o
  return old
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
