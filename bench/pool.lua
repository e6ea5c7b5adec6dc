--- bench/pool.lua — the worker pool (docs/scale.md): `weft serve --workers N`
-- on a SQLite store (the single-machine case), separate processes.
--
-- Run: build/weft exec bench/pool.lua [--seconds N] [--runs N] [--inflight N] [--cpu-ms N] [--quick]
--   (defaults: 5 s per timed window, median of 3 windows, 128 requests in
--   flight; --quick: 2 s, 1 window, and no crash measure with the default
--   30 s lease)
--
-- Printed, never asserted:
--   1. executions/s through `weft serve --workers N` (N = 1, 2, 4) for
--      I/O-bound executions (one model call answered in 20 ms by the
--      project's provider test server, a separate process) and CPU-bound
--      ones (one executor doing --cpu-ms, default 20, ms of Lua arithmetic), driven by K
--      concurrent sync `POST /workflows/{id}/execute` requests (weft.http
--      tasks in this process); the ratio N workers / 1 worker.
--   2. the queue's cost: enqueue -> start (an execution's `created_at`,
--      written with its queue item, to the `ts` of its first event, written
--      by the worker that runs it), median and p99, one execution at a time
--      and for a burst of 200.
--   3. a killed worker: from SIGKILL of one of 2 worker processes to the
--      moment each execution it held is taken by another worker (its
--      `attempts` becomes 2), with WEFT_LEASE_TTL=2 and the default 30 s.
-- Every process shares the machine's cores with this client: compare the
-- figures within one run of the script.
-- Uses weft, weft.http, weft.json, weft.store, bench/bench_lib.lua and
-- spec/support/procs.lua (processes, ports).
local weft = require "weft"
local root = (arg and arg[0] and arg[0]:match("^(.*/)bench/") or "./")
package.path = root .. "bench/?.lua;" .. root .. "spec/?.lua;" .. package.path
local blib = require "bench_lib"
local procs = require "support.procs"
local files = require "support.files"
local json = weft.json
local http = weft.http

local fmt, sort, ceil = string.format, table.sort, math.ceil

local opts = { seconds = 5, runs = 3, inflight = 128, cpu_ms = 20 }
blib.parse_flags("bench/pool.lua", { ... }, opts,
  { ["--seconds"] = "seconds", ["--runs"] = "runs", ["--inflight"] = "inflight", ["--cpu-ms"] = "cpu_ms" },
  function(o) o.seconds, o.runs, o.quick = 2, 1, true end)
assert(opts.seconds and opts.seconds > 0, "--seconds must be a positive number")
assert(opts.runs and opts.runs >= 1, "--runs must be a positive number")
assert(opts.inflight and opts.inflight >= 1, "--inflight must be a positive number")

local bin
do
  local p = io.popen('readlink /proc/$PPID/exe') -- $PPID: this weft process
  bin = p:read("*l")
  p:close()
end
require("weft.tcp").raise_nofile()
http.configure{ max_per_host = opts.inflight + 16 }

