--- bench/checkpoint.lua — cost of durability per superstep (ARCHITECTURE.md
-- "Budgets": SQLite checkpoint per superstep, small state, <= 40 µs; Redis
-- <= 100 µs).
--
-- Run: build/weft exec bench/checkpoint.lua [--runs N] [--steps N]
--
-- A two-executor loop of `steps` supersteps runs without a store, then with
-- each store; the figure is (durable run - plain run) / supersteps, the
-- median of N rounds (default 5) after a warm-up. "small state": each
-- superstep writes one small key. "100 KB state": the state also holds a
-- 100 KB value written once, so every full snapshot carries it (deltas do
-- not). Redis: a private redis-server on a free loopback port (skipped when
-- not installed). Memory: a store that writes nothing, so its figure is
-- what is not the backend's (snapshot, encoding, the batch, task switches). Uses weft, weft.store, bench/bench_lib.lua.
local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/") .. "?.lua;" .. package.path
local blib = require "bench_lib"

local fmt = string.format
local opts = { runs = 5, steps = 2000 }
blib.parse_flags("bench/checkpoint.lua", { ... }, opts, { ["--runs"] = "runs", ["--steps"] = "steps" })
opts.runs = math.max(5, opts.runs or 5)

-- The loop: a -> b -> a ... for n supersteps; big = a 100 KB state value
-- written in the first superstep.
local function build(big)
  local blob = big and string.rep("x", 100 * 1024) or nil
  local function step(id)
    return weft.executor(id, function(i, ctx)
      if i == 1 and blob then ctx:set_state("blob", blob) end
      ctx:set_state("n", i)
      if i < opts.steps then ctx:send(i + 1) else ctx:yield_output(i) end
    end)
  end
  local a, b = step("a"), step("b")
  return weft.workflow(big and "ckpt_big" or "ckpt_small")
    :start(a):edge(a, b):edge(b, a)
    :defaults{ max_supersteps = opts.steps + 10 }
    :build()
end

-- Seconds for one run of wf with run options o (checked).
local function timed(wf, o)
  collectgarbage("collect")
  local t0 = weft.clock()
  local res = wf:run(1, o)
  local t = weft.clock() - t0
  if res.status ~= "completed" or res.outputs[1] ~= opts.steps then
    error("bench run did not complete: " .. tostring(res.error or res.status), 0)
  end
  return t
end

-- A private redis-server: url and a stop function, or nil.
local function redis()
  if os.execute("command -v redis-server >/dev/null 2>&1") ~= 0 then return nil end
  local tcp = require "weft.tcp"
  local s = assert(tcp.listen("127.0.0.1", 0))
  local port = s:port()
  s:close()
  local pidf = os.tmpname()
  os.execute(fmt("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --daemonize yes "
    .. "--pidfile %s >/dev/null", port, pidf))
  for _ = 1, 400 do
    local ok, c = pcall(tcp.connect, "127.0.0.1", port, 0.05)
    if ok and c then c:close(); break end
    weft.sleep(0.005)
  end
  return fmt("redis://127.0.0.1:%d/0", port), function()
    local f = io.open(pidf)
    local pid = f and f:read("*l")
    if f then f:close() end
    if pid then os.execute("kill " .. pid) end
    os.remove(pidf)
  end
end

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -m 700 -p " .. dir)
local stores = { { "sqlite", "sqlite:" .. dir .. "/bench.db", 40 } }
local rurl, rstop = redis()
if rurl then stores[#stores + 1] = { "redis", rurl, 100 } end
stores[#stores + 1] = { "memory", "memory:" }

local m = blib.machine()
print("weft checkpoint benchmark (bench/checkpoint.lua)")
print(fmt("  cpu: %s, cores: %s, kernel: %s, %s, %s; load %s", m.cpu, m.cores, m.kernel, m.lua,
  m.date, blib.loadavg()))
print(fmt("  loop of %d supersteps; (durable - plain) / supersteps; median of %d rounds", opts.steps, opts.runs))
if not rurl then print("  redis: redis-server not installed, skipped") end
print(fmt("%-40s %10s %10s %10s %10s", "figure (µs per superstep)", "median", "min", "max", "budget"))

-- The figures; a failure still stops the private redis-server (below).
local function measure()
  for _, big in ipairs({ false, true }) do
    local wf = build(big)
    for _, st in ipairs(stores) do
      local store = weft.store.open(st[2])
      timed(wf, {})
      timed(wf, { store = store })
      local xs = {}
      for r = 1, opts.runs do
        local plain = timed(wf, {})
        local durable = timed(wf, { store = store })
        xs[r] = (durable - plain) / opts.steps * 1e6
      end
      local s = blib.stats(xs)
      local budget = not big and st[3]
      print(fmt("%-40s %10.2f %10.2f %10.2f %10s  %s", fmt("%s, %s state", st[1], big and "100 KB" or "small"),
        s.median, s.min, s.max, st[3] and "<= " .. st[3] or "-",
        budget and (s.median <= budget and "ok" or "OVER") or ""))
      store:close()
    end
  end
end
local ok, err = xpcall(measure, debug.traceback)
if rstop then rstop() end
os.execute("rm -rf " .. dir)
if not ok then error(err, 0) end
