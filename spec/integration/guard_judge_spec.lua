-- spec/integration/guard_judge_spec.lua — weft.guard.judge
-- (docs/guardrails.md, "Built-in detectors"): one weft.llm.chat call per
-- guarded value, its strict JSON verdict (allow, block with the model's
-- reason, a fenced reply), unreadable replies and failed calls blocking
-- unless fail = "open", mask mode; over real HTTP against the provider
-- test server (what the judge sends, a 500); and in a durable run, the
-- judge's call journaled like any model call and its block failing the
-- executor with the guardrail error. #http
local weft = require "weft"
local llm = require "weft.llm"
local judge = require "weft.guard.judge"
local provider_env = require "support.provider_env"
local procs = require "support.procs"
local files = require "support.files"
local h = require "helpers"

local scratch = files.scratch("gbj")
after_each(scratch.clean)

-- A durable workflow whose output is judged by "mock:judge", a mock that
-- writes a line to WEFT_TEST_COUNT each time the model is really asked.
local JUDGED = [[
local weft = require "weft"
local llm = require "weft.llm"
local judge = require "weft.guard.judge"
local count = os.getenv("WEFT_TEST_COUNT")
llm.mock.register("judge", { { reply = function()
  local f = assert(io.open(count, "a")); f:write("judged\n"); f:close()
  return '{"verdict": "allow"}'
end } })
local ex = weft.executor("answer", { handle = function(m, ctx)
  ctx:yield_output("draft " .. m)
  local answer = ctx:request_info({ question = "ok?" })
  ctx:yield_output("final " .. answer)
end, guards = { judge.new { model = "mock:judge", instructions = "x", stages = { "output" } } } })
return weft.workflow("judged"):start(ex):build()
]]

local INFO = { stage = "output", field = "output.text" }

