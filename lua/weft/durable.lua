--- Durable runs: checkpoints at every superstep barrier, pending writes of
-- finished invocations, the I/O journal, requests to humans that survive
-- the process, and resume. A run is durable when started with a store
-- (`wf:run(input, {store = "sqlite:./.weft/weft.db"})`).
--
-- Store layout (namespaces of weft.store; see docs/durability.md):
--   runs/<run_id>                      the run record (JSON)
--   ckpt/<run_id>                      log: one entry per checkpoint
--   pw/<run_id>/<ss>/<order>/<attempt> effects of a finished invocation
--   journal/<run_id>/<ss>/<order>/<attempt>/<n>  a recorded yielding call
--   req/<run_id>/<request_id>          a request to a human and its answer
-- Uses weft.json, weft.store, weft.core.sched, weft.task.
local _M = {}

local json = require "weft.json"
local sched = require "weft.core.sched"
local task = require "weft.task"

local type, error, pairs, ipairs, tostring, select, unpack, setmetatable =
  type, error, pairs, ipairs, tostring, select, unpack, setmetatable
local fmt, concat = string.format, table.concat
local encode, decode = json.encode, json.decode

--- Version of the stored layout; a different one is refused.
_M.SCHEMA = 1

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

local function pw_key(id, ss, order, attempt)
  return fmt("%s/%08d/%06d/%03d", id, ss, order, attempt)
end

--- The hash of a workflow definition: its graph (executors, kinds, edges,
-- labels) and executor options. Two loads of the same script agree.
function _M.hash(wf)
  local d = wf:describe()
  for i, ex in ipairs(wf._order) do
    d.executors[i].retry, d.executors[i].timeout = ex.retry, ex.timeout
    d.executors[i].on_error = ex.on_error
  end
  return require("weft.sha256")(encode(d)):sub(1, 16)
end

-- Values and their count (results may hold nils).
local function pack(...) return { n = select("#", ...), ... } end

-- A JSON-able list of results (nil -> null).
local function results_doc(r)
  local out = json.array()
  for i = 1, r.n do
    local v = r[i]
    if v == nil then v = json.null end
    out[i] = v
  end
  return out
end

-- Results back from results_doc.
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

-- ---------------------------------------------------------------------------
-- checkpoints

-- Bytes written since the last full snapshot beyond its size: time for one.
local function full_due(d, entry_len)
  if not d.last_full then return true end
  return d.since_full + entry_len > math.max(d.full_size, 4096)
end

