--- bench/peers/peers.lua — the peer comparison of issue 14: weft against
-- PocketFlow (JS, npm package pocketflow, pinned in bench/peers/package.json)
-- on the same graphs with the same work, printing weft's figure, the peer's
-- and their ratio next to issue 14's target.
--
-- Run: build/weft exec bench/peers/peers.lua [--runs N] [--quick] [--node PATH]
-- (or scripts/bench.sh peers, which makes a release build first).
--
-- Each row is measured in a fresh process per side and round: weft by this
-- same weft binary (`weft exec bench/peers/weft_side.lua ROW`), PocketFlow
-- by `node --expose-gc bench/peers/pocketflow_side.js ROW`. Rounds alternate
-- the sides (weft first in odd rounds, PocketFlow first in even ones) so a
-- burst of load hits both; each process warms up, then reports the median
-- of its repetitions; the table shows the median over N rounds (default 5,
-- minimum 5) and the ratio weft/PocketFlow taken per round. Installs
-- PocketFlow with `npm ci` when bench/peers/node_modules lacks it.
-- Figures are printed, never asserted: a row over its target is marked
-- OVER and the process still exits 0; it exits non-zero only when a side
-- fails (a benchmark of a failing run is worthless).
--
-- Uses: bench/bench_lib.lua (machine, loadavg, stats), io.popen, node, npm.

local here = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/peers/")
package.path = here .. "../?.lua;" .. package.path
local blib = require "bench_lib"

local fmt = string.format
local concat = table.concat

local DEFAULT_RUNS, MIN_RUNS = 5, 5
-- per side process: untimed warm-up runs, then timed repetitions (median)
local WARM, REPS = 10, 7

-- `weft exec` may pass arguments as the chunk's varargs or in the global arg.
local argv = blib.argv(...)

local USAGE = "usage: build/weft exec bench/peers/peers.lua [--runs N] [--quick] [--node PATH]"
local opts = { runs = DEFAULT_RUNS, node = "node", notes = {} }
do
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--runs" then
      local n = tonumber(argv[i + 1])
      if not n or n < 1 or n ~= math.floor(n) then
        error("--runs: expected a positive integer, got '" .. tostring(argv[i + 1]) .. "'", 0)
      end
      opts.runs = n
      i = i + 1
    elseif a == "--node" then
      opts.node = argv[i + 1] or error("--node needs a path", 0)
      i = i + 1
    elseif a == "--quick" then
      opts.quick = true
    elseif a == "--help" or a == "-h" then
      io.write(USAGE, "\n")
      return
    else
      error("unknown argument '" .. a .. "' (" .. USAGE .. ")", 0)
    end
    i = i + 1
  end
  if opts.quick then opts.runs = MIN_RUNS end
  blib.min_runs(opts, MIN_RUNS)
end

--- Quote s for sh.
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- Run a shell command; its whole output (stdout and stderr) and whether
-- it exited 0 (the shell reports it: LuaJIT's pipe close does not).
local function sh(cmd)
  local p = assert(io.popen("{ " .. cmd .. "; } 2>&1; echo \"exit=$?\""))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)exit=(%d+)%s*$")
  return body or out, code == "0"
end

-- The weft binary running this script (the children use the same one).
local weft_bin = sh("readlink /proc/$PPID/exe"):match("^(%S+)")
if not weft_bin or not weft_bin:match("weft$") then
  error("peers: cannot find the weft binary running this script (readlink /proc/<pid>/exe gave '"
    .. tostring(weft_bin) .. "')", 0)
end

local node_version, node_ok = sh(q(opts.node) .. " --version")
if not node_ok then
  error("peers: node not found ('" .. opts.node .. "'): install Node.js >= 18 (Debian: apt-get install"
    .. " nodejs npm) or pass --node PATH", 0)
end
node_version = node_version:match("^(%S+)")

-- PocketFlow, installed from bench/peers/package-lock.json.
local pf_pkg = blib.read_file(here .. "node_modules/pocketflow/package.json")
if not pf_pkg then
  io.stderr:write("peers: installing PocketFlow: npm ci in ", here, "\n")
  local out, ok = sh("cd " .. q(here) .. " && npm ci --no-audit --no-fund")
  if not ok then error("peers: npm ci in " .. here .. " failed:\n" .. out, 0) end
  pf_pkg = blib.read_file(here .. "node_modules/pocketflow/package.json")
  if not pf_pkg then error("peers: npm ci did not install pocketflow in " .. here, 0) end
end
local pf_version = pf_pkg:match('"version"%s*:%s*"([^"]+)"') or "?"

-- The rows of issue 14's table this bench covers, then weft.flow's batch
-- rows (issue 17, no target). ratio: the target is a ratio to PocketFlow;
-- else it is an absolute figure in `unit`.
local ROWS = {
  { id = "chain", name = "chain of 1,000, state read+write, per node", unit = "us",
    target = 1.0, ratio = true },
  { id = "loop", name = "loop of 10,000 supersteps, per step", unit = "us",
    target = 1.0, ratio = true },
  { id = "single", name = "one-executor run, fixed cost per run", unit = "us", target = 2 },
  -- weft only (PocketFlow publishes no events): the chain with and without
  -- one counting subscriber, the difference per event
  { id = "subscriber", name = "one on_event subscriber, per event", unit = "us", target = 0.1,
    weft_only = true },
  { id = "paused", name = "10,000 runs paused for input, heap per run", unit = "KiB", target = 2 },
  { id = "fan", name = "fan-out 1,000, append to a list, per branch", unit = "us", target = 0.7 },
  -- weft.flow against PocketFlow's own classes (issue 17): no target, printed only
  { id = "batch", name = "batch node, 1,000 items, per item", unit = "us" },
  { id = "pbatch", name = "parallel batch node, 1,000 items, per item", unit = "us" },
}

