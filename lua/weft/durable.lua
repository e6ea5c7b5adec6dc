--- Durable runs: checkpoints at every superstep barrier, pending writes of
-- finished invocations, the I/O journal, requests to humans that survive
-- the process, and resume. A run is durable when started with a store
-- (`wf:run(input, {store = "sqlite:./.weft/weft.db"})`).
--
-- Store layout (namespaces of weft.store; see docs/durability.md):
--   runs/<run_id>                      the run record (JSON)
--   ckpt/<run_id>                      log: one entry per checkpoint
--   lease/<run_id>, fence/<run_id>     the owner's lease and fencing token
--   pw/<id>/<ss>/<order>/<attempt>     effects of a finished invocation
--   journal/<id>/<ss>/<order>/<attempt>/<n>  a recorded yielding call
--   req/<id>/<request_id>              a request to a human and its answer
-- where <id> is the run id with "%" and "/" escaped (%25, %2F), so that
-- no run's keys are a prefix of another's ("team/" vs "team%2Fticket-7/").
--
-- Ownership: the process that runs a run holds its lease (weft.store
-- leases), renews it while the run is active, and makes every write
-- conditional on its fencing token; a checkpoint also on the log's
-- position. A second process is refused (or waits); a stale owner can
-- never append. See docs/durability.md "Ownership".
--
-- Durability is a hook, not a thread through other modules: an attached
-- run brings its own invocation function and ctx type (a weft.context
-- subtype that records effects), and while a durable run is active this
-- module is weft.journal's hook (weft.http, weft.llm and weft.sandbox call
-- weft.journal and never load this module).
-- Uses weft.json, weft.store, weft.context, weft.journal, weft.sha256,
-- weft.guard (guarded invocations),
-- weft.urandom, weft.core.sched, weft.core.loop, weft.task.
local _M = {}

local json = require "weft.json"
local sched = require "weft.core.sched"
local loop = require "weft.core.loop"
local task = require "weft.task"
local store_mod = require "weft.store"
local context = require "weft.context"
local journal = require "weft.journal"
local sha256 = require "weft.sha256"

local type, error, pairs, ipairs, tostring, select, unpack, setmetatable, getmetatable =
  type, error, pairs, ipairs, tostring, select, unpack, setmetatable, getmetatable
local fmt, concat = string.format, table.concat
local encode, decode = json.encode, json.decode

--- Version of the stored layout; a different one is refused.
_M.SCHEMA = 1

--- Default lease of a run, in seconds, and how often its owner renews it
-- (env WEFT_LEASE_TTL / WEFT_LEASE_RENEW, or run option lease = {ttl =,
-- renew =}, override them).
_M.LEASE_TTL, _M.LEASE_RENEW = 30, 10

-- ---------------------------------------------------------------------------
-- helpers

--- A store object from a URL or a store object.
function _M.store(s)
  if type(s) == "table" then return s end
  if type(s) ~= "string" or s == "" then error("store must be a URL or a weft.store object", 3) end
  local st, err = require("weft.store").open(s)
  if not st then error("store " .. s .. ": " .. tostring(err), 3) end
  return st
end

-- Raise err (a store failure) naming what was being done.
local function check(ok, err, what)
  if ok == nil and err then error((what or "store") .. ": " .. tostring(err), 0) end
  return ok
end

-- Decode a stored JSON document, raising a clear error on corruption.
local function load(s, what)
  local v, err = decode(s)
  if v == nil then error(fmt("corrupt %s: %s", what, tostring(err)), 0) end
  return v
end

--- The run id as the first component of keys: "%" and "/" escaped, so
-- that "<esc(id)>/" is a prefix of that run's keys only.
function _M.esc(id)
  return (id:gsub("[%%/]", function(c) return fmt("%%%02X", c:byte()) end))
end
local esc = _M.esc

local function pw_key(id, ss, order, attempt)
  return fmt("%s/%08d/%06d/%03d", id == "" and "" or esc(id), ss, order, attempt)
end

--- The hash of a workflow definition: its graph (executors, kinds, edges,
-- labels) and executor options. Two loads of the same script agree.
function _M.hash(wf)
  local h = rawget(wf, "_hash") -- a built workflow does not change: once
  if h then return h end
  local d = wf:describe()
  for i, ex in ipairs(wf._order) do
    d.executors[i].retry, d.executors[i].timeout = ex.retry, ex.timeout
    d.executors[i].on_error = ex.on_error
  end
  h = require("weft.sha256")(encode(d)):sub(1, 16)
  rawset(wf, "_hash", h)
  return h
end

-- Values and their count (results may hold nils).
local function pack(...) return { n = select("#", ...), ... } end

