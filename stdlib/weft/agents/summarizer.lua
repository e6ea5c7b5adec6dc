--- weft.agents.summarizer — a summarising agent: condenses a text or a
-- conversation, extracts the key points and highlights decisions and
-- actions. Options (besides the common ones of weft.agents): `max_words`
-- (default 120), `style` ("bullets", the default, or "paragraph").
-- Uses weft.agents.

local DEF = {
  temperature = 0.2,
  description = "Condenses a text into its key points, decisions and actions",
  options = {
    max_words = { type = "integer", minimum = 1 },
    style = { enum = { "bullets", "paragraph" } },
  },
}

--- The instructions of a summarizer agent.
function DEF.instructions(opts)
  local shape = (opts.style or "bullets") == "bullets"
    and "a few bullet points, most important first"
    or "one short paragraph"
  return "You are an expert summarizer.\n"
    .. "1. Condense: keep only what matters to someone who will not read the original.\n"
    .. "2. Extract: the key facts, figures, conclusions and who said what when it matters.\n"
    .. "3. Highlight: decisions taken, open questions and next actions, if any.\n"
    .. "Reply with " .. shape .. ", in at most " .. (opts.max_words or 120) .. " words, "
    .. "in the language of the text. Never add information that is not in the text."
end

--- Make a summarizer agent.
return function(opts)
  local agent = require("weft.agents").make("summarizer", DEF, opts, 2)
  return agent
end
