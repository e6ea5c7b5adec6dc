-- spec/unit/patterns_magentic_spec.lua — weft.patterns.magentic
-- (docs/agents.md, Patterns): the planner's plan (parsed robustly), the
-- manager's progress ledger each round (strict JSON: satisfied, progress,
-- loop, next speaker, instruction), stalls counted from it, re-plans after
-- max_stalls, the reset limit, an unreadable ledger retried once then
-- counted as a stall, human review of the plan, the record in shared
-- state, the output and events, and clear errors for bad plans and options.
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

-- A progress ledger reply: next speaker and instruction, with options
-- done (request satisfied), stuck (no progress), loop.
local function ledger(speaker, instruction, o)
  o = o or {}
  return json.encode {
    is_request_satisfied = { reason = "r1", answer = o.done or false },
    is_progress_being_made = { reason = "r2", answer = not o.stuck },
    is_in_loop = { reason = "r3", answer = o.loop or false },
    next_speaker = { reason = "r4", answer = speaker or "" },
    instruction_or_question = { reason = "r5", answer = instruction or "" },
  }
end

local DONE = ledger(nil, nil, { done = true })

-- Register the planner's script: `plans` answers the planning prompts in
-- turn (the first plan, then each re-plan), `ledgers` the progress ledger
-- prompts in turn (the last repeats), `final` the answer prompt. Returns
-- the list of prompts it received, by kind: {plan = ..., ledger = ...,
-- answer = ...}.
local function planner(plans, ledgers, final)
  local prompts = { plan = {}, ledger = {}, answer = {} }
  local np, nl = 0, 0
  llm.mock.register("planner", {
    { match = "Write the final answer", reply = function(m)
        prompts.answer[#prompts.answer + 1] = m[#m].content
        return final or "FINAL ANSWER"
      end },
    { match = "progress ledger", reply = function(m)
        prompts.ledger[#prompts.ledger + 1] = m[#m].content
        nl = nl + 1
        return ledgers[math.min(nl, #ledgers)]
      end },
    { reply = function(m)
        prompts.plan[#prompts.plan + 1] = m[#m].content
        np = np + 1
        return plans[math.min(np, #plans)]
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

-- The stall counts of the progress entries.
local function stalls_of(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = e.stalls end
  return out
end

describe("weft.patterns.magentic", function()
  before_each(function() llm.mock.reset() end)
  after_each(function() llm.mock.reset() end)

  it("plans, lets the manager's progress ledger pick each speaker and instruction, and answers", function()
    local asked, boss = planner({ plan({ "find facts about cats", "researcher" }, { "write the article", "writer" }) },
                                { ledger("researcher", "Find three facts about cats."),
                                  ledger("writer", "Write the article from the facts."), DONE },
                                "Cats: an article.")
    local researcher, r_prompts = participant("researcher", "cats sleep 16 hours")
    local writer, w_prompts = participant("writer", "draft about sleepy cats")
    local wf = magentic { planner = boss, participants = { researcher, writer } }
    local res = wf:run("Write about cats")
    assert.equal("completed", res.status, res.error)
    assert.same({ "planner", "ledger", "researcher", "ledger", "writer", "ledger", "answer" }, invoked(res.events))
    local out = res.outputs[1]
    assert.equal("Cats: an article.", out.text)
    assert.equal("completed", out.reason)
    assert.equal(2, out.rounds)
    assert.equal(0, out.replans)
    assert.equal(0, out.stalls)
    assert.same({ { step = "find facts about cats", participant = "researcher" },
                  { step = "write the article", participant = "writer" } }, out.plan)
    assert.same({ { round = 1, participant = "researcher", instruction = "Find three facts about cats.",
                    status = "done", result = "cats sleep 16 hours" },
                  { round = 2, participant = "writer", instruction = "Write the article from the facts.",
                    status = "done", result = "draft about sleepy cats" } }, out.ledger)
    -- the progress ledger of each judgement, with the manager's reasons
    assert.equal(3, #out.progress)
    assert.same({ 0, 1, 2 }, { out.progress[1].round, out.progress[2].round, out.progress[3].round })
    assert.same({ answer = "researcher", reason = "r4" }, out.progress[1].next_speaker)
    assert.same({ answer = true, reason = "r1" }, out.progress[3].is_request_satisfied)
    -- the same record in shared state
    assert.same(out.ledger, res.state.ledger)
    assert.same(out.progress, res.state.progress)
    assert.equal("Write about cats", res.state.task)
    -- prompts: the planner saw the task and the roster; the manager saw
    -- the plan and what was done; each participant its instruction
    assert.mentions("Write about cats", asked.plan[1])
    assert.mentions("- researcher", asked.plan[1])
    assert.mentions('{"step": "what to do"', asked.plan[1])
    assert.mentions("1. [researcher] find facts about cats", asked.ledger[1])
    assert.mentions('"is_request_satisfied"', asked.ledger[1])
    assert.mentions("[researcher] Find three facts about cats. -> done: cats sleep 16 hours", asked.ledger[2])
    assert.mentions("Your instruction: Find three facts about cats.", r_prompts[1])
    assert.mentions("cats sleep 16 hours", w_prompts[1])
    assert.mentions("Your instruction: Write the article from the facts.", w_prompts[1])
    assert.mentions("draft about sleepy cats", asked.answer[1])
  end)

  it("judges progress by the manager, not by keywords in the reply", function()
    -- a correct answer containing "cannot" is progress; "I don't know." is not
    local _, boss = planner({ plan({ "answer", "a" }) },
      { ledger("a", "Can a square be round?"), ledger("a", "Say more."),
        ledger("a", "Once more.", { stuck = true }), DONE })
    local a = participant("a", function(_, n) return n == 1 and "It cannot: a square has corners." or "I don't know." end)
    local res = magentic { planner = boss, participants = { a }, max_stalls = 5 }:run("t")
    assert.equal("completed", res.status, res.error)
    assert.same({ 0, 0, 1, 0 }, stalls_of(res.outputs[1].progress))
    assert.same({ "done", "done", "done" }, (function()
      local st = {}
      for i, e in ipairs(res.outputs[1].ledger) do st[i] = e.status end
      return st
    end)())
  end)

  it("emits plan and progress events", function()
    local _, boss = planner({ plan({ "s1", "a" }) }, { ledger("a", "do s1"), DONE })
    local res = magentic { planner = boss, participants = { (participant("a", "ok")) } }:run("t")
    local names = {}
    for _, ev in ipairs(h.filter(res.events, "custom")) do names[#names + 1] = ev.executor_id .. ":" .. ev.name end
    assert.same({ "planner:plan", "ledger:progress", "ledger:progress" }, names)
    assert.equal("s1", h.find(res.events, "custom", "planner").data.steps[1].step)
    local ev = h.filter(res.events, "custom", "ledger")[1]
    assert.same({ answer = "do s1", reason = "r5" }, ev.data.instruction_or_question)
  end)

  describe("stalls and resets", function()
    it("counts a stall for no progress or a loop, one off for progress, and re-plans at max_stalls", function()
      local asked, boss = planner(
        { plan({ "compute", "weak" }), plan({ "compute differently", "strong" }) },
        { ledger("weak", "compute it"), ledger("weak", "compute it", { stuck = true }),
          ledger("weak", "compute it", { loop = true }),
          -- after the re-plan
          ledger("strong", "compute it differently"), DONE })
      local weak = participant("weak", "no idea")
      local strong = participant("strong", "42")
      local res = magentic { planner = boss, participants = { weak, strong }, max_stalls = 2 }:run("hard task")
      assert.equal("completed", res.status, res.error)
      assert.same({ "planner", "ledger", "weak", "ledger", "weak", "ledger", "planner", "ledger", "strong", "ledger",
                    "answer" }, invoked(res.events))
      local out = res.outputs[1]
      assert.equal(1, out.replans)
      assert.equal(3, out.rounds)
      assert.same({ 0, 1, 2, 0, 0 }, stalls_of(out.progress))
      assert.same({ { step = "compute differently", participant = "strong" } }, out.plan)
      -- the re-plan prompt showed what happened
      assert.mentions("The team stalled (2 rounds without progress)", asked.plan[2])
      assert.mentions("[weak] compute it -> done: no idea", asked.plan[2])
      assert.mentions("1. [weak] compute", asked.plan[2])
      local plans = {}
      for _, ev in ipairs(h.filter(res.events, "custom", "planner")) do plans[#plans + 1] = ev.data.replan end
      assert.same({ false, true }, plans)
    end)

    it("takes a stall off when progress is made again (as Agent Framework counts)", function()
      local _, boss = planner({ plan({ "s", "a" }) },
        { ledger("a", "go"), ledger("a", "go", { stuck = true }), ledger("a", "go"), ledger("a", "go", { stuck = true }),
          DONE })
      local res = magentic { planner = boss, participants = { (participant("a", "x")) }, max_stalls = 2 }:run("t")
      assert.equal("completed", res.status, res.error)
      assert.same({ 0, 1, 0, 1, 0 }, stalls_of(res.outputs[1].progress))
      assert.equal(0, res.outputs[1].replans)
    end)

    it("ends with reason max_resets past the reset limit, still writing the answer", function()
      local asked, boss = planner({ plan({ "s", "a" }) }, { ledger("a", "go", { stuck = true }) }, "partial")
      local a, prompts = participant("a", "nothing")
      local res = magentic { planner = boss, participants = { a }, max_stalls = 1, max_resets = 2 }:run("t")
      assert.equal("completed", res.status, res.error)
      local out = res.outputs[1]
      assert.equal("max_resets", out.reason)
      assert.equal(2, out.replans)
      assert.equal(3, #prompts) -- one round per plan
      assert.equal("partial", out.text)
      assert.mentions("The work stopped before the task was done (max_resets)", asked.answer[1])
    end)

    it("with max_resets = 0 never re-plans", function()
      local _, boss = planner({ plan({ "s", "a" }) }, { ledger("a", "go"), ledger("a", "go", { stuck = true }) })
      local res = magentic { planner = boss, participants = { (participant("a", "x")) }, max_stalls = 1,
                             max_resets = 0 }:run("t")
      assert.equal("max_resets", res.outputs[1].reason)
      assert.same({ "planner", "ledger", "a", "ledger", "answer" }, invoked(res.events))
    end)

    it("records a failed participant run as an error for the manager to judge", function()
      llm.mock.register("down", { { fail = { status = 400 } } })
      local asked, boss = planner({ plan({ "s", "broken" }) }, { ledger("broken", "go"), DONE })
      local res = magentic { planner = boss, participants = { weft.agent { name = "broken", model = "mock:down" } } }
        :run("t")
      assert.equal("completed", res.status, res.error)
      assert.equal("error", res.outputs[1].ledger[1].status)
      assert.mentions("agent 'broken'", res.outputs[1].ledger[1].result)
      assert.mentions("[broken] go -> error: agent 'broken'", asked.ledger[2])
    end)

    it("ends after an empty re-plan with the answer", function()
      local _, boss = planner({ plan({ "s", "a" }), "[]" }, { ledger("a", "go"), ledger("a", "go", { stuck = true }) })
      local res = magentic { planner = boss, participants = { (participant("a", "x")) }, max_stalls = 1 }:run("t")
      assert.equal("completed", res.status, res.error)
      assert.same({ "planner", "ledger", "a", "ledger", "planner", "answer" }, invoked(res.events))
      assert.equal("completed", res.outputs[1].reason)
    end)
  end)

  describe("an unreadable progress ledger", function()
    it("is asked again once, saying what was wrong", function()
      local asked, boss = planner({ plan({ "s", "a" }) },
        { "Sure! a should go next.", ledger("a", "go"), DONE })
      local res = magentic { planner = boss, participants = { (participant("a", "x")) } }:run("t")
      assert.equal("completed", res.status, res.error)
      assert.equal(3, #asked.ledger)
      assert.mentions("Your previous reply could not be used: the reply is not a JSON object", asked.ledger[2])
      assert.is_nil(res.outputs[1].progress[1].unreadable)
      assert.equal(0, res.outputs[1].stalls)
      local warn = h.find(res.events, "log", "ledger")
      assert.mentions("unreadable progress ledger", warn.data.message)
    end)

    it("twice counts a stall; the last speaker goes on with the last instruction", function()
      local bad = json.encode { is_request_satisfied = { answer = "no" } }
      local asked, boss = planner({ plan({ "s", "a" }, { "t", "b" }) }, { ledger("b", "do t"), bad, bad, DONE })
      local b, b_prompts = participant("b", "did t")
      local res = magentic { planner = boss, participants = { (participant("a", "x")), b } }:run("t")
      assert.equal("completed", res.status, res.error)
      local out = res.outputs[1]
      assert.equal(4, #asked.ledger)
      assert.mentions('"is_request_satisfied".answer must be a boolean, got string', out.progress[2].unreadable)
      assert.same({ 0, 1, 0 }, stalls_of(out.progress))
      assert.equal(2, #b_prompts)
      assert.mentions("Your instruction: do t", b_prompts[2])
    end)

    it("after the first plan starts the plan's first step", function()
      local _, boss = planner({ plan({ "look around", "a" }) }, { "?", "??", DONE })
      local a, prompts = participant("a", "looked")
      local res = magentic { planner = boss, participants = { a } }:run("t")
      assert.equal("completed", res.status, res.error)
      assert.mentions("Your instruction: look around", prompts[1])
      assert.equal(0, res.outputs[1].progress[1].stalls)
    end)

    it("names an unknown next speaker", function()
      local l, err = magentic.parse_ledger(ledger("zed", "go"), { "a", "b" })
      assert.is_nil(l)
      assert.equal('"next_speaker" names no participant: "zed" (participants: a, b)', err)
      assert.equal("A", magentic.parse_ledger("```json\n" .. ledger("a", "go") .. "\n```", { "A" }).next_speaker.answer)
      assert.mentions('"is_in_loop" is missing', select(2, magentic.parse_ledger('{"is_request_satisfied":'
        .. '{"answer":false},"is_progress_being_made":{"answer":true}}', { "a" })))
      assert.mentions('"instruction_or_question" is empty', select(2, magentic.parse_ledger(ledger("a", " "), { "a" })))
    end)
  end)

  it("uses a custom progress function instead of the manager model", function()
    local asked, boss = planner({ plan({ "s", "a" }) }, { "never used" })
    local infos = {}
    local res = magentic { planner = boss, participants = { (participant("a", "fine")) }, progress = function(info)
      infos[#infos + 1] = { round = info.round, n = #info.ledger, stalls = info.stalls, task = info.task }
      return json.decode(info.round == 0 and ledger("a", "go") or DONE)
    end }:run("t")
    assert.equal("completed", res.status, res.error)
    assert.equal(0, #asked.ledger)
    assert.same({ { round = 0, n = 0, stalls = 0, task = "t" }, { round = 1, n = 1, stalls = 0, task = "t" } }, infos)
    local bad = magentic { planner = boss, participants = { (participant("a", "fine")) },
                           progress = function() return { is_request_satisfied = true } end }:run("t")
    assert.equal("failed", bad.status)
    assert.mentions('magentic: progress: "is_request_satisfied" must be an object {"reason": "...", "answer": ...}',
                    bad.error)
  end)

  describe("plan review", function()
    local function review_run(plans, ledgers)
      local asked, boss = planner(plans, ledgers or { ledger("a", "go"), DONE })
      local a = participant("a", "ok")
      local wf = magentic { planner = boss, participants = { a, (participant("b", "ok")) }, plan_review = true }
      return asked, wf:spawn("the task")
    end

    it("sends the plan as a request; an approval goes on with it", function()
      local _, run = review_run({ plan({ "s", "a" }) })
      local r = run:wait()
      assert.equal("idle", r.status, r.error)
      assert.same({ type = "plan_review", task = "the task", plan = { { step = "s", participant = "a" } },
                    replan = false }, r.requests[1].request)
      assert.equal("planner", r.requests[1].executor_id)
      assert(run:respond(r.requests[1].request_id, "Approved."))
      r = run:wait()
      assert.equal("completed", r.status, r.error)
      assert.same({ { step = "s", participant = "a" } }, r.outputs[1].plan)
    end)

    it("takes an edited plan as the plan", function()
      local _, run = review_run({ plan({ "s", "a" }) }, { ledger("b", "go"), DONE })
      local r = run:wait()
      assert(run:respond(r.requests[1].request_id, { plan = { { step = "other", participant = "B" } } }))
      r = run:wait()
      assert.equal("completed", r.status, r.error)
      assert.same({ { step = "other", participant = "b" } }, r.outputs[1].plan)
    end)

    it("asks the planner again with the reviewer's feedback, and reviews the new plan", function()
      local asked, run = review_run({ plan({ "s", "a" }), plan({ "s2", "b" }) }, { ledger("b", "go"), DONE })
      local r = run:wait()
      assert(run:respond(r.requests[1].request_id, "Let b do it."))
      r = run:wait()
      assert.equal("idle", r.status, r.error)
      assert.same({ { step = "s2", participant = "b" } }, r.requests[1].request.plan)
      assert.mentions("The reviewer asks for changes:\nLet b do it.", asked.plan[2])
      assert.mentions("1. [a] s", asked.plan[2])
      assert(run:respond(r.requests[1].request_id, true))
      r = run:wait()
      assert.equal("completed", r.status, r.error)
      assert.same({ { step = "s2", participant = "b" } }, r.outputs[1].plan)
    end)

    it("fails naming the problem of a bad edited plan", function()
      local _, run = review_run({ plan({ "s", "a" }) })
      local r = run:wait()
      assert(run:respond(r.requests[1].request_id, { { step = "x", participant = "nobody" } }))
      r = run:wait()
      assert.equal("failed", r.status)
      assert.mentions("magentic: the plan review's edited plan: plan step 1 names unknown participant 'nobody'", r.error)
    end)
  end)

  it("stops at max_rounds and still writes the answer", function()
    local _, boss = planner({ plan({ "s", "a" }) }, { ledger("a", "go") }, "partial answer")
    local a, prompts = participant("a", "more")
    local res = magentic { planner = boss, participants = { a }, max_rounds = 4 }:run("t")
    assert.equal("completed", res.status, res.error)
    assert.equal("max_rounds", res.outputs[1].reason)
    assert.equal(4, res.outputs[1].rounds)
    assert.equal(4, #prompts)
    assert.equal("partial answer", res.outputs[1].text)
    assert.equal("answer", invoked(res.events)[#invoked(res.events)])
  end)

  it("runs long plans past the run's default superstep limit", function()
    local _, boss = planner({ plan({ "s", "a" }) }, { ledger("a", "go", { stuck = true }) })
    local res = magentic { planner = boss, participants = { (participant("a", "ok")) }, max_stalls = 1,
                           max_rounds = 40 }:run("t")
    assert.equal("completed", res.status, res.error)
    assert.equal(40, res.outputs[1].rounds)
    assert.equal("max_rounds", res.outputs[1].reason)
    assert.equal(39, res.outputs[1].replans)
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
    it("max_stalls and max_rounds below 1, max_resets below 0, a bad progress function and plan_review", function()
      assert.mentions("magentic: max_stalls must be an integer >= 1",
                      h.error_of(magentic, { planner = a, participants = { a }, max_stalls = 0 }))
      assert.mentions("magentic: max_rounds must be an integer >= 1",
                      h.error_of(magentic, { planner = a, participants = { a }, max_rounds = -2 }))
      assert.mentions("magentic: max_resets must be an integer >= 0",
                      h.error_of(magentic, { planner = a, participants = { a }, max_resets = -1 }))
      assert.mentions("magentic: progress must be a function",
                      h.error_of(magentic, { planner = a, participants = { a }, progress = true }))
      assert.mentions("magentic: plan_review must be a boolean",
                      h.error_of(magentic, { planner = a, participants = { a }, plan_review = "yes" }))
    end)
    it("at the caller's line", function()
      local ok, err = pcall(function() local wf = magentic { participants = {} }; return wf end)
      assert.is_false(ok)
      assert.mentions("patterns_magentic_spec.lua:", err)
    end)
  end)
end)
