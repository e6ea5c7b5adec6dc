-- spec/unit/patterns_group_chat_spec.lua — weft.patterns.group_chat
-- (docs/agents.md, Patterns): the orchestrator/participant loop, selectors
-- (round_robin, smart, llm, no_repeat), terminations (max_messages,
-- max_rounds, keyword, any, all), the manager agent, the hard
-- max_iterations limit, and the errors for unknown participants and bad
-- options.
local weft = require "weft"
local llm = require "weft.llm"
local patterns = require "weft.patterns"
local h = require "helpers"

local selectors, terminations = patterns.selectors, patterns.terminations

local invoked = h.invoked

local scripted = h.scripted

-- Calls recorded per member name (see member).
local calls_of = {}

-- An agent named name whose reply is "<name> <turn>" (or reply); its
-- model calls are recorded in calls_of[name].
local function member(name, reply)
  calls_of[name] = scripted(name, reply or function(_, n) return name .. " " .. n end)
  return weft.agent { name = name, model = "mock:" .. name }
end

-- The speakers of the conversation's assistant messages.
local function names_of(messages)
  local out = {}
  for _, m in ipairs(messages) do
    if m.role == "assistant" then out[#out + 1] = m.name end
  end
  return out
end

describe("weft.patterns.group_chat", function()
  before_each(function() llm.mock.reset(); calls_of = {} end)
  after_each(function() llm.mock.reset() end)

  it("takes turns round robin until max_rounds, each speaker seeing the whole conversation", function()
    local a, b = member("a"), member("b")
    local calls_a, calls_b = calls_of.a, calls_of.b
    local wf = patterns.group_chat { agents = { a, b }, termination = terminations.max_rounds(4) }
    local res = wf:run("topic")
    assert.equal("completed", res.status, res.error)
    local out = res.outputs[1]
    assert.equal(4, out.rounds)
    assert.equal("max_rounds", out.reason)
    assert.same({ "a", "b", "a", "b" }, out.speakers)
    assert.same({ "topic", "a 1", "b 1", "a 2", "b 2" }, (function()
      local t = {}
      for i, m in ipairs(out.messages) do t[i] = m.content end
      return t
    end)())
    assert.same({ "a", "b", "a", "b" }, names_of(out.messages))
    -- b's second turn saw the input and three replies
    assert.equal(4, #calls_b[2])
    assert.equal("a 2", calls_b[2][4].content)
    assert.equal(2, #calls_a)
  end)

  it("shows the star in the events: orchestrator, speaker, orchestrator, ...", function()
    local res = patterns.group_chat { agents = { member("a"), member("b") },
                                      termination = terminations.max_rounds(3) }:run("go")
    assert.same({ "orchestrator", "a", "orchestrator", "b", "orchestrator", "a", "orchestrator" }, invoked(res.events))
    local picks = {}
    for _, ev in ipairs(h.filter(res.events, "custom")) do
      if ev.name == "speaker_selected" then picks[#picks + 1] = ev.data.speaker .. "@" .. ev.data.round end
    end
    assert.same({ "a@1", "b@2", "a@3" }, picks)
    assert.equal("orchestrator", h.find(res.events, "output").executor_id)
  end)

  describe("terminations", function()
    it("max_messages counts the input messages too", function()
      local res = patterns.group_chat { agents = { member("a"), member("b") },
                                        termination = terminations.max_messages(4) }:run("x")
      assert.equal("max_messages", res.outputs[1].reason)
      assert.equal(3, res.outputs[1].rounds)
      assert.equal(4, #res.outputs[1].messages)
    end)

    it("keyword ends when the last reply contains the word, in any case", function()
      local coder = member("coder", function(_, n) return "patch v" .. n end)
      local reviewer = member("reviewer", function(_, n) return n < 2 and "needs work" or "Looks good: APPROVED" end)
      local res = patterns.group_chat { agents = { coder, reviewer },
                                        termination = terminations.keyword("approved") }:run("fix the bug")
      assert.equal("keyword", res.outputs[1].reason)
      assert.equal(4, res.outputs[1].rounds)
      assert.equal("Looks good: APPROVED", res.outputs[1].messages[5].content)
    end)

    it("applies to the input messages: a conversation that already satisfies it ends at once", function()
      local a = member("a")
      local input = { { role = "user", content = "review this" }, { role = "assistant", name = "a", content = "ok" },
                      { role = "assistant", name = "b", content = "APPROVED" } }
      local res = patterns.group_chat { agents = { a, member("b") },
                                        termination = terminations.keyword("approved") }:run(input)
      assert.equal("completed", res.status, res.error)
      local out = res.outputs[1]
      assert.equal("keyword", out.reason)
      assert.equal(0, out.rounds)
      assert.same({}, out.speakers)
      assert.equal(3, #out.messages)
      assert.same({ "orchestrator" }, invoked(res.events))
      assert.equal(0, #calls_of.a)
      -- max_messages and custom terminations too
      res = patterns.group_chat { agents = { a }, termination = terminations.max_messages(3) }:run(input)
      assert.equal("max_messages", res.outputs[1].reason)
      local seen
      res = patterns.group_chat { agents = { a }, termination = function(st)
        seen = seen or st
        return #st.messages >= 1 and "enough"
      end }:run("hi")
      assert.equal("enough", res.outputs[1].reason)
      assert.equal(0, seen.rounds)
      assert.is_nil(seen.last_speaker)
      assert.equal(0, #calls_of.a)
    end)

    it("keyword does not fire on the user's input", function()
      local res = patterns.group_chat { agents = { member("a") }, max_iterations = 2,
                                        termination = terminations.keyword("done") }:run("say done")
      assert.equal("max_iterations", res.outputs[1].reason)
    end)

    it("any{} reports the first that fires; all{} needs every one after the same turn", function()
      local talk = function(_, n) return n == 2 and "done" or "more" end
      local res = patterns.group_chat { agents = { member("solo", talk) },
        termination = terminations.any { terminations.max_rounds(5), terminations.keyword("done") } }:run("x")
      assert.equal("keyword", res.outputs[1].reason)
      assert.equal(2, res.outputs[1].rounds)

      llm.mock.reset()
      local talk2 = function(_, n) return (n == 1 or n == 4) and "done" or "more" end
      res = patterns.group_chat { agents = { member("solo", talk2) },
        termination = terminations.all { terminations.max_rounds(3), terminations.keyword("done") } }:run("x")
      assert.equal("all(max_rounds, keyword)", res.outputs[1].reason)
      assert.equal(4, res.outputs[1].rounds)
    end)

    it("a custom termination may return true or a reason of its own", function()
      local res = patterns.group_chat { agents = { member("a") },
        termination = function(state) return state.rounds == 2 end }:run("x")
      assert.equal("termination", res.outputs[1].reason)
      llm.mock.reset()
      res = patterns.group_chat { agents = { member("a"), member("b") },
        termination = function(state) return state.last_speaker == "b" and "b spoke" end }:run("x")
      assert.equal("b spoke", res.outputs[1].reason)
      assert.equal(2, res.outputs[1].rounds)
    end)

    it("check their arguments", function()
      assert.mentions("terminations.max_rounds: n must be an integer >= 1", h.error_of(terminations.max_rounds, 0))
      assert.mentions("terminations.max_messages: n must be an integer >= 1", h.error_of(terminations.max_messages, 1.5))
      assert.mentions("terminations.keyword: word must be a non-empty string", h.error_of(terminations.keyword, ""))
      assert.mentions("terminations.any: expects a non-empty list", h.error_of(terminations.any, {}))
      assert.mentions("terminations.all: element 2 is not a termination", h.error_of(terminations.all, { print, 3 }))
    end)
  end)

  describe("max_iterations", function()
    it("ends the run with reason 'max_iterations' when the termination never fires", function()
      local res = patterns.group_chat { agents = { member("a"), member("b") }, max_iterations = 5,
                                        termination = terminations.keyword("never said") }:run("x")
      assert.equal("completed", res.status)
      assert.equal("max_iterations", res.outputs[1].reason)
      assert.equal(5, res.outputs[1].rounds)
    end)

    it("defaults to 20 turns without a termination", function()
      local res = patterns.group_chat { agents = { member("a"), member("b") } }:run("x")
      assert.equal("max_iterations", res.outputs[1].reason)
      assert.equal(20, res.outputs[1].rounds)
    end)

    it("is what stops a long chat, not the run's default superstep limit", function()
      local res = patterns.group_chat { agents = { member("a"), member("b") }, max_iterations = 60 }:run("x")
      assert.equal("completed", res.status, res.error)
      assert.equal(60, res.outputs[1].rounds)
      assert.is_true(res.supersteps > 100)
      -- an explicit run option still wins
      local res2 = patterns.group_chat { agents = { member("a") }, max_iterations = 60 }:run("x", { max_supersteps = 10 })
      assert.equal("failed", res2.status)
    end)
  end)

  describe("selectors", function()
    it("smart() picks the participant named in the last message, never its author", function()
      local writer = member("writer", function() return "writer here: draft done, reviewer please check" end)
      local reviewer = member("reviewer", function(_, n) return n == 1 and "Back to the Writer." or "ok" end)
      local research = member("researcher", "facts")
      local res = patterns.group_chat { agents = { research, writer, reviewer }, selector = selectors.smart(),
                                        termination = terminations.max_rounds(4) }:run("Writer, start please")
      assert.same({ "writer", "reviewer", "writer", "reviewer" }, res.outputs[1].speakers)
    end)

    it("smart() falls back to round robin when nobody is named", function()
      local res = patterns.group_chat { agents = { member("a", "hmm"), member("b", "well") },
        selector = selectors.smart(), termination = terminations.max_rounds(3) }:run("no names here")
      assert.same({ "a", "b", "a" }, res.outputs[1].speakers)
    end)

    it("smart() falls back to the participant after the last speaker", function()
      local a = member("a", "over to c")
      local res = patterns.group_chat { agents = { a, member("b", "b talks"), member("c", "c talks") },
        selector = selectors.smart(), termination = terminations.max_rounds(4) }:run("go")
      assert.same({ "a", "c", "a", "c" }, res.outputs[1].speakers)
    end)

    it("round_robin() moves on from whoever spoke last", function()
      local rr = selectors.round_robin()
      local p = { "a", "b", "c" }
      assert.equal("a", rr { participants = p, round = 0, messages = {} })
      assert.equal("a", rr { participants = p, round = 5, last_speaker = "c", messages = {} })
      assert.equal("c", rr { participants = p, round = 1, last_speaker = "b", messages = {} })
    end)

    it("llm(agent) asks an agent for the next speaker", function()
      local asked = scripted("chooser", function(_, n) return n % 2 == 1 and "Next: **b**." or "a" end)
      local chooser = weft.agent { name = "chooser", model = "mock:chooser" }
      local res = patterns.group_chat { agents = { member("a"), member("b") }, selector = selectors.llm(chooser),
                                        termination = terminations.max_rounds(3) }:run("task")
      assert.same({ "b", "a", "b" }, res.outputs[1].speakers)
      assert.equal(3, #asked)
      local prompt = asked[2][#asked[2]].content
      assert.mentions("Participants: a, b", prompt)
      assert.mentions("[b]: b 1", prompt)
    end)

    it("llm(agent) fails the run when the answer names no participant, quoting it", function()
      scripted("chooser", "I think the user should decide")
      local res = patterns.group_chat { agents = { member("a"), member("b") },
        selector = selectors.llm(weft.agent { name = "chooser", model = "mock:chooser" }) }:run("task")
      assert.equal("failed", res.status)
      assert.mentions("selector llm('chooser') named no participant (participants: a, b)", res.error)
      assert.mentions('it said: "I think the user should decide"', res.error)
      assert.same({ "orchestrator" }, invoked(res.events))
    end)

    it("no_repeat(inner) never lets the same speaker talk twice in a row", function()
      local always_a = function() return "a" end
      local res = patterns.group_chat { agents = { member("a"), member("b"), member("c") },
        selector = selectors.no_repeat(always_a), termination = terminations.max_rounds(4) }:run("x")
      assert.same({ "a", "b", "a", "b" }, res.outputs[1].speakers)
    end)

    it("no_repeat needs two participants", function()
      local res = patterns.group_chat { agents = { member("a") }, selector = selectors.no_repeat(),
                                        termination = terminations.max_rounds(3) }:run("x")
      assert.equal("failed", res.status)
      assert.mentions("no_repeat needs at least two participants", res.error)
    end)

    it("may return the agent object itself", function()
      local a, b = member("a"), member("b")
      local res = patterns.group_chat { agents = { a, b }, selector = function() return b end,
                                        termination = terminations.max_rounds(2) }:run("x")
      assert.same({ "b", "b" }, res.outputs[1].speakers)
    end)

    it("get the state: participants, conversation, round and last speaker", function()
      local states = {}
      local res = patterns.group_chat { agents = { member("a"), member("b") },
        selector = function(s)
          states[#states + 1] = { round = s.round, last = s.last_speaker or "-", n = #s.messages,
                                  p = table.concat(s.participants, ",") }
          return "b"
        end, termination = terminations.max_rounds(2) }:run("x")
      assert.equal("completed", res.status)
      assert.same({ { round = 0, last = "-", n = 1, p = "a,b" }, { round = 1, last = "b", n = 2, p = "a,b" } }, states)
    end)

    it("a selector returning an unknown participant fails the run naming it", function()
      local res = patterns.group_chat { agents = { member("a"), member("b") },
                                        selector = function() return "zed" end }:run("x")
      assert.equal("failed", res.status)
      assert.mentions("group_chat: the selector returned unknown participant 'zed' (participants: a, b)", res.error)
      res = patterns.group_chat { agents = { member("a") }, selector = function() end }:run("x")
      assert.equal("failed", res.status)
      assert.mentions("returned unknown participant nil", res.error)
    end)
  end)

  describe("manager", function()
    it("selects the speakers instead of a selector", function()
      local asked = scripted("boss", function(_, n) return ({ "b", "a", "b" })[n] or "a" end)
      local manager = weft.agent { name = "boss", model = "mock:boss", instructions = "You run the meeting." }
      local res = patterns.group_chat { agents = { member("a"), member("b") }, manager = manager,
                                        termination = terminations.max_rounds(3) }:run("agenda")
      assert.equal("completed", res.status, res.error)
      assert.same({ "b", "a", "b" }, res.outputs[1].speakers)
      assert.equal(3, #asked)
      assert.equal("You run the meeting.", asked[1][1].content)
      assert.same({ "orchestrator", "b", "orchestrator", "a", "orchestrator", "b", "orchestrator" }, invoked(res.events))
    end)

    it("fails the run naming the manager when it names nobody", function()
      scripted("boss", "let us break for lunch")
      local res = patterns.group_chat { agents = { member("a"), member("b") },
                                        manager = weft.agent { name = "boss", model = "mock:boss" } }:run("x")
      assert.equal("failed", res.status)
      assert.mentions("manager 'boss' named no participant", res.error)
    end)
  end)

  it("fails the run naming a participant whose model call fails", function()
    llm.mock.register("down", { { fail = { status = 400 } } })
    local res = patterns.group_chat { agents = { member("a"), weft.agent { name = "b", model = "mock:down" } } }:run("x")
    assert.equal("failed", res.status)
    assert.mentions("group_chat: agent 'b'", res.error)
  end)

  it("fails the run on bad input", function()
    local res = patterns.group_chat { agents = { member("a") } }:run({})
    assert.equal("failed", res.status)
    assert.mentions("group_chat: input must be a string or a list of messages", res.error)
  end)

  describe("rejects bad options", function()
    local a = weft.agent { name = "a", model = "mock:echo" }
    it("empty, duplicate or reserved agents", function()
      assert.mentions("group_chat: agents must be a non-empty list", h.error_of(patterns.group_chat, { agents = {} }))
      assert.mentions("group_chat: duplicate agent name 'a'", h.error_of(patterns.group_chat, { agents = { a, a } }))
      assert.mentions("group_chat: agent name 'orchestrator' (agents[1]) is reserved",
        h.error_of(patterns.group_chat, { agents = { weft.agent { name = "orchestrator", model = "mock:echo" } } }))
    end)
    it("a selector and a manager together, or of the wrong type", function()
      assert.mentions("group_chat: give a selector or a manager, not both",
        h.error_of(patterns.group_chat, { agents = { a }, selector = selectors.round_robin(), manager = a }))
      assert.mentions("group_chat: selector must be a function",
        h.error_of(patterns.group_chat, { agents = { a }, selector = "a" }))
      assert.mentions("group_chat: manager must be an agent", h.error_of(patterns.group_chat, { agents = { a }, manager = {} }))
      assert.mentions("group_chat: termination must be a function",
        h.error_of(patterns.group_chat, { agents = { a }, termination = 5 }))
    end)
    it("a max_iterations that is not a positive integer", function()
      assert.mentions("group_chat: max_iterations must be an integer >= 1, got 0",
        h.error_of(patterns.group_chat, { agents = { a }, max_iterations = 0 }))
    end)
    it("selectors.llm and no_repeat with bad arguments", function()
      assert.mentions("selectors.llm: expects an agent", h.error_of(selectors.llm, "boss"))
      assert.mentions("selectors.no_repeat: inner must be a selector", h.error_of(selectors.no_repeat, 7))
    end)
  end)
end)
