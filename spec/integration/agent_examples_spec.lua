-- spec/integration/agent_examples_spec.lua — the agent examples
-- (content_pipeline, code_review_chat, support_desk, concurrent_analysis,
-- magentic_plan) run offline on their scripted mock models and produce
-- exactly the outputs and events their comments promise; the same from the
-- weft CLI; and their loops stay bounded when a scripted agent misbehaves.
local weft = require "weft"
local llm = require "weft.llm"
local h = require "helpers"

-- Load an example afresh (it registers its mock scripts again).
local function load_example(name)
  return dofile(h.root .. "examples/" .. name)
end

-- The data of the custom events of this name, in order.
local custom = h.custom

-- `weft run` of an example and its output lines (helpers.example_cli).
local function cli(name, ...) return h.example_cli("examples/" .. name, ...) end

-- The same example must give the same output from the CLI.
local function same_from_cli(name, expected, ...) return h.same_from_cli("examples/" .. name, expected, ...) end

local SKY = "# Why the sky is blue\n\nSunlight looks white but carries every colour of the rainbow.\n\n"
  .. "Air molecules scatter short (blue) wavelengths far more than long (red) ones: Rayleigh scattering, "
  .. "which grows as 1/wavelength^4. Scattered blue light reaches our eyes from every direction, so the "
  .. "whole sky looks blue. Violet is scattered even more, but sunlight has less of it and our eyes are "
  .. "less sensitive to it."
local SKY_EXAMPLE = "\n\nFor example, at sunset the light crosses much more air, so the blue is scattered "
  .. "away before it reaches us and the reds and oranges remain.\n\nIn short, the air scatters blue light "
  .. "most, so blue reaches us from all over the sky."
local FEEDBACK = "1. Add the concrete example from the notes, introduced by 'For example,'. "
  .. "2. End with a one-sentence summary."

