-- spec/unit/patterns_concurrent_spec.lua — weft.patterns.concurrent
-- (docs/agents.md, Patterns): fan-out of the input to every agent, fan-in
-- to an aggregator (default, custom, texts, synthesize), partial failures
-- reported to the aggregator while the run completes, bad options named.
local weft = require "weft"
local llm = require "weft.llm"
local patterns = require "weft.patterns"
local h = require "helpers"

local aggregators = patterns.aggregators

local invoked = h.invoked

-- Register mock model `name` answering reply (a string or fn(messages))
-- and recording the messages of each call; returns the list of calls.
local function scripted(name, reply)
  local calls = {}
  llm.mock.register(name, { {
    reply = function(messages)
      calls[#calls + 1] = messages
      if type(reply) == "function" then return reply(messages) end
      return reply
    end,
  } })
  return calls
end

-- Three experts answering "<name>: <question>".
local function experts()
  local list = {}
  for i, n in ipairs { "researcher", "marketer", "legal" } do
    scripted(n, function(msgs) return n .. ": " .. msgs[#msgs].content end)
    list[i] = weft.agent { name = n, model = "mock:" .. n }
  end
  return list
end

describe("weft.patterns.concurrent", function()
  before_each(function() llm.mock.reset() end)
  after_each(function() llm.mock.reset() end)

  it("sends the input to every agent and returns the list of {agent, text} in agent order", function()
    local wf = patterns.concurrent { agents = experts() }
    local res = wf:run("launch an eBike")
    assert.equal("completed", res.status, res.error)
    assert.same({ { { agent = "researcher", text = "researcher: launch an eBike" },
                    { agent = "marketer", text = "marketer: launch an eBike" },
                    { agent = "legal", text = "legal: launch an eBike" } } }, res.outputs)
  end)

  it("runs dispatcher, then every agent in one superstep, then the aggregator", function()
    local res = patterns.concurrent { agents = experts() }:run("q")
    assert.same({ "dispatcher", "researcher", "marketer", "legal", "aggregator" }, invoked(res.events))
    for _, n in ipairs { "researcher", "marketer", "legal" } do
      assert.equal(1, h.find(res.events, "executor_invoked", n).superstep)
    end
    assert.equal(0, h.find(res.events, "executor_invoked", "dispatcher").superstep)
    assert.equal(2, h.find(res.events, "executor_invoked", "aggregator").superstep)
    local d = patterns.concurrent { agents = experts() }:describe()
    assert.equal("fan_out", d.edges[1].kind)
    assert.equal("fan_in", d.edges[2].kind)
  end)

  it("gives every agent the whole input conversation", function()
    local a = scripted("a", "A")
    local b = scripted("b", "B")
    local input = { { role = "user", content = "q1" }, { role = "assistant", content = "a1" },
                    { role = "user", content = "q2" } }
    local res = patterns.concurrent { agents = { weft.agent { name = "a", model = "mock:a" },
                                                 weft.agent { name = "b", model = "mock:b" } } }:run(input)
    assert.equal("completed", res.status)
    for _, calls in ipairs { a, b } do
      assert.equal(3, #calls[1])
      assert.equal("q2", calls[1][3].content)
    end
  end)

  it("passes the results and the input to a custom aggregator and outputs what it returns", function()
    local got_results, got_info
    local wf = patterns.concurrent {
      agents = experts(),
      aggregator = function(results, info)
        got_results, got_info = results, info
        return { count = #results, first = results[1].agent }
      end,
    }
    local res = wf:run("ship it")
    assert.same({ { count = 3, first = "researcher" } }, res.outputs)
    assert.equal(3, #got_results)
    assert.equal("ship it", got_info.messages[1].content)
    assert.equal("aggregator", got_info.ctx.executor_id)
  end)

  describe("partial failures", function()
    it("reports an agent whose model call fails as {agent, error} and completes the run", function()
      llm.mock.register("down", { { fail = { status = 400 } } })
      local agents = experts()
      table.insert(agents, 2, weft.agent { name = "flaky", model = "mock:down" })
      local res = patterns.concurrent { agents = agents }:run("q")
      assert.equal("completed", res.status)
      local out = res.outputs[1]
      assert.equal(4, #out)
      assert.equal("flaky", out[2].agent)
      assert.is_nil(out[2].text)
      assert.mentions("agent 'flaky'", out[2].error)
      assert.mentions("400", out[2].error)
      assert.equal("researcher: q", out[1].text)
      assert.equal("marketer: q", out[3].text)
      assert.equal(0, h.count(res.events, "executor_failed"))
      assert.mentions("agent 'flaky'", h.find(res.events, "log", "flaky").data.message)
    end)

    it("reports an agent whose run raises, naming it", function()
      local raiser = { name = "raiser", run = function() error("exploded") end }
      local res = patterns.concurrent { agents = { raiser, experts()[1] } }:run("q")
      assert.equal("completed", res.status)
      assert.equal("raiser", res.outputs[1][1].agent)
      assert.mentions("agent 'raiser'", res.outputs[1][1].error)
      assert.mentions("exploded", res.outputs[1][1].error)
    end)

    it("fails when every agent failed, naming each one and its error, without calling the aggregator", function()
      llm.mock.register("down", { { fail = { status = 400 } } })
      local called = false
      local res = patterns.concurrent { agents = {
        weft.agent { name = "x", model = "mock:nobody" }, weft.agent { name = "y", model = "mock:down" } },
        aggregator = function() called = true; return "never" end }:run("q")
      assert.equal("failed", res.status)
      assert.mentions("concurrent: every participant failed (2 of 2): 'x': agent 'x'", res.error)
      assert.mentions("; 'y': agent 'y'", res.error)
      assert.mentions("400", res.error)
      assert.equal(0, #res.outputs)
      assert.is_false(called)
      -- the failure is the aggregator executor's
      assert.equal("aggregator", h.find(res.events, "executor_failed").executor_id)
    end)
  end)

  describe("aggregators", function()
    it("texts() joins the successful replies", function()
      llm.mock.register("down", { { fail = { status = 400 } } })
      local agents = experts()
      agents[4] = weft.agent { name = "gone", model = "mock:down" }
      local res = patterns.concurrent { agents = agents, aggregator = aggregators.texts(" | ") }:run("q")
      assert.same({ "researcher: q | marketer: q | legal: q" }, res.outputs)
    end)

    it("synthesize(agent) asks an agent to merge the answers, failures marked", function()
      llm.mock.register("down", { { fail = { status = 400 } } })
      local merged = scripted("merger", "one merged answer")
      local agents = experts()
      agents[4] = weft.agent { name = "gone", model = "mock:down" }
      local wf = patterns.concurrent {
        agents = agents, aggregator = aggregators.synthesize(weft.agent { name = "merger", model = "mock:merger" }) }
      local res = wf:run("launch plan")
      assert.equal("completed", res.status, res.error)
      assert.equal("one merged answer", res.outputs[1].text)
      assert.equal(4, #res.outputs[1].results)
      assert.equal(1, #merged)
      local prompt = merged[1][#merged[1]].content
      assert.mentions("launch plan", prompt)
      assert.mentions("## researcher\nresearcher: launch plan", prompt)
      assert.mentions("## legal\nlegal: launch plan", prompt)
      assert.mentions("## gone\n(failed: agent 'gone'", prompt)
    end)

    it("synthesize is not called when every agent failed: the run fails naming them", function()
      local merged = scripted("merger", "never")
      local res = patterns.concurrent {
        agents = { weft.agent { name = "x", model = "mock:nobody" } },
        aggregator = aggregators.synthesize(weft.agent { name = "merger", model = "mock:merger" }) }:run("q")
      assert.equal("failed", res.status)
      assert.mentions("concurrent: every participant failed (1 of 1): 'x': agent 'x'", res.error)
      assert.equal(0, #merged)
    end)

    it("synthesize fails the run naming the merging agent when it fails", function()
      local res = patterns.concurrent {
        agents = experts(),
        aggregator = aggregators.synthesize(weft.agent { name = "merger", model = "mock:missing" }) }:run("q")
      assert.equal("failed", res.status)
      assert.mentions("agent 'merger'", res.error)
    end)

    it("an aggregator returning nil fails the run with a clear error", function()
      local res = patterns.concurrent { agents = experts(), aggregator = function() end }:run("q")
      assert.equal("failed", res.status)
      assert.mentions("concurrent: the aggregator returned nil", res.error)
    end)

    it("checks their arguments", function()
      assert.mentions("aggregators.synthesize: expects an agent", h.error_of(aggregators.synthesize, "x"))
      assert.mentions("aggregators.texts: sep must be a string", h.error_of(aggregators.texts, 3))
    end)
  end)

  it("fails the run on input that is neither a string nor messages", function()
    local res = patterns.concurrent { agents = experts() }:run(true)
    assert.equal("failed", res.status)
    assert.mentions("concurrent: input must be a string or a list of messages", res.error)
  end)

  describe("rejects bad options", function()
    local a = weft.agent { name = "a", model = "mock:echo" }
    it("an empty agents list", function()
      assert.mentions("concurrent: agents must be a non-empty list", h.error_of(patterns.concurrent, { agents = {} }))
    end)
    it("duplicate names", function()
      assert.mentions("concurrent: duplicate agent name 'a'", h.error_of(patterns.concurrent, { agents = { a, a } }))
    end)
    it("an agent named like an executor of the pattern", function()
      local err = h.error_of(patterns.concurrent, { agents = { weft.agent { name = "aggregator", model = "mock:echo" } } })
      assert.mentions("concurrent: agent name 'aggregator' (agents[1]) is reserved", err)
    end)
    it("an aggregator that is not callable", function()
      assert.mentions("concurrent: aggregator must be a function",
                      h.error_of(patterns.concurrent, { agents = { a }, aggregator = "sum" }))
    end)
  end)
end)
