--- weft.agents.reviewer — a reviewer agent: validates a text against
-- criteria and either approves it or sends concrete feedback. Its reply
-- starts with "APPROVED" or with "REVISE:" followed by the feedback;
-- weft.agents.verdict(text) reads it back ("approve" | "revise", feedback).
-- Options (besides the common ones of weft.agents): `criteria` (a list of
-- strings; default accuracy, structure, clarity, tone).
-- Uses weft.agents.

local type, ipairs, concat = type, ipairs, table.concat

local CRITERIA = {
  "accuracy: every claim is supported by the notes or the brief",
  "structure: a title, an introduction, a logical body and a conclusion",
  "clarity: plain sentences, no jargon left unexplained",
  "tone: suits the audience and stays consistent",
}

local DEF = {
  temperature = 0.1,
  description = "Reviews a text against criteria; replies APPROVED or REVISE: feedback",
  options = { criteria = true },
}

--- Checks of the reviewer options (an error message or nil).
function DEF.check(opts)
  local c = opts.criteria
  if c == nil then return end
  if type(c) ~= "table" or c[1] == nil then return "criteria must be a non-empty list of strings" end
  for i, s in ipairs(c) do
    if type(s) ~= "string" then return "criteria[" .. i .. "] must be a string" end
  end
end

--- The instructions of a reviewer agent.
function DEF.instructions(opts)
  local lines = {}
  for i, s in ipairs(opts.criteria or CRITERIA) do lines[i] = "- " .. s end
  return "You are a demanding but fair reviewer.\n"
    .. "1. Validate the text against these criteria:\n" .. concat(lines, "\n") .. "\n"
    .. "2. Improve: for each problem, say where it is and exactly how to fix it.\n"
    .. "3. Approve: if the text meets every criterion, reply with the single word APPROVED "
    .. "(optionally followed by one sentence of praise). Otherwise reply with 'REVISE:' followed "
    .. "by your numbered, actionable feedback. Always start your reply with APPROVED or REVISE:."
end

--- Make a reviewer agent.
return function(opts)
  local agent = require("weft.agents").make("reviewer", DEF, opts, 2)
  return agent
end
