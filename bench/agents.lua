--- bench/agents.lua — the cost weft.agent adds around the model calls it
-- makes (ARCHITECTURE.md, "Budgets": <= 50 µs per turn, excluding the
-- provider's own latency).
--
-- Run: build/weft exec bench/agents.lua [--runs N] [--conversations N]
--
-- A turn is one agent:run on a thread that grows over a 10-turn
-- conversation, on the mock provider with zero latency. Inside each timed
-- run, every weft.llm.chat call the agent makes is timed too (a wrapper
-- around llm.chat reads the clock before and after it), so the agent's own
-- overhead per turn = (time of agent:run - time inside llm.chat) / turns,
-- both from the same run. Cases: a plain conversation (one model call per
-- turn), a conversation where every turn calls a tool (two model calls per
-- turn: tool validation, the handler, the tool messages), and the plain
-- one with a sliding_window(8) reducer. Each figure is the median of N
-- runs (default 7, minimum 5) after one untimed warm-up; a full GC
-- precedes each timed run. Timings are printed, never asserted ("OVER"
-- marks a figure over budget). A second part breaks one mock chat call
-- down into its stages (request checks, provider body + JSON encoding, the
-- mock's transport, response parsing) to show where a turn of the
-- mock+llm path itself goes.
--
-- Uses weft (agent, tool, thread, reducers, clock), weft.llm and its
-- internals for the breakdown (weft.llm.common, weft.llm.mock), bench_lib.
local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/") .. "?.lua;" .. package.path
local blib = require "bench_lib"
local llm = require "weft.llm"
local common = require "weft.llm.common"
local mock = require "weft.llm.mock"
local json = require "weft.json"

local fmt, floor = string.format, math.floor
local clock = weft.clock

local BUDGET_US = 50
local TURNS = 10

-- Command line ------------------------------------------------------------

local function parse_args(argv)
  local o = { runs = 7, conversations = 200 }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local k, v = a:match("^%-%-(%w+)=(.*)$")
    if not k then
      k = a:match("^%-%-(%w+)$")
      if k == "help" then
        print("usage: weft exec bench/agents.lua [--runs N] [--conversations N]")
        os.exit(0)
      end
      i = i + 1
      v = argv[i]
    end
    if (k ~= "runs" and k ~= "conversations") or not tonumber(v) or tonumber(v) < 1 then
      error("bad argument '" .. tostring(a) .. "' (--runs N, --conversations N)", 0)
    end
    o[k] = floor(tonumber(v))
    i = i + 1
  end
  if o.runs < 5 then o.runs = 5 end
  return o
end

local opts = parse_args(arg or {})

-- Timing llm.chat inside agent runs --------------------------------------

local bare_chat = llm.chat
local in_chat, chat_calls = 0, 0
local function timed_chat(o)
  local t0 = clock()
  local r, e, c = bare_chat(o)
  in_chat = in_chat + (clock() - t0)
  chat_calls = chat_calls + 1
  return r, e, c
end

-- The agents ---------------------------------------------------------------

local add = weft.tool {
  name = "add", description = "Add two numbers",
  parameters = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } },
                 required = { "a", "b" } },
  handler = function(args) return args.a + args.b end,
}

local plain = weft.agent { name = "plain", model = "mock:echo", instructions = "You are terse." }
local tooled = weft.agent { name = "tooled", model = "mock:echo", instructions = "You add.", tools = { add } }
local reduced = weft.agent { name = "reduced", model = "mock:echo", instructions = "You are terse.",
                             reducer = weft.window.sliding_window(8) }

local CASES = {
  { name = "plain", agent = plain, calls = 1,
    input = function(i) return "turn number " .. i .. " of this conversation" end,
    expect = function(i) return "echo: turn number " .. i .. " of this conversation" end },
  { name = "tool each turn", agent = tooled, calls = 2,
    input = function(i) return ('call add {"a":%d,"b":1}'):format(i) end,
    expect = function(i) return "tool said: " .. (i + 1) end },
  { name = "sliding_window(8)", agent = reduced, calls = 1,
    input = function(i) return "turn number " .. i .. " of this conversation" end,
    expect = function(i) return "echo: turn number " .. i .. " of this conversation" end },
}

