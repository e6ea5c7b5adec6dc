--- bench/io.lua — concurrent I/O benchmark of weft (ARCHITECTURE.md,
-- "Budgets": 10,000 concurrent runs, each awaiting a 20 ms LLM reply over
-- loopback HTTP: wall <= 1 s, RSS per run <= 8 KB).
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
-- Memory: the memory the client holds (Lua heap + malloc'd bytes) is
-- sampled every 2 ms during each round; the figure is (max sample - memory
-- before spawning) / runs. Peak RSS of the process is printed too.
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

-- One round: spawn n runs, wait for all; returns wall seconds and the
-- client's largest RSS growth (KiB) while they were in flight.
local function round(n)
  collectgarbage("collect")
  local rss0 = blib.heap_kib()
  local rss1, sampling = rss0, true
  local sampler = weft.go(function()
    while sampling do
      local r = blib.heap_kib()
      if r > rss1 then rss1 = r end
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
  return wall, (rss1 - rss0)
end

blib.header("weft I/O benchmark (bench/io.lua)",
  fmt("open-files limit %s; server: separate process (pid %d)", tostring(raised), pid))
print(fmt("  %d concurrent runs, each one LLM call (openai wire format) with 20 ms server latency;",
  opts.n))
print(fmt("  connection pool: max_per_host = %d; median of %d rounds after a warm-up round",
  opts.per_host, opts.runs))

round(math.min(opts.n, 1000))
local walls, rsss = {}, {}
for r = 1, opts.runs do walls[r], rsss[r] = round(opts.n) end
local _, peak = blib.rss_kib()
local w, rss = blib.stats(walls), blib.stats(rsss)
print(fmt("%-40s %10s %10s %10s %12s", "figure", "median", "min", "max", "budget"))
print(fmt("%-40s %10.3f %10.3f %10.3f %12s", "wall for all runs (s)", w.median, w.min, w.max, "<= 1"))
print(fmt("%-40s %10.0f %10.0f %10.0f %12s", "runs per second", opts.n / w.median, opts.n / w.max,
  opts.n / w.min, "-"))
print(fmt("%-40s %10.2f %10.2f %10.2f %12s", "memory per run in flight (KiB)", rss.median / opts.n,
  rss.min / opts.n, rss.max / opts.n, "<= 8"))
print(fmt("%-40s %10.1f %10s %10s %12s", "peak RSS of the client (MiB)", peak / 1024, "-", "-", "-"))
print(fmt("verdict: wall %s, memory per run %s", w.median <= 1 and "ok" or "OVER",
  rss.median / opts.n <= 8 and "ok" or "OVER"))

os.execute("kill " .. pid .. " 2>/dev/null")
p:close()
