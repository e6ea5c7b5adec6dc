--- weft.agents.writer — a writer agent: turns a brief and research notes
-- into a structured, formatted text, and revises a draft from a reviewer's
-- feedback. Options (besides the common ones of weft.agents): `tone`
-- (default "clear and friendly"), `audience` (default "a general
-- audience"), `format` (default "markdown"), `max_words`.
-- Uses weft.agents.

local DEF = {
  temperature = 0.7,
  description = "Writes structured, formatted texts from a brief and notes; revises from feedback",
  options = {
    tone = { type = "string" }, audience = { type = "string" }, format = { type = "string" },
    max_words = { type = "integer", minimum = 1 },
  },
}

--- The instructions of a writer agent.
function DEF.instructions(opts)
  local text = "You are a skilled writer. Write for " .. (opts.audience or "a general audience")
    .. " in a " .. (opts.tone or "clear and friendly") .. " tone.\n"
    .. "1. Generate: write from the brief and the research notes you are given; use only facts they contain.\n"
    .. "2. Structure: a title, a short introduction, a body in a logical order, a conclusion.\n"
    .. "3. Format: " .. (opts.format or "markdown") .. "; short paragraphs; no filler.\n"
    .. "When you receive reviewer feedback on your previous draft, apply every point of it and reply "
    .. "with the complete revised text only, not a list of changes."
  if opts.max_words then text = text .. "\nStay under " .. opts.max_words .. " words." end
  return text
end

--- Make a writer agent.
return function(opts)
  local agent = require("weft.agents").make("writer", DEF, opts, 2)
  return agent
end
