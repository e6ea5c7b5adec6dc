--- bench/io.lua — concurrent I/O benchmark of weft (issue 14: 10,000
-- concurrent runs, each awaiting a 20 ms LLM reply over loopback HTTP:
-- wall <= 1 s, memory per run in flight <= 6 KiB).
--
-- Run: build/weft exec bench/io.lua [--runs N] [--quick] [--concurrency N]
--
-- The project's provider test server runs as a separate process (so the
-- figures are the client's); every run is a one-executor workflow whose
-- executor calls weft.llm.chat on the server's OpenAI endpoint with a
-- 20 ms injected latency. All runs are spawned at once, then awaited. The
-- figure is the median of N rounds (default 5) after one warm-up round;
-- each round checks that every run completed with the expected reply.
-- Runs share a per-host connection pool (weft.http's max_per_host, here
-- 1024 by default, `--per-host N`): the runs are all in flight at once,
-- requests beyond the pool wait in its queue, as with any HTTP client.
-- Memory: what the client holds is sampled every 2 ms during each round,
-- counting both heaps: the Lua heap (collectgarbage("count"): LuaJIT's own
-- allocator, not malloc) plus the C heap (glibc mallinfo2: uordblks +
-- hblkhd, the bytes malloc has handed out: runs, requests, libcurl's
-- handles and buffers, libev watchers), garbage not yet collected included.
-- Two figures, each (max sample - memory before spawning) / runs:
--   in flight: the max over the samples taken while every run of the round
--     waits on its call (http.stats(): running + queued = runs), the
--     issue 14 row; its Lua and C parts are printed too ("-" if no sample
--     fell in that window);
--   round peak: the max over the whole round, which also counts the runs
--     already finished, whose results the bench keeps until the round
--     ends, and the garbage they left (the figure printed as "in flight"
--     before 2026-12-05 was this one).
-- Kernel socket buffers are not counted; the peak RSS of the process is
-- printed as a cross-check.
-- Uses weft, weft.llm, weft.http, bench/bench_lib.lua.
local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/") .. "?.lua;" .. package.path
local blib = require "bench_lib"
local llm = require "weft.llm"
local http = require "weft.http"

local fmt = string.format

local opts = { runs = 5, n = 10000, per_host = 1024 }
do
  blib.parse_flags("bench/io.lua", { ... }, opts,
    { ["--runs"] = "runs", ["--concurrency"] = "n", ["--per-host"] = "per_host" },
    function(o) o.runs = 5 end)
  if not opts.runs or opts.runs < 5 then opts.runs = 5 end
  assert(opts.n and opts.n >= 1, "--concurrency must be a positive number")
end

-- The test server as a child process: its pid and port.
local root = (arg[0]:match("^(.*/)bench/") or "./")
-- $$ is the shell (replaced by the server), $PPID this weft process
local p = io.popen(fmt('echo $$; exec "$(readlink /proc/$PPID/exe)" exec %q --port 0 2>&1',
  root .. "spec/support/provider_server.lua"), "r")
local pid = tonumber(p:read("*l"))
local port = tonumber((p:read("*l") or ""):match("listening (%d+)"))
if not (pid and port) then error("the test server did not start", 0) end

local raised = require("weft.tcp").raise_nofile()
http.configure{ max_per_host = opts.per_host }

local base = fmt("http://127.0.0.1:%d/_f/latency=20/v1", port)
local ask = weft.executor("ask", function(msg, ctx)
  local res, err = llm.chat{ model = "openai:bench", base_url = base, api_key = "bench-key",
                             messages = { { role = "user", content = msg } }, retries = 0 }
  if not res then error(err, 0) end
  ctx:yield_output(res.text)
end)
local wf = weft.workflow("io_bench"):start(ask):build()