-- weft's paused runs counting C malloc too, per round (KiB per run).
local paused_malloc = {}

--- One measurement of row id by side ("weft" or "pocketflow"): a number.
local function measure(side, id)
  local cmd
  if side == "weft" then
    cmd = q(weft_bin) .. " exec " .. q(here .. "weft_side.lua") .. " " .. id .. fmt(" --warm %d --reps %d", WARM, REPS)
  else
    cmd = q(opts.node) .. " --expose-gc " .. q(here .. "pocketflow_side.js") .. " " .. id
      .. fmt(" --warm %d --reps %d", WARM, REPS)
  end
  local out, ok = sh(cmd)
  local v = tonumber(out:match("result " .. id .. " (%S+)"))
  if not ok or not v then
    error(fmt("peers: %s side of row '%s' failed (%s):\n%s", side, id, cmd, out), 0)
  end
  local extra = tonumber(out:match("extra paused_malloc (%S+)"))
  if extra then paused_malloc[#paused_malloc + 1] = extra end
  return v
end

local m = blib.machine()
local p, flush = blib.printer()

p("weft vs PocketFlow (JS): the same graphs, the same work (bench/peers/peers.lua, issue 14)")
p("  cpu:     %s", m.cpu)
p("  cores:   %s", m.cores)
p("  kernel:  %s", m.kernel)
p("  weft:    %s, %s", weft_bin, m.lua)
p("  peer:    pocketflow %s on node %s", pf_version, node_version)
p("  date:    %s", m.date)
p("  rounds:  %d (each side in its own process per row and round, sides alternating;", opts.runs)
p("           per process: %d warm-up runs, then the median of %d; paused: one measurement)",
  WARM, REPS)
for _, note in ipairs(opts.notes) do p("  note:    %s", note) end
p("  load:    %s (1/5/15 min, before)", blib.loadavg())
flush()

local W, P = {}, {}
for _, r in ipairs(ROWS) do W[r.id], P[r.id] = {}, {} end
for round = 1, opts.runs do
  for _, r in ipairs(ROWS) do
    if r.weft_only then
      W[r.id][round] = measure("weft", r.id)
    elseif round % 2 == 1 then
      W[r.id][round] = measure("weft", r.id)
      P[r.id][round] = measure("pocketflow", r.id)
    else
      P[r.id][round] = measure("pocketflow", r.id)
      W[r.id][round] = measure("weft", r.id)
    end
  end
  io.stderr:write(fmt("peers: round %d/%d done\n", round, opts.runs))
end

--- A figure for the table.
local function num(v)
  if math.abs(v) >= 100 then return fmt("%.1f", v) end
  return fmt("%.3f", v)
end

p("")
local LINE = "%-44s %-4s %-21s %-21s %6s %7s  %s"
p(LINE, "row", "unit", "weft", "PocketFlow", "weft/", "target", "")
p(LINE, "", "", "median (min-max)", "median (min-max)", "peer", "", "")
local over = 0
for _, r in ipairs(ROWS) do
  local w, pf = blib.stats(W[r.id]), not r.weft_only and blib.stats(P[r.id])
  local ratio
  if pf then
    local ratios = {}
    for k = 1, opts.runs do ratios[k] = W[r.id][k] / P[r.id][k] end
    ratio = blib.stats(ratios).median
  end
  local target, verdict
  if r.target == nil then
    target, verdict = "-", ""
  elseif r.ratio then
    target = fmt("<= %gx", r.target)
    verdict = ratio <= r.target and "ok" or "OVER"
  else
    target = fmt("<= %g", r.target)
    verdict = w.median <= r.target and "ok" or "OVER"
  end
  if verdict == "OVER" then over = over + 1 end
  local function fig(st) return fmt("%s (%s-%s)", num(st.median), num(st.min), num(st.max)) end
  p(LINE, r.name, r.unit, fig(w), pf and fig(pf) or "-", ratio and fmt("%.2fx", ratio) or "-", target,
    verdict)
end
p("")
p("load: %s after; %d row(s) over target (informational; not a failure)", blib.loadavg(), over)
if #paused_malloc > 0 then
  local st = blib.stats(paused_malloc)
  p("paused, weft's Lua heap + C malloc (mallinfo2): %s (%s-%s) KiB per run; PocketFlow holds",
    num(st.median), num(st.min), num(st.max))
  p("  all of a paused run in the V8 heap, so its heapUsed figure above is its whole counterpart")
end
p("weft/peer: median over rounds of the per-round ratio; paused: weft collectgarbage(\"count\"),")
p("node process.memoryUsage().heapUsed after global.gc(); KiB = 1024 bytes")
flush()
