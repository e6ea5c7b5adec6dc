--- weft.invocation: the executor invocation the caller works for, as the
-- layers above the scheduler see it (weft.llm publishes its streamed
-- chunks through it) — who it is and what it may publish live, without the
-- run's C handle. `invocation.current()` finds it from the executor itself
-- or from a weft.go task the executor started (directly or not).
-- Uses weft.task (current) and weft.core.sched (emit_live, log).
local _M = {}

local task = require "weft.task"
local sched = require "weft.core.sched"

local setmetatable, getmetatable, tostring, error = setmetatable, getmetatable, tostring, error
local current, clive, clog = task.current, sched.emit_live, sched.log

local Invocation = {}
Invocation.__index = Invocation

-- The live event types (weft.core.sched.emit_live).
local LIVE = { agent_update = true, request_info = true }

--- The invocation the caller works for: an object {run_id, executor_id,
-- superstep, attempt} with the methods below, or nil outside any
-- executor. A new object per call; it stays bound to that invocation.
function _M.current()
  local run, seq, exec, ss, _, attempt = current()
  if not run then return nil end
  return setmetatable({ run_id = run.id, executor_id = exec, superstep = ss, attempt = attempt,
                        _run = run, _seq = seq }, Invocation)
end

--- Publish a live event of the invocation now (not at the barrier, not
-- recorded in a durable run): etype "agent_update" or "request_info",
-- name (may be nil) and JSON-serialisable data. true, or nil and the error
-- when the invocation has ended.
function Invocation:emit_live(etype, name, data)
  if getmetatable(self) ~= Invocation then
    error("invocation:emit_live: call it with a colon (inv:emit_live(...))", 2)
  end
  if not LIVE[etype] then
    error("invocation:emit_live: the event type must be 'agent_update' or 'request_info', got "
          .. tostring(etype), 2)
  end
  return clive(self._run.c, self._seq, etype, name, data)
end

--- A `log` event of the invocation (published at the barrier, as
-- ctx:log's): level ("debug", "info", "warn", "error") and a message.
function Invocation:log(level, msg)
  if getmetatable(self) ~= Invocation then
    error("invocation:log: call it with a colon (inv:log(...))", 2)
  end
  return clog(self._run.c, self._seq, level, msg)
end

--- Publish one streamed chunk of a model reply as a live agent_update
-- event of the invocation: true, or nil and the error when it has ended.
function Invocation:publish_chunk(chunk)
  return clive(self._run.c, self._seq, "agent_update", nil, chunk)
end

return _M
