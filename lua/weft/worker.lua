--- weft.worker: a process that takes executions from the queue and runs
-- them (docs/scale.md). `weft worker` and the workers `weft serve` starts
-- are this module; `worker.supervise` is the parent that starts them,
-- replaces the ones that die and records why (a blocked executor).
--
--     local w = require("weft.worker").new{ store = "redis://127.0.0.1:6379/0",
--                                           scripts_dir = "flows", concurrency = 1000 }
--     w:run()           -- until w:stop() (weft worker: SIGTERM / SIGINT)
--
-- An execution is run durably (run id = execution id, the store's lease
-- and checkpoints, weft.durable), its events appended to its event log and
-- its summary kept up to date; the queue item is acknowledged in the same
-- atomic batch as the summary that says the execution ended or paused.
-- Items are touched while they run; an item nobody touched for a lease's
-- time (its worker died) is reclaimed by another worker, which resumes the
-- execution from its last checkpoint.
-- Uses weft, weft.json, weft.pool, weft.durable, weft.store, weft.check and
-- weft.serve.app / weft.serve.workflows (to find workflows as the API does).
local json = require "weft.json"
local pool = require "weft.pool"
local check = require "weft.check"

local type, tostring, tonumber, pairs, ipairs, pcall, setmetatable, next =
  type, tostring, tonumber, pairs, ipairs, pcall, setmetatable, next
local fmt, min, max = string.format, math.min, math.max
local encode, decode = json.encode, json.decode

local _M = {}

--- Defaults: executions run at once per worker, seconds between two takes
-- when the queue was empty, and how many times an execution whose executor
-- blocked a worker (killed by its watchdog) is tried before it fails.
_M.CONCURRENCY, _M.POLL, _M.MAX_BLOCKED = 1000, pool.POLL_MAX, 2
--- Seconds an executor may keep a worker's loop from turning before the
-- worker's watchdog kills the process (weft worker --block-limit). Below
-- the lease (30 s), so that a blocked execution fails within 60 s: killed
-- at 20 s, reclaimed by 30 s, killed again by 50 s, then failed.
_M.BLOCK_LIMIT = 20

