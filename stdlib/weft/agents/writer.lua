--- weft.agents.writer — a writer agent: turns a brief and research notes
-- into a structured, formatted text, and revises a draft from a reviewer's
-- feedback. Options (besides the common ones of weft.agents): `tone`
-- (default "clear and friendly"), `audience` (default "a general
-- audience"), `format` (default "markdown"), `max_words`.
-- Uses weft.agents.

local type, ipairs = type, ipairs

local DEF = {
  temperature = 0.7,
  description = "Writes structured, formatted texts from a brief and notes; revises from feedback",
  options = { tone = true, audience = true, format = true, max_words = true },
}

--- Checks of the writer options (an error message or nil).
function DEF.check(opts)
  for _, f in ipairs({ "tone", "audience", "format" }) do
    if opts[f] ~= nil and type(opts[f]) ~= "string" then return f .. " must be a string" end
  end
  local n = opts.max_words
  if n ~= nil and (type(n) ~= "number" or n < 1 or n % 1 ~= 0) then
    return "max_words must be an integer >= 1"
  end
end

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
