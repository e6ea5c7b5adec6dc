--- weft.serve.executions — running workflows through the API:
-- `POST /api/v1/workflows/{id}/execute {input, async}` (sync: 200 with the
-- result; async: 202 {id, status}, the run goes on in the loop, durable when
-- the app is), `GET /api/v1/executions` (?workflow=&status=, paginated),
-- `GET/DELETE /api/v1/executions/{id}` (status / cancel),
-- `GET /api/v1/executions/{id}/events` (server-sent events, `id: n` per
-- event, replay after the `last-event-id` header) and
-- `POST /api/v1/executions/{id}/responses {request_id, value}` (human in
-- the loop), `POST /api/v1/executions/{id}/resume {from, force}` (continue
-- a durable execution from one of its checkpoints). Summaries are kept in the store (namespace "executions");
-- handles and events live in this process.
-- With app.pool (weft serve --workers) executions are queued for worker
-- processes and read from the store instead (weft.pool, docs/scale.md).
-- Uses weft, weft.json, weft.pool, weft.serve.{app, errors, workflows}.
local json = require "weft.json"
local errors = require "weft.serve.errors"
local pool = require "weft.pool"

local type, pairs, ipairs, tostring, tonumber, pcall = type, pairs, ipairs, tostring, tonumber, pcall
local fmt = string.format
local throw = errors.throw

local _M = {}

local TERMINAL = pool.TERMINAL

--- Request bodies (weft.check object schemas, errors.check_body).
_M.EXECUTE = errors.schema("execute", { properties = {
  input = { type = "any", description = "the run's input", aliases = { "inputs", "message", "data" } },
  async = { type = "boolean", description = "202 at once; the run goes on" },
} })
_M.RESPONSE = errors.schema("response", { properties = {
  request_id = { type = "string", minLength = 1, required = true },
  value = { type = "any", required = true, description = "the answer", aliases = { "answer", "response" } },
} })
_M.RESUME = errors.schema("resume", { properties = {
  from = { type = "integer", minimum = 1, description = "the checkpoint to continue from (default: the last)",
           aliases = { "checkpoint", "seq" } },
  force = { type = "boolean", description = "continue even if the workflow's definition changed since" },
} })
_M.TERMINAL = TERMINAL

-- A new execution id (unique across restarts on one store).
local new_id = pool.new_id