-- One round: spawn n runs, wait for all; returns wall seconds, the
-- client's largest memory growth (KiB, Lua + C heaps) over the round, and
-- while all n runs waited on their call, with the Lua heap's part of the
-- latter (nil, nil if no sample fell in that window).
local function round(n)
  collectgarbage("collect")
  local rss0, lua0 = blib.heap_kib(), collectgarbage("count")
  local peak, fly, fly_lua, sampling = rss0, nil, nil, true
  local sampler = weft.go(function()
    while sampling do
      local r, l = blib.heap_kib(), collectgarbage("count")
      if r > peak then peak = r end
      local st = http.stats()
      if st.running + st.queued == n and (not fly or r > fly) then fly, fly_lua = r, l end
      weft.sleep(0.002)
    end
  end)
  local t0 = weft.clock()
  local hs = {}
  for i = 1, n do hs[i] = wf:spawn("q" .. i, { events = false }) end
  local rs = weft.wait_all(hs)
  local wall = weft.clock() - t0
  sampling = false
  sampler:wait()
  for i = 1, n do
    local r = rs[i]
    if r.status ~= "completed" or r.outputs[1] ~= "echo: q" .. i then
      error(fmt("run %d: %s %s", i, r.status, tostring(r.error or r.outputs[1])), 0)
    end
  end
  return wall, peak - rss0, fly and fly - rss0, fly and fly_lua - lua0
end

blib.header("weft I/O benchmark (bench/io.lua)",
  fmt("open-files limit %s; server: separate process (pid %d)", tostring(raised), pid))
print(fmt("  %d concurrent runs, each one LLM call (openai wire format) with 20 ms server latency;",
  opts.n))
print(fmt("  connection pool: max_per_host = %d; median of %d rounds after a warm-up round",
  opts.per_host, opts.runs))

round(math.min(opts.n, 1000))
local walls, peaks, flys, luas, cs = {}, {}, {}, {}, {}
for r = 1, opts.runs do
  local fly, lua
  walls[r], peaks[r], fly, lua = round(opts.n)
  if fly then
    flys[#flys + 1], luas[#luas + 1], cs[#cs + 1] = fly, lua, fly - lua
  end
end
local _, peak = blib.rss_kib()
local w, pk = blib.stats(walls), blib.stats(peaks)
local rss, lua, c
if #flys > 0 then rss, lua, c = blib.stats(flys), blib.stats(luas), blib.stats(cs) end
print(fmt("%-40s %10s %10s %10s %12s", "figure", "median", "min", "max", "budget"))
print(fmt("%-40s %10.3f %10.3f %10.3f %12s", "wall for all runs (s)", w.median, w.min, w.max, "<= 1"))
print(fmt("%-40s %10.0f %10.0f %10.0f %12s", "runs per second", opts.n / w.median, opts.n / w.max,
  opts.n / w.min, "-"))
-- a row of per-run KiB figures (s from blib.stats, or nil: "-")
local function kib_row(name, s, budget)
  if not s then
    print(fmt("%-40s %10s %10s %10s %12s", name, "-", "-", "-", budget))
    return
  end
  print(fmt("%-40s %10.2f %10.2f %10.2f %12s", name, s.median / opts.n, s.min / opts.n, s.max / opts.n, budget))
end
kib_row("memory per run in flight (KiB)", rss, "<= 6")
kib_row("  of which Lua heap (KiB)", lua, "-")
kib_row("  of which C heap, malloc (KiB)", c, "-")
kib_row("round peak per run, finished kept (KiB)", pk, "-")
if #flys < opts.runs then
  print(fmt("(in flight: %d of %d rounds had a sample while all runs waited)", #flys, opts.runs))
end
print(fmt("%-40s %10.1f %10s %10s %12s", "peak RSS of the client (MiB)", peak / 1024, "-", "-", "-"))
print(fmt("verdict: wall %s, memory per run %s", w.median <= 1 and "ok" or "OVER",
  not rss and "not measured" or rss.median / opts.n <= 6 and "ok" or "OVER"))

os.execute("kill " .. pid .. " 2>/dev/null")
p:close()
