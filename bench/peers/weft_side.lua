--- bench/peers/weft_side.lua — weft's side of the peer comparison (issue 14):
-- one row of bench/peers/peers.lua measured in this process, printed as one
-- line `result <row> <value>` (µs per unit of work, or KiB per paused run).
--
-- Run: build/weft exec bench/peers/weft_side.lua ROW [--warm N] [--reps N]
-- with ROW one of chain, subscriber, loop, single, paused, fan, batch,
-- pbatch (subscriber: weft only). bench/peers/peers.lua
-- runs it, alternating with bench/peers/pocketflow_side.js, which builds
-- the same graphs with PocketFlow and does the same work per node: keep the
-- two files in step (same sizes, same work, same warm-up and repetitions).
--
-- The graphs are those of bench/sched.lua, with default run options
-- (event log kept) except max_supersteps (steps + 10) and, for the fan-out
-- row, events = false as in bench/sched.lua; the batch rows run weft.flow
-- (PocketFlow's own model) instead of a workflow. Every run is checked; a run
-- that does not end as expected raises (exit status non-zero). Timings are
-- never asserted.
--
-- Uses: weft.executor, weft.workflow (start, edge, fan_out, state, build),
-- wf:run, wf:spawn, h:wait, h:requests, h:respond, weft.reduce.append,
-- weft.clock (monotonic seconds), bench/bench_lib.lua (heap_kib).

local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/peers/") .. "../?.lua;"
  .. package.path
local blib = require "bench_lib"

local fmt = string.format
local sort = table.sort
local clock = weft.clock

local CHAIN, LOOP, SINGLE_BATCH, PAUSED, FAN, BATCH = 1000, 10000, 2000, 10000, 1000, 1000

-- `weft exec` may pass arguments as the chunk's varargs or in the global arg.
local argv = { ... }
if #argv == 0 and type(rawget(_G, "arg")) == "table" then
  for k = 1, #_G.arg do argv[k] = _G.arg[k] end
end

local row = argv[1]
local opts = { warm = 5, reps = 7 }
do
  local i = 2
  while i <= #argv do
    local a, v = argv[i], tonumber(argv[i + 1])
    if (a == "--warm" or a == "--reps") and v and v >= 0 and v == math.floor(v) then
      opts[a:sub(3)] = v
    else
      error("usage: weft exec bench/peers/weft_side.lua chain|subscriber|loop|single|paused|fan|batch|pbatch"
        .. " [--warm N] [--reps N] (bad argument '" .. tostring(a) .. "')", 0)
    end
    i = i + 2
  end
  if opts.reps < 1 then opts.reps = 1 end
end

--- Median of a list of numbers.
local function median(xs)
  sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) / 2] or (xs[n / 2] + xs[n / 2 + 1]) / 2
end

-- Raise unless res is a completed run with the expected supersteps.
local check = blib.check_run

--- Call once() warm times untimed, then reps times after a full GC (not
-- timed); once returns seconds. Returns the median in µs divided by per.
local function measure(once, per)
  for _ = 1, opts.warm do collectgarbage("collect"); once() end
  local ts = {}
  for r = 1, opts.reps do
    collectgarbage("collect")
    ts[r] = once() / per * 1e6
  end
  return median(ts)
end

--- Time wf:run(input, ropts), checked by ok(res).
local function timer(wf, input, ropts, ok)
  return function()
    local t0 = clock()
    local res = wf:run(input, ropts)
    local t = clock() - t0
    ok(res)
    return t
  end
end

local rows = {}

--- The chain of rows.chain: CHAIN executors; each reads the state key
-- "n", writes n + 1 and sends its message on (the last one's send is
-- dropped: no out-edge). Returns the workflow and the check of a result.
local function chain()
  local function step(msg, ctx)
    ctx:set_state("n", (ctx:get_state("n") or 0) + 1)
    ctx:send(msg)
  end
  local execs = {}
  for k = 1, CHAIN do execs[k] = weft.executor("c" .. k, step) end
  local b = weft.workflow("chain"):start(execs[1])
  for k = 1, CHAIN - 1 do b = b:edge(execs[k], execs[k + 1]) end
  return b:build(), function(res)
    check("chain", res, CHAIN)
    if res.state.n ~= CHAIN then
      error(fmt("chain: state n = %s (expected %d)", tostring(res.state.n), CHAIN), 0)
    end
  end
end

--- (1) The chain of CHAIN executors. Per executor.
function rows.chain()
  local wf, ok = chain()
  return measure(timer(wf, "x", { max_supersteps = CHAIN + 10 }, ok), CHAIN)
end

--- (1b, weft only: PocketFlow has no events) One on_event subscriber that
-- counts: the chain run with and without it, alternately, each timed with
-- a full GC after it (so that the figure includes collecting the event
-- tables); the difference per event it received (4 per executor). Median
-- of the per-repetition differences.
function rows.subscriber()
  local wf, ok = chain()
  local n = 0
  local plain = { max_supersteps = CHAIN + 10 }
  local subscribed = { max_supersteps = CHAIN + 10, on_event = function() n = n + 1 end }
  local function settled(ropts)
    return function()
      local t0 = clock()
      local res = wf:run("x", ropts)
      collectgarbage("collect")
      local t = clock() - t0
      ok(res)
      return t
    end
  end
  local without, with = settled(plain), settled(subscribed)
  for _ = 1, opts.warm do without(); with() end
  local ds = {}
  for r = 1, opts.reps do
    collectgarbage("collect")
    local a = without()
    collectgarbage("collect")
    n = 0
    local b = with()
    ds[r] = (b - a) / n * 1e6
  end
  return median(ds)