describe("weft.guard.judge #http", function()
  local env = provider_env.use()
  local calls
  before_each(function()
    llm.mock.reset()
    calls = {}
    -- the judge model: blocks content that promises a refund
    llm.mock.register("judge", { { reply = function(messages)
      calls[#calls + 1] = messages
      local content = messages[#messages].content
      if content:find("refund", 1, true) then
        return '{"verdict": "block", "reason": "promises a refund"}'
      elseif content:find("fenced", 1, true) then
        return '```json\n{"verdict": "allow"}\n```'
      elseif content:find("chatty", 1, true) then
        return 'Sure! {"verdict": "allow"}'
      elseif content:find("long", 1, true) then
        return '{"verdict": "block", "reason": "' .. ("x"):rep(500) .. '"}'
      end
      return '{"verdict": "allow", "reason": "fine"}'
    end } })
  end)
  after_each(function() llm.mock.reset() end)

  it("makes one model call per value and follows its verdict", function()
    local g = weft.guard.judge { model = "mock:judge", instructions = "Never promise refunds." }
    assert.is_true(weft.guard.is_guard(g))
    assert.is_true(g.whole)
    assert.is_nil(g:check("Thanks for your order.", INFO))
    assert.same({ action = "block", reason = "promises a refund" }, g:check("We will refund you.", INFO))
    assert.equal(2, #calls)
    local sys, user = calls[2][1], calls[2][2]
    assert.equal("system", sys.role)
    assert.mentions("Never promise refunds.", sys.content)
    assert.mentions("nothing else", sys.content)
    assert.equal("Stage: output\nField: output.text\nContent:\nWe will refund you.", user.content)
  end)

  it("sends tables as JSON and reads a fenced JSON reply", function()
    local g = judge.new { model = "mock:judge", instructions = "x" }
    assert.is_nil(g:check({ text = "fenced" }, INFO))
    assert.mentions('{"text":"fenced"}', calls[1][2].content)
  end)

  it("blocks on a reply that is not one JSON object, unless fail = 'open'", function()
    local g = judge.new { model = "mock:judge", instructions = "x" }
    assert.same({ action = "block", reason = "judge reply unreadable" }, g:check("chatty", INFO))
    assert.is_nil(judge.new { model = "mock:judge", instructions = "x", fail = "open" }:check("chatty", INFO))
  end)

  it("cuts a long reason and masks instead of blocking when asked", function()
    local g = judge.new { model = "mock:judge", instructions = "x", action = "mask", mask = "[gone]" }
    local v = g:check("long", INFO)
    assert.equal("modify", v.action)
    assert.equal("[gone]", v.value)
    assert.equal(judge.MAX_REASON + 3, #v.reason)
  end)

  it("parses verdicts strictly", function()
    assert.same({ "allow", "" }, { judge.parse('{"verdict":"ALLOW"}') })
    assert.same({ "block", "a b" }, { judge.parse(' {"verdict":"block","reason":"a\\nb"} ') })
    assert.is_nil(judge.parse('{"verdict":"maybe"}'))
    assert.is_nil(judge.parse('{"verdict":"allow"} thanks'))
    assert.is_nil(judge.parse("[1]"))
    assert.is_nil(judge.parse(nil))
  end)

  it("asks a real provider over HTTP and fails closed on its unreadable reply", function()
    -- the test server answers "echo: <user message>": never a verdict
    local g = judge.new { model = "openai:m1", instructions = "Judge politeness.",
                          llm = { base_url = env.base("openai"), api_key = "sk-test" } }
    assert.same({ action = "block", reason = "judge reply unreadable" }, g:check("hello", INFO))
    local req = env.srv:last_request("/v1/chat/completions")
    assert.equal("m1", req.json.model)
    assert.equal(0, req.json.temperature)
    assert.mentions("Judge politeness.", req.json.messages[1].content)
    assert.equal("Stage: output\nField: output.text\nContent:\nhello", req.json.messages[2].content)
    local open = judge.new { model = "openai:m1", instructions = "x", fail = "open",
                             llm = { base_url = env.base("openai"), api_key = "sk-test" } }
    assert.is_nil(open:check("hello", INFO))
  end)

  it("blocks naming the failure code when the call fails", function()
    local g = judge.new { model = "openai:m1", instructions = "x",
                          llm = { base_url = env.base("openai", "status=500"), api_key = "sk-test", retries = 0 } }
    assert.same({ action = "block", reason = "judge call failed (http_500)" }, g:check("hello", INFO))
  end)

  it("raises on bad options naming them", function()
    assert.mentions("instructions", h.error_of(judge.new, { model = "mock:judge" }))
    assert.mentions("model", h.error_of(judge.new, { model = "nocolon", instructions = "x" }))
    assert.mentions("did you mean 'fail'", h.error_of(judge.new, { model = "mock:judge", instructions = "x", fial = "open" }))
  end)

  describe("in a durable run", function()
    it("journals the judge's call on an output like any model call", function()
      local ex = weft.executor("answer", { handle = function(m, ctx)
        ctx:yield_output(m)
        local ok = ctx:request_info({ question = "send " .. m .. "?" })
        ctx:yield_output({ m, ok })
      end, guards = { judge.new { model = "mock:judge", instructions = "x", stages = { "output" } } } })
      local store = weft.store.open("memory:")
      local hd = weft.workflow("judged"):start(ex):build():spawn("hello", { store = store, run_id = "jg1" })
      local r = hd:wait()
      assert.equal("idle", r.status)
      assert.is_true(hd:respond(r.requests[1].request_id, "yes"))
      assert.equal("completed", hd:wait().status)
      local keys = {}
      for _, row in ipairs(assert(store:scan("journal", "jg1/"))) do
        keys[#keys + 1] = row.key:match("/(%d+)$") .. " " .. weft.json.decode(row.value).what
      end
      assert.same({ "0001 mock:judge", "0002 mock:judge" }, keys)
      assert.equal(2, #calls)
    end)

    it("replays the recorded verdicts when the invocation runs again in another process", function()
      local dir = scratch.dir()
      local path, store = files.write(dir .. "/flow.lua", JUDGED), "sqlite:" .. dir .. "/weft.db"
      local env = { WEFT_TEST_COUNT = dir .. "/count" }
      local bin = procs.weft_bin()
      local rc, out, err = procs.run({ bin, "run", path, "--store", store, "--run-id", "jr1" }, env)
      assert.equal(3, rc, out .. err) -- idle: waits on the request
      assert.equal("judged\n", procs.slurp(dir .. "/count"))
      local rc2, out2, err2 = procs.run({ bin, "runs", "respond", "jr1", "req-0-0-1-1", '"yes"', "--store", store }, env)
      assert.equal(0, rc2, out2 .. err2)
      assert.mentions("final yes", out2)
      -- the re-executed invocation got the first verdict from the journal;
      -- only the new output was judged by the model
      assert.equal("judged\njudged\n", procs.slurp(dir .. "/count"))
    end)

    it("fails the executor with the guardrail error on a block", function()
      local ex = weft.executor("answer", { handle = function(m, ctx) ctx:yield_output(m) end,
        guards = { judge.new { model = "mock:judge", instructions = "x", stages = { "input" } } } })
      local r = weft.workflow("judged2"):start(ex):build():run("we refund everything", { store = "memory:" })
      assert.equal("failed", r.status)
      assert.mentions("guardrail judge blocked input", tostring(r.error))
      assert.mentions("promises a refund", tostring(r.error))
    end)

    it("journals a judge on the input inside the invocation: a resume after a crash does not ask again", function()
      -- the judge asks the provider test server (its "echo: ..." is no
      -- verdict: fail = "open" allows); the handler marks that it started
      -- (after the judge) and sleeps WEFT_TEST_SLEEP s
      local dir = scratch.dir()
      local path = files.write(dir .. "/flow.lua", [[
local weft = require "weft"
local judge = require "weft.guard.judge"
local ex = weft.executor("answer", { handle = function(m, ctx)
  local f = assert(io.open(os.getenv("WEFT_TEST_MARK"), "a")); f:write("started\n"); f:close()
  weft.sleep(tonumber(os.getenv("WEFT_TEST_SLEEP")) or 0)
  ctx:yield_output("answered " .. m)
end, guards = { judge.new { model = "openai:m1", instructions = "x", stages = { "input" }, fail = "open",
  llm = { base_url = os.getenv("WEFT_TEST_LLM_URL"), api_key = "sk-test", retries = 0 } } } })
return weft.workflow("judged-input"):start(ex):build()
]])
      local store, mark = "sqlite:" .. dir .. "/weft.db", dir .. "/mark"
      local bin = procs.weft_bin()
      local penv = { WEFT_TEST_LLM_URL = env.base("openai"), WEFT_TEST_MARK = mark, WEFT_TEST_SLEEP = "30",
                     WEFT_LEASE_TTL = "0.5" }
      local p = procs.spawn({ bin, "run", path, "--store", store, "--run-id", "ji1", "--input", "hello" }, penv)
      while not procs.slurp(mark) do weft.sleep(0.005) end
      procs.kill(p)
      procs.wait(p, 10)
      assert.equal(1, env.srv:stats().requests)
      penv.WEFT_TEST_SLEEP = "0"
      local rc, out, err = procs.run({ bin, "runs", "resume", "ji1", "--store", store, "--wait" }, penv, 60)
      assert.equal(0, rc, out .. err)
      assert.mentions("answered hello", out)
      assert.equal("started\nstarted\n", procs.slurp(mark)) -- the handler ran again
      -- its judge's verdict came from the journal: the model was asked once
      assert.equal(1, env.srv:stats().requests)
      local st = assert(weft.store.open(store))
      local rows = assert(st:scan("journal", "ji1/"))
      st:close()
      assert.equal(1, #rows)
      assert.equal("openai:m1", weft.json.decode(rows[1].value).what)
    end)
  end)
end)
