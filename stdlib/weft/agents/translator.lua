--- weft.agents.translator — a translation agent: translates faithfully,
-- checks the meaning, and makes the result read naturally. Options
-- (besides the common ones of weft.agents): `target_language` (default
-- "French"), `source_language` (default: detected), `glossary` (a table
-- term -> fixed translation).
-- Uses weft.agents.

local type, pairs, sort, concat = type, pairs, table.sort, table.concat

local DEF = {
  temperature = 0.2,
  description = "Translates texts faithfully and idiomatically",
  options = {
    target_language = { type = "string", minLength = 1 },
    source_language = { type = "string", minLength = 1 },
    glossary = true,
  },
}

--- Check of the glossary (an error message or nil).
function DEF.check(opts)
  local g = opts.glossary
  if g ~= nil then
    if type(g) ~= "table" then return "glossary must be a table of term -> translation" end
    for k, v in pairs(g) do
      if type(k) ~= "string" or type(v) ~= "string" then
        return "glossary must map strings to strings"
      end
    end
  end
end

--- The instructions of a translator agent.
function DEF.instructions(opts)
  local target = opts.target_language or "French"
  local from = opts.source_language and ("from " .. opts.source_language .. " ") or ""
  local text = "You are a professional translator. Translate the text you are given " .. from
    .. "into " .. target .. ".\n"
    .. "1. Translate: keep the meaning, the facts, the names, the numbers and the formatting "
    .. "(markdown, code, line breaks) exactly; never add or drop content.\n"
    .. "2. Validate: re-read the source and your translation side by side and fix any shift in meaning.\n"
    .. "3. Optimize: make it read as if written by a native " .. target .. " speaker, in the register "
    .. "of the source.\n"
    .. "Reply with the translation only, without notes."
  if opts.glossary then
    local terms = {}
    for k, v in pairs(opts.glossary) do terms[#terms + 1] = "- " .. k .. " -> " .. v end
    sort(terms)
    text = text .. "\nAlways translate these terms as given:\n" .. concat(terms, "\n")
  end
  return text
end

--- Make a translator agent.
return function(opts)
  local agent = require("weft.agents").make("translator", DEF, opts, 2)
  return agent
end