-- Percentile q (0..1) of the sorted list s.
local function pct(s, q)
  if #s == 0 then return 0 / 0 end
  return s[math.max(1, ceil(q * #s))]
end

-- Lua arithmetic of --cpu-ms milliseconds (default 20: the work of an
-- execution dominates the pool's own cost per execution, ~1-2 ms of CPU
-- spread over the replica, the store and this client): the iterations,
-- measured here (the workers run the same LuaJIT).
local SPIN = [[
local x = 0
for i = 1, n do x = (x * 31 + i) % 1000003 end
return x
]]
local spin_n
do
  local f = assert(loadstring("local n = ... " .. SPIN))
  local n = 100000
  f(n)
  local t0 = weft.clock()
  for _ = 1, 10 do f(n) end
  local per = (weft.clock() - t0) / 10
  spin_n = math.floor(n * opts.cpu_ms / 1000 / per)
end

local dir = files.tempdir()
files.write(dir .. "/io.lua", [[
local weft = require "weft"
local llm = require "weft.llm"
return weft.workflow("io"):start(weft.executor("ask", function(m, ctx)
  local res, err = llm.chat{ model = "openai:bench", base_url = os.getenv("WEFT_TEST_LLM_URL"),
                             api_key = "bench-key", messages = { { role = "user", content = m } } }
  if not res then error(err, 0) end
  ctx:yield_output(res.text)
end)):build()
]])
files.write(dir .. "/cpu.lua", [[
local weft = require "weft"
local function spin(n)
]] .. SPIN .. [[
end
return weft.workflow("cpu"):start(weft.executor("spin", function(n, ctx)
  ctx:yield_output(spin(n))
end)):build()
]])
-- sleeps `m` seconds (a run that a killed worker holds)
files.write(dir .. "/slow.lua", [[
local weft = require "weft"
return weft.workflow("slow"):start(weft.executor("nap", function(m, ctx)
  weft.sleep(m)
  ctx:yield_output(m)
end)):build()
]])

-- The provider test server as a process.
local llm_port = procs.free_port()
local provider = procs.spawn({ bin, "exec", root .. "spec/support/provider_server.lua", "--port",
                               tostring(llm_port) })
procs.wait_port(llm_port)
local llm_url = fmt("http://127.0.0.1:%d/_f/latency=20/v1", llm_port)

-- weft serve --workers n on a fresh SQLite store; env adds variables.
-- Returns {proc, base, url (the store), stop()}.
local function serve(n, env)
  local sdir = files.tempdir()
  local port = procs.free_port()
  local e = { WEFT_TEST_LLM_URL = llm_url }
  for k, v in pairs(env or {}) do e[k] = v end
  local s = { url = "sqlite:" .. sdir .. "/weft.db", base = fmt("http://127.0.0.1:%d/api/v1", port) }
  s.proc = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", s.url, "--scripts", dir,
                         "--workers", tostring(n) }, e)
  procs.wait_port(port)
  -- the worker processes are up once each has answered one execution
  local deadline = weft.clock() + 30
  while #procs.children(s.proc.pid) < n and weft.clock() < deadline do weft.sleep(0.02) end
  function s.stop()
    procs.kill(s.proc) -- its workers die with it (death signal)
    pcall(procs.wait, s.proc, 20)
    files.remove(sdir)
  end
  return s
end

-- One API call: status, decoded body or nil, raw body.
local function call(method, url, body)
  local res, err = http.request{ method = method, url = url, body = body, timeout = 60,
    headers = body and { ["content-type"] = "application/json" } or nil }
  if not res then return nil, nil, err end
  local ok, d = pcall(json.decode, res.body)
  return res.status, ok and d or nil, res.body
end

-- K tasks send sync executions of wid (input) back to back for `seconds`
-- s; returns executions/s, p50 and p99 latency (ms), errors.
local function window(base, wid, input, seconds, k)
  local lat, errs = {}, 0
  local stop_at = weft.clock() + seconds
  local body = { input = input }
  local tasks = {}
  local t0 = weft.clock()
  for i = 1, k do
    tasks[i] = weft.go(function()
      while weft.clock() < stop_at do
        local s0 = weft.clock()
        local st, d = call("POST", base .. "/workflows/" .. wid .. "/execute", body)
        if st == 200 and d and d.status == "completed" then lat[#lat + 1] = weft.clock() - s0
        else errs = errs + 1 end
      end
    end)
  end
  for i = 1, k do tasks[i]:wait() end
  local wall = weft.clock() - t0
  sort(lat)
  return #lat / wall, pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000, errs
end

blib.header("weft worker pool benchmark (bench/pool.lua)",
  fmt("weft serve --workers N on sqlite:, separate processes; provider test server (pid %d)", provider.pid))
print(fmt("  %d sync executions in flight; %g s windows after a 1 s warm-up, median of %d", opts.inflight,
  opts.seconds, opts.runs))
print(fmt("  io: one model call, 20 ms reply; cpu: one executor, %d iterations of Lua arithmetic (~" .. opts.cpu_ms .. " ms here)",
  spin_n))

-- 1. throughput
print(fmt("%-5s %8s %12s %9s %9s %7s %8s", "kind", "workers", "exec/s", "p50 ms", "p99 ms", "errors", "ratio"))
for _, kind in ipairs({ { "io", "hello" }, { "cpu", spin_n } }) do
  local one
  for _, n in ipairs({ 1, 2, 4 }) do
    local s = serve(n)
    window(s.base, kind[1], kind[2], 1, opts.inflight) -- warm-up
    local rates, p50s, p99s, errs = {}, {}, {}, 0
    for r = 1, opts.runs do
      local rate, p50, p99, e = window(s.base, kind[1], kind[2], opts.seconds, opts.inflight)
      rates[r], p50s[r], p99s[r], errs = rate, p50, p99, errs + e
    end
    s.stop()
    local rate = blib.stats(rates).median
    one = one or rate
    print(fmt("%-5s %8d %12.0f %9.1f %9.1f %7d %7.2fx", kind[1], n, rate, blib.stats(p50s).median,
      blib.stats(p99s).median, errs, rate / one))
  end
end

-- 2. enqueue -> start: created_at of the summary to the first event's ts
local function start_latencies(st, ids)
  local out = {}
  for _, id in ipairs(ids) do
    local d = json.decode(assert(st:get("executions", id)))
    local first = assert(st:range("events", id, 1))[1]
    if first then out[#out + 1] = json.decode(first.value).ts - d.created_at end
  end
  sort(out)
  return out
end

do
  local s = serve(2)
  local st = assert(weft.store.open(s.url))
  -- wait for an execution of id to end, reading the store
  local function ended(id)
    while true do
      local d = json.decode(assert(st:get("executions", id)))
      if d.status == "completed" or d.status == "failed" then return d end
      weft.sleep(0.005)
    end
  end
  local function async(wid, input)
    local code, d, raw = call("POST", s.base .. "/workflows/" .. wid .. "/execute", { input = input, async = true })
    assert(code == 202, raw)
    return d.id
  end
  async("cpu", 1) -- warm-up
  local seq = {}
  for i = 1, 100 do
    seq[i] = async("cpu", 1)
    ended(seq[i])
  end
  local burst = {}
  local tasks = {}
  for t = 1, 16 do
    tasks[t] = weft.go(function()
      for i = t, 200, 16 do burst[i] = async("cpu", 1) end
    end)
  end
  for _, t in ipairs(tasks) do t:wait() end
  for _, id in ipairs(burst) do ended(id) end
  print("enqueue -> start (2 workers, a trivial execution; on one machine the replica wakes its workers):")
  for _, row in ipairs({ { "one at a time (100)", seq }, { "burst of 200", burst } }) do
    local l = start_latencies(st, row[2])
    print(fmt("  %-22s median %7.1f ms   p99 %7.1f ms", row[1], pct(l, 0.5) * 1000, pct(l, 0.99) * 1000))
  end
  st:close()
  s.stop()
end

-- 3. a killed worker: 20 executions of 600 s naps on 2 workers; kill one
-- worker process; time until each of its executions is taken again
local function crash(ttl)
  local s = serve(2, ttl and { WEFT_LEASE_TTL = tostring(ttl) } or nil)
  local st = assert(weft.store.open(s.url))
  local ids = {}
  for i = 1, 20 do
    local code, d, raw = call("POST", s.base .. "/workflows/slow/execute", { input = 600, async = true })
    assert(code == 202, raw)
    ids[i] = d.id
  end
  local function summary(id) return json.decode(assert(st:get("executions", id))) end
  -- all running (with 2 workers each has some: they take at most 100 per poll)
  local deadline = weft.clock() + 30
  local by_worker = {}
  repeat
    weft.sleep(0.01)
    local running = 0
    by_worker = {}
    for _, id in ipairs(ids) do
      local d = summary(id)
      if d.status == "running" then
        running = running + 1
        by_worker[d.worker] = (by_worker[d.worker] or 0) + 1
      end
    end
  until running == #ids or weft.clock() > deadline
  local victim = procs.children(s.proc.pid)[1]
  -- its name (the summaries' worker) is in its environment
  local name = (blib.read_file("/proc/" .. victim .. "/environ") or ""):match("WEFT_WORKER_NAME=([^%z]+)")
  local held = by_worker[name] or 0
  local t_kill = weft.clock()
  os.execute("kill -9 " .. victim)
  local waits, left = {}, {}
  for _, id in ipairs(ids) do left[id] = true end
  deadline = weft.clock() + 120
  while #waits < held and weft.clock() < deadline do
    for id in pairs(left) do
      if (summary(id).attempts or 1) >= 2 then
        waits[#waits + 1] = weft.clock() - t_kill
        left[id] = nil
      end
    end
    weft.sleep(0.01)
  end
  sort(waits)
  st:close()
  s.stop()
  return waits, held
end

print("a killed worker (SIGKILL of 1 of 2 worker processes holding 20 running executions):")
local ttls = opts.quick and { 2 } or { 2, 30 }
for _, ttl in ipairs(ttls) do
  local waits, held = crash(ttl ~= 30 and ttl or nil)
  print(fmt("  lease %2d s: %d of the %d executions it held taken again; first after %.2f s, "
    .. "median %.2f s, last %.2f s", ttl, #waits, held, waits[1] or 0 / 0, pct(waits, 0.5), waits[#waits] or 0 / 0))
end

procs.kill(provider)
pcall(procs.wait, provider, 10)
files.remove(dir)
