--- weft.pool: executions run by worker processes (docs/scale.md). This
-- module is the protocol every side shares — what an API process, a Lua
-- submitter and a worker write to the store and read from it:
--   - the queue (one per deployment, default "weft"): items
--     `{id, workflow, hash, kind = "start"|"resume"|"cancel", input}`,
--     taken by workers (weft.worker) and acknowledged when the execution
--     ends or pauses;
--   - the execution summary, record ("executions", id): the document
--     `GET /api/v1/executions/{id}` answers (status pending until a
--     worker takes it);
--   - the execution's events, log ("events", id): one JSON event per entry,
--     numbered by the store (the SSE ids), at most EVENTS_MAX kept;
--   - cancel requests, record ("cancel", id), seen by the worker that owns
--     the execution (or takes it);
--   - blocked notes, record ("blocked", id): an executor that did not yield
--     made a worker's watchdog kill it (weft.worker.supervise writes them).
-- Uses weft.json, weft.durable, weft.store.
local json = require "weft.json"

local type, tostring, tonumber, ipairs, pcall, error, setmetatable =
  type, tostring, tonumber, ipairs, pcall, error, setmetatable
local fmt = string.format
local encode, decode = json.encode, json.decode

local _M = {}

--- The default queue name (`--queue NAME` chooses another: deployments
-- sharing one Redis database use one queue each).
_M.QUEUE = "weft"

--- Events kept per execution in its event log (older ones are trimmed).
_M.EVENTS_MAX = 10000

--- Polling of the store (takes, waits for a summary, a call or events):
-- the first wait after activity is POLL_MIN seconds, each idle one twice
-- the last, up to POLL_MAX (env WEFT_POOL_POLL_MIN and WEFT_POOL_POLL_MAX
-- override them: tests make polling useless to show that notices work).
_M.POLL_MIN = tonumber(os.getenv("WEFT_POOL_POLL_MIN") or "") or 0.001
_M.POLL_MAX = tonumber(os.getenv("WEFT_POOL_POLL_MAX") or "") or 0.02

--- A poller: p(busy) waits before the next read of the store — POLL_MIN
-- after a read that found something (busy true), else twice the last
-- wait up to max (default POLL_MAX). With cond (a weft.cond signalled when
-- what is waited for may have changed: the workers' notices, see
-- weft.worker.supervise) the wait ends early when it is signalled.
function _M.poller(max, cond)
  local weft = require "weft"
  local cur, top = _M.POLL_MIN, math.max(max or _M.POLL_MAX, _M.POLL_MIN)
  return function(busy)
    if busy then cur = _M.POLL_MIN else cur = math.min(top, math.max(cur * 2, _M.POLL_MIN)) end
    if cond then cond:wait(cur) else weft.sleep(cur) end
  end
end

--- Notices of a pool on this machine (weft serve --workers): the
-- supervisor's workers tell it when an execution or call changed; waiters
-- of an id wait on its cond. `notices.wait_cond(id)` -> cond (take it
-- before reading the store, give it back with `done(id)`), `changed(id)`
-- signals it.
function _M.notices()
  local weft = require "weft"
  local conds, users = {}, {}
  local n = {}
  function n.wait_cond(id)
    local c = conds[id]
    if not c then c = weft.cond(); conds[id] = c end
    users[id] = (users[id] or 0) + 1
    return c
  end
  function n.done(id)
    users[id] = (users[id] or 1) - 1
    if users[id] <= 0 then conds[id], users[id] = nil, nil end
  end
  function n.changed(id)
    local c = conds[id]
    if c then c:signal() end
  end
  return n
end

--- Statuses of an execution that ended.
_M.TERMINAL = { completed = true, failed = true, cancelled = true }

local counter = 0

--- A new execution id, unique across processes and restarts.
function _M.new_id()
  counter = counter + 1
  local rnd = require("weft.urandom").hex(4)
    or fmt("%04x%04x", math.random(0, 0xffff), math.random(0, 0xffff))
  return fmt("exec-%x-%s-%d", os.time(), rnd, counter)
end

--- The public summary of execution x (a table with the execution's fields;
-- the shape `GET /api/v1/executions/{id}` answers).
function _M.summary(x)
  local scrub = require("weft.serve.errors").scrub
  return { id = x.id, workflow = x.workflow, status = x.status, created_at = x.created_at,
           updated_at = x.updated_at, finished_at = x.finished_at, error = scrub(x.error),
           outputs = x.outputs, supersteps = x.supersteps, duration_ms = x.duration_ms,
           requests = x.requests, durable = x.durable or nil, async = x.async,
           resuming = x.resuming and not _M.TERMINAL[x.status] or nil,
           hash = x.hash, worker = x.worker, attempts = x.attempts, waiting = x.waiting }
end

