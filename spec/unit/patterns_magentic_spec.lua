-- spec/unit/patterns_magentic_spec.lua — weft.patterns.magentic
-- (docs/agents.md, Patterns): the planner's plan (parsed robustly), steps
-- assigned to participants, the ledger in shared state and the output,
-- re-planning after max_stalls attempts without progress, max_rounds, the
-- final answer written by the planner, and clear errors for bad plans and
-- options.
local weft = require "weft"
local llm = require "weft.llm"
local json = require "weft.json"
local patterns = require "weft.patterns"
local h = require "helpers"

local magentic = patterns.magentic

local invoked = h.invoked

-- A JSON plan of {step, participant} pairs.
local function plan(...)
  local steps = {}
  for i, p in ipairs { ... } do steps[i] = { step = p[1], participant = p[2] } end
  return json.encode(json.array(steps))
end

-- Register the planner's script: `plans` answers the planning prompts in
-- turn (the first plan, then each re-plan), `final` the answer prompt.
-- Returns the list of prompts it received.
local function planner(plans, final)
  local prompts = {}
  local n = 0
  llm.mock.register("planner", {
    { match = "Write the final answer", reply = function(m)
        prompts[#prompts + 1] = m[#m].content
        return final or "FINAL ANSWER"
      end },
    { reply = function(m)
        prompts[#prompts + 1] = m[#m].content
        n = n + 1
        return plans[math.min(n, #plans)]
      end },
  })
  return prompts, weft.agent { name = "boss", model = "mock:planner" }
end

-- A participant answering reply (a string or fn(prompt, n)); returns the
-- agent and the list of prompts it received.
local function participant(name, reply)
  local prompts = {}
  llm.mock.register(name, { { reply = function(m)
    prompts[#prompts + 1] = m[#m].content
    if type(reply) == "function" then return reply(m[#m].content, #prompts) end
    return reply
  end } })
  return weft.agent { name = name, model = "mock:" .. name }, prompts
end

-- The statuses of a list of entries.
local function statuses(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = e.status end
  return out
end

describe("weft.patterns.magentic", function()
  before_each(function() llm.mock.reset() end)
  after_each(function() llm.mock.reset() end)

  it("plans, runs each step with its participant, keeps a ledger and answers via the planner", function()
    local asked, boss = planner({ plan({ "find facts about cats", "researcher" }, { "write the article", "writer" }) },
                                "Cats: an article.")
    local researcher, r_prompts = participant("researcher", "cats sleep 16 hours")
    local writer, w_prompts = participant("writer", "draft about sleepy cats")
    local wf = magentic { planner = boss, participants = { researcher, writer } }
    local res = wf:run("Write about cats")
    assert.equal("completed", res.status, res.error)
    assert.same({ "planner", "researcher", "ledger", "writer", "ledger", "answer" }, invoked(res.events))
    local out = res.outputs[1]
    assert.equal("Cats: an article.", out.text)
    assert.equal("completed", out.reason)
    assert.equal(2, out.rounds)
    assert.equal(0, out.replans)
    assert.same({ { step = "find facts about cats", participant = "researcher", status = "done" },
                  { step = "write the article", participant = "writer", status = "done" } }, out.plan)
    assert.same({ { round = 1, index = 1, step = "find facts about cats", participant = "researcher",
                    status = "done", result = "cats sleep 16 hours" },
                  { round = 2, index = 2, step = "write the article", participant = "writer",
                    status = "done", result = "draft about sleepy cats" } }, out.ledger)
    -- the same record in shared state
    assert.same(out.ledger, res.state.ledger)
    assert.equal("Write about cats", res.state.task)
    -- prompts: the planner saw the task and the roster; the writer saw the
    -- researcher's result; the answer prompt saw the ledger
    assert.mentions("Write about cats", asked[1])
    assert.mentions("- researcher", asked[1])
    assert.mentions('{"step": "what to do"', asked[1])
    assert.mentions("Your step (1 of 2): find facts about cats", r_prompts[1])
    assert.mentions("cats sleep 16 hours", w_prompts[1])
    assert.mentions("Your step (2 of 2): write the article", w_prompts[1])
    assert.mentions("draft about sleepy cats", asked[2])
  end)

  it("emits plan and progress events", function()
    local _, boss = planner({ plan({ "s1", "a" }) })
    local res = magentic { planner = boss, participants = { (participant("a", "ok")) } }:run("t")
    local names = {}
    for _, ev in ipairs(h.filter(res.events, "custom")) do names[#names + 1] = ev.executor_id .. ":" .. ev.name end
    assert.same({ "planner:plan", "ledger:progress" }, names)
    assert.equal("s1", h.find(res.events, "custom", "planner").data.steps[1].step)
  end)

  describe("stalls and re-planning", function()
    it("retries a step without progress, then re-plans after max_stalls such attempts", function()
      local asked, boss = planner({ plan({ "compute", "weak" }, { "polish", "strong" }),
                                    plan({ "compute differently", "strong" }) })
      local weak = participant("weak", function(_, n) return n == 1 and "STALL: no idea" or "I cannot do this" end)
      local strong = participant("strong", function(p) return "did: " .. p:match("Your step %(%d+ of %d+%): (.*)$") end)
      local res = magentic { planner = boss, participants = { weak, strong }, max_stalls = 2 }:run("hard task")
      assert.equal("completed", res.status, res.error)
      assert.same({ "planner", "weak", "ledger", "weak", "ledger", "planner", "strong", "ledger", "answer" },
                  invoked(res.events))
      local out = res.outputs[1]
      assert.equal(1, out.replans)
      assert.equal(3, out.rounds)
      assert.same({ "stalled", "stalled", "done" }, statuses(out.ledger))
      assert.equal("STALL: no idea", out.ledger[1].result)
      assert.same({ "dropped", "dropped", "done" }, statuses(out.plan))
      assert.equal("compute differently", out.plan[3].step)
      assert.equal("did: compute differently", out.ledger[3].result)
      -- the re-plan prompt showed what happened
      assert.mentions("The last 2 attempts made no progress", asked[2])
      assert.mentions("I cannot do this", asked[2])
    end)

    it("counts an empty reply and a failed participant run as no progress", function()
      local _, boss = planner({ plan({ "s", "mute" }), plan({ "s", "broken" }), plan({ "s", "ok" }) })
      local mute = participant("mute", "   ")
      llm.mock.register("down", { { fail = { status = 400 } } })
      local broken = weft.agent { name = "broken", model = "mock:down" }
      local res = magentic { planner = boss, participants = { mute, broken, (participant("ok", "fine")) },
                             max_stalls = 1 }:run("t")
      assert.equal("completed", res.status, res.error)
      local out = res.outputs[1]
      assert.same({ "stalled", "error", "done" }, statuses(out.ledger))
      assert.mentions("agent 'broken'", out.ledger[2].result)
      assert.equal(2, out.replans)
    end)

    it("ends after an empty re-plan with the answer", function()
      local _, boss = planner({ plan({ "s", "a" }), "[]" })
      local res = magentic { planner = boss, participants = { (participant("a", "STALL")) }, max_stalls = 1 }:run("t")
      assert.equal("completed", res.status, res.error)
      assert.same({ "planner", "a", "ledger", "planner", "answer" }, invoked(res.events))
      assert.equal("completed", res.outputs[1].reason)
    end)

    it("uses a custom progress rule", function()
      local _, boss = planner({ plan({ "s", "a" }) })
      local seen
      local res = magentic { planner = boss, participants = { (participant("a", "cannot stop me")) },
                             progress = function(text, entry) seen = entry.participant; return #text > 3 end }:run("t")
      assert.same({ "done" }, statuses(res.outputs[1].ledger))
      assert.equal("a", seen)
    end)

    it("documents the default rule", function()
      assert.is_true(magentic.progress("done: 42"))
      assert.is_false(magentic.progress(""))
      assert.is_false(magentic.progress(" \n "))
      assert.is_false(magentic.progress("STALL"))
      assert.is_false(magentic.progress("I Cannot reach it"))
      assert.is_true(magentic.progress("stalling is fine in lower case"))
      assert.is_false(magentic.progress(nil))
    end)
  end)

  it("stops at max_rounds and still writes the answer", function()
    local _, boss = planner({ plan({ "s", "a" }) }, "partial answer")
    local a, prompts = participant("a", "STALL")
    local res = magentic { planner = boss, participants = { a }, max_stalls = 100, max_rounds = 4 }:run("t")
    assert.equal("completed", res.status, res.error)
    assert.equal("max_rounds", res.outputs[1].reason)
    assert.equal(4, res.outputs[1].rounds)
    assert.equal(4, #prompts)
    assert.equal("partial answer", res.outputs[1].text)
    assert.equal("answer", invoked(res.events)[#invoked(res.events)])
  end)

  it("runs long plans past the run's default superstep limit", function()
    local steps = {}
    for i = 1, 40 do steps[i] = { "step " .. i, i % 2 == 0 and "b" or "a" } end
    local _, boss = planner({ plan(unpack(steps)) })
    local res = magentic { planner = boss, participants = { (participant("a", "ok")), (participant("b", "ok")) },
                           max_rounds = 40 }:run("t")
    assert.equal("completed", res.status, res.error)
    assert.equal(40, res.outputs[1].rounds)
    assert.equal("completed", res.outputs[1].reason)
  end)

  describe("plans", function()
    local names = { "researcher", "writer" }
    it("are parsed from a fenced block, text around a list, or an object with steps", function()
      local expected = { { step = "look", participant = "researcher" }, { step = "write", participant = "writer" } }
      assert.same(expected, magentic.parse_plan(
        'Plan:\n```json\n[{"step":"look","participant":"researcher"},{"step":"write","participant":"writer"}]\n```\nGo!',
        names))
      assert.same(expected, magentic.parse_plan(
        'Sure. [{"step":"look","participant":"researcher"}, {"step":"write","participant":"writer"}] Done.', names))
      assert.same(expected, magentic.parse_plan(
        '{"steps": [{"task":"look","agent":"Researcher"}, {"description":"write","assignee":"WRITER"}]}', names))
      assert.same({}, magentic.parse_plan("[]", names))
      assert.same(expected, magentic.parse_plan(
        'Plan [v2] (see [notes]): [{"step":"look","participant":"researcher"},{"step":"write","participant":"writer"}]',
        names))
    end)

    it("that are not a JSON list fail with what the planner said", function()
      local steps, err = magentic.parse_plan("First research, then write.", names, "planner 'boss'")
      assert.is_nil(steps)
      assert.mentions("planner 'boss' did not return a JSON list of steps", err)
      assert.mentions('"First research, then write."', err)
      assert.mentions("plan step 1 has no step text", select(2, magentic.parse_plan('[{"participant":"writer"}]', names)))
      assert.mentions("plan step 2 is not an object", select(2, magentic.parse_plan('[{"step":"a","participant":"writer"}, 3]', names)))
      assert.mentions("plan step 1 names no participant", select(2, magentic.parse_plan('[{"step":"a"}]', names)))
    end)

    it("naming an unknown participant fail the run naming it", function()
      local _, boss = planner({ plan({ "look", "researcher" }, { "draw", "painter" }) })
      local res = magentic { planner = boss, participants = { (participant("researcher", "x")) } }:run("t")
      assert.equal("failed", res.status)
      assert.mentions("magentic: plan step 2 names unknown participant 'painter' (participants: researcher)", res.error)
      assert.same({ "planner" }, invoked(res.events))
    end)

    it("that are empty at first fail the run", function()
      local _, boss = planner({ "[]" })
      local res = magentic { planner = boss, participants = { (participant("a", "x")) } }:run("t")
      assert.equal("failed", res.status)
      assert.mentions("magentic: planner 'boss' returned an empty plan", res.error)
    end)

    it("from a planner whose model fails fail the run naming it", function()
      local res = magentic { planner = weft.agent { name = "boss", model = "mock:gone" },
                             participants = { (participant("a", "x")) } }:run("t")
      assert.equal("failed", res.status)
      assert.mentions("magentic: planner: agent 'boss'", res.error)
    end)
  end)

  describe("rejects bad options", function()
    local a = weft.agent { name = "a", model = "mock:echo" }
    it("a missing planner", function()
      assert.mentions("magentic: planner must be an agent", h.error_of(magentic, { participants = { a } }))
    end)
    it("empty, duplicate or reserved participants", function()
      assert.mentions("magentic: participants must be a non-empty list", h.error_of(magentic, { planner = a, participants = {} }))
      assert.mentions("magentic: duplicate agent name 'a'", h.error_of(magentic, { planner = a, participants = { a, a } }))
      assert.mentions("magentic: agent name 'ledger' (participants[1]) is reserved",
        h.error_of(magentic, { planner = a, participants = { weft.agent { name = "ledger", model = "mock:echo" } } }))
    end)
    it("max_stalls and max_rounds below 1, and a bad progress rule", function()
      assert.mentions("magentic: max_stalls must be an integer >= 1",
                      h.error_of(magentic, { planner = a, participants = { a }, max_stalls = 0 }))
      assert.mentions("magentic: max_rounds must be an integer >= 1",
                      h.error_of(magentic, { planner = a, participants = { a }, max_rounds = -2 }))
      assert.mentions("magentic: progress must be a function",
                      h.error_of(magentic, { planner = a, participants = { a }, progress = true }))
    end)
    it("at the caller's line", function()
      local ok, err = pcall(function() local wf = magentic { participants = {} }; return wf end)
      assert.is_false(ok)
      assert.mentions("patterns_magentic_spec.lua:", err)
    end)
  end)
end)
