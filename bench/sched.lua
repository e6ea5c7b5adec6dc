--- bench/sched.lua — scheduler benchmarks of weft (ARCHITECTURE.md, "Budgets").
--
-- Run: build/weft exec bench/sched.lua [--runs N] [--quick]
-- (or scripts/bench.sh, which makes a release build first).
--
-- Every figure is the median of N timed runs (default 7, minimum 5) after one
-- untimed warm-up run, on a monotonic wall clock when one is available. Each
-- workflow is built once; only wf:run is timed (build time is reported on its
-- own line). Each run's result is checked (status "completed", supersteps and
-- outputs as expected): a benchmark of a failing run raises, and the process
-- exits non-zero. Timings are never asserted: figures over budget print
-- "OVER" and the process still exits 0.
--
-- Uses: weft.executor, weft.workflow (start, edge, fan_out, fan_in, build),
-- wf:run; weft.clock / weft.now if present, else LuaJIT FFI clock_gettime,
-- else os.clock.

local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/") .. "?.lua;" .. package.path
local blib = require "bench_lib"

local floor = math.floor
local fmt = string.format
local sort, concat = table.sort, table.concat
local unpack = unpack or table.unpack

local DEFAULT_RUNS, MIN_RUNS = 7, 5

---------------------------------------------------------------------------
-- Arguments
---------------------------------------------------------------------------

--- Parse the command line: --runs N | --runs=N, --quick, --help.
local function parse_args(argv)
  local o = { runs = DEFAULT_RUNS, quick = false, notes = {} }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local v = a:match("^%-%-runs=(.*)$")
    if a == "--runs" then
      i = i + 1
      v = argv[i]
      if v == nil then error("--runs needs a number", 0) end
    end
    if v then
      local n = tonumber(v)
      if not n or n ~= floor(n) or n < 1 then
        error("--runs: expected a positive integer, got '" .. tostring(v) .. "'", 0)
      end
      o.runs = n
    elseif a == "--quick" then
      o.quick = true
    elseif a == "--help" or a == "-h" then
      o.help = true
    else
      error("unknown argument '" .. a .. "' (usage: bench/sched.lua [--runs N] [--quick])", 0)
    end
    i = i + 1
  end
  if o.quick then o.runs = MIN_RUNS end
  blib.min_runs(o, MIN_RUNS)
  return o
end

-- `weft exec` may pass arguments as the chunk's varargs or in the global arg.
local argv = blib.argv(...)
local opts = parse_args(argv)
if opts.help then
  io.write([[
usage: build/weft exec bench/sched.lua [--runs N] [--quick]
  --runs N   timed runs per figure (default 7, minimum 5); median, min, max
  --quick    5 runs (for profiling); same sizes, so figures stay comparable
]])
  return
end

---------------------------------------------------------------------------
-- Clock
---------------------------------------------------------------------------

-- Busy-wait about `secs` of CPU time; returns the os.clock delta measured.
local function spin(secs)
  local c0 = os.clock()
  local x = 0
  repeat
    for k = 1, 1000 do x = x + k end
  until os.clock() - c0 >= secs
  return os.clock() - c0, x
end

-- The unit scale of clock f (seconds per tick), or nil if f is not a usable
-- clock: it must advance over a ~20 ms busy loop (a cached loop time such as
-- ev_now does not) at a plausible rate (s, ms, us or ns per tick).
local function clock_scale(f)
  local ok, a = pcall(f)
  if not ok or type(a) ~= "number" then return nil end
  local cpu = spin(0.02)
  local b = f()
  local d = b - a
  if not (d > 0) then return nil end
  local ratio = d / cpu
  for _, s in ipairs { 1, 1e-3, 1e-6, 1e-9 } do
    local r = ratio * s
    if r > 0.3 and r < 3 then return s end
  end
  return nil
end

--- Pick the clock: weft.clock, weft.now, FFI clock_gettime, os.clock.
-- Returns now() in seconds and a description.
local function pick_clock()
  for _, name in ipairs { "clock", "now" } do
    local f = weft[name]
    if type(f) == "function" then
      local s = clock_scale(f)
      if s == 1 then
        return f, "weft." .. name .. "() (wall, monotonic per weft)"
      elseif s then
        return function() return f() * s end,
          fmt("weft.%s() scaled by %g (wall, monotonic per weft)", name, s)
      end
    end
  end
  local okf, ffi = pcall(require, "ffi")
  if okf then
    pcall(ffi.cdef, [[
      struct weft_bench_timespec { long tv_sec; long tv_nsec; };
      int clock_gettime(int clk, struct weft_bench_timespec *tp);
    ]])
    local okn, ts = pcall(ffi.new, "struct weft_bench_timespec")
    local CLOCK_MONOTONIC = 1 -- Linux
    if okn and pcall(function() return ffi.C.clock_gettime(CLOCK_MONOTONIC, ts) end) then
      local C = ffi.C
      local function now()
        C.clock_gettime(CLOCK_MONOTONIC, ts)
        return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
      end
      if clock_scale(now) == 1 then
        return now, "clock_gettime(CLOCK_MONOTONIC) via LuaJIT FFI (wall; weft.clock absent)"
      end
    end
  end
  return os.clock, "os.clock() (process CPU time, NOT wall: weft.clock and FFI unavailable)"
