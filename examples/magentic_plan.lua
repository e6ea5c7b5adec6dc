-- examples/magentic_plan.lua — magentic planning: a planner agent splits a
-- task into steps for the participants (research, writer, translator),
-- judges the progress after each round in a progress ledger (who acts
-- next, with what instruction), re-plans when the team stalls, and writes
-- the final answer.
--
--   weft run examples/magentic_plan.lua --events pretty          # offline
--   weft run examples/magentic_plan.lua -- openai:gpt-4o-mini     # a real model
--
-- Offline, the mock models "plan_planner", "plan_research",
-- "plan_writer" and "plan_translator" are scripted. The first plan gives
-- the French translation to the writer, who declines ("STALL: I cannot
-- translate..."): the manager's progress ledger says no progress, so
-- (max_stalls = 1) the planner re-plans and hands it to the translator.
-- Output (weft.patterns.magentic): {text, reason, rounds, replans,
-- stalls, plan, ledger, progress}; the run's "plan" and "progress" custom
-- events show each decision.
local weft = require "weft"
local llm = require "weft.llm"
local json = require "weft.json"
local agents = require "weft.agents"
local patterns = require "weft.patterns"

local MODEL = ... -- an optional "provider:model" for every agent
local TASK = "Announce weft's new handoff pattern to our users, in English and in French."

local FACTS = "weft 0.4 adds the handoff pattern: agents pass a conversation to each other "
  .. "through generated handoff_to_<peer> tools, and max_handoffs bounds every loop."
local ENGLISH = "weft 0.4 is out! With the new handoff pattern, your agents pass a conversation "
  .. "to the right specialist on their own, and max_handoffs keeps every loop bounded."
local FRENCH = "weft 0.4 est disponible ! Avec le nouveau modèle handoff, vos agents passent "
  .. "d'eux-mêmes une conversation au bon spécialiste, et max_handoffs borne chaque boucle."

-- The result of the done step of a participant in the ledger text of a
-- planner prompt ("N. [name] step -> done: result").
local function done_result(prompt, name)
  return prompt:match("%d+%. %[" .. name .. "%] [^\n]- %-> done: ([^\n]*)")
end

-- The manager's progress ledger (JSON) from the rounds done so far, read
-- in the "What was done so far" part of its prompt.
local function progress_ledger(messages)
  local prompt = messages[#messages].content
  local done = prompt:match("What was done so far:\n(.-)\n\nUpdate the progress ledger") or ""
  local last = done:match("([^\n]*)$")
  local function entry(answer, reason) return { answer = answer, reason = reason } end
  local satisfied, progress, speaker, instruction = false, true, nil, nil
  if not last:find("^%d+%. %[") then
    speaker, instruction = "research", "Collect the facts about the handoff pattern."
  elseif last:find("-> done: STALL", 1, true) then
    progress, speaker, instruction = false, "translator", "Translate the announcement into French."
  elseif last:find("[research]", 1, true) then
    speaker, instruction = "writer", "Write a two-sentence announcement in English from the facts."
  elseif last:find("[translator]", 1, true) then
    satisfied, speaker, instruction = true, "translator", ""
  else
    speaker, instruction = "writer", "Translate the announcement into French."
  end
  return json.encode {
    is_request_satisfied = entry(satisfied, satisfied and "both texts are written" or "a text is missing"),
    is_progress_being_made = entry(progress, progress and "the last round delivered" or "the writer declined"),
    is_in_loop = entry(false, "no repetition"),
    next_speaker = entry(speaker, "the step's participant"),
    instruction_or_question = entry(instruction, "the next step"),
  }
end

llm.mock.register("plan_planner", {
  { match = "Update the progress ledger", reply = progress_ledger },
  { match = "Split the task into steps", reply = json.encode(json.array{
      { step = "Collect the facts about the handoff pattern", participant = "research" },
      { step = "Write a two-sentence announcement in English", participant = "writer" },
      { step = "Translate the announcement into French", participant = "writer" },
    }) },
  { match = "The team stalled", reply = "```json\n" .. json.encode(json.array{
      { step = "Translate the announcement into French", participant = "translator" },
    }) .. "\n```" },
  { match = "Write the final answer", reply = function(messages)
      local prompt = messages[#messages].content
      return ("English: %s\n\nFrench: %s"):format(done_result(prompt, "writer") or "(missing)",
                                                  done_result(prompt, "translator") or "(missing)")
    end },
})
llm.mock.register("plan_research", { { reply = FACTS } })
llm.mock.register("plan_writer", {
  { match = "Your instruction: Translate",
    reply = "STALL: I cannot translate into French; the translator should take this step." },
  { reply = ENGLISH },
})
llm.mock.register("plan_translator", { { reply = FRENCH } })

local planner = weft.agent{
  name = "planner", model = MODEL or "mock:plan_planner", temperature = 0,
  description = "plans the work and writes the final answer",
  instructions = "You are the lead of a small team. You split tasks into steps, give each step to "
    .. "the participant best suited for it, follow the progress and write the final answer from "
    .. "the participants' results. Follow the reply format each request asks for exactly.",
}
local research = agents.research{ model = MODEL or "mock:plan_research", max_points = 3 }
local writer = agents.writer{ model = MODEL or "mock:plan_writer", max_words = 60,
                              extra_instructions = "You write in English only. If a step asks for "
                                .. "something else, reply 'STALL:' and say who should do it." }
local translator = agents.translator{ model = MODEL or "mock:plan_translator", target_language = "French" }

local wf = patterns.magentic{
  name = "magentic_plan",
  planner = planner,
  participants = { research, writer, translator },
  max_stalls = 1,
  max_rounds = 10,
}

-- `weft run` without --input gives "": use the sample task then.
return wf:set_defaults{ input = TASK }
