-- spec/unit/patterns_sequential_spec.lua — weft.patterns.sequential
-- (docs/agents.md, Patterns): a chain of agents where each sees the whole
-- conversation so far; output {messages, text}; the steps as executors in
-- the run's events; failures and bad input named.
local weft = require "weft"
local llm = require "weft.llm"
local patterns = require "weft.patterns"
local h = require "helpers"

local invoked = h.invoked

local scripted = h.scripted

-- The (role, name, content) triples of a message list.
local function triples(messages)
  local out = {}
  for i, m in ipairs(messages) do out[i] = { m.role, m.name or "", m.content } end
  return out
end

describe("weft.patterns.sequential", function()
  before_each(function() llm.mock.reset() end)
  after_each(function() llm.mock.reset() end)

  it("runs the agents in order, each seeing the whole conversation so far", function()
    local seen_w = scripted("writer", "Ride far, spend less.")
    local seen_r = scripted("reviewer", "Punchy; add emotion.")
    local seen_p = scripted("polisher", "Ride far, spend less, smile more.")
    local wf = patterns.sequential { agents = {
      weft.agent { name = "writer", model = "mock:writer" },
      weft.agent { name = "reviewer", model = "mock:reviewer" },
      weft.agent { name = "polisher", model = "mock:polisher" },
    } }
    local res = wf:run("Write a tagline for an eBike.")
    assert.equal("completed", res.status)
    assert.same({ { { "user", "", "Write a tagline for an eBike." } } }, { triples(seen_w[1]) })
    assert.same({ { "user", "", "Write a tagline for an eBike." },
                  { "assistant", "writer", "Ride far, spend less." } }, triples(seen_r[1]))
    assert.same({ { "user", "", "Write a tagline for an eBike." },
                  { "assistant", "writer", "Ride far, spend less." },
                  { "assistant", "reviewer", "Punchy; add emotion." } }, triples(seen_p[1]))
    assert.equal(1, #res.outputs)
    local out = res.outputs[1]
    assert.equal("Ride far, spend less, smile more.", out.text)
    assert.same({ { "user", "", "Write a tagline for an eBike." },
                  { "assistant", "writer", "Ride far, spend less." },
                  { "assistant", "reviewer", "Punchy; add emotion." },
                  { "assistant", "polisher", "Ride far, spend less, smile more." } }, triples(out.messages))
  end)

  it("passes the full conversation on: an agent's tool calls and tool results reach the next agent", function()
    local seen = scripted("checker", "3 is right")
    local wf = patterns.sequential { agents = {
      weft.agent { name = "calc", model = "mock:echo", tools = { h.add_tool() } },
      weft.agent { name = "checker", model = "mock:checker" } } }
    local res = wf:run('call add {"a":1,"b":2}')
    assert.equal("completed", res.status, res.error)
    local got = seen[1]
    assert.same({ "user", "assistant", "tool", "assistant" },
                { got[1].role, got[2].role, got[3].role, got[4].role })
    assert.equal(4, #got)
    assert.equal("add", got[2].tool_calls[1].name)
    assert.same({ a = 1, b = 2 }, got[2].tool_calls[1].arguments)
    assert.equal(got[2].tool_calls[1].id, got[3].tool_call_id)
    assert.equal("3", got[3].content)
    assert.equal("tool said: 3", got[4].content)
    -- the output's conversation too, the calc agent's messages named after it
    local out = res.outputs[1]
    assert.same({ { "user", "", 'call add {"a":1,"b":2}' }, { "assistant", "calc", "" }, { "tool", "add", "3" },
                  { "assistant", "calc", "tool said: 3" }, { "assistant", "checker", "3 is right" } },
                triples(out.messages))
    assert.equal("3 is right", out.text)
  end)

  it("shows each agent as an executor, one superstep after the other", function()
    scripted("s1", "one"); scripted("s2", "two")
    local wf = patterns.sequential { agents = {
      weft.agent { name = "first", model = "mock:s1" }, weft.agent { name = "second", model = "mock:s2" } } }
    local res = wf:run("go")
    assert.same({ "first", "second" }, invoked(res.events))
    assert.equal(0, h.find(res.events, "executor_invoked", "first").superstep)
    assert.equal(1, h.find(res.events, "executor_invoked", "second").superstep)
    assert.equal(1, h.count(res.events, "output"))
    assert.equal("second", h.find(res.events, "output").executor_id)
    assert.same({ "first", "second" }, (function()
      local ids = {}
      for i, e in ipairs(wf:describe().executors) do ids[i] = e.id end
      return ids
    end)())
  end)

  it("keeps the instructions of each agent as its own system message only", function()
    local seen = scripted("with_sys", "ok")
    scripted("plain", "fine")
    local wf = patterns.sequential { agents = {
      weft.agent { name = "a", model = "mock:with_sys", instructions = "You are A." },
      weft.agent { name = "b", model = "mock:plain" } } }
    local res = wf:run("hi")
    assert.same({ { "system", "", "You are A." }, { "user", "", "hi" } }, triples(seen[1]))
    for _, m in ipairs(res.outputs[1].messages) do assert.not_equal("system", m.role) end
  end)

  it("accepts a list of messages as input and keeps it at the head of the conversation", function()
    local seen = scripted("one", "answer")
    local wf = patterns.sequential { agents = { weft.agent { name = "solo", model = "mock:one" } } }
    local input = { { role = "system", content = "Be brief." }, { role = "user", content = "q1" },
                    { role = "assistant", content = "a1" }, { role = "user", content = "q2" } }
    local res = wf:run(input)
    assert.equal("completed", res.status)
    assert.same({ { "system", "", "Be brief." }, { "user", "", "q1" }, { "assistant", "", "a1" },
                  { "user", "", "q2" } }, triples(seen[1]))
    assert.equal(5, #res.outputs[1].messages)
    assert.equal("answer", res.outputs[1].text)
  end)

  it("does not share state between runs of the same workflow, even at once", function()
    scripted("upper", function(msgs) return msgs[#msgs].content:upper() end)
    scripted("twice", function(msgs) return msgs[#msgs].content .. msgs[#msgs].content end)
    local wf = patterns.sequential { agents = {
      weft.agent { name = "u", model = "mock:upper" }, weft.agent { name = "t", model = "mock:twice" } } }
    local h1, h2 = wf:spawn("ab"), wf:spawn("cd")
    local r1, r2 = h1:wait(), h2:wait()
    assert.equal("ABAB", r1.outputs[1].text)
    assert.equal("CDCD", r2.outputs[1].text)
    assert.equal(3, #r1.outputs[1].messages)
  end)

  it("fails the run naming the agent whose model call failed, and stops there", function()
    llm.mock.register("bad", { { fail = { status = 400 } } })
    scripted("good", "ok")
    local after = scripted("after", "never")
    local wf = patterns.sequential { agents = {
      weft.agent { name = "good", model = "mock:good" },
      weft.agent { name = "broken", model = "mock:bad", llm = { retries = 0 } },
      weft.agent { name = "after", model = "mock:after" } } }
    local res = wf:run("x")
    assert.equal("failed", res.status)
    assert.mentions("sequential: agent 'broken'", res.error)
    assert.mentions("400", res.error)
    assert.equal(0, #after)
    assert.same({ "good", "broken" }, invoked(res.events))
  end)

  it("fails the run naming an agent whose run raises", function()
    local raising = { name = "raiser", run = function() error("kaboom") end }
    local wf = patterns.sequential { agents = { raising } }
    local res = wf:run("x")
    assert.equal("failed", res.status)
    assert.mentions("agent 'raiser'", res.error)
    assert.mentions("kaboom", res.error)
  end)

  it("takes a workflow used as an agent as a participant", function()
    scripted("inner", "inner says hi")
    local inner = patterns.sequential { name = "inner", agents = { weft.agent { name = "i", model = "mock:inner" } } }
    local seen = scripted("outer", "outer done")
    local wf = patterns.sequential { agents = { inner:as_agent("nested"), weft.agent { name = "o", model = "mock:outer" } } }
    local res = wf:run("start")
    assert.equal("completed", res.status, res.error)
    assert.equal("nested", seen[1][2].name)
    assert.mentions("inner says hi", seen[1][2].content)
  end)

  it("fails the run with a clear error on input that is not a string or messages", function()
    local wf = patterns.sequential { agents = { weft.agent { name = "a", model = "mock:echo" } } }
    local res = wf:run(42)
    assert.equal("failed", res.status)
    assert.mentions("sequential: input must be a string or a list of messages", res.error)
    res = wf:run({ { content = "no role" } })
    assert.equal("failed", res.status)
    assert.mentions("sequential: input[1] is not a message", res.error)
  end)

  describe("rejects bad options", function()
    local a = weft.agent { name = "a", model = "mock:echo" }
    it("an empty or missing agents list", function()
      assert.mentions("sequential: agents must be a non-empty list of agents",
                      h.error_of(patterns.sequential, { agents = {} }))
      assert.mentions("sequential: agents must be a non-empty list of agents", h.error_of(patterns.sequential, {}))
    end)
    it("duplicate names, naming the agent and both positions", function()
      local err = h.error_of(patterns.sequential, { agents = { a, weft.agent { name = "b", model = "mock:echo" }, a } })
      assert.mentions("sequential: duplicate agent name 'a' (agents[1] and agents[3])", err)
    end)
    it("something that is not an agent", function()
      assert.mentions("sequential: agents[2] is not an agent", h.error_of(patterns.sequential, { agents = { a, "b" } }))
    end)
    it("unknown options and a non-table", function()
      assert.mentions("sequential: unknown option 'agent'", h.error_of(patterns.sequential, { agent = { a } }))
      assert.mentions("sequential: expects an options table", h.error_of(patterns.sequential, "a"))
    end)
    it("at the caller's line", function()
      local ok, err = pcall(function() local wf = patterns.sequential { agents = {} }; return wf end)
      assert.is_false(ok)
      assert.mentions("patterns_sequential_spec.lua:", err)
    end)
  end)
end)