--- Copy run result res ({status, error, outputs, supersteps, duration_ms,
-- requests}) into execution x (a summary's fields): outputs and requests
-- as JSON arrays, updated_at now, finished_at once it ended (kept if set).
function _M.apply_result(x, res)
  x.status, x.error, x.resuming, x.waiting = res.status, res.error, nil, nil
  x.outputs = json.array()
  for i, o in ipairs(res.outputs or {}) do x.outputs[i] = o end
  x.supersteps, x.duration_ms = res.supersteps, res.duration_ms
  x.updated_at = require("weft").now()
  x.requests = nil
  if res.status == "idle" then
    x.requests = json.array()
    for i, q in ipairs(res.requests or {}) do x.requests[i] = q end
  end
  if _M.TERMINAL[res.status] and not x.finished_at then x.finished_at = x.updated_at end
end

--- The stored summary of execution id: a table, nil (absent), or nil, err.
function _M.get(store, id)
  local s, err = store:get("executions", id)
  if s == nil then return nil, err end
  local ok, d = pcall(decode, s)
  if not ok or type(d) ~= "table" then return nil, fmt("execution '%s': unreadable summary", id) end
  return d, s
end

-- Raise unless ok (a store call's first result), naming what.
local function must(ok, err, what)
  if not ok then error(fmt("store: %s: %s", what, tostring(err)), 0) end
  return ok
end

--- Submit an execution: o = {workflow = id, hash = definition hash, input,
-- id (optional), queue (optional), async}. The summary (status "pending")
-- and the queue item are written in one atomic batch; returns the summary.
function _M.submit(store, o)
  local now = require("weft").now()
  local x = { id = o.id or _M.new_id(), workflow = o.workflow, hash = o.hash, status = "pending",
              created_at = now, updated_at = now, durable = true, async = o.async }
  local item = { id = x.id, workflow = o.workflow, hash = o.hash, kind = "start",
                 input = o.input == nil and json.null or o.input }
  local ok, err = store:batch()
    :expect("executions", x.id, false)
    :put("executions", x.id, encode(_M.summary(x)))
    :queue_push(o.queue or _M.QUEUE, encode(item))
    :commit()
  must(ok, err, "submitting execution " .. x.id)
  return _M.summary(x)
end

--- Put item kind ("resume", "cancel") of execution d (its stored
-- summary) on the queue.
function _M.enqueue(store, d, kind, queue)
  local ok, err = store:queue_push(queue or _M.QUEUE,
    encode({ id = d.id, workflow = d.workflow, hash = d.hash, kind = kind }))
  return must(ok, err, "queueing execution " .. tostring(d.id))
end

--- Ask for execution id to be cancelled: the worker that owns it (or takes
-- it) cancels it; a paused one (no worker holds it) is queued for one.
-- Returns the stored summary, or nil, err (unknown id).
function _M.cancel(store, id, queue)
  local d, err = _M.get(store, id)
  if not d then return nil, err or fmt("unknown execution '%s'", id) end
  if _M.TERMINAL[d.status] then return d end
  must(store:put("cancel", id, "1"))
  if d.status == "idle" then _M.enqueue(store, d, "cancel", queue) end
  return d
end

--- Answer request request_id of paused execution id with value: the answer
-- is stored with the run (weft.durable) and the execution queued again.
-- true, or nil, err (unknown request, already answered).
function _M.answer(store, id, request_id, value, queue)
  local d, err = _M.get(store, id)
  if not d then return nil, err or fmt("unknown execution '%s'", id) end
  local ok, aerr = require("weft.durable").answer(store, id, request_id, value)
  if not ok then return nil, aerr end
  -- the summary says it goes on (no open request any more), in the batch
  -- that queues it again
  d.status, d.requests, d.updated_at = "running", nil, require("weft").now()
  local qok, qerr = store:batch()
    :put("executions", id, encode(_M.summary(d)))
    :queue_push(queue or _M.QUEUE, encode({ id = d.id, workflow = d.workflow, hash = d.hash, kind = "resume" }))
    :commit()
  must(qok, qerr, "queueing execution " .. id)
  return true
end

--- Events of execution id numbered from `from` (default 1): a list of
-- {n = number, event = table}, or nil, err.
function _M.events(store, id, from)
  local rows, err = store:range("events", id, from or 1)
  if not rows then return nil, err end
  local out = {}
  for _, r in ipairs(rows) do
    local ok, ev = pcall(decode, r.value)
    out[#out + 1] = { n = r.seq, event = ok and ev or { type = "unreadable" } }
  end
  return out
end

-- ---------------------------------------------------------------------------
-- calls: work of the API that is not an execution (a chat completion, a
-- builder request) done by a worker, so that a replica never calls a model

-- name -> fn(app, args, chunk) -> result (a JSON value); raises an error
-- object of weft.serve.errors (or a string) on failure; chunk(text)
-- streams a piece of the reply.
local calls = {}

--- Register call `name` (weft.serve modules register theirs when loaded:
-- "chat", "builder").
function _M.register_call(name, fn) calls[name] = fn end

--- The function of call `name`, or nil.
function _M.call_fn(name) return calls[name] end

--- Seconds a replica waits for a call's result before it gives up (the
-- call may still run on a worker).
_M.CALL_TIMEOUT = 600

--- Have a worker do call `name` with args and wait for it: its result, or
-- raises its error object (an API error keeps its status). opts: pool
-- (a replica's app.pool: {queue, notices, wake}), on_chunk
-- (function(text), for the pieces the call streams), timeout.
-- The record ("calls", id) and the log ("events", id) are removed after.
function _M.call(store, name, args, opts)
  opts = opts or {}
  local weft = require "weft"
  local errors = require "weft.serve.errors"
  local id = _M.new_id():gsub("^exec", "call")
  local p = opts.pool or {}
  local ok, err = store:queue_push(p.queue or _M.QUEUE, encode({ id = id, kind = "call", call = name, args = args }))
  if not ok then errors.throw(503, "store_unavailable", "store: " .. tostring(err)) end
  local n, deadline = 0, weft.clock() + (opts.timeout or _M.CALL_TIMEOUT)
  local nt = p.notices
  local done, poll = nil, _M.poller(nil, nt and nt.wait_cond(id))
  if p.wake then p.wake() end
  while true do
    local busy = false
    if opts.on_chunk then
      for _, e in ipairs(_M.events(store, id, n + 1) or {}) do
        n, busy = e.n, true
        if type(e.event) == "table" and type(e.event.chunk) == "string" then opts.on_chunk(e.event.chunk) end
      end
    end
    local s = store:get("calls", id)
    if s then
      done = decode(s)
      if opts.on_chunk then -- the last pieces were written with the result
        for _, e in ipairs(_M.events(store, id, n + 1) or {}) do
          if type(e.event) == "table" and type(e.event.chunk) == "string" then opts.on_chunk(e.event.chunk) end
        end
      end
      break
    end
    if weft.clock() > deadline then
      if nt then nt.done(id) end
      errors.throw(504, "worker_timeout", fmt("no worker answered call %s (%s) within %d s", id, name,
        opts.timeout or _M.CALL_TIMEOUT))
    end
    poll(busy)
  end
  if nt then nt.done(id) end
  store:batch():del("calls", id):del("events", id):commit()
  if done.ok then return done.result end
  local e = done.error or {}
  if e.status then error(errors.new(e.status, e.code or "error", e.message or "call failed", e.details), 0) end
  error(tostring(e.message or "call failed"), 0)
end

-- ---------------------------------------------------------------------------
-- submitting from Lua: wf:spawn(input, {queue = store})

local Remote = {}
Remote.__index = Remote

--- Submit a run of wf to the worker pool of opts.queue (a store or a store
-- URL): opts.workflow names it for the workers (their script or definition
-- id; default wf.name), opts.run_id is the execution id (default a new
-- one). Returns a handle: h.id, h:status(), h:wait() (the result table
-- once the execution ended or paused), h:cancel(), h:respond(request_id,
-- value), h:events(from). Raises when the store refuses the submission.
function _M.spawn(wf, input, opts)
  local store = opts.queue
  if type(store) == "string" then
    local s, err = require("weft.store").open(store)
    if not s then error("run: queue " .. store .. ": " .. tostring(err), 0) end
    store = s
  end
  local d = _M.submit(store, { workflow = opts.workflow or wf.name, hash = require("weft.durable").hash(wf),
                               input = input, id = opts.run_id, async = true })
  return setmetatable({ id = d.id, store = store, last = d }, Remote)
end

--- The execution's status now ("pending", "running", "idle", ...).
function Remote:status()
  local d = _M.get(self.store, self.id)
  if d then self.last = d end
  return self.last.status
end

--- Wait until the execution ends or pauses; returns {status, outputs,
-- error, requests, supersteps, duration_ms, run_id}.
function Remote:wait()
  local poll = _M.poller()
  while true do
    local st = self:status()
    if _M.TERMINAL[st] or st == "idle" then break end
    poll(false)
  end
  local d = self.last
  return { status = d.status, outputs = d.outputs or {}, error = d.error, requests = d.requests,
           supersteps = d.supersteps, duration_ms = d.duration_ms, run_id = d.id }
end

--- Ask for the execution to be cancelled (it ends cancelled soon after).
function Remote:cancel() return _M.cancel(self.store, self.id) end

--- Answer request request_id of the paused execution: true, or nil, err.
function Remote:respond(request_id, value) return _M.answer(self.store, self.id, request_id, value) end

--- The execution's events from number `from` (default 1): {{n, event}}.
function Remote:events(from) return _M.events(self.store, self.id, from) end

return _M
