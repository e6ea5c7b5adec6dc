--- weft: a Lua-scriptable runtime for multi-agent LLM workflows.
-- `local weft = require "weft"` gives the public API: executors, workflow
-- builder, runs, reducers, JSON and the loop primitives (see docs/api.md).
local _M = {}

local core = require "weft.core"
local loop = require "weft.core.loop"
local executor = require "weft.executor"
local workflow = require "weft.workflow"
local run = require "weft.run"

_M.version = core.version
_M.json = require "weft.json"
_M.reduce = require "weft.reduce"

--- Create an executor: `weft.executor(id, fn)`, `weft.executor(id, fn, opts)` or `weft.executor(id, opts)`.
_M.executor = executor.new
--- Start building a workflow.
_M.workflow = workflow.new
--- Wait for several run handles; returns their results in order.
_M.wait_all = run.wait_all
--- True when v is a built workflow.
_M.is_workflow = workflow.is_workflow
--- True when v is an unbuilt workflow builder.
_M.is_builder = workflow.is_builder
--- True when v is an executor object.
_M.is_executor = executor.is_executor

local task = require "weft.task"
--- Run fn(...) in its own task on the loop; returns a handle with :wait().
_M.go = task.go
--- A condition variable for tasks: c:wait([timeout]), c:signal().
_M.cond = task.cond

--- Sleep: yields the calling executor; on the main thread runs the loop.
_M.sleep = loop.sleep
--- One loop iteration (blocks until something happens); false when idle.
_M.step = loop.step
--- Run ready work without blocking; false when idle.
_M.poll = loop.poll
--- A descriptor that polls readable when weft has I/O to handle (host
-- loops: wait on it, then call weft.poll()); nil, err if the backend has none.
_M.fd = loop.fd
--- Seconds a host loop may wait on weft.fd() before calling weft.poll()
-- anyway: 0 when work is ready, else `cap` (default 0.05) for timers.
_M.timeout = loop.timeout
--- Wall-clock seconds since the epoch (for timestamps).
_M.now = loop.now
--- Monotonic seconds (for measuring durations).
_M.clock = loop.clock

--- Agents: `weft.agent{name, instructions, model, tools, ...}` (loaded
-- here so that workflow:as_agent is always installed; see docs/agents.md).
_M.agent = require "weft.agent"

-- Modules loaded on first use, so that `require "weft"` stays cheap (see
-- docs/api.md, The weft table): weft.http, weft.llm, weft.sandbox,
-- weft.tcp, weft.std (the built-in executors), weft.patterns, weft.flow,
-- weft.agents, weft.tool, weft.thread, weft.memory, weft.window
-- (context-window reducers), weft.schema, weft.store, weft.durable,
-- weft.server, weft.host, weft.script, weft.pool, weft.worker, weft.guard,
-- weft.guardrails (docs/guardrails.md). A name maps to its module, or to a
-- function making the public face of a module that also holds internals.
local LAZY = {
  http = "weft.http", llm = "weft.llm", sandbox = "weft.sandbox", tcp = "weft.tcp",
  std = "weft.std", patterns = "weft.patterns", flow = "weft.flow", agents = "weft.agents",
  tool = "weft.tool", thread = "weft.thread", memory = "weft.memory", window = "weft.window",
  schema = "weft.schema", store = "weft.store", server = "weft.server", host = "weft.host",
  script = "weft.script", otel = "weft.otel", guard = "weft.guard", guardrails = "weft.guardrails",
  -- the run journal (record_effects, replay_of, ...) stays internal
  durable = function()
    local d = require "weft.durable"
    return { cleanup = d.cleanup, hash = d.hash }
  end,
  -- the worker pool (docs/scale.md): submitting and following executions
  pool = function()
    local p = require "weft.pool"
    return { submit = p.submit, get = p.get, cancel = p.cancel, answer = p.answer, events = p.events,
             spawn = p.spawn, QUEUE = p.QUEUE }
  end,
  worker = function()
    local w = require "weft.worker"
    return { new = w.new, supervise = w.supervise }
  end,
}
-- Deprecated names, resolved on every access (never cached, so pairs()
-- over the table lists public names only): gone in 0.2.
local DEPRECATED = { reducers = "window" }

setmetatable(_M, {
  __index = function(t, k)
    local what = LAZY[k]
    if what == nil then
      local new = DEPRECATED[k]
      return new and t[new] or nil
    end
    local m = type(what) == "function" and what() or require(what)
    rawset(t, k, m)
    return m
  end,
})

return _M
