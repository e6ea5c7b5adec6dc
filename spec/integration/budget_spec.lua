-- spec/integration/budget_spec.lua — run budgets (docs/guardrails.md,
-- "Budgets"): the tokens and cost of weft.llm calls (the mock provider, and
-- an agent over HTTP to the provider test server on 127.0.0.1) counted per
-- run, nested runs included; a run past its tokens, cost or wall time ends
-- failed with "run exceeded its budget: ..."; calls refused once a budget
-- is spent and, under a cost budget, for a model without a price; a
-- durable run keeps what it spent across a resume; the errors reach the
-- result and `weft run`'s stderr. #http
local weft = require "weft"
local llm = require "weft.llm"
local budget = require "weft.budget"
local procs = require "support.procs"
local files = require "support.files"
require "helpers" -- assert.mentions

-- The mock's echo usage of MSG: 5 input and 6 output words, 11 tokens.
local MSG = { { role = "user", content = "one two three four five" } }
local function chat(model)
  return llm.chat { model = model or "mock:echo", messages = MSG }
end

-- The types of res's events that end a run (workflow_*), in order.
local function ends(res)
  local out = {}
  for _, ev in ipairs(res.events) do
    if ev.type == "workflow_failed" or ev.type == "workflow_cancelled" or ev.type == "workflow_completed" then
      out[#out + 1] = ev.type
    end
  end
  return out
end

-- A workflow whose executor makes n calls (stopping at the first failure)
-- and outputs {codes...}.
local function calls(n, model)
  return weft.workflow("calls"):start(weft.executor("a", function(_, ctx)
    local codes = {}
    for i = 1, n do
      local r, _, code = chat(model)
      codes[i] = r and "ok" or code
      if not r then break end
    end
    ctx:yield_output(codes)
  end)):build()
end

describe("run budgets", function()
  describe("tokens", function()
    it("end the run that goes past them, naming the limit", function()
      local h = calls(5):spawn("x", { budget = { tokens = 25 } })
      local r = h:wait()
      assert.are.equal("failed", r.status)
      assert.are.equal("run exceeded its budget: tokens (25)", r.error)
      -- the scheduler's own end: failed, not cancelled
      assert.are.equal("failed", h:status())
      assert.are.same({ "workflow_failed" }, ends(r))
    end)

    it("leave a run within them alone, and count what it spent", function()
      local h = calls(2):spawn("x", { budget = { tokens = 22 } })
      local r = h:wait()
      assert.are.equal("completed", r.status)
      assert.are.same({ "ok", "ok" }, r.outputs[1])
      assert.are.same({ tokens = 22, cost = 0 }, budget.spent(h))
    end)

    it("refuse the call after a budget spent exactly, and end the run", function()
      local r = calls(3):run("x", { budget = { tokens = 22 } })
      assert.are.equal("failed", r.status)
      assert.are.equal("run exceeded its budget: tokens (22)", r.error)
    end)

    it("count the calls of runs nested in the run", function()
      local inner = calls(2)
      local outer = weft.workflow("outer"):start(weft.executor("o", function(_, ctx)
        local a = inner:run("y")
        local b = inner:run("y")
        ctx:yield_output({ a.status, b.status, b.error })
      end)):build()
      local r = outer:run("x", { budget = { tokens = 40 } })
      assert.are.equal("failed", r.status)
      assert.are.equal("run exceeded its budget: tokens (40)", r.error)
      -- a nested run with a budget of its own is held to both
      local own = weft.workflow("own"):start(weft.executor("o", function(_, ctx)
        local a = inner:run("y", { budget = { tokens = 1000 } })
        ctx:yield_output({ a.status, a.error })
      end)):build()
      r = own:run("x", { budget = { tokens = 15 } })
      assert.are.equal("failed", r.status)
      assert.are.equal("run exceeded its budget: tokens (15)", r.error)
    end)

    it("come from the run's guardrails policy (weft.guardrails) too", function()
      local policy = weft.guardrails.load { execution_limits = { max_tokens = 15 } }
      local r = calls(3):run("x", { guardrails = policy })
      assert.are.equal("failed", r.status)
      assert.are.equal("run exceeded its budget: tokens (15)", r.error)
    end)

    it("count an agent's calls over HTTP", function()
      local env = { srv = require("support.provider_server").start { host = "127.0.0.1", port = 0 } }
      local agent = weft.agent { name = "a", model = "openai:m1",
        llm = { api_key = "sk-test", base_url = env.srv.url .. "/v1" } }
      local wf = weft.workflow("agent"):start(weft.executor("a", function(_, ctx)
        for _ = 1, 3 do assert(agent:run("hello there")) end
        ctx:yield_output("done")
      end)):build()
      local r = wf:run("x", { budget = { tokens = 1 } })
      env.srv:stop()
      assert.are.equal("failed", r.status)
      assert.are.equal("run exceeded its budget: tokens (1)", r.error)
    end)
  end)

  describe("cost", function()
    local PRICES = { ["mock:echo"] = { input = 1, output = 2 } } -- USD per 1M tokens: 17e-6 a call

    it("ends the run past it, from the prices of its models", function()
      local r = calls(5):run("x", { budget = { cost = 0.00004, prices = PRICES } })
      assert.are.equal("failed", r.status)
      assert.are.equal("run exceeded its budget: cost (4e-05 USD)", r.error)
      local h = calls(2):spawn("x", { budget = { cost = 1, prices = PRICES } })
      assert.are.equal("completed", h:wait().status)
      assert.are.equal(34e-6, budget.spent(h).cost)
    end)

    it("refuses a call to a model without a price, naming it", function()
      local r = calls(1, "mock:other"):run("x", { budget = { cost = 1, prices = PRICES } })
      assert.are.equal("completed", r.status)
      assert.are.same({ "budget" }, r.outputs[1])
      local wf = weft.workflow("w"):start(weft.executor("a", function(_, ctx)
        local r, err, code = chat("mock:other")
        ctx:yield_output({ r == nil, err, code })
      end)):build()
      local out = wf:run("x", { budget = { cost = 1, prices = PRICES } }).outputs[1]
      assert.are.equal("budget: model 'mock:other' has no price in budget.prices (the run has a cost budget)", out[2])
      assert.are.equal("budget", out[3])
    end)
  end)

  describe("seconds", function()
    it("end a run still running when they are up", function()
      local never = weft.cond()
      local wf = weft.workflow("slow"):start(weft.executor("a", function() never:wait() end)):build()
      local h = wf:spawn("x", { budget = { seconds = 0.05 } })
      local r = h:wait()
      assert.are.equal("failed", r.status)
      assert.are.equal("run exceeded its budget: seconds (0.05 s)", r.error)
      assert.are.equal("failed", h:status())
      assert.are.same({ "workflow_failed" }, ends(r))
    end)

    it("stop with the run: a run that ends in time is left as it ended", function()
      local r = calls(1):run("x", { budget = { seconds = 30 } })
      assert.are.equal("completed", r.status)
    end)
  end)

  describe("options", function()
    it("are checked, naming the field", function()
      local wf = calls(1)
      assert.error_matches(function() wf:run("x", { budget = { token = 5 } }) end,
        "unknown budget option 'budget.token'", nil, true)
      assert.error_matches(function() wf:run("x", { budget = { seconds = -1 } }) end,
        "budget.seconds must be a number of seconds > 0", nil, true)
      assert.error_matches(function() wf:run("x", { budget = { prices = { gpt = { input = 1 } } } }) end,
        'budget.prices must be a table of "provider:model"', nil, true)
    end)
  end)

  describe("of a durable run", function()
    local scratch = files.scratch("weft_budget_")
    after_each(scratch.clean)

    it("keep what it spent across a resume", function()
      local dir = scratch.dir()
      local url = "sqlite:" .. dir .. "/budget.db"
      local a = weft.executor("a", function(_, ctx)
        assert(chat())
        ctx:send("go")
      end)
      local b = weft.executor("b", function(_, ctx)
        local answer = ctx:request_info({ q = "continue?" })
        assert(chat())
        ctx:yield_output(answer)
      end)
      local wf = weft.workflow("durable-budget"):start(a):edge(a, b):build()
      local h = wf:spawn("x", { store = url, budget = { tokens = 15 } })
      local r = h:wait()
      assert.are.equal("idle", r.status)
      -- resumed (as another process would): 11 tokens spent already, the
      -- second call goes past 15
      local h2 = wf:resume(h.id, { store = url, budget = { tokens = 15 } })
      local r2 = h2:wait()
      assert.are.equal("idle", r2.status)
      assert(h2:respond(r2.requests[1].request_id, "yes"))
      r2 = h2:wait()
      assert.are.equal("failed", r2.status)
      assert.are.equal("run exceeded its budget: tokens (15)", r2.error)
      assert.are.same({ "workflow_failed" }, ends(r2))
      -- the run record says failed, with the budget's error
      local st = assert(weft.store.open(url))
      local rec = assert(require("weft.durable").record(st, h.id))
      st:close()
      assert.are.equal("failed", rec.status)
      assert.are.equal("run exceeded its budget: tokens (15)", rec.error)
    end)
  end)

  describe("errors", function()
    it("reach weft run's stderr", function()
      local dir = files.tempdir("weft_budget_")
      local script = dir .. "/over.lua"
      files.write(script, [[
local weft = require "weft"
local llm = require "weft.llm"
local inner = weft.workflow("inner"):start(weft.executor("i", function()
  for _ = 1, 3 do assert(llm.chat { model = "mock:echo", messages = { { role = "user", content = "a b c" } } }) end
end)):build()
return weft.workflow("outer"):start(weft.executor("o", function()
  local r = inner:run("x", { budget = { tokens = 10 } })
  if r.status ~= "completed" then error(r.error, 0) end
end)):build()
]])
      local code, _, err = procs.run({ procs.weft_bin(), "run", script })
      files.remove(dir)
      assert.are.equal(1, code)
      assert.mentions("weft: run failed: executor 'o' failed in superstep 0: run exceeded its budget: tokens (10)", err)
    end)
  end)

  -- A durable run killed -9 in one process and resumed in another (#crash):
  -- "step" makes one call (5 tokens, "mock:count", which writes "call" to
  -- WEFT_TEST_COUNT) per superstep, under a budget of 30 tokens; at round
  -- WEFT_TEST_PAUSE_AT it writes "pause" and sleeps, before or after its
  -- call (WEFT_TEST_PAUSE).
  describe("of a durable run killed -9 and resumed", function()
    local scratch = files.scratch("weft_budget_crash_")
    after_each(scratch.clean)

    local FLOW = [[
local weft = require "weft"
local llm = require "weft.llm"
local count = os.getenv("WEFT_TEST_COUNT")
local pause_at, where = tonumber(os.getenv("WEFT_TEST_PAUSE_AT") or ""), os.getenv("WEFT_TEST_PAUSE")
local function mark(s) local f = assert(io.open(count, "a")); f:write(s, "\n"); f:close() end
llm.mock.register("count", { { reply = function() mark("call"); return "ok" end } })
local step = weft.executor("step", function(n, ctx)
  n = tonumber(n)
  if n == pause_at and where == "before" then mark("pause"); weft.sleep(30) end
  local res, err = llm.chat { model = "mock:count", messages = { { role = "user", content = "a b c d" } } }
  if not res then error(err, 0) end
  if n == pause_at and where == "after" then mark("pause"); weft.sleep(30) end
  if n < 20 then ctx:send(n + 1) end
end)
return weft.workflow("spend"):start(step):edge(step, step):defaults { budget = { tokens = 30 }, input = 1 }:build()
]]

    -- Run until the pause at round `at` (before or after its call), kill,
    -- resume; returns the count file's lines, the resume's stderr and the
    -- stored record.
    local function crash_and_resume(at, where)
      local dir = scratch.dir()
      local path, url = files.write(dir .. "/spend.lua", FLOW), "sqlite:" .. dir .. "/weft.db"
      local count = dir .. "/count"
      local env = { WEFT_TEST_COUNT = count, WEFT_TEST_PAUSE_AT = tostring(at), WEFT_TEST_PAUSE = where,
                    WEFT_LEASE_TTL = "0.5" }
      local bin = procs.weft_bin()
      local p = procs.spawn({ bin, "run", path, "--store", url, "--run-id", "sp1" }, env)
      while not (procs.slurp(count) or ""):find("pause", 1, true) do weft.sleep(0.005) end
      procs.kill(p)
      procs.wait(p, 10)
      env.WEFT_TEST_PAUSE_AT = nil
      local rc, out, err = procs.run({ bin, "runs", "resume", "sp1", "--store", url, "--wait" }, env, 60)
      assert.are.equal(1, rc, out .. err)
      local st = assert(weft.store.open(url))
      local rec = assert(require("weft.durable").record(st, "sp1"))
      st:close()
      local lines = {}
      for l in procs.slurp(count):gmatch("[^\n]+") do lines[#lines + 1] = l end
      return lines, err, rec
    end

    local SIX_CALLS = { "call", "call", "call", "call", "call", "call" }

    for _, case in ipairs({ { 4, "before", "after three checkpointed calls" },
                            { 3, "after", "after a journaled call of an unfinished superstep" } }) do
      it("go on from every token spent before the kill, " .. case[3], function()
        local lines, err, rec = crash_and_resume(case[1], case[2])
        local calls = {}
        for _, l in ipairs(lines) do if l == "call" then calls[#calls + 1] = l end end
        -- three calls (15 tokens) before the kill, three more after: the
        -- seventh is refused at 30
        assert.are.equal("pause", lines[4])
        assert.are.same(SIX_CALLS, calls)
        assert.mentions("run exceeded its budget: tokens (30)", err)
        assert.are.same({ tokens = 30, cost = 0 }, rec.spent)
      end)
    end
  end)
end)
