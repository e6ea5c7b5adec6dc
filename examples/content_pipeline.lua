-- examples/content_pipeline.lua — research, write, review, revise: the
-- content pipeline of the PocketFlow seed, with the ready-made agents of
-- weft.agents wrapped as executors (agent:as_executor). The reviewer either
-- approves the article or sends feedback back to the writer through a
-- conditional edge, at most `max_revisions` times (default 2).
--
--   weft run examples/content_pipeline.lua                       # offline
--   weft run examples/content_pipeline.lua --input "how tides work"
--   weft run examples/content_pipeline.lua --input-json '{"topic": "tides", "max_revisions": 0}'
--   weft run examples/content_pipeline.lua -- openai:gpt-4o-mini  # a real model
--
-- Offline, the mock models "content_research", "content_writer" and
-- "content_reviewer" are scripted: the first draft leaves out the example
-- the notes offer, the reviewer asks for it, the revision adds it and is
-- approved. Output: {topic, article, approved, revisions, feedback}.
--
-- Graph:  plan -> research -> brief -> writer -> submit -> reviewer -> decide
--                               ^                                      |
--                               +------------- (revise) ---------------+
--                                                 decide -(done)-> publish
local weft = require "weft"
local llm = require "weft.llm"
local agents = require "weft.agents"

local MODEL = ... -- an optional "provider:model" for every agent
local DEFAULT_TOPIC = "why the sky is blue"
local DEFAULT_MAX_REVISIONS = 2

-- Research notes of the scripted researcher: bullet facts, one "Example:"
-- line the writer should use, and a "Summary:" line.
local NOTES = {
  ["why the sky is blue"] = table.concat({
    "- Sunlight looks white but carries every colour of the rainbow.",
    "- Air molecules scatter short (blue) wavelengths far more than long (red) ones: Rayleigh scattering, which grows as 1/wavelength^4.",
    "- Scattered blue light reaches our eyes from every direction, so the whole sky looks blue.",
    "- Violet is scattered even more, but sunlight has less of it and our eyes are less sensitive to it.",
    "Example: at sunset the light crosses much more air, so the blue is scattered away before it reaches us and the reds and oranges remain.",
    "Summary: the air scatters blue light most, so blue reaches us from all over the sky.",
    "Open questions: none.",
  }, "\n"),
}

-- Notes for a topic the script does not know: still well-formed.
local function generic_notes(topic)
  return table.concat({
    "- The question of " .. topic .. " has a short, well-established answer.",
    "- That answer rests on one or two physical or historical facts.",
    "- Popular accounts often skip the mechanism behind it.",
    "Example: a situation anyone can observe shows it at work.",
    "Summary: a few well-known facts explain " .. topic .. ".",
    "Open questions: the details depend on the sources.",
  }, "\n")
end

