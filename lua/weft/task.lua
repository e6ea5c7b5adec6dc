--- Tasks: `weft.go(fn, ...)` runs fn in its own coroutine on the loop, so
-- that it can use yielding weft primitives (sleep, HTTP, TCP, processes)
-- concurrently with everything else. `task:wait()` returns fn's results or
-- raises its error; an error nobody waits for is reported on stderr.
local _M = {}

local loop = require "weft.core.loop"
local sched = require "weft.core.sched"

local setmetatable, select, error, unpack, xpcall = setmetatable, select, error, unpack, xpcall
local yield, traceback = coroutine.yield, debug.traceback
local DONE = loop.DONE

local Task = {}
Task.__index = Task

-- The handle of the go task running in each coroutine.
local by_co = setmetatable({}, { __mode = "k" })

--- The invocation the caller works for: `run, seq, executor_id,
-- superstep, order, attempt` when called from an executor or from a
-- weft.go task started (directly or not) by one.
function _M.current()
  local run, seq, exec, ss, order, attempt = sched.current()
  if run then return run, seq, exec, ss, order, attempt end
  local co = coroutine.running()
  local t = co and by_co[co]
  if t and t.run then return t.run, t.seq, t.exec, t.ss, t.order, t.attempt end
end

-- Values and their count (results may contain nils).
local function pack(...) return { n = select("#", ...), ... } end

-- Body of a go task: run fn, record the outcome, wake the waiters.
local function body(t, fn, ...)
  by_co[coroutine.running()] = t
  local r = pack(xpcall(fn, traceback, ...))
  t.ok, t.n, t.results, t.done = r[1], r.n, r, true
  if t.waiters == 0 and not t.ok then
    io.stderr:write("weft: task failed: ", tostring(r[2]), "\n")
  end
  t.cond:signal()
  yield(DONE, true)
end

--- Run fn(...) in a new task; returns its handle. The task works for the
-- invocation that starts it (weft.task.current: events, journaled I/O)
-- and stops with it: when the invocation is aborted (its timeout, a
-- cancel, its run failing) or fails, the task is dropped at once (its wait
-- cancelled, its I/O stopped, its handle never done); when the invocation
-- completes, the task goes on. go_detached: a task that outlives it.
function _M.go(fn, ...)
  if type(fn) ~= "function" then error("weft.go: expects a function", 2) end
  local t = setmetatable({ done = false, waiters = 0, cond = loop.cond() }, Task)
  t.run, t.seq, t.exec, t.ss, t.order, t.attempt = _M.current()
  loop.go(body, t, fn, ...)
  return t
end

--- Run fn(...) in a new task that works for no invocation, whoever starts
-- it: what outlives a call (a server process kept for later calls) and
-- must not count as the invocation's I/O. Returns its handle.
function _M.go_detached(fn, ...)
  if type(fn) ~= "function" then error("weft.task.go_detached: expects a function", 2) end
  local t = setmetatable({ done = false, waiters = 0, cond = loop.cond() }, Task)
  loop.go_detached(body, t, fn, ...)
  return t
end

--- Wait for the task and return its results (raises its error).
function Task:wait()
  self.waiters = self.waiters + 1
  while not self.done do self.cond:wait() end
  self.waiters = self.waiters - 1
  if not self.ok then error(self.results[2], 0) end
  return unpack(self.results, 2, self.n)
end

--- True once the task has ended.
function Task:is_done() return self.done end

--- A condition: `c:wait([timeout])` (true, or false on timeout) yields the
-- calling task (or runs the loop on the main thread) until `c:signal()`.
_M.cond = loop.cond

return _M