-- The public summary of execution x (weft.pool's: one shape for this
-- process's executions and the ones workers run).
local summary = pool.summary
_M.summary = summary

-- Summary d made safe to answer: a run's outputs or requests that cannot
-- be encoded (a workflow may build values nested deeper than the JSON
-- limit) are replaced by a note, so one execution never fails a listing.
local function answerable(d)
  if type(d) ~= "table" or json.check(d) == nil then return d end
  for _, k in ipairs({ "outputs", "requests" }) do
    if d[k] ~= nil and json.check(d[k]) ~= nil then
      d[k] = nil
      d.unavailable = d.unavailable or json.array()
      d.unavailable[#d.unavailable + 1] = k
    end
  end
  if json.check(d) ~= nil then
    d = { id = d.id, workflow = d.workflow, status = d.status, unavailable = json.array({ "summary" }) }
  end
  return d
end

-- Persist x's summary (best effort: a store failure is logged); returns
-- the summary as JSON.
local function save(app, x)
  local s = json.encode(summary(x))
  local ok, err = app.store:put("executions", x.id, s)
  if not ok then io.stderr:write("weft serve: store: execution ", x.id, ": ", tostring(err), "\n") end
  return s
end

-- Copy result res into execution x, count it, persist it, wake watchers;
-- returns x's summary as JSON.
local function finish(app, x, res)
  local ended = TERMINAL[res.status] and not x.finished_at
  pool.apply_result(x, res)
  if ended then
    app.metrics:run_finished(res.status, res.supersteps or 0, (res.duration_ms or 0) / 1000)
    -- keep the last MAX_FINISHED finished executions in memory (events for
    -- SSE replay); older ones are served from their stored summary
    local q = app.finished_queue
    if not q then q = { head = 1, tail = 0 }; app.finished_queue = q end
    q.tail = q.tail + 1
    q[q.tail] = x.id
    while q.tail - q.head + 1 > _M.MAX_FINISHED do
      -- an execution resumed since it was queued here is live again (its
      -- next end queues it anew)
      local old = app.executions[q[q.head]]
      if old and TERMINAL[old.status] then app.executions[q[q.head]] = nil end
      q[q.head] = nil
      q.head = q.head + 1
    end
  end
  local encoded = save(app, x)
  x.cond:signal()
  return encoded
end

-- Wait for x's run in a task of its own (async runs, resumed runs).
local function watch(app, x)
  require("weft").go(function()
    local res = x.handle:wait()
    finish(app, x, res)
  end)
end

--- How many finished executions stay in memory (with their events).
_M.MAX_FINISHED = 1000

--- Seconds without an event after which an SSE stream gets a comment line
-- (": keep-alive").
_M.HEARTBEAT = 15

-- The subscriber of execution x's run: keeps its events (SSE replay),
-- counts supersteps and times executor invocations for the metrics, and
-- wakes whoever waits on x.
local function subscriber(app, x, clock)
  local events, metrics, cond = x.events, app.metrics, x.cond
  -- executor id -> the start clock of its invocation, or a queue {head,
  -- tail, ...} of them when it has several at once: the invocations of an
  -- executor start in order and their completions are published in the
  -- same order (a superstep's all end before the next one's start)
  local started = {}
  return function(ev)
    events[#events + 1] = ev
    local t = ev.type
    if t == "executor_invoked" then
      local id, now = ev.executor_id, clock()
      local q = started[id]
      if q == nil then
        started[id] = now
      elseif type(q) == "number" then
        started[id] = { head = 1, tail = 2, q, now }
      else
        q.tail = q.tail + 1
        q[q.tail] = now
      end
    elseif t == "executor_completed" or t == "executor_failed" then
      local id = ev.executor_id
      local q, t0 = started[id], nil
      if type(q) == "number" then
        t0, started[id] = q, nil
      elseif q then
        t0, q[q.head] = q[q.head], nil
        q.head = q.head + 1
        if q.head > q.tail then started[id] = nil end
      end
      if t0 then metrics:executor_done(clock() - t0) end
    elseif t == "superstep_completed" then
      metrics.supersteps = metrics.supersteps + 1
    end
    cond:signal()
  end
end

--- Start an execution of workflow wf (id wid) with input; returns it.
function _M.start(app, wid, wf, input, async)
  local weft = require "weft"
  local x = { id = new_id(), workflow = wid, status = "running", created_at = weft.now(),
              events = {}, cond = weft.cond(), async = async, durable = app.durable }
  x.updated_at = x.created_at
  local opts = { run_id = x.id, on_event = subscriber(app, x, weft.clock), events = false }
  if app.durable then opts.store = app.store end
  local ok, h
  if app.host and app.host:has(wid) then
    -- scripts of a watching host: runs switch versions at barriers
    ok, h = pcall(app.host.spawn, app.host, wid, input, opts)
  else
    ok, h = pcall(wf.spawn, wf, input, opts)
  end
  if not ok then throw(400, "bad_request", "cannot start the run: " .. tostring(h)) end
  x.handle = h
  app.executions[x.id] = x
  app.metrics.runs_started = app.metrics.runs_started + 1
  save(app, x)
  return x
end

-- The message of an error value e (a string, or an error table).
local function message(e)
  return type(e) == "table" and (e.message or (e.error and e.error.message)) or tostring(e)
end

-- Execution x could not be resumed (error e): failed, persisted.
local function not_resumed(app, x, e)
  x.status, x.error = "failed", "could not resume: " .. message(e)
  x.finished_at = require("weft").now()
  x.updated_at = x.finished_at
  save(app, x)
  x.cond:signal()
end

-- Resume execution x of workflow wf in a task of its own once the lease
-- its previous process still holds is free (that process was killed while
-- the run was active: its lease expires without renewals). x is shown as
-- running and resuming meanwhile; cancelled meanwhile (x.cancel_wanted),
-- the run is cancelled as soon as this process owns it, so its record
-- ends cancelled too.
local function resume_later(app, x, wf, opts)
  x.resuming = true
  -- a DELETE meanwhile stops the wait itself (checked between polls)
  opts.lease = { wait = true, cancel = function() return x.cancel_wanted end }
  require("weft").go(function()
    local ok, h = pcall(wf.resume, wf, x.id, opts) -- yields while it waits
    x.resuming = nil
    if not ok then
      if not TERMINAL[x.status] then not_resumed(app, x, h) end
      return
    end
    x.handle = h
    if x.cancel_wanted then h:cancel() end
    finish(app, x, h:wait())
  end)
end

--- Resume the durable executions a previous process left running or
-- paused (their last checkpoint is in the store): each continues in this
-- process. One whose run is still owned (its process was killed mid-run:
-- the lease has not expired yet) is resumed by a task as soon as the lease
-- is free. Returns the number resumed (waiting ones included), the list of
-- {id, error} that could not be, and the number waiting for a lease.
function _M.resume_running(app)
  local weft = require "weft"
  local failed, n, waiting = {}, 0, 0
  if not app.durable then return 0, failed, 0 end
  local rows, err = app.store:scan("executions", "")
  if not rows then error("store: " .. tostring(err), 0) end
  for _, row in ipairs(rows) do
    local ok, d = pcall(json.decode, row.value)
    if ok and type(d) == "table" and (d.status == "running" or d.status == "idle") and d.durable then
      local x = { id = d.id, workflow = d.workflow, status = d.status, created_at = d.created_at,
                  events = {}, cond = weft.cond(), async = true, durable = true, resumed = true }
      x.updated_at = weft.now()
      local opts = { store = app.store, events = false, on_event = function(ev)
        x.events[#x.events + 1] = ev
        x.cond:signal()
      end }
      local wok, wf = pcall(require("weft.serve.workflows").get, app, d.workflow)
      local rok, h = wok, wf
      if wok then rok, h = pcall(wf.resume, wf, d.id, opts) end
      if rok then
        -- resuming until the run pauses again or ends (finish): a paused
        -- one re-asks its requests on the way
        x.handle, x.resuming = h, true
        app.executions[x.id] = x
        n = n + 1
        watch(app, x)
      elseif wok and (app.store:lease(d.id) or {}).held then
        x.status = "running"
        app.executions[x.id] = x
        n, waiting = n + 1, waiting + 1
        resume_later(app, x, wf, opts)
      else
        failed[#failed + 1] = { id = d.id, error = message(h) }
        not_resumed(app, x, h)
      end
    end
  end
  return n, failed, waiting
end

-- The execution id: in this process, else its stored summary (x, stored).
local lookup

-- Refuse (409) to resume execution id when the lease of its run is held
-- (another process, or a worker, runs it).
local function not_owned(app, id)
  local l = app.store:lease(id)
  if l and l.held then
    errors.conflict(("execution '%s' is run by another process (%s): it cannot be resumed here")
      :format(id, require("weft.store").describe_lease(l)), { owner = l.owner })
  end
end

-- The checkpoint `from` of execution id checked against its log (400
-- naming what is missing), wf: its workflow; the definition check
-- (force) of weft.durable, which changes nothing when it refuses.
local function check_resume(app, id, wf, from, force)
  local durable = require "weft.durable"
  local ok, err = pcall(durable.check_resumable, wf, app.store, id, { force = force })
  if not ok then
    if tostring(err):find("unknown run", 1, true) then
      throw(400, "not_durable", ("execution '%s' has no checkpoints (it is not durable): it cannot be resumed"):format(id))
    end
    throw(400, "not_resumable", message(err))
  end
  if from then
    local st, serr, code = durable.state_at(wf, app.store, id, from)
    if not st then
      throw(code == "store" and 503 or 400, code == "store" and "store_unavailable" or "not_resumable",
        message(serr), { from = from })
    end
  end
end

--- Continue execution id in this process from checkpoint `from` (nil:
-- its last) as `resume_running` does at start: a new run of its record
-- (events from 1, watched to its end, the summary saved). force: even if
-- the definition changed. Raises 409 when it is live here or owned
-- elsewhere, 400 with weft.durable's refusal otherwise. Returns it.
function _M.resume(app, id, from, force)
  local weft = require "weft"
  local x, d = lookup(app, id)
  if x and not TERMINAL[x.status] then
    errors.conflict(("execution '%s' is %s in this process: cancel it first, or answer its requests")
      :format(id, x.status), { status = x.status })
  end
  d = x and summary(x) or d
  local wf = require("weft.serve.workflows").get(app, d.workflow)
  not_owned(app, id)
  check_resume(app, id, wf, from, force)
  local nx = { id = id, workflow = d.workflow, status = "running", created_at = d.created_at,
               events = {}, cond = weft.cond(), async = true, durable = true, resumed = true }
  nx.updated_at = weft.now()
  local opts = { store = app.store, from = from, force = force, events = false,
                 on_event = subscriber(app, nx, weft.clock) }
  local ok, h = pcall(wf.resume, wf, id, opts)
  if not ok then
    not_owned(app, id) -- taken meanwhile
    throw(400, "not_resumable", message(h))
  end
  nx.handle = h
  app.executions[id] = nx
  save(app, nx)
  watch(app, nx)
  return nx
end
function lookup(app, id)
  local x = app.executions[id]
  if x then return x end
  local v, err = app.store:get("executions", id)
  if v == nil and err then throw(503, "store_unavailable", "store: " .. tostring(err)) end
  local d = v and json.decode(v)
  if type(d) ~= "table" then errors.not_found("execution", id) end
  return nil, d
end

-- One server-sent event for event number n.
local function sse(n, ev)
  local ok, data = pcall(json.encode, ev)
  if not ok then data = json.encode({ type = ev.type, error = "event not serialisable: " .. tostring(data) }) end
  return fmt("id: %d\nevent: %s\ndata: %s\n\n", n, tostring(ev.type), data)
end

-- ---------------------------------------------------------------------------
-- pool mode (weft serve --workers N: docs/scale.md): executions are queued
-- for worker processes; everything about them is read from the store, so
-- that any replica answers for any execution.

-- The stored summary of execution id (404 when unknown, 503 when the
-- store fails).
local function stored(app, id)
  local d, err = pool.get(app.store, id)
  if not d then
    if err then throw(503, "store_unavailable", "store: " .. tostring(err)) end
    errors.not_found("execution", id)
  end
  return d
end

-- Queue an execution of workflow wid (built as wf) with input.
local function pool_execute(app, wid, wf, input, async)
  local ok, d = pcall(pool.submit, app.store, { workflow = wid, hash = require("weft.durable").hash(wf),
    input = input, async = async, queue = app.pool.queue })
  if not ok then throw(503, "store_unavailable", tostring(d)) end
  app.metrics.runs_started = app.metrics.runs_started + 1
  if app.pool.wake then app.pool.wake() end
  if async then
    return 202, { id = d.id, status = d.status, workflow = wid }, { location = "/api/v1/executions/" .. d.id }
  end
  local nt = app.pool.notices
  local poll = pool.poller(nil, nt and nt.wait_cond(d.id))
  local ok, err = pcall(function()
    while not TERMINAL[d.status] and d.status ~= "idle" do
      poll(false)
      d = stored(app, d.id)
    end
  end)
  if nt then nt.done(d.id) end
  if not ok then error(err, 0) end
  return 200, answerable(d)
end

-- DELETE of a queued execution: the worker that has it (or takes it)
-- cancels it.
local function pool_cancel(app, id)
  local d = stored(app, id)
  if TERMINAL[d.status] then
    errors.conflict(("execution '%s' has already ended (%s)"):format(id, d.status), { status = d.status })
  end
  local ok, err = pcall(pool.cancel, app.store, id, app.pool.queue)
  if not ok then throw(503, "store_unavailable", tostring(err)) end
  if app.pool.wake then app.pool.wake() end
  return 202, { id = id, status = d.status }
end

-- POST …/responses of a queued execution: the answer is stored and the
-- execution queued again.
local function pool_respond(app, id, request_id, value)
  local d = stored(app, id)
  if d.status ~= "idle" then
    errors.conflict(("execution '%s' is %s: it takes no responses"):format(id, d.status), { status = d.status })
  end
  local ok, aok, aerr = pcall(pool.answer, app.store, id, request_id, value, app.pool.queue)
  if not ok then throw(503, "store_unavailable", tostring(aok)) end
  if not aok then throw(404, "unknown_request", tostring(aerr), { request_id = request_id }) end
  if app.pool.wake then app.pool.wake() end
  return 202, { id = id, status = "running" }
end

-- The event stream of execution d (its stored summary) from event number
-- `from` on; poll: the poller between two reads of the store.
local function pool_stream(app, d, from, res, poll)
  local weft = require "weft"
  local id = d.id
  local w = res:stream(200, { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" })
  res.streaming = true
  local n, quiet = from, weft.clock()
  while true do
    local list = pool.events(app.store, id, n + 1)
    for _, e in ipairs(list or {}) do
      n = e.n
      if not w:write(sse(n, e.event)) then return end -- the client left
    end
    if list and #list > 0 then
      quiet = weft.clock() -- read again at once: more may have come meanwhile
    else
      if TERMINAL[d.status] then break end
      if weft.clock() - quiet >= _M.HEARTBEAT then
        quiet = weft.clock()
        if not w:write(": keep-alive\n\n") then return end
      end
      poll(false)
    end
    d = pool.get(app.store, id) or d
  end
  w:write(fmt("event: end\ndata: %s\n\n", json.encode({ id = id, status = d.status })))
  w:close()
end

-- GET …/events of a queued execution: its event log, numbered by the
-- store (the same ids on every replica), then the end event.
local function pool_events(app, id, from, res)
  local d = stored(app, id)
  local nt = app.pool.notices
  local ok, err = pcall(pool_stream, app, d, from, res, pool.poller(nil, nt and nt.wait_cond(id)))
  if nt then nt.done(id) end
  if not ok then error(err, 0) end
end

-- POST …/resume of a queued execution: the summary says it is pending
-- again and a "rewind" item carrying `from` and `force` is queued in the
-- same batch (weft.pool's way); a worker continues it from there. 409 while a worker
-- has it (pending, running, or its run's lease held).
local function pool_resume(app, id, from, force)
  local d = stored(app, id)
  if d.status == "pending" or d.status == "running" then
    errors.conflict(("execution '%s' is %s: cancel it first"):format(id, d.status), { status = d.status })
  end
  local wf = require("weft.serve.workflows").get(app, d.workflow)
  not_owned(app, id)
  check_resume(app, id, wf, from, force)
  local hash = require("weft.durable").hash(wf)
  d.status, d.hash, d.updated_at = "pending", hash, require("weft").now()
  d.requests, d.outputs, d.error, d.finished_at, d.duration_ms, d.waiting = nil, nil, nil, nil, nil, nil
  local ok, err = app.store:batch()
    :put("executions", id, json.encode(summary(d)))
    :queue_push(app.pool.queue or pool.QUEUE, json.encode({ id = id, workflow = d.workflow, hash = hash,
      kind = "rewind", from = from, force = force or nil }))
    :commit()
  if not ok then throw(503, "store_unavailable", "store: queueing execution " .. id .. ": " .. tostring(err)) end
  if app.pool.wake then app.pool.wake() end
  return 202, { id = id, status = d.status, from = from }
end

-- ---------------------------------------------------------------------------
-- the listing (GET /api/v1/executions): a page costs the store's scan, a
-- table lookup per summary, and the decoding of the page's items only

--- How many stored summaries the listing keeps indexed (by their stored
-- JSON: a summary rewritten is indexed anew; the index starts afresh when
-- full).
_M.MAX_INDEXED = 50000

-- The listing's entry of stored summary `value`: {id, t (created_at, a
-- number), workflow, status, value}, false when it is not a summary (an
-- object with an id); decoded once per stored string.
local function indexed(app, value)
  local idx = app.exec_index
  local e = idx and idx[value]
  if e ~= nil then return e end
  if not idx or idx.n >= _M.MAX_INDEXED then idx = { n = 0 }; app.exec_index = idx end
  local ok, d = pcall(json.decode, value)
  if ok and type(d) == "table" and type(d.id) == "string" then
    e = { id = d.id, t = tonumber(d.created_at) or 0,
          workflow = d.workflow, status = d.status, value = value }
  else
    e = false
  end
  idx[value], idx.n = e, idx.n + 1
  return e
end

-- Listing order: newest first, then by id (descending).
local function before(a, b)
  if a.t ~= b.t then return a.t > b.t end
  return a.id > b.id
end

-- The first k entries of list in listing order (list is not changed when
-- k is small; sorted in place otherwise).
local function first(list, k)
  local n = #list
  if k <= 0 then return {} end
  if k * 4 >= n then
    table.sort(list, before)
    return list
  end
  -- keep the k best in order; the scan is in key order (ids start with
  -- their creation time) so walking backwards meets the newest first and
  -- most entries are refused by one comparison
  local top, m = {}, 0
  for i = n, 1, -1 do
    local e = list[i]
    if m < k or before(e, top[m]) then
      local lo, hi = 1, m + 1 -- the first position whose entry e goes before
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if before(e, top[mid]) then hi = mid else lo = mid + 1 end
      end
      if m < k then m = m + 1 end
      for j = m, lo + 1, -1 do top[j] = top[j - 1] end
      top[lo] = e
    end
  end
  return top
end

--- One page of the executions (query: workflow, status), newest first:
-- {items, total, limit, offset}. An execution of this process is listed as
-- it is now, the others as stored; items carry no outputs.
function _M.list(app, q, limit, offset)
  local rows, err = app.store:scan("executions")
  if not rows then throw(503, "store_unavailable", "store: " .. tostring(err)) end
  local wf, st = q.workflow, q.status
  local live = app.executions
  local list = {}
  for _, r in ipairs(rows) do
    local x = live[r.key]
    local e
    if x then
      e = { id = x.id, t = tonumber(x.created_at) or 0, workflow = x.workflow, status = x.status, live = x }
    else
      e = indexed(app, r.value)
    end
    if e and (wf == nil or e.workflow == wf) and (st == nil or e.status == st) then list[#list + 1] = e end
  end
  local top = first(list, offset + limit)
  local items = json.array()
  for i = offset + 1, math.min(#top, offset + limit) do
    local e = top[i]
    local d = e.live and summary(e.live) or json.decode(e.value)
    d.outputs = nil -- lists stay small; GET one execution for its outputs
    items[#items + 1] = answerable(d)
  end
  return { items = items, total = #list, limit = limit, offset = offset }
end

--- Install the execution routes on app.
function _M.install(app)
  app:route("POST", "/api/v1/workflows/{id}/execute", function(self, req, p)
    local body = self:body(req) or {}
    errors.check_body(_M.EXECUTE, body, "validation_error")
    local input = body.input
    if input == json.null then input = nil end
    local wf = require("weft.serve.workflows").get(self, p.id)
    if self.pool then return pool_execute(self, p.id, wf, input, body.async == true) end
    local x = _M.start(self, p.id, wf, input, body.async == true)
    if body.async then
      watch(self, x)
      return 202, { id = x.id, status = x.status, workflow = p.id },
             { location = "/api/v1/executions/" .. x.id }
    end
    -- the summary just stored is the answer: encoded once
    return 200, require("weft.serve.app").encoded(finish(self, x, x.handle:wait()))
  end)

  app:route("GET", "/api/v1/executions", function(self, req)
    local limit, offset = self:page(req)
    return 200, _M.list(self, req.query or {}, limit, offset)
  end)

  app:route("GET", "/api/v1/executions/{id}", function(self, _, p)
    local x, d = lookup(self, p.id)
    return 200, answerable(x and summary(x) or d)
  end)

  app:route("DELETE", "/api/v1/executions/{id}", function(self, _, p)
    if self.pool then return pool_cancel(self, p.id) end
    local x, stored = lookup(self, p.id)
    if not x then
      if TERMINAL[stored.status] then
        errors.conflict(("execution '%s' has already ended (%s)"):format(p.id, stored.status), { status = stored.status })
      end
      throw(409, "not_in_process", ("execution '%s' is not running in this process"):format(p.id))
    end
    if TERMINAL[x.status] then
      errors.conflict(("execution '%s' has already ended (%s)"):format(p.id, x.status), { status = x.status })
    end
    if not x.handle then
      -- still waiting for the lease of its previous process: the execution
      -- ends here; the run is cancelled once this process owns it
      x.cancel_wanted = true
      finish(self, x, { status = "cancelled", error = "cancelled while waiting to resume" })
      return 200, { id = x.id, status = x.status }
    end
    x.handle:cancel()
    if not x.async or x.status == "idle" then
      -- no watcher task is waiting for this run: collect the end here
      finish(self, x, x.handle:wait())
    end
    local st = x.handle:status()
    return TERMINAL[st] and 200 or 202, { id = x.id, status = st }
  end)

  app:route("GET", "/api/v1/executions/{id}/events", function(self, req, p, res)
    local h = req.headers and req.headers["last-event-id"]
    local from = 0
    if h ~= nil and h ~= "" then
      from = tonumber(h)
      if not from or from < 0 or from ~= math.floor(from) then
        throw(400, "bad_request", ("last-event-id must be a non-negative integer, got %q"):format(tostring(h)))
      end
    end
    if self.pool then return pool_events(self, p.id, from, res) end
    local x = lookup(self, p.id)
    if not x then
      throw(409, "not_in_process", ("the events of execution '%s' are not available in this process"):format(p.id))
    end
    local w = res:stream(200, { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" })
    res.streaming = true
    local n = from
    while true do
      while n < #x.events do
        n = n + 1
        local ok = w:write(sse(n, x.events[n]))
        if not ok then return end -- the client left
      end
      if TERMINAL[x.status] then break end
      if not x.cond:wait(_M.HEARTBEAT) and n >= #x.events and not TERMINAL[x.status] then
        -- nothing happened (a paused run may wait for days): a comment
        -- line, so that a client that left is noticed and this task ends
        if not w:write(": keep-alive\n\n") then return end
      end
    end
    w:write(fmt("event: end\ndata: %s\n\n", json.encode({ id = x.id, status = x.status })))
    w:close()
  end)

  app:route("POST", "/api/v1/executions/{id}/resume", function(self, req, p)
    local body = self:body(req) or {}
    errors.check_body(_M.RESUME, body, "validation_error")
    local from = body.from
    if from == json.null then from = nil end
    if self.pool then return pool_resume(self, p.id, from, body.force == true) end
    local x = _M.resume(self, p.id, from, body.force == true)
    return 202, { id = x.id, status = x.status, from = from }, { location = "/api/v1/executions/" .. x.id }
  end)

  app:route("POST", "/api/v1/executions/{id}/responses", function(self, req, p)
    local x, stored = lookup(self, p.id)
    local body = self:body(req, { required = true })
    if body.value == json.null then body.value = nil end
    errors.check_body(_M.RESPONSE, body, "validation_error")
    local value = body.value
    if self.pool then return pool_respond(self, p.id, body.request_id, value) end
    if not x then
      throw(409, "not_in_process", ("execution '%s' (%s) is not running in this process"):format(p.id, tostring(stored.status)))
    end
    if x.status ~= "idle" and x.status ~= "running" then
      errors.conflict(("execution '%s' is %s: it takes no responses"):format(p.id, x.status), { status = x.status })
    end
    if not x.handle then
      throw(409, "resuming", ("execution '%s' is resuming: waiting for the lease of the process that ran it "
        .. "before (killed while it ran) to expire; it takes responses once it runs here"):format(p.id))
    end
    if x.resuming then
      throw(409, "resuming", ("execution '%s' is resuming from its last checkpoint; it takes responses "
        .. "once it has paused again"):format(p.id))
    end
    local h = x.handle
    local ok, err = h:respond(body.request_id, value)
    if ok and h.durable then
      require("weft.durable").answer(h.durable.store, x.id, body.request_id, value)
    end
    if not ok then
      throw(404, "unknown_request", tostring(err), { request_id = body.request_id })
    end
    x.status, x.requests = "running", nil
    save(self, x)
    x.cond:signal()
    watch(self, x)
    return 202, { id = x.id, status = x.status }
  end)
end

return _M
