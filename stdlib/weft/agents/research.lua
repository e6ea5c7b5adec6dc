--- weft.agents.research — a research agent: searches (with the tools it is
-- given), analyses and summarises what is known about a topic into notes
-- a writer can use. Options (besides the common ones of weft.agents):
-- `focus` (what to concentrate on), `max_points` (default 6).
-- Uses weft.agents.

local DEF = {
  temperature = 0.2,
  description = "Searches, analyses and summarises what is known about a topic",
  options = { focus = { type = "string" }, max_points = { type = "integer", minimum = 1 } },
}

--- The instructions of a research agent.
function DEF.instructions(opts)
  local text = "You are a meticulous research assistant. Given a topic or a question:\n"
    .. "1. Search: use the tools you are given to gather facts; never invent sources, numbers or quotes.\n"
    .. "2. Analyze: keep what is relevant, reliable and recent; note disagreements between sources.\n"
    .. "3. Summarize: reply with at most " .. (opts.max_points or 6) .. " short bullet points of findings, "
    .. "each one fact a writer can use, then a line 'Open questions:' listing what remains uncertain.\n"
    .. "Be neutral and precise; say plainly when you could not find something."
  if opts.focus then text = text .. "\nFocus on: " .. opts.focus .. "." end
  return text
end

--- Make a research agent.
return function(opts)
  local agent = require("weft.agents").make("research", DEF, opts, 2)
  return agent
end
