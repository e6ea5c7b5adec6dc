--- bench/guard.lua — what a guard costs per guarded message (issue 17:
-- "per guarded message, with the built-in PII guard on 1 KB of text").
--
-- Run: build/weft exec bench/guard.lua [--runs N] [--batch N] [--quick]
--
-- Cases, each a batch of wf:run calls (default 2000) timed together, the
-- figure being the time per run; the cases alternate inside every sample
-- so that a noisy machine hits them alike; each figure is the median of
-- N samples (default 7, minimum 5) after one untimed warm-up batch:
--   * input: a one-executor workflow given 1 KB of text (prose with one
--     e-mail address and one phone number), without guards, then with
--     weft.guard.pii{} on its input (the text is masked);
--   * send: an executor sending a 1 KB string to a second one, without
--     guards, then with weft.guard.pii{} on the sender's output;
--   * the guard alone: weft.guard.apply of the pii guard on the same 1 KB
--     string, outside any run (per call).
-- The overhead per guarded message is the difference of the medians.
-- Timings are printed, never asserted.
--
-- Uses weft (executor, workflow, guard, clock), bench_lib.
local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/") .. "?.lua;" .. package.path
local blib = require "bench_lib"

local clock = weft.clock
local guard = weft.guard

local o = blib.parse_flags("weft exec bench/guard.lua", blib.argv(...), { runs = 7, batch = 2000, notes = {} },
  { ["--runs"] = "runs", ["--batch"] = "batch" }, function(t) t.runs, t.batch = 5, 300 end)
blib.min_runs(o, 5)

-- 1 KB of prose holding one e-mail address and one phone number.
local TEXT
do
  local parts = { "Hello team, the quarterly report is attached. Please send comments to ",
                  "jane.doe@example.com before Friday, or call +33 6 12 34 56 78 if it is urgent. " }
  local filler = "The numbers look steady across regions and the plan for next quarter stays as agreed. "
  local s = table.concat(parts)
  while #s < 1024 do s = s .. filler end
  TEXT = s:sub(1, 1024)
end

local pii = guard.pii{}

-- The workflows of the cases.
local function one(guards)
  local ex = weft.executor("one", { handle = function(_, ctx) ctx:yield_output("ok") end, guards = guards })
  return weft.workflow("one"):start(ex):build()
end
local function two(guards)
  local a = weft.executor("a", { handle = function(_, ctx) ctx:send(TEXT) end, guards = guards })
  local b = weft.executor("b", function(msg, ctx) ctx:yield_output(#msg) end)
  return weft.workflow("two"):start(a):edge(a, b):build()
end

local OUT_ONLY = guard.pii{ stages = { "output" } }
local cases = {
  { "input: 1 KB, no guard", one(nil), "ok" },
  { "input: 1 KB, pii guard", one({ guard.pii{ stages = { "input" } } }), "ok" },
  { "send: 1 KB, no guard", two(nil), 1024 },
  { "send: 1 KB, pii guard on output", two({ OUT_ONLY }), nil },
}

-- Seconds per run of wf over a batch (checked once per batch).
local function time_batch(c)
  local wf, want = c[2], c[3]
  local opts = { events = false }
  collectgarbage()
  local t0 = clock()
  local res
  for _ = 1, o.batch do res = wf:run(TEXT, opts) end
  local dt = (clock() - t0) / o.batch
  blib.check_run(c[1], res, nil, want)
  return dt
end

-- The pii guard alone on the text, per call.
local function time_apply()
  local list, info = { pii }, {}
  collectgarbage()
  local n = o.batch * 5
  local t0 = clock()
  for _ = 1, n do guard.apply(list, "input", TEXT, info) end
  return (clock() - t0) / n
end

blib.header("bench/guard.lua — guard overhead per message",
  ("batch %d runs, median of %d samples"):format(o.batch, o.runs))
for _, note in ipairs(o.notes) do print("  note: " .. note) end

-- warm-up
for _, c in ipairs(cases) do time_batch(c) end
time_apply()

local samples = {}
for i = 1, #cases + 1 do samples[i] = {} end
for _ = 1, o.runs do
  for i, c in ipairs(cases) do samples[i][#samples[i] + 1] = time_batch(c) end
  samples[#cases + 1][#samples[#cases + 1] + 1] = time_apply()
end

local p, flush = blib.printer()
p("%-40s %10s %10s %10s", "case", "median us", "min us", "max us")
local med = {}
for i = 1, #cases + 1 do
  local st = blib.stats(samples[i])
  local name = cases[i] and cases[i][1] or "pii guard alone on 1 KB (apply)"
  med[i] = st.median
  p("%-40s %10.2f %10.2f %10.2f", name, st.median * 1e6, st.min * 1e6, st.max * 1e6)
end
p("%-40s %10.2f", "overhead per guarded input (1 KB)", (med[2] - med[1]) * 1e6)
p("%-40s %10.2f", "overhead per guarded send (1 KB)", (med[4] - med[3]) * 1e6)
flush()