describe("examples/content_pipeline.lua", function()
  local wf
  before_each(function() wf = load_example("content_pipeline.lua") end)

  local EXPECTED = {
    topic = "why the sky is blue", approved = true, revisions = 1,
    article = SKY .. SKY_EXAMPLE, feedback = { FEEDBACK },
  }

  it("researches, writes, gets one revision request, revises and is approved", function()
    local res = wf:run("")
    assert.equal("completed", res.status, res.error)
    assert.same({ EXPECTED }, res.outputs)
    assert.equal(13, res.supersteps)
    assert.same({ "plan", "research", "brief", "writer", "submit", "reviewer", "decide",
                  "brief", "writer", "submit", "reviewer", "decide", "publish" }, h.invoked(res.events))
    assert.same({ { verdict = "revise", revision = 0 }, { verdict = "approve", revision = 1 } },
                custom(res.events, "review"))
  end)

  it("gives the same result twice, and from the weft CLI", function()
    local a, b = wf:run(""), wf:run("")
    assert.same(a.outputs, b.outputs)
    assert.same(h.trace(a.events), h.trace(b.events))
    same_from_cli("content_pipeline.lua", EXPECTED)
  end)

  it("writes about another topic given as the input", function()
    local res = wf:run("how tides work")
    assert.same({ {
      topic = "how tides work", approved = true, revisions = 1, feedback = { FEEDBACK },
      article = "# How tides work\n\nThe question of how tides work has a short, well-established answer.\n\n"
        .. "That answer rests on one or two physical or historical facts. Popular accounts often skip the "
        .. "mechanism behind it.\n\nFor example, a situation anyone can observe shows it at work.\n\n"
        .. "In short, a few well-known facts explain how tides work.",
    } }, res.outputs)
  end)

  it("publishes the unapproved draft when max_revisions is 0", function()
    local res = wf:run({ topic = "why the sky is blue", max_revisions = 0 })
    assert.same({ { topic = "why the sky is blue", approved = false, revisions = 0, article = SKY,
                    feedback = { FEEDBACK } } }, res.outputs)
    assert.equal(8, res.supersteps)
  end)

  it("stops after max_revisions when the reviewer never approves", function()
    llm.mock.register("content_reviewer", { { reply = "REVISE: try again." } })
    local res = wf:run("")
    assert.equal("completed", res.status)
    local out = res.outputs[1]
    assert.is_false(out.approved)
    assert.equal(2, out.revisions)
    assert.same({ "try again.", "try again.", "try again." }, out.feedback)
    assert.equal(18, res.supersteps)
    assert.equal(3, h.count(res.events, "executor_invoked", "writer"))
  end)

  it("fails the run on a topic that is not a string", function()
    local res = wf:run({ topic = 5 })
    assert.equal("failed", res.status)
    assert.mentions("content_pipeline: the topic must be a string", res.error)
  end)

  it("loops through conditional edges named revise and done", function()
    local names = {}
    for _, e in ipairs(wf:describe().edges) do
      if e.from[1] == "decide" then names[#names + 1] = e.name .. " -> " .. e.to[1] end
    end
    assert.same({ "revise -> brief", "done -> publish" }, names)
  end)
end)

local V1 = "```lua\n--- True when s reads the same backwards.\nlocal function is_palindrome(s)\n"
  .. "  return s == s:reverse()\nend\n\nassert(is_palindrome(\"level\"))\nassert(not is_palindrome(\"lua\"))\n"
  .. "```\nCompares the string with its reverse."
local V2 = "```lua\n--- True when s reads the same backwards, ignoring case, spaces and punctuation.\n"
  .. "local function is_palindrome(s)\n  if type(s) ~= \"string\" then\n"
  .. "    error(\"is_palindrome: expects a string, got \" .. type(s), 2)\n  end\n"
  .. "  local letters = s:lower():gsub(\"[^%w]\", \"\")\n  return letters == letters:reverse()\nend\n\n"
  .. "assert(is_palindrome(\"level\"))\nassert(is_palindrome(\"Level\"))\n"
  .. "assert(is_palindrome(\"A man, a plan, a canal: Panama\"))\nassert(not is_palindrome(\"lua\"))\n"
  .. "assert(not pcall(is_palindrome, 42))\n```\n"
  .. "Keeps only the lower-cased letters and digits before comparing; rejects non-strings."

describe("examples/code_review_chat.lua", function()
  local wf
  before_each(function() wf = load_example("code_review_chat.lua") end)

  local TASK = "Write a Lua function is_palindrome(s) that tells whether a sentence reads the same "
    .. "backwards, with tests."
  local REVISE = "REVISE: 1. is_palindrome(\"Level\") and is_palindrome(\"A man, a plan, a canal: Panama\") "
    .. "return false: compare the lower-cased letters only. 2. Raise a clear error when s is not a string. "
    .. "3. Add tests for both."
  local EXPECTED = {
    messages = {
      { role = "user", content = TASK },
      { role = "assistant", name = "coder", content = V1 },
      { role = "assistant", name = "reviewer", content = REVISE },
      { role = "assistant", name = "coder", content = V2 },
      { role = "assistant", name = "reviewer",
        content = "APPROVED Case, punctuation and bad arguments are handled, and the tests cover them." },
    },
    rounds = 4, reason = "keyword", speakers = { "coder", "reviewer", "coder", "reviewer" },
  }

  it("alternates coder and reviewer until the reviewer approves the second version", function()
    local res = wf:run("")
    assert.equal("completed", res.status, res.error)
    assert.same({ EXPECTED }, res.outputs)
    assert.same({ { speaker = "coder", round = 1 }, { speaker = "reviewer", round = 2 },
                  { speaker = "coder", round = 3 }, { speaker = "reviewer", round = 4 } },
                custom(res.events, "speaker_selected"))
  end)

  it("ends with code whose tests pass, after a version whose fix the reviewer asked for", function()
    local msgs = wf:run("").outputs[1].messages
    local function code_of(text) return assert(text:match("```lua\n(.-)```")) end
    local v2 = assert(loadstring(code_of(msgs[4].content)))
    assert.has_no.errors(v2)
    -- the first version indeed fails the case the reviewer named
    local v1 = assert(loadstring(code_of(msgs[2].content) .. "\nreturn is_palindrome(\"Level\")"))
    assert.is_false(v1())
  end)

  it("gives the same result from the weft CLI", function()
    same_from_cli("code_review_chat.lua", EXPECTED)
  end)

  it("takes the task from the input", function()
    local res = wf:run("Review my is_palindrome")
    assert.same({ role = "user", content = "Review my is_palindrome" }, res.outputs[1].messages[1])
  end)

  it("stops after six turns when the reviewer never approves", function()
    llm.mock.register("review_reviewer", { { reply = "REVISE: no." } })
    local res = wf:run("")
    assert.equal("completed", res.status)
    assert.equal(6, res.outputs[1].rounds)
    assert.equal("max_rounds", res.outputs[1].reason)
  end)
end)

describe("examples/support_desk.lua", function()
  local wf
  before_each(function() wf = load_example("support_desk.lua") end)

  local COMPLAINT = "Hello, I was charged twice for invoice INV-1001 this month. Can I get my money back?"
  local REFUND = "Invoice INV-1001 (49.00 EUR) was charged 2 times. I have refunded the 1 extra charge "
    .. "of 49.00 EUR; you will see the money within 5 business days."
  local EXPECTED = {
    agent = "billing", path = { "triage", "billing" }, text = REFUND,
    messages = {
      { role = "user", content = COMPLAINT },
      { role = "assistant", name = "triage",
        content = "Thanks, I am passing you to our billing specialist, who will take it from here." },
      { role = "assistant", name = "billing", content = REFUND },
    },
  }

  it("hands a double charge from triage to billing, which looks the invoice up and refunds", function()
    local res = wf:run("")
    assert.equal("completed", res.status, res.error)
    assert.same({ EXPECTED }, res.outputs)
    assert.same({ { from = "triage", to = "billing", count = 1 } }, custom(res.events, "handoff"))
    assert.same({ "triage", "billing" }, h.invoked(res.events))
  end)

  it("gives the same result from the weft CLI", function()
    same_from_cli("support_desk.lua", EXPECTED)
  end)

  it("hands an error report to tech, which checks the error code", function()
    local res = wf:run("The app crashes with error E42 when I log in")
    local out = res.outputs[1]
    assert.equal("tech", out.agent)
    assert.same({ "triage", "tech" }, out.path)
    assert.equal("Here is what I found: login service: a stale session token is rejected after the 3.2 "
      .. "update; signing out and in again clears it. If it happens again, reply with the time it occurred.", out.text)
    assert.equal("Thanks, I am passing you to our technical specialist, who will take it from here.",
                 out.messages[2].content)
  end)

  it("answers a general question at triage, without a handoff", function()
    local res = wf:run("What are your opening hours?")
    assert.same({ "triage" }, res.outputs[1].path)
    assert.equal("We are open Monday to Friday, 9:00 to 18:00 (CET); this chat answers around the clock.",
                 res.outputs[1].text)
    assert.same({}, custom(res.events, "handoff"))
  end)

  it("finds nothing to refund on an invoice charged once", function()
    local res = wf:run("Was invoice INV-1002 charged correctly?")
    assert.equal("Invoice INV-1002 (19.00 EUR) was charged once and is paid: nothing to refund.", res.outputs[1].text)
  end)

  it("fails, naming the cycle, when two agents keep handing the customer back", function()
    llm.mock.register("desk_billing", {
      { when = function(m) return m[#m].role == "tool" end, reply = "" },
      { tool_calls = { { name = "handoff_to_triage" } } },
    })
    local res = wf:run("")
    assert.equal("failed", res.status)
    assert.mentions("handoff: exceeded max_handoffs (4): triage -> billing -> triage -> billing -> triage -> billing "
      .. "(cycle billing -> triage -> billing)", res.error)
  end)
end)

describe("examples/concurrent_analysis.lua", function()
  local wf
  before_each(function() wf = load_example("concurrent_analysis.lua") end)

  local MARKET = "Demand for a budget electric bike for city commuters is growing about 10% a year in European "
    .. "cities. Competitors price between 900 and 1,500 EUR, so the price is at the low end. Risk: thin margins."
  local MARKETING = "Position a budget electric bike for city commuters as the commuter's car replacement: lead "
    .. "with total cost per month. Channels: commuter forums, employer mobility schemes, test rides at train stations."
  local LEGAL = "A budget electric bike for city commuters must meet the EU rules of its category (for electric "
    .. "bikes: EN 15194, 25 km/h, 250 W). Online sales carry a 14-day withdrawal right; batteries fall under the "
    .. "battery regulation."
  local NEXT = "Next step: weigh the margin risk against the compliance costs before fixing the price."
  local EXPECTED = {
    results = {
      { agent = "market", text = MARKET },
      { agent = "marketing", text = MARKETING },
      { agent = "legal", text = LEGAL },
    },
    text = "Briefing:\n"
      .. "- market: Demand for a budget electric bike for city commuters is growing about 10% a year in European cities.\n"
      .. "- marketing: Position a budget electric bike for city commuters as the commuter's car replacement: lead with "
      .. "total cost per month.\n"
      .. "- legal: A budget electric bike for city commuters must meet the EU rules of its category (for electric "
      .. "bikes: EN 15194, 25 km/h, 250 W).\n" .. NEXT,
  }

  it("runs the three analysts in one superstep and merges their answers", function()
    local res = wf:run("")
    assert.equal("completed", res.status, res.error)
    assert.same({ EXPECTED }, res.outputs)
    assert.equal(3, res.supersteps)
    assert.same({ "market", "marketing", "legal" }, h.invoked(res.events, 1))
  end)

  it("gives the same result from the weft CLI", function()
    same_from_cli("concurrent_analysis.lua", EXPECTED)
  end)

  it("goes on without an analyst whose model fails, and says so", function()
    llm.mock.register("analysis_legal", { { fail = { status = 500 } } })
    local res = wf:run("")
    assert.equal("completed", res.status, res.error)
    local out = res.outputs[1]
    assert.equal("legal", out.results[3].agent)
    assert.mentions("agent 'legal': mock: HTTP 500", out.results[3].error)
    assert.mentions("\n- legal: no answer (agent 'legal': mock: HTTP 500", out.text)
    assert.mentions("\n- marketing: Position", out.text)
    assert.equal("warn", h.find(res.events, "log", "legal").data.level)
  end)
end)

describe("examples/magentic_plan.lua", function()
  local wf
  before_each(function() wf = load_example("magentic_plan.lua") end)

  local FACTS = "weft 0.4 adds the handoff pattern: agents pass a conversation to each other through "
    .. "generated handoff_to_<peer> tools, and max_handoffs bounds every loop."
  local ENGLISH = "weft 0.4 is out! With the new handoff pattern, your agents pass a conversation to the "
    .. "right specialist on their own, and max_handoffs keeps every loop bounded."
  local FRENCH = "weft 0.4 est disponible ! Avec le nouveau modèle handoff, vos agents passent d'eux-mêmes "
    .. "une conversation au bon spécialiste, et max_handoffs borne chaque boucle."
  local STALL = "STALL: I cannot translate into French; the translator should take this step."
  local S1, S2, S3 = "Collect the facts about the handoff pattern", "Write a two-sentence announcement in English",
    "Translate the announcement into French"
  local I1, I2, I3 = "Collect the facts about the handoff pattern.",
    "Write a two-sentence announcement in English from the facts.", "Translate the announcement into French."
  local EXPECTED = {
    text = "English: " .. ENGLISH .. "\n\nFrench: " .. FRENCH,
    reason = "completed", rounds = 4, replans = 1, stalls = 0,
    plan = { { step = S3, participant = "translator" } },
    ledger = {
      { round = 1, participant = "research", instruction = I1, status = "done", result = FACTS },
      { round = 2, participant = "writer", instruction = I2, status = "done", result = ENGLISH },
      { round = 3, participant = "writer", instruction = I3, status = "done", result = STALL },
      { round = 4, participant = "translator", instruction = I3, status = "done", result = FRENCH },
    },
  }

  -- The output without its progress entries (checked apart), and those.
  local function split(out)
    local rest, progress = {}, out.progress
    for k, v in pairs(out) do if k ~= "progress" then rest[k] = v end end
    return rest, progress
  end

  it("plans, stalls on a mis-assigned step, re-plans and answers", function()
    local res = wf:run("")
    assert.equal("completed", res.status, res.error)
    assert.equal(1, #res.outputs)
    local out, progress = split(res.outputs[1])
    assert.same(EXPECTED, out)
    -- one progress ledger after the first plan, after each round and after
    -- the re-plan; the stalled round counted one stall
    local seen = {}
    for i, p in ipairs(progress) do
      seen[i] = ("%d:%s:%s:%d"):format(p.round, tostring(p.is_progress_being_made.answer), p.next_speaker.answer,
                                       p.stalls)
    end
    assert.same({ "0:true:research:0", "1:true:writer:0", "2:true:writer:0", "3:false:translator:1",
                  "3:false:translator:0", "4:true:translator:0" }, seen)
    assert.is_true(progress[6].is_request_satisfied.answer)
    assert.same(progress, custom(res.events, "progress"))
    local plans = custom(res.events, "plan")
    assert.equal(2, #plans)
    assert.is_false(plans[1].replan)
    assert.equal(3, #plans[1].steps)
    assert.same({ replan = true, steps = { { step = S3, participant = "translator" } } }, plans[2])
    assert.same({ "planner", "ledger", "research", "ledger", "writer", "ledger", "writer", "ledger", "planner",
                  "ledger", "translator", "ledger", "answer" }, h.invoked(res.events))
  end)

  it("gives the same result from the weft CLI", function()
    local lines, ok, raw = cli("magentic_plan.lua")
    if lines == nil then return pending("WEFT_BIN is not set (ctest sets it)") end
    assert.is_true(ok, raw)
    assert.equal(1, #lines)
    local out, progress = split(lines[1])
    assert.same(EXPECTED, out)
    assert.equal(6, #progress)
  end)

  it("keeps stalling steps bounded by max_rounds when nobody can translate", function()
    llm.mock.register("plan_translator", { { reply = "STALL: I cannot." } })
    local res = wf:run("")
    assert.equal("completed", res.status, res.error)
    assert.equal("max_rounds", res.outputs[1].reason)
    assert.equal(10, res.outputs[1].rounds)
  end)
end)
