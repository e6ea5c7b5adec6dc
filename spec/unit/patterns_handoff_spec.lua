-- spec/unit/patterns_handoff_spec.lua — weft.patterns.handoff
-- (docs/agents.md, Patterns): generated handoff_to_<peer> tools, the
-- conversation passing from agent to agent, the first reply without a
-- handoff as the answer, cycles past max_handoffs failing with the cycle
-- named (never a hang), and bad options.
local weft = require "weft"
local llm = require "weft.llm"
local patterns = require "weft.patterns"
local h = require "helpers"

local invoked = h.invoked

-- True when the last message is a tool result.
local function after_tool(messages) return messages[#messages].role == "tool" end

-- Register mock model `name` that hands off to `to` (calls
-- handoff_to_<to>) and then says `says`; records every call's messages.
local function hands_off(name, to, says)
  local calls = {}
  llm.mock.register(name, {
    { when = function(m) calls[#calls + 1] = m; return after_tool(m) end, reply = says or "" },
    { tool_calls = { { name = "handoff_to_" .. to, arguments = { reason = "theirs" } } } },
  })
  return calls
end

-- Register mock model `name` answering `text`; records every call.
local function answers(name, text)
  local calls = {}
  llm.mock.register(name, { { reply = function(m) calls[#calls + 1] = m; return text end } })
  return calls
end

local function agent(name, model, extra)
  local o = { name = name, model = "mock:" .. (model or name) }
  for k, v in pairs(extra or {}) do o[k] = v end
  return weft.agent(o)
end

describe("weft.patterns.handoff", function()
  before_each(function() llm.mock.reset() end)
  after_each(function() llm.mock.reset() end)

  it("passes the conversation to the agent a handoff tool names; its reply is the answer", function()
    hands_off("triage", "billing", "Let me pass you to billing.")
    local seen = answers("billing", "Your refund is on its way.")
    answers("tech", "never")
    local wf = patterns.handoff { agents = { agent("triage"), agent("billing"), agent("tech") } }
    local res = wf:run("I was charged twice")
    assert.equal("completed", res.status, res.error)
    local out = res.outputs[1]
    assert.equal("Your refund is on its way.", out.text)
    assert.equal("billing", out.agent)
    assert.same({ "triage", "billing" }, out.path)
    assert.same({ "triage", "billing" }, invoked(res.events))
    -- billing saw the user's request and triage's note, not triage's tool traffic
    assert.equal(1, #seen)
    assert.same({ "user", "assistant" }, { seen[1][1].role, seen[1][2].role })
    assert.equal("triage", seen[1][2].name)
    assert.equal("Let me pass you to billing.", seen[1][2].content)
    assert.equal(3, #out.messages)
    local ev = h.find(res.events, "custom", "triage")
    assert.same({ "handoff", "triage", "billing", 1 }, { ev.name, ev.data.from, ev.data.to, ev.data.count })
  end)

  it("gives each agent one handoff tool per peer, none for itself", function()
    -- the echo model calls a tool named in the user message only if it is offered
    answers("b", "b here"); answers("c", "c here")
    local wf = patterns.handoff { agents = { agent("a", "echo"), agent("b"), agent("c") } }
    local res = wf:run("call handoff_to_a")
    assert.equal("completed", res.status, res.error)
    assert.equal("echo: call handoff_to_a", res.outputs[1].text)
    assert.same({ "a" }, res.outputs[1].path)
    for _, peer in ipairs { "b", "c" } do
      res = wf:run("call handoff_to_" .. peer)
      assert.equal(peer .. " here", res.outputs[1].text)
      assert.same({ "a", peer }, res.outputs[1].path)
      -- the tool's result reached the model, which answered after it
      assert.equal("tool said: Handing the conversation to '" .. peer .. "'.", res.outputs[1].messages[2].content)
    end
  end)

  it("runs a chain a -> b -> c and leaves the tools of each agent usable", function()
    local add = weft.tool { name = "add", description = "adds",
      parameters = { type = "object", properties = { x = { type = "number" }, y = { type = "number" } } },
      handler = function(args) return args.x + args.y end }
    hands_off("a", "b")
    hands_off("b", "c", "c knows")
    llm.mock.register("c", {
      { when = after_tool, reply = function(m) return "the sum is " .. m[#m].content end },
      { tool_calls = { { name = "add", arguments = { x = 2, y = 3 } } } },
    })
    local res = patterns.handoff { agents = { agent("a"), agent("b"), agent("c", nil, { tools = { add } }) } }:run("2+3?")
    assert.equal("completed", res.status, res.error)
    assert.equal("the sum is 5", res.outputs[1].text)
    assert.same({ "a", "b", "c" }, res.outputs[1].path)
    assert.same({ "a", "b", "c" }, invoked(res.events))
    -- a said nothing after its handoff: no empty message in the conversation
    local contents = {}
    for i, m in ipairs(res.outputs[1].messages) do contents[i] = m.content end
    assert.same({ "2+3?", "c knows", "the sum is 5" }, contents)
  end)

  it("answers at once when the start agent does not hand off", function()
    answers("a", "done myself")
    answers("b", "never")
    local res = patterns.handoff { agents = { agent("a"), agent("b") } }:run("easy one")
    assert.same({ "a" }, invoked(res.events))
    assert.equal("done myself", res.outputs[1].text)
    assert.same({ "a" }, res.outputs[1].path)
  end)

  it("starts with the agent named by start", function()
    answers("a", "from a")
    answers("b", "from b")
    local res = patterns.handoff { agents = { agent("a"), agent("b") }, start = "b" }:run("x")
    assert.equal("from b", res.outputs[1].text)
    assert.equal("b", patterns.handoff { agents = { agent("a"), agent("b") }, start = "b" }:describe().start)
  end)

  describe("cycles", function()
    it("fail the run past max_handoffs, naming the path and the cycle", function()
      local calls_a = hands_off("a", "b")
      hands_off("b", "a")
      local res = patterns.handoff { agents = { agent("a"), agent("b") }, max_handoffs = 3 }:run("ping")
      assert.equal("failed", res.status)
      assert.mentions("handoff: exceeded max_handoffs (3): a -> b -> a -> b -> a (cycle a -> b -> a)", res.error)
      -- 3 handoffs happened (4 turns), the 4th was refused
      assert.same({ "a", "b", "a", "b" }, invoked(res.events))
      assert.equal(4, #calls_a) -- two turns of a, each: tool call + answer
    end)

    it("of three agents name the whole loop", function()
      hands_off("a", "b"); hands_off("b", "c"); hands_off("c", "a")
      local res = patterns.handoff { agents = { agent("a"), agent("b"), agent("c") }, max_handoffs = 4 }:run("x")
      assert.equal("failed", res.status)
      assert.mentions("a -> b -> c -> a -> b -> c (cycle c -> a -> b -> c)", res.error)
    end)

    it("end with the default max_handoffs (10) instead of looping", function()
      hands_off("a", "b"); hands_off("b", "a")
      local res = patterns.handoff { agents = { agent("a"), agent("b") } }:run("x")
      assert.equal("failed", res.status)
      assert.mentions("exceeded max_handoffs (10)", res.error)
      assert.equal(11, #invoked(res.events))
    end)

    it("with max_handoffs = 0 any handoff fails", function()
      hands_off("a", "b"); answers("b", "hi")
      local res = patterns.handoff { agents = { agent("a"), agent("b") }, max_handoffs = 0 }:run("x")
      assert.equal("failed", res.status)
      assert.mentions("exceeded max_handoffs (0): a -> b", res.error)
    end)

    it("past a large max_handoffs, not the run's default superstep limit", function()
      hands_off("a", "b"); hands_off("b", "a")
      local res = patterns.handoff { agents = { agent("a"), agent("b") }, max_handoffs = 120 }:run("x")
      assert.equal("failed", res.status)
      assert.mentions("exceeded max_handoffs (120): ... -> ", res.error)
      assert.equal(121, #invoked(res.events))
    end)
  end)

  it("the first handoff of a reply wins when the model calls several", function()
    llm.mock.register("a", {
      { when = after_tool, reply = "" },
      { tool_calls = { { name = "handoff_to_c" }, { name = "handoff_to_b" } } },
    })
    answers("b", "b answers"); answers("c", "c answers")
    local res = patterns.handoff { agents = { agent("a"), agent("b"), agent("c") } }:run("x")
    assert.equal("c answers", res.outputs[1].text)
  end)

  describe('mode = "human_in_loop"', function()
    -- The user_input requests of a run result.
    local function asked(r)
      local out = {}
      for i, q in ipairs(r.requests or {}) do out[i] = q.request end
      return out
    end

    it("asks the user after a reply without a handoff and goes on with the answer", function()
      hands_off("triage", "billing", "Passing you to billing.")
      local seen = {}
      llm.mock.register("billing", { { reply = function(m)
        seen[#seen + 1] = m
        return #seen == 1 and "What is your order number?" or "Refund for order 42 sent."
      end } })
      local wf = patterns.handoff { agents = { agent("triage"), agent("billing") }, mode = "human_in_loop" }
      local run = wf:spawn("I was charged twice")
      local r = run:wait()
      assert.equal("idle", r.status, r.error)
      assert.same({ { type = "user_input", agent = "billing", text = "What is your order number?" } }, asked(r))
      assert.equal("billing", r.requests[1].executor_id)
      assert(run:respond(r.requests[1].request_id, "order 42"))
      r = run:wait()
      assert.equal("idle", r.status, r.error)
      assert.same({ { type = "user_input", agent = "billing", text = "Refund for order 42 sent." } }, asked(r))
      -- billing's second call saw the whole conversation with the user's answer
      local last = seen[2]
      assert.same({ "user", "order 42" }, { last[#last].role, last[#last].content })
      assert.equal("What is your order number?", last[#last - 1].content)
      assert(run:respond(r.requests[1].request_id, { done = true }))
      r = run:wait()
      assert.equal("completed", r.status, r.error)
      local out = r.outputs[1]
      assert.equal("user_done", out.reason)
      assert.equal(1, out.user_turns)
      assert.equal("Refund for order 42 sent.", out.text)
      assert.equal("billing", out.agent)
      assert.same({ "triage", "billing" }, out.path)
      local contents = {}
      for i, m in ipairs(out.messages) do contents[i] = m.content end
      assert.same({ "I was charged twice", "Passing you to billing.", "What is your order number?", "order 42",
                    "Refund for order 42 sent." }, contents)
    end)

    it("lets the answer lead to a handoff; the next agent asks in turn", function()
      llm.mock.register("a", {
        { when = after_tool, reply = "" },
        { match = "billing", tool_calls = { { name = "handoff_to_b" } } },
        { reply = "How can I help?" },
      })
      answers("b", "billing here")
      local run = patterns.handoff { agents = { agent("a"), agent("b") }, mode = "human_in_loop" }:spawn("hi")
      local r = run:wait()
      assert.equal("How can I help?", asked(r)[1].text)
      assert(run:respond(r.requests[1].request_id, "it is about billing"))
      r = run:wait()
      assert.equal("idle", r.status, r.error)
      assert.same({ type = "user_input", agent = "b", text = "billing here" }, asked(r)[1])
      assert(run:respond(r.requests[1].request_id, ""))
      r = run:wait()
      assert.equal("completed", r.status, r.error)
      assert.same({ "a", "b" }, r.outputs[1].path)
      assert.equal(1, r.outputs[1].user_turns)
      assert.equal("user_done", r.outputs[1].reason)
    end)

    it("ends without asking when the termination fires", function()
      answers("a", "all done")
      local seen
      local res = patterns.handoff { agents = { agent("a"), agent("b", "echo") }, mode = "human_in_loop",
        termination = function(st) seen = st; return st.messages[#st.messages].content == "all done" and "solved" end,
      }:run("x")
      assert.equal("completed", res.status, res.error)
      assert.equal("solved", res.outputs[1].reason)
      assert.equal(0, h.count(res.events, "request_info"))
      assert.equal("a", seen.agent)
      assert.equal(0, seen.user_turns)
    end)

    it("fails naming the agent on an answer that is not user input", function()
      answers("a", "question?")
      local run = patterns.handoff { agents = { agent("a"), agent("b", "echo") }, mode = "human_in_loop" }:spawn("x")
      local r = run:wait()
      assert(run:respond(r.requests[1].request_id, { 1, 2 }))
      r = run:wait()
      assert.equal("failed", r.status)
      assert.mentions("handoff: the answer to agent 'a''s user_input request must be a string, a message", r.error)
    end)

    it("is not the default: autonomous runs complete at the first answer", function()
      answers("a", "done")
      local res = patterns.handoff { agents = { agent("a"), agent("b", "echo") }, mode = "autonomous" }:run("x")
      assert.equal("completed", res.status)
      assert.is_nil(res.outputs[1].reason)
      assert.equal(0, h.count(res.events, "request_info"))
    end)

    it("rejects an unknown mode and a termination without it", function()
      local a, b = agent("a", "echo"), agent("b", "echo")
      assert.mentions("handoff: mode must be 'autonomous' or 'human_in_loop', got 'ask'", h.error_of(patterns.handoff, { agents = { a, b }, mode = "ask" }))
      assert.mentions('handoff: termination needs mode = "human_in_loop"',
                      h.error_of(patterns.handoff, { agents = { a, b }, termination = function() end }))
      assert.mentions("handoff: termination must be a function",
                      h.error_of(patterns.handoff, { agents = { a, b }, mode = "human_in_loop", termination = 1 }))
    end)
  end)

  it("fails the run naming an agent whose model call fails", function()
    hands_off("a", "b")
    llm.mock.register("b", { { fail = { status = 400 } } })
    local res = patterns.handoff { agents = { agent("a"), agent("b") } }:run("x")
    assert.equal("failed", res.status)
    assert.mentions("handoff: agent 'b'", res.error)
  end)

  describe("rejects bad options", function()
    local a, b = agent("a", "echo"), agent("b", "echo")
    it("empty or duplicate agents", function()
      assert.mentions("handoff: agents must be a non-empty list", h.error_of(patterns.handoff, { agents = {} }))
      assert.mentions("handoff: duplicate agent name 'a'", h.error_of(patterns.handoff, { agents = { a, b, a } }))
    end)
    it("a start naming no agent", function()
      assert.mentions("handoff: start names no agent: 'zed' (agents: a, b)",
                      h.error_of(patterns.handoff, { agents = { a, b }, start = "zed" }))
    end)
    it("an agent that is not a weft.agent (tools cannot be added)", function()
      local duck = { name = "duck", run = function() return { text = "quack" } end }
      assert.mentions("handoff: agents[2] 'duck' is not a weft.agent", h.error_of(patterns.handoff, { agents = { a, duck } }))
    end)
    it("an agent that already has a tool of a generated name", function()
      local clash = weft.tool { name = "handoff_to_b", handler = function() return "x" end }
      local err = h.error_of(patterns.handoff, { agents = { agent("a", "echo", { tools = { clash } }), b } })
      assert.mentions("handoff: agent 'a'", err)
      assert.mentions("duplicate tool name 'handoff_to_b'", err)
    end)
    it("a name that cannot make a tool name", function()
      local err = h.error_of(patterns.handoff, { agents = { a, agent("b c", "echo") } })
      assert.mentions("handoff: agent 'a': cannot make the tool for peer 'b c'", err)
    end)
    it("a negative max_handoffs", function()
      assert.mentions("handoff: max_handoffs must be an integer >= 0",
                      h.error_of(patterns.handoff, { agents = { a, b }, max_handoffs = -1 }))
    end)
  end)
end)