--- Items a take asks for at first and at most (the batch doubles while
-- the worker's loop keeps up), and the length of a loop turn (seconds)
-- past which a worker takes nothing: its executors keep its core busy.
_M.TAKE_MIN, _M.TAKE_MAX, _M.BUSY_TURN = 4, 100, 0.01

--- Seconds a worker waits before its next take after it left an execution
-- to another worker (so that it does not take the same item back at once).
_M.DEFER_PAUSE = 0.25

--- The spec of `new`'s options (weft.check).
_M.OPTIONS = check.spec("worker.new", { properties = {
  store = { type = "any", required = true, expect = "a store or a store URL" },
  scripts_dir = { type = "string" },
  watch = { type = "boolean" },
  concurrency = { type = "integer", minimum = 1 },
  name = { type = "string", minLength = 1 },
  queue = { type = "string", minLength = 1 },
  lease_ttl = { type = "number", minimum = 0.05 },
  poll = { type = "number", minimum = 0.001 },
  max_blocked = { type = "integer", minimum = 1 },
  log = { type = "callable", expect = "a function(line)" },
  -- a pool on this machine (weft.worker.supervise): where to write the
  -- port this worker listens on for wake-ups, and the supervisor's port
  -- for the notices of changed executions
  wake_file = { type = "string", minLength = 1 },
  notify_port = { type = "integer", minimum = 1, maximum = 65535 },
} })

-- The contents of file path (its first line with `line`), or nil.
local function read_file(path, line)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read(line and "*l" or "*a")
  f:close()
  return s
end

--- The number of CPUs this process may use (the default number of worker
-- processes of `weft serve`): /sys/devices/system/cpu/online, else the
-- processors of /proc/cpuinfo, else 1.
function _M.cores()
  local n = 0
  for a, b in (read_file("/sys/devices/system/cpu/online", true) or ""):gmatch("(%d+)%-?(%d*)") do
    n = n + (b ~= "" and (tonumber(b) - tonumber(a) + 1) or 1)
  end
  if n > 0 then return n end
  for _ in ("\n" .. (read_file("/proc/cpuinfo") or "")):gmatch("\nprocessor%s*:") do n = n + 1 end
  return n > 0 and n or 1
end

local Worker = {}
Worker.__index = Worker

--- A worker (not started): options above; `name` defaults to
-- "HOST:PID", `concurrency` to 1000, `queue` to "weft", `lease_ttl` to the
-- runs' lease (30 s, WEFT_LEASE_TTL).
function _M.new(opts)
  opts = check.options(_M.OPTIONS, opts, 2)
  local store = opts.store
  if type(store) == "string" then store = assert(require("weft.store").open(store)) end
  local me = require("weft.store").owner()
  local durable = require "weft.durable"
  local ttl = opts.lease_ttl or tonumber(os.getenv("WEFT_LEASE_TTL") or "") or durable.LEASE_TTL
  local app = require("weft.serve.app").new{ store = store, scripts_dir = opts.scripts_dir }
  if opts.watch and opts.scripts_dir then
    app.host = require("weft.host").new{ dir = opts.scripts_dir, watch = true }
  end
  local weft = require "weft"
  return setmetatable({
    store = store, app = app, name = opts.name or (me.host .. ":" .. me.pid),
    queue = opts.queue or pool.QUEUE, concurrency = opts.concurrency or _M.CONCURRENCY,
    ttl = ttl, poll = opts.poll or _M.POLL, max_blocked = opts.max_blocked or _M.MAX_BLOCKED,
    log = opts.log or function(line) io.stderr:write("weft worker: ", line, "\n") end,
    held = {},      -- queue item id -> true while this worker runs it (touched)
    handles = {},   -- execution id -> run handle (cancel requests reach it)
    pending = {},   -- execution id -> list of events not yet in its log
    running = 0, stopped = false, wake = weft.cond(),
    wake_file = opts.wake_file, notify_port = opts.notify_port, told = {}, tell_cond = weft.cond(),
    counts = { started = 0, resumed = 0, completed = 0, failed = 0, cancelled = 0, idle = 0,
               deferred = 0, reclaimed = 0, calls = 0 },
  }, Worker)
end

-- ---------------------------------------------------------------------------
-- notices (a pool on this machine: weft.worker.supervise)

-- Tell the supervisor that execution (or call) id changed: its summary,
-- its events or its result (sent by the notice task; never waits).
local function tell(w, id)
  if not w.notify_port then return end
  w.told[#w.told + 1] = id
  w.tell_cond:signal()
end

-- The notice task: a connection to the supervisor's port, one line
-- "c ID" per change.
local function notice_loop(w)
  local tcp = require "weft.tcp"
  local c, err = tcp.connect("127.0.0.1", w.notify_port, 5)
  if not c then
    w.log("no notices to the supervisor: " .. tostring(err))
    w.notify_port = nil
    return
  end
  while not w.stopped do
    if #w.told == 0 then w.tell_cond:wait(1) end
    if #w.told > 0 then
      local lines = {}
      for i, id in ipairs(w.told) do lines[i] = "c " .. id .. "\n" end
      w.told = {}
      if not c:send(table.concat(lines), 5) then
        w.log("notices to the supervisor stopped: its connection closed")
        w.notify_port = nil
        break
      end
    end
  end
  c:close()
end

-- The wake task: listen on a loopback port (written to wake_file) for the
-- supervisor's wake-ups (a line per new item): each one makes the take
-- loop take at once.
local function wake_loop(w)
  local weft = require "weft"
  local tcp = require "weft.tcp"
  local srv, err = tcp.listen("127.0.0.1", 0)
  if not srv then
    w.log("no wake-ups from the supervisor: " .. tostring(err))
    return
  end
  local tmp = w.wake_file .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(tostring(srv:port()))
  f:close()
  assert(os.rename(tmp, w.wake_file))
  while not w.stopped do
    local c = srv:accept(1)
    if c then
      weft.go(function()
        while not w.stopped do
          local line, rerr = c:receive("*l", 1)
          if line then w.wake:signal()
          elseif rerr ~= "timeout" then break end
        end
        c:close()
      end)
    end
  end
  srv:close()
end

-- ---------------------------------------------------------------------------
-- summaries and events

-- Write summary x, plus the batch's other writes (f(b) adds them), in one
-- atomic batch; logs a store failure (the execution goes on).
local function save(w, x, f)
  local b = w.store:batch():put("executions", x.id, encode(pool.summary(x)))
  if f then f(b) end
  local ok, err = b:commit()
  if not ok then w.log(fmt("store: execution %s: %s", x.id, tostring(err))) end
  tell(w, x.id)
  return ok
end

-- Add the buffered events of execution id to batch b (trimming its log to
-- EVENTS_MAX entries now and then).
local function add_events(w, b, id)
  local q = w.pending[id]
  if not q or #q == 0 then return end
  for _, ev in ipairs(q) do
    local ok, s = pcall(encode, ev)
    if not ok then s = encode({ type = ev.type, error = "event not serialisable: " .. tostring(s) }) end
    b:append("events", id, s)
  end
  w.pending[id] = {}
  w.appended = (w.appended or 0) + #q
end

-- Append every buffered event to the logs (one batch), then trim the logs
-- that grew past EVENTS_MAX.
local function flush(w)
  local b, any = w.store:batch(), false
  local ids = {}
  for id, q in pairs(w.pending) do
    if #q > 0 then add_events(w, b, id); any = true; ids[#ids + 1] = id end
  end
  if not any then return end
  local ok, seqs = b:commit()
  if not ok then
    w.log("store: appending events: " .. tostring(seqs))
    return
  end
  for _, id in ipairs(ids) do tell(w, id) end
  local last = seqs[#seqs]
  if last and last > pool.EVENTS_MAX + 1000 then
    for _, id in ipairs(ids) do w.store:trim("events", id, last - pool.EVENTS_MAX + 1) end
  end
end

-- Execution x ended or paused with result res: its summary, its last
-- events and the acknowledgement of queue item qid in one batch.
local function finish(w, x, res, qid)
  pool.apply_result(x, res)
  local c = w.counts
  c[res.status] = (c[res.status] or 0) + 1
  save(w, x, function(b)
    add_events(w, b, x.id)
    b:queue_ack(w.queue, qid)
    if pool.TERMINAL[res.status] then b:del("cancel", x.id) end
  end)
  w.pending[x.id] = nil
end

-- ---------------------------------------------------------------------------
-- one execution

-- The workflow of item p at the hash it was submitted with: wf, or nil
-- and why this worker cannot run it.
local function workflow_of(w, p)
  local durable = require "weft.durable"
  local function find()
    local ok, wf = pcall(require("weft.serve.workflows").get, w.app, p.workflow)
    if not ok then
      return nil, type(wf) == "table" and wf.message or tostring(wf)
    end
    return wf
  end
  local wf, err = find()
  if wf and p.hash and durable.hash(wf) ~= p.hash then
    w.app.built["json/" .. tostring(p.workflow)] = nil -- a declarative one may have changed
    wf, err = find()
    if wf and durable.hash(wf) ~= p.hash then
      return nil, fmt("worker %s has workflow '%s' at version %s, not %s", w.name, p.workflow,
        durable.hash(wf), p.hash)
    end
  end
  if not wf then return nil, fmt("worker %s cannot load workflow '%s': %s", w.name, tostring(p.workflow), err) end
  return wf
end

-- Leave item (payload p) to another worker: pushed again (at the tail),
-- acknowledged here, the summary saying why it waits.
local function defer(w, x, item, why)
  w.counts.deferred = w.counts.deferred + 1
  w.backoff_until = require("weft").clock() + _M.DEFER_PAUSE
  x.waiting, x.updated_at = why, require("weft").now()
  save(w, x, function(b)
    b:queue_push(w.queue, item.payload)
    b:queue_ack(w.queue, item.id)
  end)
end

-- Options of the durable run of execution x.
local function run_opts(w, x)
  return {
    store = w.store, run_id = x.id, events = false, lease = { wait = true, ttl = w.ttl },
    on_event = function(ev)
      local q = w.pending[x.id]
      if not q then q = {}; w.pending[x.id] = q end
      q[#q + 1] = ev
      w.dirty = true
    end,
  }
end

-- A blocked note (weft.worker.supervise) says an executor of execution id
-- did not yield: the note, or nil.
local function blocked_note(w, id)
  local s = w.store:get("blocked", id)
  local ok, note = pcall(decode, s or "")
  return s and ok and type(note) == "table" and note or nil
end

-- The events that end a run's event log.
local END_EVENT = { workflow_completed = true, workflow_failed = true, workflow_cancelled = true }

-- The error of an execution failed after note.count blocked workers.
local function blocked_error(note)
  return fmt("%s (the execution was tried %d times; each time the worker was killed)",
    tostring(note.what), note.count or 1)
end

-- Do call item p (weft.pool.call): its streamed pieces go to log
-- ("events", p.id) as {chunk = text}, its outcome to record ("calls",
-- p.id), written with the acknowledgement of queue item qid.
local function run_call(w, p, qid)
  local fn = pool.call_fn(tostring(p.call))
  local ok, res
  if not fn then
    ok, res = false, { status = 500, code = "unknown_call", message = "no call '" .. tostring(p.call) .. "'" }
  else
    ok, res = pcall(fn, w.app, p.args, function(text)
      local q = w.pending[p.id]
      if not q then q = {}; w.pending[p.id] = q end
      q[#q + 1] = { chunk = text }
      w.dirty = true
    end)
    if not ok then
      local e = res
      res = type(e) == "table" and { status = e.status, code = e.code, message = e.message, details = e.details }
        or { message = tostring(e) }
    end
  end
  local out = ok and { ok = true, result = res } or { ok = false, error = res }
  local eok, s = pcall(encode, out)
  if not eok then s = encode({ ok = false, error = { message = "the result is not JSON: " .. tostring(s) } }) end
  local b = w.store:batch()
  add_events(w, b, p.id)
  b:put("calls", p.id, s):queue_ack(w.queue, qid)
  local cok, cerr = b:commit()
  if not cok then w.log(fmt("store: call %s: %s", p.id, tostring(cerr))) end
  tell(w, p.id)
  w.pending[p.id] = nil
  w.counts.calls = w.counts.calls + 1
end

-- Run queue item (taken, or reclaimed from a worker that died).
local function run_item(w, item, reclaimed)
  local ok, p = pcall(decode, item.payload)
  if not ok or type(p) ~= "table" or type(p.id) ~= "string" then
    w.log(fmt("queue item %s is not an execution (%s): dropped", item.id, tostring(item.payload):sub(1, 80)))
    w.store:queue_ack(w.queue, item.id)
    return
  end
  if p.kind == "call" then return run_call(w, p, item.id) end
  local x = pool.get(w.store, p.id)
  if not x or pool.TERMINAL[x.status] then
    w.store:queue_ack(w.queue, item.id) -- unknown, or ended meanwhile
    return
  end
  x.worker, x.updated_at = w.name, require("weft").now()
  x.attempts = (x.attempts or 0) + 1
  local durable = require "weft.durable"
  local cancel = w.store:get("cancel", p.id) ~= nil or p.kind == "cancel"
  local note = reclaimed and blocked_note(w, p.id)
  if note and (note.count or 1) >= w.max_blocked then
    -- tried max_blocked times, each killed a worker: fail it here
    local msg = blocked_error(note)
    pcall(durable.abandon, w.store, p.id, msg)
    finish(w, x, { status = "failed", error = msg, outputs = {} }, item.id)
    return
  end
  local wf, why = workflow_of(w, p)
  if not wf then
    if cancel then
      finish(w, x, { status = "cancelled", error = "cancelled before it ran", outputs = {} }, item.id)
      return
    end
    w.log(fmt("execution %s: %s; left for another worker", p.id, why))
    return defer(w, x, item, why)
  end
  local rec = durable.record(w.store, p.id)
  local has_record = rec ~= nil
  if rec and pool.TERMINAL[rec.status] and p.kind ~= "rewind" then
    -- its worker died after the run ended, before the summary said so
    -- (and maybe before its last events reached the log: the end event is
    -- written here then, so that event streams end)
    local rok, res = pcall(durable.result, wf, w.store, p.id)
    res = rok and res or { status = rec.status, error = rec.error, outputs = {} }
    local ended = false
    for _, e in ipairs(pool.events(w.store, p.id) or {}) do
      if END_EVENT[e.event.type] then ended = true end
    end
    if not ended then
      local ev = { type = "workflow_" .. res.status, run_id = p.id, superstep = rec.superstep,
                   ts = require("weft").now(), data = res.error and { error = res.error } or nil }
      w.pending[p.id] = { ev }
    end
    finish(w, x, res, item.id)
    return
  end
  if cancel and not has_record then
    finish(w, x, { status = "cancelled", error = "cancelled before it ran", outputs = {} }, item.id)
    return
  end
  x.status = "running"
  save(w, x)
  local opts = run_opts(w, x)
  if p.kind == "rewind" then
    -- POST …/resume {from, force}: continue from that checkpoint (a
    -- failed run included)
    opts.from, opts.force = p.from, p.force
  end
  local rok, h
  if has_record then
    w.counts.resumed = w.counts.resumed + 1
    rok, h = pcall(wf.resume, wf, p.id, opts)
  else
    w.counts.started = w.counts.started + 1
    local input = p.input
    if input == json.null then input = nil end
    rok, h = pcall(wf.spawn, wf, input, opts)
  end
  if not rok then
    finish(w, x, { status = "failed", error = "could not start: " .. tostring(h), outputs = {} }, item.id)
    return
  end
  w.handles[p.id] = h
  if cancel then h:cancel() end
  local res = h:wait()
  w.handles[p.id] = nil
  finish(w, x, res, item.id)
end

-- Run item in a task of its own, counted against the concurrency.
local function start_item(w, item, reclaimed)
  local weft = require "weft"
  w.running = w.running + 1
  w.held[item.id] = true
  weft.go(function()
    local ok, err = pcall(run_item, w, item, reclaimed)
    if not ok then w.log(fmt("queue item %s: %s", item.id, tostring(err))) end
    w.held[item.id] = nil
    w.running = w.running - 1
    w.wake:signal()
  end)
end

-- ---------------------------------------------------------------------------
-- the loops

-- Take new items while there is room and this worker's loop is not
-- saturated; when the queue is empty, wait (weft.pool.poller) from 1 ms up
-- to `poll` seconds. A take asks for `batch` items: TAKE_MIN at first,
-- doubling while the loop keeps up (I/O-bound executions: thousands at
-- once), back to TAKE_MIN when one turn of the loop takes longer than
-- BUSY_TURN — then nothing is taken until it is shorter, so that the
-- items go to workers with idle cores (CPU-bound executions would
-- otherwise all land on the first worker to take).
local function take_loop(w)
  local weft = require "weft"
  local poll = pool.poller(w.poll, w.wake)
  local batch = _M.TAKE_MIN
  while not w.stopped do
    local room = w.concurrency - w.running
    local t0 = weft.clock()
    weft.sleep(0) -- one turn of this worker's loop
    local busy = w.running > 0 and weft.clock() - t0 > _M.BUSY_TURN
    if busy then batch = _M.TAKE_MIN end
    if room <= 0 or busy then
      w.wake:wait(busy and _M.BUSY_TURN or 1)
    elseif w.backoff_until and weft.clock() < w.backoff_until then
      weft.sleep(w.backoff_until - weft.clock())
    else
      local items, err = w.store:queue_take(w.queue, w.name, min(room, batch))
      if not items then
        w.log("store: taking from the queue: " .. tostring(err))
        weft.sleep(min(1, w.poll * 10))
      elseif #items == 0 then
        poll(false)
      else
        for _, item in ipairs(items) do start_item(w, item, false) end
        if #items == batch then batch = min(_M.TAKE_MAX, batch * 2) end
        poll(true)
      end
    end
  end
end

-- Publish the worker's counters (and its model calls') as record
-- ("workers", name), for the API's /metrics and for operators.
local function publish(w)
  local llm = package.loaded["weft.llm"]
  local c = llm and llm.counters
  local me = require("weft.store").owner()
  local t = w:stats()
  t.host, t.pid, t.updated = me.host, me.pid, require("weft").now()
  t.llm_requests = c and c.requests or nil
  t.tokens = c and c.tokens or nil
  local ok, err = w.store:put("workers", w.name, encode(t))
  if not ok then w.log("store: publishing the counters: " .. tostring(err)) end
end

-- Every ttl/3 s: touch the items this worker holds (so that nobody
-- reclaims them), reclaim the items of workers that died, publish the
-- counters.
local function keep_loop(w)
  local weft = require "weft"
  local every = max(0.02, w.ttl / 3)
  local next_at = weft.clock() + every
  while not w.stopped do
    w.wake:wait(max(0.001, next_at - weft.clock())) -- early on stop (and when items end)
    if w.stopped then break end
    if weft.clock() < next_at then goto continue end
    next_at = weft.clock() + every
    local ids = {}
    for id in pairs(w.held) do ids[#ids + 1] = id end
    if #ids > 0 then
      local n, err = w.store:queue_touch(w.queue, w.name, ids)
      if not n then w.log("store: touching held items: " .. tostring(err)) end
    end
    publish(w)
    local room = w.concurrency - w.running
    if room > 0 and not w.stopped then
      local items = w.store:queue_reclaim(w.queue, w.name, w.ttl, min(room, 100))
      for _, item in ipairs(items or {}) do
        w.counts.reclaimed = w.counts.reclaimed + 1
        w.log(fmt("reclaimed queue item %s from %s (no touch for %g s)", item.id, tostring(item.owner), w.ttl))
        start_item(w, item, true)
      end
    end
    ::continue::
  end
end

-- Every 0.05 s: append buffered events; every 0.5 s: cancel the running
-- executions someone asked to cancel.
local function flush_loop(w)
  local weft = require "weft"
  local ticks = 0
  while not w.stopped or w.running > 0 do
    weft.sleep(0.05)
    if w.dirty then
      w.dirty = false
      flush(w)
    end
    ticks = ticks + 1
    if ticks % 10 == 0 and next(w.handles) then
      for _, row in ipairs(w.store:scan("cancel", "") or {}) do
        local h = w.handles[row.key]
        if h then h:cancel() end
      end
    end
  end
end

--- Run the worker until w:stop(): takes executions from the queue and runs
-- them. On the main thread this runs the loop; returns when stopped (the
-- executions still running are left to their checkpoints: another worker
-- reclaims them after a lease's time).
function Worker:run()
  local weft = require "weft"
  self.log(fmt("%s: taking executions from queue '%s' (concurrency %d)", self.name, self.queue,
    self.concurrency))
  publish(self)
  local tasks = {
    weft.go(take_loop, self), weft.go(keep_loop, self), weft.go(flush_loop, self),
  }
  if self.wake_file then tasks[#tasks + 1] = weft.go(wake_loop, self) end
  if self.notify_port then tasks[#tasks + 1] = weft.go(notice_loop, self) end
  for _, t in ipairs(tasks) do t:wait() end
  self.store:del("workers", self.name)
end

--- Stop taking executions (run returns soon after).
function Worker:stop()
  self.stopped = true
  self.wake:signal()
  self.tell_cond:signal()
end

--- Counters of the worker: {name, running, started, resumed, completed,
-- failed, cancelled, idle, deferred, reclaimed}.
function Worker:stats()
  local t = { name = self.name, running = self.running }
  for k, v in pairs(self.counts) do t[k] = v end
  return t
end

-- ---------------------------------------------------------------------------
-- supervision

-- The watchdog report at path (a JSON line: {pid, seconds, run_id,
-- executor_id, what}) removed, or nil.
local function take_report(path)
  local s = read_file(path)
  if not s then return nil end
  os.remove(path)
  local ok, rep = pcall(decode, (s or ""):match("^[^\n]*"))
  return ok and type(rep) == "table" and rep or nil
end

-- Record that an executor of execution rep.run_id blocked worker `name`
-- (process pid, dead now): the note (count of such kills) the next taker
-- reads (run_item). The run's lease, held by the dead process, is given up
-- now (it can renew nothing), so that the execution goes on without
-- waiting for it to expire; after max_blocked kills the execution is
-- failed here.
local function note_blocked(sup, name, pid, rep)
  local id = rep.run_id
  if type(id) ~= "string" then return end
  local st = sup.store
  local old = blocked_note(sup, id)
  local note = { what = rep.what, executor_id = rep.executor_id, seconds = rep.seconds,
                 worker = name, count = (old and old.count or 0) + 1 }
  local ok, err = st:put("blocked", id, encode(note))
  if not ok then sup.log(fmt("store: recording the blocked execution %s: %s", id, tostring(err))) end
  local l = st:lease(id)
  if l and l.held and l.pid == pid and l.host == require("weft.store").owner().host then
    st:lease_release(l)
  end
  if note.count < sup.max_blocked then return end
  local msg = blocked_error(note)
  local fok, ferr = pcall(require("weft.durable").abandon, st, id, msg)
  if not fok and not tostring(ferr):find("unknown run", 1, true) then
    sup.log(fmt("execution %s: failing it: %s", id, tostring(ferr)))
  end
  local x = pool.get(st, id)
  if x and not pool.TERMINAL[x.status] then
    pool.apply_result(x, { status = "failed", error = msg, outputs = {} })
    local sok, serr = st:put("executions", id, encode(pool.summary(x)))
    if not sok then sup.log(fmt("store: execution %s: %s", id, tostring(serr))) end
  end
end

-- Connect to the wake port of worker process c of slot (it writes it to
-- wake_file once it listens): sup.wake() writes to it from then on.
local function connect_waker(sup, slot, c, wake_file)
  local weft = require "weft"
  local deadline = weft.clock() + 30
  while c:running() and weft.clock() < deadline and not sup.stopped do
    local port = tonumber(read_file(wake_file) or "")
    if port then
      local conn = require("weft.tcp").connect("127.0.0.1", port, 5)
      if conn and sup.children[slot] == c then
        sup.wakers[slot] = conn
        sup.wake() -- what was queued before it listened
      end
      return
    end
    weft.sleep(0.01)
  end
end

-- Read the notices of one worker's connection: each line "c ID" signals
-- the waiters of ID (sup.notices.changed).
local function read_notices(sup, conn)
  while true do
    local line, err = conn:receive("*l")
    if not line then
      if err ~= "timeout" then break end
    else
      local id = line:match("^c (.+)$")
      if id then sup.notices.changed(id) end
    end
  end
  conn:close()
end

-- Accept the workers' notice connections until sup:stop().
local function accept_notices(sup)
  local weft = require "weft"
  while not sup.stopped do
    local conn = sup.notice_srv:accept(0.5)
    if conn then weft.go(read_notices, sup, conn) end
  end
  sup.notice_srv:close()
end

-- Keep worker process `slot` running until sup:stop().
local function keep_slot(sup, slot)
  local weft = require "weft"
  local child = require "weft.core.child"
  local name = sup.name .. "-" .. slot
  local report = sup.dir .. "/" .. slot .. ".json"
  local backoff = 0
  while not sup.stopped do
    os.remove(report)
    local argv = {}
    for i, a in ipairs(sup.argv) do argv[i] = a end
    local env = { WEFT_WATCHDOG_REPORT = report, WEFT_WORKER_NAME = name }
    local wake_file = sup.dir .. "/" .. slot .. ".port"
    os.remove(wake_file)
    if sup.notice_port then
      env.WEFT_NOTIFY_PORT, env.WEFT_WAKE_FILE = tostring(sup.notice_port), wake_file
    end
    local c, err = child.spawn{ argv = argv, env = env }
    if not c then
      sup.log(fmt("cannot start worker %s: %s", name, tostring(err)))
    else
      sup.children[slot] = c
      if sup.notice_port then weft.go(connect_waker, sup, slot, c, wake_file) end
      local t0 = weft.clock()
      local st = c:wait()
      sup.children[slot] = nil
      local wk = sup.wakers[slot]
      sup.wakers[slot] = nil
      if wk then wk:close() end
      if sup.stopped then break end
      local rep = take_report(report)
      if rep then
        sup.log(fmt("worker %s (pid %s) was killed by its watchdog: %s", name, tostring(rep.pid), tostring(rep.what)))
        note_blocked(sup, name, c:pid(), rep)
      else
        sup.log(fmt("worker %s (pid %d) exited (%s); starting another", name, c:pid(),
          st.signal and ("signal " .. st.signal) or ("status " .. tostring(st.code))))
      end
      backoff = weft.clock() - t0 < 1 and min(5, max(0.1, backoff * 2)) or 0
    end
    if backoff > 0 or not c then weft.sleep(c and backoff or 1) end
  end
end

--- Start opts.processes worker processes (opts.argv: the command line of
-- one, `weft worker --child ...`) and keep that many running: one that
-- exits is started again; one its watchdog killed leaves a blocked note
-- for its execution (store ns "blocked"; the execution fails after
-- max_blocked such kills). opts: processes, argv, store, name (prefix of
-- the workers' names), max_blocked (default 2), log, notices (a
-- weft.pool.notices(): the workers tell it which executions and calls
-- changed, over loopback connections, and sup:wake() makes them take new
-- items at once — no polling delay on one machine). Returns the supervisor:
-- sup:stop() terminates the processes (SIGTERM, then SIGKILL after
-- opts.grace seconds, default 10) and waits for them; sup:pids().
function _M.supervise(opts)
  local weft = require "weft"
  local sup = {
    store = opts.store, argv = opts.argv, name = opts.name, children = {}, stopped = false,
    max_blocked = opts.max_blocked or _M.MAX_BLOCKED,
    dir = require("weft.sandbox").tempdir("weft-workers-"), grace = opts.grace or 10,
    log = opts.log or function(line) io.stderr:write("weft: ", line, "\n") end, tasks = {},
    notices = opts.notices, wakers = {},
  }
  if sup.notices then
    local srv, err = require("weft.tcp").listen("127.0.0.1", 0)
    if srv then
      sup.notice_srv, sup.notice_port = srv, srv:port()
      sup.tasks[#sup.tasks + 1] = weft.go(accept_notices, sup)
    else
      sup.log("no notices from the workers (they are polled): " .. tostring(err))
    end
  end
  for slot = 1, opts.processes do sup.tasks[#sup.tasks + 1] = weft.go(keep_slot, sup, slot) end
  --- Tell the workers that there are new items (each takes at once); the
  -- waker task writes, so that callers never wait.
  sup.wake_cond = weft.cond()
  function sup.wake() sup.wake_cond:signal() end
  if sup.notices then
    sup.tasks[#sup.tasks + 1] = weft.go(function()
      while not sup.stopped do
        if sup.wake_cond:wait(1) then
          for slot, conn in pairs(sup.wakers) do
            if not conn:send("w\n", 1) then sup.wakers[slot] = nil; conn:close() end
          end
        end
      end
    end)
  end
  function sup.pids()
    local out = {}
    for slot, c in pairs(sup.children) do out[slot] = c:pid() end
    return out
  end
  function sup.stop()
    sup.stopped = true
    sup.wake_cond:signal()
    for _, c in pairs(sup.children) do c:kill("TERM") end
    local deadline = weft.clock() + sup.grace
    while next(sup.children) and weft.clock() < deadline do weft.sleep(0.05) end
    for _, c in pairs(sup.children) do c:kill("KILL") end
    for _, conn in pairs(sup.wakers) do conn:close() end
    sup.wakers = {}
    for _, t in ipairs(sup.tasks) do t:wait() end
    require("weft.sandbox").remove(sup.dir)
  end
  return sup
end

return _M