-- One timed run of a case: conversations x TURNS turns. Returns seconds
-- in agent:run and seconds inside llm.chat.
local function timed_run(case, conversations)
  local agent, input, expect = case.agent, case.input, case.expect
  llm.chat = timed_chat
  in_chat, chat_calls = 0, 0
  collectgarbage("collect")
  local t0 = clock()
  for _ = 1, conversations do
    local th = agent:new_thread()
    for i = 1, TURNS do
      local r = agent:run(input(i), th)
      if not r or r.text ~= expect(i) then
        llm.chat = bare_chat
        error(fmt("%s: turn %d: unexpected reply %s", case.name, i, r and r.text or "nil"))
      end
    end
  end
  local total = clock() - t0
  llm.chat = bare_chat
  local want = conversations * TURNS * case.calls
  if chat_calls ~= want then error(fmt("%s: %d model calls, expected %d", case.name, chat_calls, want)) end
  return total, in_chat
end

-- Breakdown of one mock chat call -----------------------------------------

-- The messages of turn 10 of the plain conversation (the largest request).
local function turn10_messages()
  local th = plain:new_thread()
  for i = 1, TURNS - 1 do plain:run("turn number " .. i .. " of this conversation", th) end
  local msgs = { { role = "system", content = "You are terse." } }
  for _, m in ipairs(th.messages) do msgs[#msgs + 1] = m end
  msgs[#msgs + 1] = { role = "user", content = "turn number 10 of this conversation" }
  return msgs
end

-- Median µs per call of fn over n calls, across the runs.
local function per_call_us(fn, n, runs)
  local xs = {}
  for _ = 1, 100 do fn() end
  for r = 1, runs do
    collectgarbage("collect")
    local t0 = clock()
    for _ = 1, n do fn() end
    xs[r] = (clock() - t0) / n * 1e6
  end
  return blib.stats(xs)
end

local function breakdown(runs)
  local msgs = turn10_messages()
  local copts = { model = "mock:echo", messages = msgs }
  local n = 2000
  local P = llm.provider("mock")
  local call = common.request(copts, "echo")
  local cfg = common.config(P, copts)
  local built = P.build(call, cfg)
  local body = json.encode(built.body)
  local resp = P.transport({ method = "POST", url = built.url, headers = built.headers, body = body }, call, cfg)
  local rows = {
    { "llm.chat (whole call)", function() return bare_chat(copts) end },
    { "  common.request (checks, copy)", function() return common.request(copts, "echo") end },
    { "  provider build (OpenAI body)", function() return P.build(call, cfg) end },
    { "  json.encode(request body)", function() return json.encode(built.body) end },
    { "  mock transport (decode body, reply, encode)", function()
        return P.transport({ method = "POST", url = built.url, headers = built.headers, body = body }, call, cfg)
      end },
    { "    of which json.decode(request body)", function() return json.decode(body) end },
    { "  json.decode(response) + parse", function() return P.parse(json.decode(resp.body)) end },
  }
  print(fmt("\nOne mock chat call, turn 10 (%d messages, request body %d bytes), µs per call:", #msgs, #body))
  for _, row in ipairs(rows) do
    local s = per_call_us(row[2], n, runs)
    print(fmt("  %-48s %8.2f   (min %.2f, max %.2f)", row[1], s.median, s.min, s.max))
  end
end

-- Main -----------------------------------------------------------------

local m = blib.machine()
print("bench/agents.lua — agent overhead per turn (10-turn conversations, mock provider, zero latency)")
print(fmt("machine: %s, %s cores, kernel %s, %s, %s", m.cpu, m.cores, m.kernel, m.lua, m.date))
print(fmt("load average: %s; runs per figure: %d (median shown, min-max); %d conversations x %d turns per run",
          blib.loadavg(), opts.runs, opts.conversations, TURNS))
print(fmt("budget: agent overhead <= %d µs per turn (agent:run time minus its llm.chat time)\n", BUDGET_US))
print(fmt("  %-20s %12s %12s %22s", "case", "turn (µs)", "llm.chat (µs)", "agent overhead (µs)"))

for _, case in ipairs(CASES) do
  timed_run(case, math.max(1, floor(opts.conversations / 10))) -- warm-up
  local turn, chat, over = {}, {}, {}
  local nturns = opts.conversations * TURNS
  for r = 1, opts.runs do
    local total, inside = timed_run(case, opts.conversations)
    turn[r] = total / nturns * 1e6
    chat[r] = inside / nturns * 1e6
    over[r] = (total - inside) / nturns * 1e6
  end
  local st, sc, so = blib.stats(turn), blib.stats(chat), blib.stats(over)
  print(fmt("  %-20s %12.2f %12.2f %10.2f (%.2f-%.2f)%s", case.name, st.median, sc.median, so.median, so.min,
            so.max, so.median > BUDGET_US and "  OVER" or ""))
end

breakdown(opts.runs)