-- The article the scripted writer writes from the notes; with_example adds
-- the example the reviewer asks for.
local function article(topic, notes, with_example)
  local facts, example, summary = {}, nil, nil
  for line in notes:gmatch("[^\n]+") do
    local fact = line:match("^%- (.+)$")
    if fact then facts[#facts + 1] = fact end
    example = example or line:match("^Example: (.+)$")
    summary = summary or line:match("^Summary: (.+)$")
  end
  local title = topic:sub(1, 1):upper() .. topic:sub(2)
  local parts = { "# " .. title, "", facts[1] or "", "", table.concat(facts, " ", 2) }
  if with_example and example then
    parts[#parts + 1] = ""
    parts[#parts + 1] = "For example, " .. example
    parts[#parts + 1] = ""
    parts[#parts + 1] = "In short, " .. (summary or topic)
  end
  return table.concat(parts, "\n")
end

llm.mock.register("content_research", {
  { match = "^Research this topic: (.-)%.?$",
    reply = function(_, topic) return NOTES[topic] or generic_notes(topic) end },
})
llm.mock.register("content_writer", {
  -- a revision: apply the feedback (add the example)
  { match = "^Revise your article about (.-)%.\n.-Research notes:\n(.*)$",
    reply = function(_, topic, notes) return article(topic, notes, true) end },
  { match = "^Write a short article about (.-)%.\n.-Research notes:\n(.*)$",
    reply = function(_, topic, notes) return article(topic, notes, false) end },
})
llm.mock.register("content_reviewer", {
  { match = "For example,", reply = "APPROVED The example makes the explanation concrete." },
  { reply = "REVISE: 1. Add the concrete example from the notes, introduced by 'For example,'. "
      .. "2. End with a one-sentence summary." },
})

local research = agents.research{ model = MODEL or "mock:content_research" }
local writer = agents.writer{ model = MODEL or "mock:content_writer", max_words = 300 }
local reviewer = agents.reviewer{ model = MODEL or "mock:content_reviewer" }

-- plan: read the input (a topic, or {topic, max_revisions}) and ask the
-- researcher.
local plan = weft.executor("plan", function(input, ctx)
  local topic, max = input, DEFAULT_MAX_REVISIONS
  if type(input) == "table" then topic, max = input.topic, input.max_revisions or max end
  if topic == nil or topic == "" then topic = DEFAULT_TOPIC end
  if type(topic) ~= "string" then error("content_pipeline: the topic must be a string", 0) end
  if type(max) ~= "number" or max < 0 then error("content_pipeline: max_revisions must be a number >= 0", 0) end
  ctx:set_state("topic", topic)
  ctx:set_state("max_revisions", max)
  ctx:send("Research this topic: " .. topic .. ".")
end)

-- brief: the writer's prompt, for a first draft (from the research
-- results) or for a revision (from the reviewer's feedback).
local brief = weft.executor("brief", function(msg, ctx)
  local topic = ctx:get_state("topic")
  if msg.verdict == "revise" then
    ctx:send(("Revise your article about %s.\n\nYour previous draft:\n%s\n\nReviewer feedback:\n%s\n\nResearch notes:\n%s")
      :format(topic, msg.draft, msg.feedback, ctx:get_state("notes")))
  else
    ctx:set_state("notes", msg.response)
    ctx:send(("Write a short article about %s.\n\nResearch notes:\n%s"):format(topic, msg.response))
  end
end)

-- submit: keep the draft and hand it to the reviewer.
local submit = weft.executor("submit", function(msg, ctx)
  ctx:set_state("draft", msg.response)
  ctx:send(("Review this article about %s:\n\n%s"):format(ctx:get_state("topic"), msg.response))
end)

-- decide: approve, ask for a revision, or stop after max_revisions.
local decide = weft.executor("decide", function(msg, ctx)
  local verdict, feedback = agents.verdict(msg.response)
  local draft, revisions = ctx:get_state("draft"), ctx:get_state("revisions") or 0
  ctx:emit("review", { verdict = verdict, revision = revisions })
  if verdict == "revise" then
    ctx:set_state("feedback", feedback)
    if revisions < ctx:get_state("max_revisions") then
      ctx:set_state("revisions", revisions + 1)
      return ctx:send({ verdict = "revise", draft = draft, feedback = feedback })
    end
  end
  ctx:send({ verdict = verdict == "approve" and "approve" or "out_of_revisions", draft = draft })
end)

-- publish: the final article and how it got there.
local publish = weft.executor("publish", function(msg, ctx)
  ctx:yield_output({
    topic = ctx:get_state("topic"),
    article = msg.draft,
    approved = msg.verdict == "approve",
    revisions = ctx:get_state("revisions") or 0,
    feedback = weft.json.array(ctx:get_state("feedback") or {}),
  })
end)

return weft.workflow("content_pipeline")
  :start(plan)
  :edge(plan, research:as_executor("research"))
  :edge("research", brief)
  :edge(brief, writer:as_executor("writer"))
  :edge("writer", submit)
  :edge(submit, reviewer:as_executor("reviewer"))
  :edge("reviewer", decide)
  :edge(decide, brief, { when = function(m) return m.verdict == "revise" end, name = "revise" })
  :edge(decide, publish, { when = function(m) return m.verdict ~= "revise" end, name = "done" })
  :state{ feedback = weft.reduce.append }
  :build()
