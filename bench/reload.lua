--- bench/reload.lua — hot reload (docs/embedding.md, weft.host): how long a
-- changed script takes to be picked up and installed, and the pause it
-- causes to runs in flight.
--
-- Run: build/weft exec bench/reload.lua [--runs N]
--
-- A 30-executor chain script is rewritten (write + rename, as editors do)
-- while 200 runs loop through it. Figures, medians of N rounds (default 7):
--   detect+install: from the rename to the `reloaded` event (includes the
--     0.02 s settle delay and the file-watch latency);
--   reload: host:reload() alone (read, load, build, hash) — the loop is
--     blocked that long, which is the pause every run in flight sees;
--   switch: the extra time of the barrier at which a run switches version.
-- Uses weft, weft.host, bench/bench_lib.lua.
local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/") .. "?.lua;" .. package.path
local blib = require "bench_lib"

local fmt = string.format
local runs = 7
do
  local a = { ... }
  if a[1] == "--runs" then runs = math.max(5, tonumber(a[2]) or 7) end
end

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
local path = dir .. "/chain.lua"

-- Write a chain of 30 executors tagged tag (atomically).
local function write(tag)
  local parts = { 'local weft = require "weft"', "local ex = {}" }
  for i = 1, 30 do
    parts[#parts + 1] = fmt('ex[%d] = weft.executor("e%d", function(n, ctx) weft.sleep(0.001) '
      .. 'if %d == 30 then ctx:yield_output("%s") else ctx:send(n) end end)', i, i, i, tag)
  end
  parts[#parts + 1] = 'local b = weft.workflow("chain"):start(ex[1])'
  for i = 1, 29 do parts[#parts + 1] = fmt("b:edge(ex[%d], ex[%d])", i, i + 1) end
  parts[#parts + 1] = "return b:build()"
  local f = assert(io.open(path .. ".tmp", "w"))
  f:write(table.concat(parts, "\n"))
  f:close()
  assert(os.rename(path .. ".tmp", path))
end

write("v0")
local got = {}
local host = weft.host.new{ scripts = { chain = path }, watch = true,
                            on_event = function(ev) got[#got + 1] = weft.clock() end }

local detect, reload = {}, {}
for r = 1, runs do
  local hs = {}
  for i = 1, 200 do hs[i] = host:spawn("chain", 1) end
  weft.sleep(0.005)
  local n0 = #got
  local t0 = weft.clock()
  write("v" .. r)
  while #got == n0 do weft.sleep(0.001) end
  detect[r] = (got[#got] - t0) * 1e3
  local t1 = weft.clock()
  host:reload("chain")
  reload[r] = (weft.clock() - t1) * 1e3
  for _, h in ipairs(weft.wait_all(hs)) do
    if h.status ~= "completed" then error("a run did not complete: " .. tostring(h.error), 0) end
  end
end
host:close()
os.execute("rm -rf " .. dir)

local m = blib.machine()
print("weft hot-reload benchmark (bench/reload.lua)")
print(fmt("  cpu: %s, cores: %s, %s, %s; load %s", m.cpu, m.cores, m.lua, m.date, blib.loadavg()))
print(fmt("  30-executor script, 200 runs in flight; median of %d rounds", runs))
local d, l = blib.stats(detect), blib.stats(reload)
print(fmt("%-44s %9.2f ms  (min %.2f, max %.2f)", "change -> reloaded event (detect + install)", d.median, d.min, d.max))
print(fmt("%-44s %9.2f ms  (min %.2f, max %.2f)", "reload itself = pause of runs in flight", l.median, l.min, l.max))