end

--- (2) A loop a <-> b of LOOP supersteps: each adds 1 to the counter it
-- receives and sends it on; both edges carry it while it is below LOOP
-- (the exit condition); the executor that reaches LOOP outputs it. Per
-- superstep.
function rows.loop()
  local function step(n, ctx)
    n = n + 1
    if n == LOOP then ctx:yield_output(n) end
    ctx:send(n)
  end
  local function more(n) return n < LOOP end
  local a, b = weft.executor("a", step), weft.executor("b", step)
  local wf = weft.workflow("loop"):start(a)
    :edge(a, b, { when = more, name = "a_more" })
    :edge(b, a, { when = more, name = "b_more" })
    :build()
  return measure(timer(wf, 0, { max_supersteps = LOOP + 10 }, function(res)
    check("loop", res, LOOP)
    if res.outputs[1] ~= LOOP then
      error(fmt("loop: output %s (expected %d)", tostring(res.outputs[1]), LOOP), 0)
    end
  end), LOOP)
end

--- (3) The fixed cost of a run: a workflow of one executor that does
-- nothing, run SINGLE_BATCH times in a row per measurement. Per run.
function rows.single()
  local wf = weft.workflow("single"):start(weft.executor("only", function() end)):build()
  return measure(function()
    local t0, res = clock(), nil
    for _ = 1, SINGLE_BATCH do res = wf:run("x") end
    local t = clock() - t0
    check("single", res, 1)
    return t
  end, SINGLE_BATCH)
end

--- (4) PAUSED runs of one executor, each waiting in ctx:request_info, all
-- paused at once: the Lua heap they hold (collectgarbage("count") after a
-- full GC, minus the same before the first spawn), per run, in KiB. One
-- measurement, no warm-up (a warm-up would leave pooled memory in the
-- baseline). Also prints `extra paused_malloc <KiB>`: the same delta of the
-- Lua heap plus C malloc (bench_lib.heap_kib), which the peer's figure has
-- no counterpart of. Then every request is answered and every run must
-- complete with its answer.
function rows.paused()
  local ask = weft.executor("ask", function(msg, ctx)
    ctx:yield_output(ctx:request_info(msg))
  end)
  local wf = weft.workflow("paused"):start(ask):build()
  local hs = {}
  collectgarbage("collect"); collectgarbage("collect")
  local before, before_all = collectgarbage("count"), blib.heap_kib()
  for i = 1, PAUSED do hs[i] = wf:spawn("q") end
  for i = 1, PAUSED do
    local st = hs[i]:wait().status
    if st ~= "idle" then error(fmt("paused: run %d is '%s' (expected 'idle')", i, st), 0) end
  end
  collectgarbage("collect"); collectgarbage("collect")
  local kib = (collectgarbage("count") - before) / PAUSED
  io.write(fmt("extra paused_malloc %.6f\n", (blib.heap_kib() - before_all) / PAUSED))
  for i = 1, PAUSED do
    local h = hs[i]
    assert(h:respond(h:requests()[1].request_id, "a"))
  end
  for i = 1, PAUSED do
    local res = hs[i]:wait()
    check("paused", res, 1)
    if res.outputs[1] ~= "a" then error(fmt("paused: run %d output %s", i, tostring(res.outputs[1])), 0) end
  end
  return kib
end

--- (5) src fans out to FAN executors that each append their number to the
-- state key "items" (weft.reduce.append): one commit folds FAN writes.
-- Per branch.
function rows.fan()
  local src = weft.executor("src", function(msg, ctx) ctx:send(msg) end)
  local targets = {}
  for k = 1, FAN do
    targets[k] = weft.executor("t" .. k, function(_, ctx) ctx:set_state("items", k) end)
  end
  local wf = weft.workflow("fan"):start(src):fan_out(src, targets)
    :state{ items = weft.reduce.append }:build()
  return measure(timer(wf, "x", { events = false }, function(res)
    check("fan", res, 2)
    if #res.state.items ~= FAN then
      error(fmt("fan: %d items in state (expected %d)", #res.state.items, FAN), 0)
    end
  end), FAN)
end

--- A weft.flow batch node of kind over BATCH numbers: exec doubles each
-- (no I/O: the cost of the batch machinery itself), post keeps the list;
-- the run is timed and checked. Per item.
local function batch_row(kind)
  local flow = require "weft.flow"
  local items = {}
  for k = 1, BATCH do items[k] = k end
  local node = flow[kind]{
    prep = function(shared) return shared.items end,
    exec = function(x) return x * 2 end,
    post = function(shared, _, out) shared.out = out end,
  }
  local f = flow.Flow{ start = node }
  return measure(function()
    local shared = { items = items }
    local t0 = clock()
    f:run(shared)
    local t = clock() - t0
    if #shared.out ~= BATCH or shared.out[BATCH] ~= 2 * BATCH then
      error(fmt("%s: %d results (expected %d)", kind, #shared.out, BATCH), 0)
    end
    return t
  end, BATCH)
end

--- (6) weft.flow.BatchNode: BATCH items, one after the other. Per item.
function rows.batch() return batch_row("BatchNode") end

--- (7) weft.flow.AsyncParallelBatchNode: BATCH items, each in a weft task
-- (weft.go; PocketFlow: Promise.all). Per item.
function rows.pbatch() return batch_row("AsyncParallelBatchNode") end

local f = rows[row]
if not f then
  error("weft_side.lua: unknown row '" .. tostring(row) .. "' (rows: chain, subscriber, loop, single, paused, fan, batch, pbatch)", 0)
end
io.write(fmt("result %s %.6f\n", row, f()))