end

local now, clock_desc = pick_clock()

---------------------------------------------------------------------------
-- Machine header
---------------------------------------------------------------------------

local read_file, machine = blib.read_file, blib.machine

---------------------------------------------------------------------------
-- Measurement
---------------------------------------------------------------------------

local stats = blib.stats

--- Time one wf:run after a full GC (the GC of the run's own garbage is
-- counted, earlier runs' is not). Returns seconds and the result.
local function timed_run(wf, input, ropts, settle)
  collectgarbage("collect")
  local t0 = now()
  local res = wf:run(input, ropts)
  if settle then collectgarbage("collect") end
  local t1 = now()
  return t1 - t0, res
end

--- Raise unless res is a completed run with the expected supersteps and
-- first output (nil: not checked).
local check = blib.check_run

--- Time fn (which builds and returns something) once, in seconds.
local function timed_build(fn)
  collectgarbage("collect")
  local t0 = now()
  local v = fn()
  return now() - t0, v
end

---------------------------------------------------------------------------
-- Workflows
---------------------------------------------------------------------------

local function forward(msg, ctx) ctx:send(msg) end

--- Chain of n no-op executors c1 -> c2 -> ... -> cn; each forwards its
-- message, the last records that it ran (an upvalue write) and stops.
-- Returns the workflow and a function giving (and resetting) the count of
-- last-executor invocations.
local function build_chain(n)
  local hits = 0
  local execs = {}
  for k = 1, n - 1 do execs[k] = weft.executor("c" .. k, forward) end
  execs[n] = weft.executor("c" .. n, function() hits = hits + 1 end)
  local b = weft.workflow("chain" .. n):start(execs[1])
  for k = 1, n - 1 do b = b:edge(execs[k], execs[k + 1]) end
  local wf = b:build()
  return wf, function() local h = hits; hits = 0; return h end
end

--- Two-executor loop a <-> b: each adds 1 to the counter it receives and
-- sends it on; both edges carry it only while it is below steps (the
-- conditional exit). The executor that produces counter == steps yields it
-- as the output. Superstep k handles counter k, so a run is steps supersteps.
local function build_loop(steps)
  local function step(n, ctx)
    n = n + 1
    if n == steps then ctx:yield_output(n) end
    ctx:send(n)
  end
  local function more(n) return n < steps end
  local a = weft.executor("a", step)
  local b = weft.executor("b", step)
  return weft.workflow("loop" .. steps)
    :start(a)
    :edge(a, b, { when = more, name = "a_more" })
    :edge(b, a, { when = more, name = "b_more" })
    :build()
end

--- src fans out to n targets that each forward the message; the fan-in
-- sink gets the list of n messages and outputs its length. 3 supersteps.
local function build_fan(n)
  local src = weft.executor("src", forward)
  local targets = {}
  for k = 1, n do targets[k] = weft.executor("t" .. k, forward) end
  local sink = weft.executor("sink", function(list, ctx) ctx:yield_output(#list) end)
  return weft.workflow("fan" .. n)
    :start(src)
    :fan_out(src, targets)
    :fan_in(targets, sink)
    :build()
end

---------------------------------------------------------------------------
-- Benchmarks
---------------------------------------------------------------------------

local rows = {}

-- unit: "us" | "ms" | "x"; budget: number or nil (no budget).
local function row(name, unit, st, budget)
  rows[#rows + 1] = { name = name, unit = unit, st = st, budget = budget }
end

local function single(v) return { median = v, min = v, max = v, n = 1 } end

local N = opts.runs

--- Run cases round-robin: one untimed warm-up round, then N timed rounds,
-- the order reversed every other round (so that no case always follows the
-- same one). Cases compared with each other (1k vs 10k, events on vs off)
-- thus run under the same machine conditions. Each case: {label, wf,
-- input, opts, check = function(res)}. Returns times[case][round] in s.
local function interleaved(cases)
  local times = {}
  for c = 1, #cases do times[c] = {} end
  for r = 0, N do
    for k = 1, #cases do
      local c = r % 2 == 0 and k or #cases + 1 - k
      local cs = cases[c]
      local t, res = timed_run(cs.wf, cs.input, cs.opts, cs.settle)
      cs.check(res)
      if r > 0 then times[c][r] = t end
    end
  end
  return times
end

--- f(a[r], b[r], ...) per round.
local function per_round(f, ...)
  local lists, out = { ... }, {}
  for r = 1, #lists[1] do
    local args = {}
    for k = 1, #lists do args[k] = lists[k][r] end
    out[r] = f(unpack(args))
  end
  return out
end

local function run_opts(max_supersteps, events)
  local o = { max_supersteps = max_supersteps }
  if not events then o.events = false end
  return o
end

-- 0. fixed cost of a run: a workflow of one executor that does nothing,
-- run SINGLE_BATCH times per round (a full GC before each batch; the GC of
-- the batch's own garbage is counted). One run per round would time a run
-- still interpreted, before the JIT has compiled the run path.
local SINGLE_BATCH = 2000
local function bench_single()
  local wf = weft.workflow("single"):start(weft.executor("only", function() end)):build()
  local times = {}
  for r = 0, N do
    collectgarbage("collect")
    local t0, res = now(), nil
    for _ = 1, SINGLE_BATCH do res = wf:run("x") end
    local t = now() - t0
    check("single executor", res, 1)
    if r > 0 then times[r] = t / SINGLE_BATCH * 1e6 end
  end
  row(fmt("run of 1 no-op executor (fixed cost per run, batches of %d)", SINGLE_BATCH), "us",
    stats(times))
end

-- 5. one on_event subscriber that only counts: the chain of 1000 with
-- and without it, interleaved, each run timed with a full collection after
-- it (so that the figure includes collecting the event tables, and does
-- not swing with when the incremental GC runs); measured before the
-- chains of 10,000 are built, in a small heap, as bench/peers does.
local function bench_subscriber()
  local wf = build_chain(1000)
  local nev = 0
  local sub_opts = run_opts(1010, true)
  sub_opts.on_event = function() nev = nev + 1 end
  local t = interleaved({
    { wf = wf, input = "x", opts = run_opts(1010, true), settle = true,
      check = function(res) check("chain 1000", res, 1000) end },
    { wf = wf, input = "x", opts = sub_opts, settle = true,
      check = function(res) check("chain 1000 [on_event]", res, 1000) end },
  })
  local ev_per_run = nev / (N + 1)
  row(fmt("one on_event subscriber: chain 1k, per event (%d events a run)", ev_per_run), "us",
    stats(per_round(function(a, b) return (b - a) * 1e6 / ev_per_run end, t[1], t[2])), 0.1)
end

-- 1 + 4. chains of 1000 and 10,000, with and without the event log.
local function bench_chains()
  local sizes = { 1000, 10000 }
  local cases = {}
  for _, events in ipairs { true, false } do
    for _, n in ipairs(sizes) do
      local bt, wf, hits
      bt, wf = timed_build(function()
        local w, h = build_chain(n)
        hits = h
        return w
      end)
      if events then row(fmt("chain %dk: build", n / 1000), "ms", single(bt * 1e3)) end
      local label = fmt("chain %d%s", n, events and "" or " [events=false]")
      cases[#cases + 1] = {
        wf = wf, input = "x", opts = run_opts(n + 10, events),
        check = function(res)
          check(label, res, n)
          local h = hits()
          if h ~= 1 then error(fmt("%s: last executor ran %d times (expected 1)", label, h), 0) end
        end,
      }
    end
  end
  local t = interleaved(cases)
  local function per_inv(n) return function(x) return x / n * 1e6 end end
  local us1, us10 = per_round(per_inv(1000), t[1]), per_round(per_inv(10000), t[2])
  local us1n, us10n = per_round(per_inv(1000), t[3]), per_round(per_inv(10000), t[4])
  local ratio = function(a, b) return b / a end
  local diff = function(a, b) return a - b end
  row("chain 1k: per invocation", "us", stats(us1), 0.5)
  row("chain 10k: per invocation", "us", stats(us10))
  row("chain 10k/1k per-invocation ratio", "x", stats(per_round(ratio, us1, us10)), 1.5)
  row("chain 1k: per invocation [events=false]", "us", stats(us1n))
  row("chain 10k: per invocation [events=false]", "us", stats(us10n))
  row("chain 10k/1k ratio [events=false]", "x", stats(per_round(ratio, us1n, us10n)))
  row("event log cost: chain 1k, per invocation", "us", stats(per_round(diff, us1, us1n)))
  row("event log cost: chain 10k, per invocation", "us", stats(per_round(diff, us10, us10n)))
end

-- 2 + 4. 10,000-superstep two-executor loop, with and without the log.
local LOOP_STEPS = 10000
local function bench_loop()
  local bt, wf = timed_build(function() return build_loop(LOOP_STEPS) end)
  row("loop 10k: build", "ms", single(bt * 1e3))
  local cases = {}
  for _, events in ipairs { true, false } do
    local label = "loop" .. (events and "" or " [events=false]")
    cases[#cases + 1] = {
      wf = wf, input = 0, opts = run_opts(LOOP_STEPS + 10, events),
      check = function(res) check(label, res, LOOP_STEPS, LOOP_STEPS) end,
    }
  end
  local t = interleaved(cases)
  local function per_step(x) return x / LOOP_STEPS * 1e6 end
  local us, usn = per_round(per_step, t[1]), per_round(per_step, t[2])
  row("loop 10k: per superstep", "us", stats(us), 1)
  row("loop 10k: per superstep [events=false]", "us", stats(usn))
  row("event log cost: loop, per superstep", "us",
    stats(per_round(function(a, b) return a - b end, us, usn)))
end

-- 3. fan-out of 1000 targets into one fan-in.
local FAN = 1000
local function bench_fan()
  local bt, wf = timed_build(function() return build_fan(FAN) end)
  row("fan 1000: build", "ms", single(bt * 1e3))
  local t = interleaved { {
    wf = wf, input = "x",
    check = function(res) check("fan-out/fan-in", res, 3, FAN) end,
  } }
  row("fan 1000 -> fan-in: run", "ms", stats(per_round(function(x) return x * 1e3 end, t[1])), 1)
  row("fan 1000 -> fan-in: per target", "us",
    stats(per_round(function(x) return x / FAN * 1e6 end, t[1])))
end

--- src fans out to n targets that each append their number to the state
-- key "items" (weft.reduce.append): one commit folds n writes. 2 supersteps.
local function build_fan_append(n)
  local src = weft.executor("src", forward)
  local targets = {}
  for k = 1, n do
    targets[k] = weft.executor("t" .. k, function(_, ctx) ctx:set_state("items", k) end)
  end
  return weft.workflow("fan_append" .. n):start(src):fan_out(src, targets)
    :state{ items = weft.reduce.append }:build()
end

-- fan-out of FAN writers into one append reducer (issue 14's row).
local function bench_fan_append()
  local wf = build_fan_append(FAN)
  local t = interleaved { {
    wf = wf, input = "x", opts = { events = false },
    check = function(res)
      check("fan-out append", res, 2)
      if #res.state.items ~= FAN then
        error(fmt("fan-out append: %d items in state (expected %d)", #res.state.items, FAN), 0)
      end
    end,
  } }
  row("fan 1000 -> append reducer: per branch", "us",
    stats(per_round(function(x) return x / FAN * 1e6 end, t[1])), 0.7)
end

---------------------------------------------------------------------------
-- Main
---------------------------------------------------------------------------

local m = machine()
local p, flush = blib.printer()
local loadavg = blib.loadavg

p("weft scheduler benchmarks (bench/sched.lua)")
p("  cpu:     %s", m.cpu)
p("  cores:   %s", m.cores)
p("  kernel:  %s", m.kernel)
p("  luajit:  %s", m.lua)
p("  date:    %s", m.date)
p("  clock:   %s", clock_desc)
p("  runs:    %d timed runs per figure after 1 warm-up (median, min, max)%s", N,
  opts.quick and " [--quick]" or "")
for _, note in ipairs(opts.notes) do p("  note:    %s", note) end
p("  method:  workflows built once, only wf:run timed; default run options except")
p("           max_supersteps = steps + 10; full GC before each timed run (not timed);")
p("           compared cases run alternately; compare figures only within this run")
p("  load:    %s (1/5/15 min, from /proc/loadavg)", loadavg())
flush()

bench_single()
bench_subscriber()
bench_chains()
bench_loop()
bench_fan()
bench_fan_append()

p("")

local function num(v, unit)
  if v == nil then return "-" end
  if unit == "x" then return fmt("%.2f", v) end
  if math.abs(v) >= 100 then return fmt("%.1f", v) end
  return fmt("%.3f", v)
end

local W = 48
p("%-" .. W .. "s %-4s %10s %10s %10s %10s  %s", "figure", "unit", "median", "min", "max", "budget", "")
local over = 0
for _, r in ipairs(rows) do
  local st = r.st
  local single_value = st.n == 1
  local verdict, budget = "", "-"
  if r.budget then
    budget = fmt("<= %g", r.budget)
    if st.median <= r.budget then verdict = "ok" else verdict = "OVER"; over = over + 1 end
  end
  p("%-" .. W .. "s %-4s %10s %10s %10s %10s  %s", r.name, r.unit,
    num(st.median, r.unit), single_value and "-" or num(st.min, r.unit),
    single_value and "-" or num(st.max, r.unit), budget, verdict)
end
p("")
p("%d figure(s) over budget (informational; not a failure)", over)
flush()