-- Results back from a stored list (null -> nil).
local function results_of(doc)
  local out = { n = #doc }
  for i = 1, #doc do
    local v = doc[i]
    if v == json.null then v = nil end
    out[i] = v
  end
  return out
end

-- ---------------------------------------------------------------------------
-- the run record

--- Read the record of run id from store: a table, or nil, err.
function _M.record(store, id)
  local s, err = store:get("runs", id)
  if s == nil then
    if err then return nil, err end
    return nil, fmt("unknown run '%s'", id)
  end
  local rec = load(s, "run record of " .. id)
  if rec.schema ~= _M.SCHEMA then
    error(fmt("run '%s' was stored with schema version %s; this weft reads version %d",
      id, tostring(rec.schema), _M.SCHEMA), 0)
  end
  return rec
end

-- Statuses of a run that ended.
local TERMINAL = { completed = true, failed = true, cancelled = true }

-- ---------------------------------------------------------------------------
-- ownership

-- Lease settings of opts: ttl, renew (seconds), wait (bool), cancel (a
-- function that stops a wait when it returns true).
local function lease_conf(opts)
  local l = type(opts) == "table" and type(opts.lease) == "table" and opts.lease or {}
  local ttl = l.ttl or tonumber(os.getenv("WEFT_LEASE_TTL") or "") or _M.LEASE_TTL
  local renew = l.renew or tonumber(os.getenv("WEFT_LEASE_RENEW") or "")
    or math.min(_M.LEASE_RENEW, ttl / 3)
  return ttl, renew, l.wait, l.cancel
end

--- Take the lease of run id for this process: the lease, or raises
-- "run 'id' is owned by OWNER (pid P on HOST) until T (in N s) ..." (with
-- opts.lease.wait: waits until it is free instead).
function _M.own(store, id, opts)
  local ttl, renew, wait, cancel = lease_conf(opts)
  while true do
    local l, err, code, holder = store:lease_acquire(id, ttl)
    if l then
      l.ttl, l.renew = ttl, renew
      return l
    end
    if code ~= "held" then error(fmt("store: taking the lease of run '%s': %s", id, tostring(err)), 0) end
    if not wait then
      error(fmt("run '%s' is owned by %s; nothing was changed (retry after that, or wait with --wait)",
        id, store_mod.describe_lease(holder)), 0)
    end
    if cancel and cancel() then
      error(fmt("run '%s': waiting for its lease was cancelled; nothing was changed", id), 0)
    end
    loop.sleep(math.max(0.01, math.min((holder.expires - holder.now) / 1000 + 0.01, 0.5)))
  end
end

-- Why a write of run id was refused: its lease changed hands.
local function lost_msg(d, id)
  local cur = d.store:lease(id)
  return fmt("run '%s' is no longer owned by this process%s: nothing was written", id,
    cur and cur.token ~= d.lease.token and (" (now owned by " .. store_mod.describe_lease(cur) .. ")") or "")
end

-- Commit batch b of run r's owner (fenced by its token): true, seqs, or
-- raises naming what (a store failure, or the lost ownership).
local function commit_owned(d, id, b, what)
  local ok, seqs, code = b:fence(id, d.lease.token):commit()
  if ok then return true, seqs end
  if code == "conflict" then
    local cur = d.store:lease(id)
    if not cur or cur.token == d.lease.token then
      error(fmt("%s: run '%s': %s", what, id, tostring(seqs)), 0) -- the log moved: out of step
    end
    error(what .. ": " .. lost_msg(d, id), 0)
  end
  error(what .. ": " .. tostring(seqs), 0)
end

-- Keep d's lease alive while the run is active (a task renewing it every
-- lease.renew seconds); a lost lease cancels the run.
local function start_renewal(r, d)
  local c = loop.cond()
  d.renewal = c
  task.go_detached(function() -- serves the run, not the invocation starting it
    while d.renewal == c do
      c:wait(d.lease.renew)
      if d.renewal ~= c then break end
      local ok, err, code = d.store:lease_renew(d.lease, d.lease.ttl)
      if not ok and code == "lost" then
        d.lost = err
        d.renewal = nil
        io.stderr:write(fmt("weft: run %s: %s; stopping it\n", r.id, tostring(err)))
        sched.run_cancel(r.c)
      end
    end
  end)
end

-- Stop renewing and give the lease up.
local function release(d)
  local c = d.renewal
  d.renewal = nil
  if c then c:signal() end
  if d.lease and not d.released then
    d.released = true
    d.store:lease_release(d.lease)
  end
end

-- ---------------------------------------------------------------------------
-- checkpoints

-- Bytes written since the last full snapshot beyond its size: time for one.
local function full_due(d, entry_len)
  if not d.last_full then return true end
  return d.since_full + entry_len > math.max(d.full_size, 4096)
end