--- The checkpoint of run r after a commit (called in a task by the
-- scheduler; the run waits for checkpoint_done).
function _M.checkpoint(r)
  local d = r.durable
  local ok, err = pcall(function()
    local snap = sched.snapshot(r.c)
    local outs = sched.run_outputs(r.c)
    local new = json.array()
    for i = d.nout + 1, #outs do new[#new + 1] = outs[i] end
    local entry = {
      superstep = snap.superstep, supersteps = snap.supersteps,
      pending = json.array(snap.pending), fanin = json.array(snap.fanin),
      writes = json.array(snap.writes), outputs = new,
    }
    local body = encode(entry)
    local full = full_due(d, #body)
    if full then
      entry.state = json.object(sched.run_state(r.c))
      entry.all_outputs = json.array(outs)
      body = encode(entry)
    end
    -- the checkpoint's number is known in advance (the log numbers its
    -- entries 1, 2, ...); the run record is rewritten in the same atomic
    -- batch when it changes materially (a full snapshot) and every 16
    -- checkpoints, so that it stays cheap: resume reads the log's tail
    local seq = (d.seq or 0) + 1
    local rec = d.record
    local write_rec = full or seq % 16 == 0
    local old_fulls = rec.fulls
    if full then
      local fulls = json.array()
      for i, f in ipairs(rec.fulls or {}) do fulls[i] = f end
      fulls[#fulls + 1] = seq
      rec.fulls = fulls
    end
    local b = d.store:batch()
    b:append("ckpt", r.id, body)
    if d.pw_written then
      b:del_prefix("pw", fmt("%s/%08d/", r.id, snap.superstep))
      d.pw_written = false
    end
    if write_rec then
      rec.checkpoints, rec.superstep = seq, snap.supersteps
      rec.status, rec.updated = "running", os.time()
      b:put("runs", r.id, encode(rec))
    end
    local okc, seqs = b:commit()
    if not okc then
      rec.fulls = old_fulls
      error(seqs or "commit failed", 0)
    end
    if type(seqs) == "table" and seqs[1] and seqs[1] ~= seq then
      error(fmt("checkpoint log of run %s is out of step (entry %d, expected %d)", r.id, seqs[1], seq), 0)
    end
    d.seq = seq
    d.nout = #outs
    if full then
      d.last_full, d.full_size, d.since_full = seq, #body, 0
    else
      d.since_full = d.since_full + #body
    end
  end)
  sched.checkpoint_done(r.c, ok, not ok and tostring(err) or nil)
end

-- ---------------------------------------------------------------------------
-- pending writes (effects of finished invocations) and their replay

--- Effects recorded for an invocation being re-executed, or nil.
function _M.replay_of(r, superstep, order, attempt)
  local d = r.durable
  return d.replay and d.replay[pw_key("", superstep, order, attempt)]
end

--- Record the effects of a finished invocation (ctx._fx) so that a restored
-- run does not execute it again. The invocation that completes the barrier
-- is covered by the checkpoint written right after it: not recorded (if
-- the process dies in between, it runs again; its journaled calls are not
-- repeated).
function _M.record_effects(r, ctx)
  local d = r.durable
  if sched.remaining(r.c) <= 1 then return end
  d.pw_written = true
  local key = pw_key(r.id, ctx.superstep, ctx._order, ctx.attempt)
  local ok, err = d.store:put("pw", key, encode(json.array(ctx._fx)))
  if not ok then error("store: recording the invocation's results: " .. tostring(err), 0) end
end

-- ---------------------------------------------------------------------------
-- the I/O journal

--- Run fn(...) as journaled call of kind: inside a durable invocation the
-- result is recorded, and a re-executed invocation gets the recorded
-- result instead of calling again. Elsewhere it just calls fn.
function _M.call(kind, fn, ...)
  local run, seq, _, ss, order, attempt = task.current()
  local d = run and run.durable
  if not d then return fn(...) end
  d.jidx[seq] = (d.jidx[seq] or 0) + 1
  local key = fmt("%s/%04d", pw_key(run.id, ss, order, attempt), d.jidx[seq])
  local rec = d.journal and d.journal[key]
  if rec then
    d.journal[key] = nil
    return unpack(results_of(rec.results), 1, #rec.results)
  end
  local res = pack(fn(...))
  local ok, err = d.store:put("journal", key, encode({ kind = kind, results = results_doc(res) }))
  if not ok then error("store: journaling a " .. kind .. " call: " .. tostring(err), 0) end
  return unpack(res, 1, res.n)
end

-- ---------------------------------------------------------------------------
-- requests to humans

--- ctx:request_info hook of durable runs: an answer recorded in the store
-- (by `weft runs respond` from another process) is returned at once;
-- otherwise the request is stored as open.
function _M.on_request(r, ctx, id, req)
  local d = r.durable
  local key = r.id .. "/" .. id
  local s = d.store:get("req", key)
  local rec = s and load(s, "request " .. key)
  if rec and rec.status == "answered" then
    local v = rec.response
    if v == json.null then v = nil end
    return true, v
  end
  if not rec then
    local ok, err = d.store:put("req", key, encode({
      run_id = r.id, request_id = id, executor_id = ctx.executor_id,
      superstep = ctx.superstep, request = req, status = "open",
    }))
    if not ok then error("store: recording request " .. id .. ": " .. tostring(err), 0) end
  end
  return false
end

--- Store the answer to request id of run id: true, or nil, err (unknown
-- request, already answered).
function _M.answer(store, run_id, request_id, value)
  local key = run_id .. "/" .. request_id
  local s, err = store:get("req", key)
  if s == nil then
    return nil, err or fmt("run '%s' has no request '%s'", run_id, request_id)
  end
  local rec = load(s, "request " .. key)
  if rec.status == "answered" then
    return nil, fmt("request '%s' of run '%s' was already answered", request_id, run_id)
  end
  rec.status, rec.response = "answered", value == nil and json.null or value
  local ok, perr = store:put("req", key, encode(rec))
  if not ok then return nil, perr end
  return true
end

--- Open requests of run id (sorted by request id).
function _M.open_requests(store, run_id)
  local out = {}
  local rows = check(store:scan("req", run_id .. "/"))
  for _, row in ipairs(rows or {}) do
    local rec = load(row.value, "request " .. row.key)
    if rec.status == "open" then out[#out + 1] = rec end
  end
  table.sort(out, function(a, b) return a.request_id < b.request_id end)
  return out
end

-- ---------------------------------------------------------------------------
-- starting and resuming

--- Prepare run options for a durable run of wf: returns the durable state
-- to attach to the run table (d) after writing the run record.
function _M.begin(wf, opts, input)
  local store = _M.store(opts.store)
  local d = {
    store = store, nout = 0, since_full = 0, full_size = 0, jidx = {},
    record = {
      schema = _M.SCHEMA, workflow = wf.name, hash = _M.hash(wf), status = "running",
      input = input == nil and json.null or input, created = os.time(),
      script = opts.script, superstep = 0, checkpoints = 0,
    },
  }
  return d
end

--- Attach durable state d to a new run table r (its id known).
function _M.attach(r, d)
  r.durable = d
  r.checkpoint = _M.checkpoint
  r.on_request = _M.on_request
  d.record.run_id = r.id
  local ok, err = d.store:put("runs", r.id, encode(d.record))
  if not ok then error("store: writing the run record: " .. tostring(err), 0) end
end

--- Record the final status of a durable run (after wait).
function _M.finish(r, res)
  local d = r.durable
  if not d or d.final then return end
  if res.status ~= "idle" then d.final = true end
  d.record.status = res.status
  d.record.error = res.error
  d.record.updated = os.time()
  d.record.outputs = #res.outputs
  if d.seq then d.record.checkpoints, d.record.superstep = d.seq, res.supersteps end
  d.store:put("runs", r.id, encode(d.record))
end

-- The number of the last entry of run id's checkpoint log (the record's
-- count may lag by up to 15 while the run is running): read from the
-- record's newest full snapshot onwards.
local function log_tail(store, rec)
  local fulls = rec.fulls or {}
  local from = fulls[#fulls]
  if not from then return rec.checkpoints or 0 end
  local rows = check(store:range("ckpt", rec.run_id, from, 0))
  local last = rows and rows[#rows]
  return last and last.seq or (rec.checkpoints or 0)
end

-- Rebuild the restore table of a run from its checkpoints up to `upto`
-- (nil: the last). Returns restore (nil when the run has no checkpoint)
-- and the number of the checkpoint it stands for.
local function rebuild(wf, store, rec, upto)
  local tail = log_tail(store, rec)
  local last = upto or tail
  if last == 0 then return nil, 0 end
  if upto and upto > tail then
    error(fmt("run '%s' has no checkpoint %d (it has %d)", rec.run_id, upto, tail), 0)
  end
  local from
  for _, f in ipairs(rec.fulls or {}) do
    if f <= last then from = f end
  end
  if not from then error(fmt("run '%s': no full snapshot at or before checkpoint %d", rec.run_id, last), 0) end
  local rows = check(store:range("ckpt", rec.run_id, from, last))
  if not rows or #rows == 0 or rows[1].seq ~= from then
    error(fmt("run '%s': checkpoints %d..%d are missing from the store", rec.run_id, from, last), 0)
  end
  local reducers = wf._reducer_fns or {}
  local state, outputs, entry = {}, {}, nil
  for i, row in ipairs(rows) do
    entry = load(row.value, fmt("checkpoint %d of run %s", row.seq, rec.run_id))
    if i == 1 then
      if type(entry.state) ~= "table" or type(entry.all_outputs) ~= "table" then
        error(fmt("corrupt checkpoint %d of run %s: no full snapshot", row.seq, rec.run_id), 0)
      end
      for k, v in pairs(entry.state) do state[k] = v end
      for j, v in ipairs(entry.all_outputs) do outputs[j] = v end
    else
      for _, w in ipairs(entry.writes or {}) do
        local k, v = w[1], w[2]
        if v == json.null then v = nil end
        local red = reducers[k]
        if v == nil then state[k] = nil
        elseif red then state[k] = red(state[k], v)
        else state[k] = v end
      end
      for _, v in ipairs(entry.outputs or {}) do outputs[#outputs + 1] = v end
    end
  end
  for _, p in ipairs(entry.pending or {}) do
    if p.msg == json.null then p.msg = nil end
  end
  return {
    supersteps = entry.supersteps, pending = entry.pending, fanin = entry.fanin,
    state = state, outputs = outputs,
  }, last, tail
end

-- Everything recorded for run id in namespace ns, by key.
local function scan_map(store, ns, id, decode_rows)
  local map = {}
  for _, row in ipairs(check(store:scan(ns, id .. "/")) or {}) do
    map[decode_rows and row.key:sub(#id + 1) or row.key] = load(row.value, ns .. " " .. row.key)
  end
  return map
end

--- Resume run id of workflow wf from store: the new run handle, or raises
-- with a clear message. opts: from (checkpoint number), force (ignore a
-- different workflow hash), on_event, max_supersteps, ...
function _M.resume(wf, run_id, opts)
  local store = _M.store(opts.store)
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
  local restore, last, tail = rebuild(wf, store, rec, opts.from)
  local d = {
    store = store, jidx = {}, record = rec, since_full = 0, full_size = 0, seq = tail,
    replay = scan_map(store, "pw", run_id, true),
    journal = scan_map(store, "journal", run_id, false),
  }
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

-- ---------------------------------------------------------------------------
-- cleanup

local TERMINAL = { completed = true, failed = true, cancelled = true }

--- Drop what is no longer needed: opts.keep_last = n keeps the last n
-- checkpoints of every run (and the full snapshot they need); opts.ttl =
-- seconds deletes every trace of runs that ended (completed, failed,
-- cancelled) longer ago than that (opts.now: the current time, for tests).
-- Returns {runs_deleted = n, checkpoints_dropped = n}.
function _M.cleanup(store, opts)
  store = _M.store(store)
  opts = opts or {}
  local now = opts.now or os.time()
  local out = { runs_deleted = 0, checkpoints_dropped = 0 }
  for _, row in ipairs(check(store:scan("runs", "")) or {}) do
    local ok, rec = pcall(load, row.value, "run record of " .. row.key)
    if ok then
      local id = row.key
      if opts.ttl and TERMINAL[rec.status] and (rec.updated or 0) < now - opts.ttl then
        local b = store:batch()
        b:del("runs", id)
        b:del("ckpt", id)
        for _, ns in ipairs({ "pw", "journal", "req" }) do b:del_prefix(ns, id .. "/") end
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
