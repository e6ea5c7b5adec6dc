--- bench/patterns.lua — cost of the orchestration patterns (weft.patterns)
-- on the mock provider with zero latency, so that only weft's own work is
-- measured: the agent run (request building, the mock's OpenAI encoding and
-- parsing), the workflow (supersteps, messages, events) and the pattern's
-- logic.
--
-- Run: build/weft exec bench/patterns.lua [--runs N]
--
-- Main figure: a group chat of 5 agents, 20 rounds (round robin,
-- terminations.max_rounds(20)): time per run and per round (run / 20),
-- with the event log and with `events = false`. For comparison: the same
-- 20 agent:run calls without the workflow (the floor of a round), and a
-- sequential and a concurrent run of the same 5 agents. Every figure is the median of N
-- timed runs (default 7, minimum 5) after one untimed warm-up, each run
-- preceded by a full GC (not timed). Each run's result is checked (status,
-- rounds, reason): a failing run raises and the script exits non-zero.
-- Timings are printed, never asserted. Uses weft, weft.llm (mock),
-- weft.patterns, bench/bench_lib.lua.
local weft = require "weft"
local llm = require "weft.llm"
local patterns = require "weft.patterns"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/") .. "?.lua;" .. package.path
local blib = require "bench_lib"

local fmt = string.format
local floor = math.floor

local DEFAULT_RUNS, MIN_RUNS = 7, 5
local AGENTS, ROUNDS = 5, 20

-- Arguments: --runs N | --runs=N.
local argv = { ... }
if #argv == 0 and type(rawget(_G, "arg")) == "table" then
  for k = 1, #_G.arg do argv[k] = _G.arg[k] end
end
local runs = DEFAULT_RUNS
do
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local v = a:match("^%-%-runs=(.*)$")
    if a == "--runs" then i = i + 1; v = argv[i] end
    if v == nil then error("usage: bench/patterns.lua [--runs N]", 0) end
    local n = tonumber(v)
    if not n or n ~= floor(n) or n < 1 then error("--runs: expected a positive integer, got '" .. tostring(v) .. "'", 0) end
    runs = n
    i = i + 1
  end
end
local notes = {}
if runs < MIN_RUNS then
  notes[#notes + 1] = fmt("--runs %d raised to the minimum of %d", runs, MIN_RUNS)
  runs = MIN_RUNS
end

local now = weft.clock

-- Five agents on mock scripts answering a fixed sentence at once.
local agents = {}
for i = 1, AGENTS do
  local name = "agent" .. i
  llm.mock.register(name, { { reply = name .. " adds one more point to the discussion." } })
  agents[i] = weft.agent { name = name, model = "mock:" .. name, instructions = "You are " .. name .. "." }
end

--- Time fn() runs times after one warm-up; check(result) after each.
-- Returns the list of durations in seconds.
local function measure(fn, check)
  local times = {}
  for r = 0, runs do
    collectgarbage("collect")
    local t0 = now()
    local res = fn()
    local t = now() - t0
    check(res)
    if r > 0 then times[r] = t end
  end
  return times
end

-- Raise unless res is a completed run.
local function completed(label, res)
  if res.status ~= "completed" then
    error(fmt("%s: status %s: %s", label, tostring(res.status), tostring(res.error)), 0)
  end
end

local function scaled(times, k)
  local out = {}
  for i, t in ipairs(times) do out[i] = t * k end
  return out
end

local rows = {}
local function row(name, unit, xs)
  local s = blib.stats(xs)
  rows[#rows + 1] = fmt("%-58s %9.1f %-2s  (min %.1f, max %.1f, n=%d)", name, s.median, unit, s.min, s.max, s.n)
end

-- The floor: the agent work of the chat alone — 20 agent:run calls on
-- conversations of 1 to 20 messages, as the chat's speakers see them.
local convo = { { role = "user", content = "Discuss the launch of a budget eBike." } }
local convos = {}
for i = 1, ROUNDS do
  local c = {}
  for k = 1, #convo do c[k] = convo[k] end
  convos[i] = c
  convo[#convo + 1] = { role = "assistant", name = "agent" .. ((i - 1) % AGENTS + 1),
                        content = "agent adds one more point to the discussion." }
end
local floor_t = measure(function()
  local res
  for i = 1, ROUNDS do res = agents[(i - 1) % AGENTS + 1]:run(convos[i]) end
  return res
end, function(res)
  if not res or res.text == nil then error("agent:run failed", 0) end
end)
row(fmt("%d x agent:run alone (conversations of 1..%d): per call", ROUNDS, ROUNDS), "us",
    scaled(floor_t, 1e6 / ROUNDS))

-- The group chat.
local chat = patterns.group_chat { agents = agents, selector = patterns.selectors.round_robin(),
                                   termination = patterns.terminations.max_rounds(ROUNDS) }
local function check_chat(res)
  completed("group chat", res)
  local out = res.outputs[1]
  if out.rounds ~= ROUNDS or out.reason ~= "max_rounds" or #out.messages ~= ROUNDS + 1 then
    error(fmt("group chat: rounds %s, reason %s", tostring(out.rounds), tostring(out.reason)), 0)
  end
end
local input = "Discuss the launch of a budget eBike."
for _, events in ipairs { true, false } do
  local opts = events and nil or { events = false }
  local t = measure(function() return chat:run(input, opts) end, check_chat)
  local tag = events and "" or " [events=false]"
  row(fmt("group chat %d agents x %d rounds: per run%s", AGENTS, ROUNDS, tag), "us", scaled(t, 1e6))
  row(fmt("group chat: per round%s", tag), "us", scaled(t, 1e6 / ROUNDS))
end

-- Sequential and concurrent runs of the same agents, for scale.
local seq = patterns.sequential { agents = agents }
local t = measure(function() return seq:run(input) end, function(res) completed("sequential", res) end)
row(fmt("sequential %d agents: per run", AGENTS), "us", scaled(t, 1e6))
local conc = patterns.concurrent { agents = agents }
t = measure(function() return conc:run(input) end, function(res)
  completed("concurrent", res)
  if #res.outputs[1] ~= AGENTS then error("concurrent: wrong number of results", 0) end
end)
row(fmt("concurrent %d agents: per run", AGENTS), "us", scaled(t, 1e6))

local m = blib.machine()
print("weft patterns benchmark (mock provider, zero latency)")
print(fmt("machine: %s, %s cores, Linux %s, %s", m.cpu, m.cores, m.kernel, m.lua))
print(fmt("date: %s, load: %s, runs per figure: %d (median; min, max)", m.date, blib.loadavg(), runs))
for _, n in ipairs(notes) do print("note: " .. n) end
print()
for _, r in ipairs(rows) do print(r) end