-- The checkpoint of run r (durable state d) after a commit: its entry
-- appended and, now and then, the run record rewritten, in one batch owned
-- by d's lease; raises naming what failed.
local function write_checkpoint(r, d)
  local snap = sched.snapshot(r.c)
  local new, nouts = sched.run_outputs(r.c, d.nout + 1) -- only the new ones
  local entry = {
    superstep = snap.superstep, supersteps = snap.supersteps,
    pending = json.array(snap.pending), fanin = json.array(snap.fanin),
    writes = json.array(snap.writes), outputs = json.array(new),
  }
  -- what a budgeted run spent (weft.budget keeps it in the record as it
  -- charges): in every checkpoint, so that a crash loses none of it
  local rec = d.record
  entry.spent = rec.spent
  local body = encode(entry)
  local full = full_due(d, #body)
  if full then
    entry.state = json.object(sched.run_state(r.c))
    entry.all_outputs = json.array((sched.run_outputs(r.c)))
    body = encode(entry)
  end
  -- the checkpoint's number is known in advance (the log numbers its
  -- entries 1, 2, ...); the run record is rewritten in the same atomic
  -- batch when it changes materially (a full snapshot) and every 16
  -- checkpoints, so that it stays cheap: resume reads the log's tail
  local seq = (d.seq or 0) + 1
  local write_rec = full or seq % 16 == 0
  local old_fulls = rec.fulls
  if full then
    local fulls = json.array()
    for i, f in ipairs(rec.fulls or {}) do fulls[i] = f end
    fulls[#fulls + 1] = seq
    rec.fulls = fulls
  end
  local b = d.store:batch()
  b:expect_last("ckpt", r.id, d.seq or 0)
  b:append("ckpt", r.id, body)
  if d.pw_written then
    b:del_prefix("pw", fmt("%s/%08d/", esc(r.id), snap.superstep))
    d.pw_written = false
  end
  if write_rec then
    rec.checkpoints, rec.superstep = seq, snap.supersteps
    rec.status, rec.updated = "running", os.time()
    b:put("runs", r.id, encode(rec))
  end
  local okc, seqs = pcall(commit_owned, d, r.id, b, "checkpoint")
  if not okc then
    rec.fulls = old_fulls
    error(seqs, 0)
  end
  if type(seqs) == "table" and seqs[1] and seqs[1] ~= seq then
    error(fmt("checkpoint log of run %s is out of step (entry %d, expected %d)", r.id, seqs[1], seq), 0)
  end
  d.seq = seq
  d.nout = nouts
  -- every invocation of the superstep ended: drop the journal positions
  -- that failed invocations left
  if next(d.inv) then d.inv = {} end
  if full then
    d.last_full, d.full_size, d.since_full = seq, #body, 0
  else
    d.since_full = d.since_full + #body
  end
end

--- The checkpoint of run r after a commit (called in a task by the
-- scheduler; the run waits for checkpoint_done).
function _M.checkpoint(r)
  local ok, err = pcall(write_checkpoint, r, r.durable)
  sched.checkpoint_done(r.c, ok, not ok and tostring(err) or nil)
end

-- ---------------------------------------------------------------------------
-- durable invocations: a recording ctx, pending writes and their replay

local null = json.null
local Ctx = context.Ctx
local guard_mod -- weft.guard, loaded by the first guarded invocation

--- The ctx type of durable invocations: Ctx's methods, which also record
-- the invocation's effects (sends, outputs, events, logs, state writes) in
-- ctx._fx while its handler runs, to store them when it returns. Sends
-- and outputs are recorded as Ctx buffered them: after the output guards
-- (a masked value is stored masked, never as the handler gave it).
local DurableCtx = context.subtype()
_M.Ctx = DurableCtx

-- Ctx's method name as a recording method (effect {kind, a, b}; with
-- guarded, a is the value the method returns: what it buffered). Ctx's
-- checks raise at their caller, here pcall (no position): re-raised at
-- the user's call site, as a plain ctx would.
local function recording(name, kind, guarded)
  local base = Ctx[name]
  return function(self, a, b)
    local ok, v = pcall(base, self, a, b)
    if not ok then error(v, 2) end
    local fx = self._fx
    if fx then fx[#fx + 1] = { kind, guarded and v or a, b } end
    if guarded then return v end
  end
end
DurableCtx.yield_output = recording("yield_output", "output", true)
DurableCtx.emit = recording("emit", "emit")
DurableCtx.set_state = recording("set_state", "state")

local base_send, base_log, fix_utf8 = Ctx.send, Ctx.log, json.fix_utf8

--- ctx:send of a durable invocation (the message recorded as buffered,
-- after the output guards; the target by id). Returns the message sent.
function DurableCtx:send(msg, target)
  local ok, sent = pcall(base_send, self, msg, target)
  if not ok then error(sent, 2) end
  local fx = self._fx
  if fx then
    local wf = self._run.wf
    fx[#fx + 1] = { "send", sent, target ~= nil and wf._ids[wf._index[target]] or nil }
  end
  return sent
end

--- ctx:log of a durable invocation (the line recorded as logged).
function DurableCtx:log(level, msg)
  local ok, err = pcall(base_log, self, level, msg)
  if not ok then error(err, 2) end
  local fx = self._fx
  if fx then fx[#fx + 1] = { "log", level, fix_utf8(tostring(msg)) } end
end

-- Apply recorded effects fx through ctx (Ctx's methods: nothing is
-- recorded again; the guards are not run again either: the values were
-- recorded after them).
local function replay(ctx, fx)
  ctx._guards = nil
  for _, e in ipairs(fx) do
    local k, a, b = e[1], e[2], e[3]
    if a == null then a = nil end
    if b == null then b = nil end
    if k == "send" then Ctx.send(ctx, a, b)
    elseif k == "output" then Ctx.yield_output(ctx, a)
    elseif k == "emit" then Ctx.emit(ctx, a, b)
    elseif k == "log" then Ctx.log(ctx, a, b)
    elseif k == "state" then Ctx.set_state(ctx, a, b) end
  end
end

--- Effects recorded for an invocation being re-executed, or nil.
function _M.replay_of(r, superstep, order, attempt)
  local d = r.durable
  return d.replay and d.replay[pw_key("", superstep, order, attempt)]
end

--- Record the effects fx of ctx's finished invocation so that a restored
-- run does not execute it again. The invocation that completes the barrier
-- is covered by the checkpoint written right after it: not recorded (if
-- the process dies in between, it runs again; its journaled calls are not
-- repeated).
function _M.record_effects(r, ctx, fx)
  local d = r.durable
  if sched.remaining(r.c) <= 1 then return end
  d.pw_written = true
  local key = pw_key(r.id, ctx.superstep, ctx._order, ctx.attempt)
  commit_owned(d, r.id, d.store:batch():put("pw", key, encode(json.array(fx))),
    "store: recording the invocation's results")
end

--- The invocation function of durable runs (run.invoke, see
-- weft.context): replay the recorded effects of an invocation that
-- finished before a crash; otherwise run the handler (and the input
-- guards before it: context.handle) with a recording ctx and a fresh
-- journal position, and store its effects once it returns.
function _M.invoke(run, exec, msg, ctx)
  setmetatable(ctx, DurableCtx)
  local ss, order, attempt = ctx.superstep, ctx._order, ctx.attempt
  local fx = _M.replay_of(run, ss, order, attempt)
  if fx then return replay(ctx, fx) end
  local seq = ctx._seq
  run.durable.inv[seq] = ctx -- its journal position: ctx._jn (see hook)
  fx = {}
  ctx._fx = fx
  if ctx._guards then
    -- a guard's verdict is counted and observed now, and its event
    -- recorded with the effects, so that a replay (which does not run
    -- the guards again) publishes it
    guard_mod = guard_mod or require "weft.guard"
    local triggered = guard_mod.triggered
    ctx._gsink = function(ev)
      triggered(ev)
      fx[#fx + 1] = { "emit", "guardrail_triggered", ev }
    end
  end
  context.handle(run, exec, msg, ctx)
  ctx._fx = nil
  run.durable.inv[seq] = nil
  for _, e in ipairs(fx) do
    for i = 2, 3 do if e[i] == nil then e[i] = null end end
  end
  _M.record_effects(run, ctx, fx)
end

-- ---------------------------------------------------------------------------
-- the I/O journal (weft.journal's hook while a durable run is active)

-- How each kind of call is named in errors.
local KIND_NAME = { http = "an HTTP request", llm = "an LLM request", sandbox = "a sandbox run" }

-- Results (besides nil) that are failures: not journaled, so that a
-- re-executed invocation asks again (a server error, a command that timed
-- out).
local FAILED = {
  http = function(res) return type(res) == "table" and (res.status == 429 or (res.status or 0) >= 500) end,
  sandbox = function(res) return type(res) == "table" and res.timed_out == true end,
}

-- A request's short description (an HTTP query left out: it may hold a
-- key) and the hash of all of it (request: {what = ..., ...}).
local function identify(kind, request)
  local hash = sha256(encode(request, { invalid_utf8 = "replace" })):sub(1, 16)
  local what = tostring(request.what or kind)
  if kind == "http" then what = what:gsub("%?%S*", "?...") end
  if #what > 120 then what = what:sub(1, 117) .. "..." end
  return fix_utf8(what), hash
end

-- The error of a replayed call that does not match its recording.
local function mismatch(run, exec, ictx, n, rec, kind, what, hash)
  return fmt("run '%s': executor '%s' (superstep %d, attempt %d) made call %d of its invocation as %s '%s' "
    .. "(request %s), but call %d was recorded as %s '%s' (request %s); nothing recorded is returned "
    .. "for another call. An invocation runs again from its start when it is resumed or its request "
    .. "answered: the code before a request must be deterministic (the same LLM, HTTP and sandbox "
    .. "calls, in the same order, with the same requests)",
    run.id, tostring(exec), ictx.superstep, ictx.attempt, n,
    KIND_NAME[kind] or kind, what, hash, n, KIND_NAME[rec.kind] or tostring(rec.kind),
    tostring(rec.what or "(not recorded)"), tostring(rec.hash or "not recorded"))
end

-- Values from index i of packed r as a JSON list (nil -> null).
local function results_from(r, i)
  local out = json.array()
  for j = i, r.n do
    local v = r[j]
    if v == nil then v = null end
    out[j - i + 1] = v
  end
  return out
end

-- weft.journal's hook: run fn(...) as call n of the current durable
-- invocation (n counts its top-level calls: calls made inside a journaled
-- call, such as the HTTP requests of an LLM call, are part of it). A
-- recording of call n is returned instead of calling, once its kind and
-- request match (else raises); a successful result is recorded (fenced).
-- Calls outside a durable invocation just run. The invocation's ctx
-- holds the count (_jn) and the coroutines inside a journaled call (_jbusy).
local function hook(kind, request, fn, ...)
  local run, seq, exec, _, _, attempt = task.current()
  local d = run and run.durable
  local ictx = d and d.inv[seq]
  if not ictx or ictx.attempt ~= attempt then return fn(...) end -- not (or no longer) an invocation's
  local co, busy = coroutine.running(), ictx._jbusy
  if busy and busy[co] then return fn(...) end
  if not busy then
    busy = {}
    ictx._jbusy = busy
  end
  local n = (ictx._jn or 0) + 1
  ictx._jn = n
  local key = fmt("%s/%04d", pw_key(run.id, ictx.superstep, ictx._order, ictx.attempt), n)
  local what, hash = identify(kind, request)
  local rec = d.journal and d.journal[key]
  if rec then
    d.journal[key] = nil
    if rec.kind ~= kind or (rec.hash ~= nil and rec.hash ~= hash) then
      error(mismatch(run, exec, ictx, n, rec, kind, what, hash), 0)
    end
    return unpack(results_of(rec.results), 1, #rec.results)
  end
  busy[co] = true
  local res = pack(pcall(fn, ...))
  busy[co] = nil
  if not res[1] then error(res[2], 0) end
  local r1, failed = res[2], FAILED[kind]
  if r1 ~= nil and r1 ~= false and not (failed and failed(r1)) then
    -- with what the run has spent so far (this call included: weft.budget
    -- charged it in fn), so that a resume after a crash counts it
    commit_owned(d, run.id, d.store:batch():put("journal", key, encode({
      kind = kind, what = what, hash = hash, results = results_from(res, 2), spent = d.record.spent })),
      "store: journaling " .. (KIND_NAME[kind] or kind))
  end
  return unpack(res, 2, res.n)
end

local active = 0 -- durable runs of this process not ended: the hook is set while > 0

-- Durable state d starts (true) or stops using the journal hook.
local function use_hook(d, on)
  if (d.hooked or false) == on then return end
  d.hooked = on
  active = active + (on and 1 or -1)
  if on and active == 1 then journal.set(hook) elseif not on and active == 0 then journal.set(nil) end
end

-- ---------------------------------------------------------------------------
-- requests to humans

--- ctx:request_info hook of durable runs: an answer recorded in the store
-- (by `weft runs respond` from another process) is returned at once;
-- otherwise the request is stored as open.
function _M.on_request(r, ctx, id, req)
  local d = r.durable
  local key = esc(r.id) .. "/" .. id
  local s = d.store:get("req", key)
  local rec = s and load(s, "request " .. key)
  if rec and rec.status == "answered" then
    local v = rec.response
    if v == json.null then v = nil end
    return true, v
  end
  if not rec then
    commit_owned(d, r.id, d.store:batch():put("req", key, encode({
      run_id = r.id, request_id = id, executor_id = ctx.executor_id,
      superstep = ctx.superstep, request = req, status = "open",
    })), "store: recording request " .. id)
  end
  return false
end

-- The open request request_id of run id: its key, stored body and record,
-- or nil, err (unknown, already answered).
local function open_request(store, run_id, request_id)
  local key = esc(run_id) .. "/" .. request_id
  local s, err = store:get("req", key)
  if s == nil then
    return nil, err or fmt("run '%s' has no request '%s'", run_id, request_id)
  end
  local rec = load(s, "request " .. key)
  if rec.status == "answered" then
    return nil, fmt("request '%s' of run '%s' was already answered", request_id, run_id)
  end
  return key, s, rec
end

--- Store the answer to request id of run id: true, or nil, err (unknown
-- request, already answered — also by someone else at the same moment).
function _M.answer(store, run_id, request_id, value)
  local key, s, rec = open_request(store, run_id, request_id)
  if not key then return nil, s end
  rec.status, rec.response = "answered", value == nil and json.null or value
  local ok, perr, code = store:batch():expect("req", key, s):put("req", key, encode(rec)):commit()
  if not ok then
    if code == "conflict" then
      return nil, fmt("request '%s' of run '%s' was already answered", request_id, run_id)
    end
    return nil, perr
  end
  return true
end

--- Open requests of run id (sorted by request id).
function _M.open_requests(store, run_id)
  local out = {}
  local rows = check(store:scan("req", esc(run_id) .. "/"))
  for _, row in ipairs(rows or {}) do
    local rec = load(row.value, "request " .. row.key)
    if rec.status == "open" then out[#out + 1] = rec end
  end
  table.sort(out, function(a, b) return a.request_id < b.request_id end)
  return out
end

-- ---------------------------------------------------------------------------
-- starting and resuming

-- A fresh run id (the scheduler's format is run-N-XXXXXXXX; this one is
-- unique across processes sharing a store).
local function new_id()
  local rnd = require("weft.urandom").hex(4) or fmt("%x", store_mod.owner().pid)
  return fmt("run-%d-%s", os.time(), rnd)
end

--- Prepare a durable run of wf (before it is created): take the lease of
-- its id and write its record, so that both are durable before superstep
-- 0 starts. Returns the durable state d to attach to the run table; raises
-- when the id is taken (another owner, or an existing run) or the store
-- fails (nothing has run then).
function _M.begin(wf, opts, input)
  local store = _M.store(opts.store)
  local id = opts.run_id or new_id()
  -- refused before anything is stored, naming the input, not the record
  local ierr = input ~= nil and json.check(input, "run input")
  if ierr then error(ierr, 0) end
  local d = {
    store = store, nout = 0, since_full = 0, full_size = 0, inv = {},
    record = {
      schema = _M.SCHEMA, workflow = wf.name, hash = _M.hash(wf), status = "running",
      input = input == nil and json.null or input, created = os.time(),
      script = opts.script, superstep = 0, checkpoints = 0, run_id = id,
    },
  }
  d.lease = _M.own(store, id, opts)
  local ok, err = pcall(function()
    local old, gerr = store:get("runs", id)
    if old == nil and gerr then error("store: reading the run record: " .. tostring(gerr), 0) end
    if old then
      local okd, orec = pcall(decode, old)
      error(fmt("run '%s' already exists (status %s): resume it with `weft runs resume %s`, or use another id",
        id, okd and type(orec) == "table" and tostring(orec.status) or "unknown", id), 0)
    end
    commit_owned(d, id, store:batch():expect("runs", id, false):put("runs", id, encode(d.record)),
      "store: writing the run record")
  end)
  if not ok then
    release(d)
    error(err, 0)
  end
  return d
end

--- Attach durable state d to a new run table r (its id known): hooks, and
-- the renewal of its lease while it runs.
function _M.attach(r, d)
  r.durable = d
  r.invoke = _M.invoke
  use_hook(d, true)
  r.checkpoint = _M.checkpoint
  r.on_request = _M.on_request
  r.on_end = _M.on_end
  r.respond = _M.respond_here
  start_renewal(r, d)
end

-- Answers stored (by `weft runs respond` of another process) for requests
-- the idle run r waits on: a list of {request_id, value}.
local function stored_answers(r)
  local d, out = r.durable, {}
  for _, id in ipairs(context.request_ids(r)) do
    local s = d.store:get("req", esc(r.id) .. "/" .. id)
    local ok, rec = pcall(decode, s or "")
    if s and ok and type(rec) == "table" and rec.status == "answered" then
      local v = rec.response
      if v == json.null then v = nil end
      out[#out + 1] = { request_id = id, value = v }
    end
  end
  return out
end

--- Own run r again (after it paused and gave its lease up): true, or nil,
-- err when another process owns it now.
function _M.reown(r)
  local d = r.durable
  if not d or not d.released then return true end
  local ok, l = pcall(_M.own, d.store, r.id, {})
  if not ok then return nil, l end
  d.lease, d.released = l, false
  start_renewal(r, d)
  return true
end

--- Run:respond of a durable run handle (installed on the handle): a
-- paused run gave its lease up, so it is owned again first (nil, err when
-- another process owns it now).
function _M.respond_here(r, request_id, value)
  local ok, err = _M.reown(r)
  if not ok then return nil, err end
  return getmetatable(r).respond(r, request_id, value)
end

--- Record the final status of a durable run (or its pause): the record is
-- written (fenced: not by an owner that lost the run) and the lease given
-- up. A paused run gives its lease up, so that `weft runs respond` from
-- another process can take it; then answers stored meanwhile (by a
-- responder that found the lease still held) are picked up here: the run
-- is owned again and continues in this process.
function _M.finish(r)
  local d = r.durable
  if not d or d.final or d.released then return end
  local status, err, supersteps = sched.run_info(r.c)
  if status ~= "idle" then
    d.final = true
    use_hook(d, false)
  end
  d.record.status = status
  d.record.error = err
  d.record.updated = os.time()
  d.record.outputs = select(2, sched.run_outputs(r.c, 2147483647)) -- the count alone
  if d.seq then d.record.checkpoints, d.record.superstep = d.seq, supersteps end
  if not d.lost then
    pcall(commit_owned, d, r.id, d.store:batch():put("runs", r.id, encode(d.record)), "store: writing the run record")
  end
  release(d)
  if status ~= "idle" or d.lost then return end
  local answers = stored_answers(r)
  if #answers == 0 then return end
  local ok, err = _M.reown(r)
  if not ok then
    d.handed = err -- another process took the run: it continues it with these answers
    return
  end
  for _, a in ipairs(answers) do
    local seq = context.request_get(r, a.request_id)
    if seq and sched.request_answer(r.c, seq, a.value) then context.request_drop(r, a.request_id) end
  end
end

--- Fail run id without running it (an executor of it kept blocking the
-- workers that tried it): its lease is taken (waiting for an expired
-- owner's), its record set to failed with error msg, the lease given up.
-- true, or raises naming what failed.
function _M.abandon(store, id, msg)
  local rec, err = _M.record(store, id)
  if not rec then error(err, 0) end
  if TERMINAL[rec.status] then return true end
  local d = { store = store, lease = _M.own(store, id, { lease = { wait = true } }) }
  rec.status, rec.error, rec.updated = "failed", msg, os.time()
  local ok, cerr = pcall(commit_owned, d, id, store:batch():put("runs", id, encode(rec)),
    "store: writing the run record")
  release(d)
  if not ok then error(cerr, 0) end
  return true
end

--- on_end hook of durable runs (a task started by the scheduler when the
-- run ends or pauses): finish, then let the run's end be seen.
function _M.on_end(r)
  local ok, err = pcall(_M.finish, r)
  if not ok then io.stderr:write(fmt("weft: run %s: recording its end: %s\n", r.id, tostring(err))) end
  sched.end_done(r.c)
end

-- The number of the last entry of run id's checkpoint log (the record's
-- count may lag by up to 15 while the run is running), and that entry
-- (JSON; nil when not read): read from the record's newest full snapshot
-- onwards.
local function log_tail(store, rec)
  local fulls = rec.fulls or {}
  local from = fulls[#fulls]
  if not from then return rec.checkpoints or 0 end
  local rows = check(store:range("ckpt", rec.run_id, from, 0))
  local last = rows and rows[#rows]
  if not last then return rec.checkpoints or 0 end
  return last.seq, last.value
end

-- Fold the checkpoints of run rec from the newest full snapshot at or
-- before `last` up to `last` with wf's reducers (wf nil: a written value
-- replaces the old one). Returns {supersteps, superstep, pending, fanin,
-- state, outputs}, or nil, err, code: "no_snapshot", "missing",
-- "corrupt", "reducer", "store". Reads only.
local function fold(wf, store, rec, last)
  local id = rec.run_id
  local from
  for _, f in ipairs(rec.fulls or {}) do
    if f <= last then from = f end
  end
  if not from then return nil, fmt("run '%s': no full snapshot at or before checkpoint %d", id, last), "no_snapshot" end
  local rows, serr = store:range("ckpt", id, from, last)
  if not rows then return nil, "store: " .. tostring(serr), "store" end
  if #rows == 0 or rows[1].seq ~= from or rows[#rows].seq ~= last then
    return nil, fmt("run '%s': checkpoints %d..%d are missing from the store", id, from, last), "missing"
  end
  local reducers = wf and wf._reducer_fns or {}
  local state, outputs, entry = {}, {}, nil
  for i, row in ipairs(rows) do
    local dok, derr
    dok, entry, derr = pcall(decode, row.value)
    if not dok then entry, derr = nil, entry end
    if type(entry) ~= "table" then
      return nil, fmt("corrupt checkpoint %d of run %s: %s", row.seq, id, tostring(derr or "not an object")), "corrupt"
    end
    if i == 1 then
      if type(entry.state) ~= "table" or type(entry.all_outputs) ~= "table" then
        return nil, fmt("corrupt checkpoint %d of run %s: no full snapshot", row.seq, id), "corrupt"
      end
      for k, v in pairs(entry.state) do state[k] = v end
      for j, v in ipairs(entry.all_outputs) do outputs[j] = v end
    else
      for _, w in ipairs(entry.writes or {}) do
        local k, v = w[1], w[2]
        if v == json.null then v = nil end
        local red = reducers[k]
        if v == nil then state[k] = nil
        elseif red then
          local ok, nv = pcall(red, state[k], v)
          if not ok then
            return nil, fmt("run '%s': the reducer of state key '%s' failed at checkpoint %d: %s", id,
              tostring(k), row.seq, tostring(nv)), "reducer"
          end
          state[k] = nv
        else state[k] = v end
      end
      for _, v in ipairs(entry.outputs or {}) do outputs[#outputs + 1] = v end
    end
  end
  for _, p in ipairs(entry.pending or {}) do
    if p.msg == json.null then p.msg = nil end
  end
  return {
    supersteps = entry.supersteps, superstep = entry.superstep, pending = entry.pending, fanin = entry.fanin,
    state = state, outputs = outputs,
  }
end

-- Rebuild the restore table of a run from its checkpoints up to `upto`
-- (nil: the last). Returns restore (nil when the run has no checkpoint),
-- the number of the checkpoint it stands for, the number of the last one
-- and that one's entry (JSON or nil); raises when it cannot.
local function rebuild(wf, store, rec, upto)
  local tail, tail_entry = log_tail(store, rec)
  local last = upto or tail
  if last == 0 then return nil, 0, tail, tail_entry end
  if upto and upto > tail then
    error(fmt("run '%s' has no checkpoint %d (it has %d)", rec.run_id, upto, tail), 0)
  end
  local restore, err = fold(wf, store, rec, last)
  if not restore then error(err, 0) end
  return restore, last, tail, tail_entry
end

--- The state of run run_id at checkpoint n, read from store without
-- changing anything (the fold a resume from n starts with; wf gives the
-- reducers, nil: written values replace): {state, outputs, pending =
-- {{src, msg}}, supersteps, superstep, fanin}, or nil, err, code — code
-- "unknown" (no such run), "no_checkpoint" (beyond the log, or < 1),
-- "no_snapshot", "missing", "corrupt", "reducer" or "store".
function _M.state_at(wf, store, run_id, n)
  store = _M.store(store)
  local ok, rec, err = pcall(_M.record, store, run_id)
  if not ok then return nil, tostring(rec), "corrupt" end
  if not rec then
    if tostring(err):find("unknown run", 1, true) then return nil, err, "unknown" end
    return nil, "store: " .. tostring(err), "store"
  end
  local tok, tail = pcall(log_tail, store, rec)
  if not tok then return nil, tostring(tail), "store" end
  if type(n) ~= "number" or n < 1 or n > tail then
    return nil, fmt("run '%s' has no checkpoint %s (it has %d)", run_id, tostring(n), tail), "no_checkpoint"
  end
  return fold(wf, store, rec, n)
end

--- The result of run id of workflow wf as stored, once it ended:
-- {status, error, outputs, supersteps, run_id} (outputs rebuilt from its
-- checkpoints), or nil when the run has not ended (or is unknown: nil,
-- err).
function _M.result(wf, store, id)
  local rec, err = _M.record(store, id)
  if not rec then return nil, err end
  if not TERMINAL[rec.status] then return nil end
  local restore = rebuild(wf, store, rec)
  return { status = rec.status, error = rec.error, outputs = restore and restore.outputs or {},
           supersteps = rec.superstep, run_id = id }
end

-- Everything recorded for run id in namespace ns, by key.
local function scan_map(store, ns, id, decode_rows)
  local map, eid = {}, esc(id)
  for _, row in ipairs(check(store:scan(ns, eid .. "/")) or {}) do
    map[decode_rows and row.key:sub(#eid + 1) or row.key] = load(row.value, ns .. " " .. row.key)
  end
  return map
end

--- Resume run id of workflow wf from store: the new run handle, or raises
-- with a clear message. opts: from (checkpoint number), force (ignore a
-- different workflow hash), on_event, max_supersteps, ...
--- The record of run_id if wf may continue it: not ended, same
-- definition hash (unless opts.force). Raises otherwise (nothing is
-- changed).
function _M.check_resumable(wf, store, run_id, opts)
  local rec, err = _M.record(store, run_id)
  if not rec then error(err, 0) end
  if rec.status == "completed" or rec.status == "cancelled" then
    error(fmt("run '%s' already %s; nothing to resume", run_id, rec.status), 0)
  end
  local h = _M.hash(wf)
  if rec.hash ~= h and not opts.force then
    error(fmt("run '%s' was checkpointed by workflow '%s' with hash %s; the loaded definition "
      .. "'%s' has hash %s (resume with force to override)", run_id, rec.workflow, rec.hash, wf.name, h), 0)
  end
  return rec
end

function _M.resume(wf, run_id, opts)
  opts = opts or {}
  local store = _M.store(opts.store)
  local lease = opts._lease or _M.own(store, run_id, opts)
  local ok, d, restore, input, last = pcall(_M.restore, wf, store, run_id, opts, lease)
  if not ok then
    release({ store = store, lease = lease })
    error(d, 0)
  end
  return d, restore, input, last
end

-- The most a budgeted run has spent, from its record, its last checkpoint
-- (JSON entry or nil) and its journal (a map of entries): each holds the
-- account's totals when it was written, and the totals only grow (going
-- back to an earlier checkpoint does not give back what was spent).
-- Returns {tokens, cost}, or nil when none holds any.
local function spent_of(rec, tail_entry, journal_map)
  local tokens, cost, any = 0, 0, false
  local function take(s)
    if type(s) ~= "table" then return end
    any = true
    tokens = math.max(tokens, tonumber(s.tokens) or 0)
    cost = math.max(cost, tonumber(s.cost) or 0)
  end
  take(rec.spent)
  if tail_entry and tail_entry:find('"spent"', 1, true) then
    local ok, e = pcall(decode, tail_entry)
    if ok and type(e) == "table" then take(e.spent) end
  end
  for _, e in pairs(journal_map) do take(e.spent) end
  return any and { tokens = tokens, cost = cost } or nil
end

-- Rebuild run_id for resume, owning it with lease.
function _M.restore(wf, store, run_id, opts, lease)
  local rec = _M.check_resumable(wf, store, run_id, opts)
  local restore, last, tail, tail_entry = rebuild(wf, store, rec, opts.from)
  local d = {
    lease = lease,
    store = store, inv = {}, record = rec, since_full = 0, full_size = 0, seq = tail,
    replay = scan_map(store, "pw", run_id, true),
    journal = scan_map(store, "journal", run_id, false),
  }
  -- what a budgeted run spent up to the crash (weft.budget starts from it)
  rec.spent = spent_of(rec, tail_entry, d.journal)
  d.last_full = rec.fulls and rec.fulls[#rec.fulls]
  if opts.from and opts.from < (tail or 0) then
    -- going back in time: the later checkpoints stay in the log but are
    -- never read again (the next checkpoint is a full snapshot, and the
    -- record only lists full snapshots up to `from`); the effects and the
    -- journal recorded after `from` are not replayed
    rec.checkpoints = opts.from
    local fulls = json.array()
    for _, f in ipairs(rec.fulls or {}) do if f <= opts.from then fulls[#fulls + 1] = f end end
    rec.fulls = fulls
    d.replay, d.journal, d.last_full = {}, {}, nil
  end
  d.nout = restore and #restore.outputs or 0
  d.record.status = "running"
  local input = rec.input
  if input == json.null then input = nil end
  return d, restore, input, last
end

--- Answer request request_id of run_id (of workflow wf) from any
-- process: checks first that the run may be continued by wf (known, not
-- ended, same definition hash unless opts.force) and that the request is
-- open — a refusal raises and changes nothing; then stores the answer and
-- takes the run's lease. Returns the lease (resume the run with it:
-- opts._lease), or nil, holder when another live process owns the run:
-- that owner picks the answer up when the run pauses (or whoever resumes
-- the run after its lease expires). opts.lease.wait: wait for the lease
-- instead.
function _M.respond(wf, run_id, request_id, value, opts)
  opts = opts or {}
  local store = _M.store(opts.store)
  _M.check_resumable(wf, store, run_id, opts)
  local ok, err = _M.answer(store, run_id, request_id, value)
  if not ok then error(err, 0) end
  local ttl, renew, wait = lease_conf(opts)
  if wait then return _M.own(store, run_id, opts) end
  local l, lerr, code, holder = store:lease_acquire(run_id, ttl)
  if l then
    l.ttl, l.renew = ttl, renew
    return l
  end
  if code == "held" then return nil, holder end
  error(fmt("store: taking the lease of run '%s': %s (the answer is stored)", run_id, tostring(lerr)), 0)
end

-- ---------------------------------------------------------------------------
-- cleanup

--- Drop what is no longer needed: opts.keep_last = n keeps the last n
-- checkpoints of every run (and the full snapshot they need); opts.ttl =
-- seconds deletes every trace of runs that ended (completed, failed,
-- cancelled) longer ago than that (opts.now: the current time, for tests).
-- Runs whose lease is held (a process owns them now) are skipped.
-- Returns {runs_deleted = n, checkpoints_dropped = n}.
function _M.cleanup(store, opts)
  store = _M.store(store)
  opts = opts or {}
  local now = opts.now or os.time()
  local out = { runs_deleted = 0, checkpoints_dropped = 0 }
  for _, row in ipairs(check(store:scan("runs", "")) or {}) do
    local ok, rec = pcall(load, row.value, "run record of " .. row.key)
    -- a run that a process owns right now (running, or resumed after it
    -- failed) is left alone: its owner rewrites its record
    local lease = ok and store:lease(row.key)
    if ok and not (lease and lease.held) then
      local id = row.key
      if opts.ttl and TERMINAL[rec.status] and (rec.updated or 0) < now - opts.ttl then
        local b = store:batch()
        b:del("runs", id)
        b:del("ckpt", id)
        b:del("lease", id)
        b:del("fence", id)
        for _, ns in ipairs({ "pw", "journal", "req" }) do b:del_prefix(ns, esc(id) .. "/") end
        check(b:commit())
        out.runs_deleted = out.runs_deleted + 1
      elseif opts.keep_last and (rec.checkpoints or 0) > opts.keep_last then
        local keep_from = rec.checkpoints - opts.keep_last + 1
        local need = keep_from -- the newest full snapshot at or before keep_from
        for _, f in ipairs(rec.fulls or {}) do if f <= keep_from then need = f end end
        local first = rec.trimmed or 1
        if need > first then
          local fulls = json.array()
          for _, f in ipairs(rec.fulls or {}) do if f >= need then fulls[#fulls + 1] = f end end
          rec.fulls, rec.trimmed = fulls, need
          local b = store:batch()
          b:trim("ckpt", id, need)
          b:put("runs", id, encode(rec))
          check(b:commit())
          out.checkpoints_dropped = out.checkpoints_dropped + (need - first)
        end
      end
    end
  end
  return out
end

return _M
