-- examples/concurrent_analysis.lua — three analysts (market, marketing,
-- legal) study the same product brief at once; a summarizer agent merges
-- their answers into one briefing (a synthesising aggregator).
--
--   weft run examples/concurrent_analysis.lua                    # offline
--   weft run examples/concurrent_analysis.lua --input "We are launching a meal-kit delivery service in Lyon."
--   weft run examples/concurrent_analysis.lua -- openai:gpt-4o-mini  # a real model
--
-- Offline, the mock models "analysis_market", "analysis_marketing",
-- "analysis_legal" and "analysis_synthesis" are scripted; the synthesis
-- quotes the first sentence of each analyst's answer. An analyst that
-- fails does not stop the run: its answer is reported as failed and the
-- synthesis goes on without it. Output (weft.patterns.concurrent with
-- aggregators.synthesize): {text = the briefing, results = {{agent, text
-- | error}, ...}}.
local weft = require "weft"
local llm = require "weft.llm"
local agents = require "weft.agents"
local patterns = require "weft.patterns"

local MODEL = ... -- an optional "provider:model" for every agent
local BRIEF = "We are launching a budget electric bike for city commuters, priced at 999 EUR, "
  .. "sold online in France and Germany."

-- The product the brief is about (its first clause), for scripted replies.
local function product(messages)
  for _, m in ipairs(messages) do
    if m.role == "user" then
      local text = m.content or ""
      return text:match("launching (an? [^,%.]+)") or "the product"
    end
  end
  return "the product"
end

llm.mock.register("analysis_market", {
  { reply = function(messages)
      return ("Demand for %s is growing about 10%% a year in European cities. Competitors price "
        .. "between 900 and 1,500 EUR, so the price is at the low end. Risk: thin margins."):format(product(messages))
    end },
})
llm.mock.register("analysis_marketing", {
  { reply = function(messages)
      return ("Position %s as the commuter's car replacement: lead with total cost per month. "
        .. "Channels: commuter forums, employer mobility schemes, test rides at train stations."):format(product(messages))
    end },
})
llm.mock.register("analysis_legal", {
  { reply = function(messages)
      local p = product(messages)
      return ("%s%s must meet the EU rules of its category (for electric bikes: EN 15194, 25 km/h, 250 W). "
        .. "Online sales carry a 14-day withdrawal right; batteries fall under the battery regulation."):format(
        p:sub(1, 1):upper(), p:sub(2))
    end },
})

-- The synthesis: one line per analyst section ("## name\n...") of the
-- prompt, with the first sentence of its answer (or its failure).
llm.mock.register("analysis_synthesis", {
  { reply = function(messages)
      local prompt = messages[#messages].content
      local lines = { "Briefing:" }
      local sections = prompt:match("\nAnswers:\n\n(.*)$") or ""
      for block in (sections .. "\n\n## "):gmatch("## (.-)\n\n%f[#]") do
        local name, body = block:match("^(%S+)\n(.*)$")
        local failed = body:match("^%(failed: (.*)%)$")
        if failed then
          lines[#lines + 1] = ("- %s: no answer (%s)"):format(name, failed)
        else
          lines[#lines + 1] = ("- %s: %s"):format(name, body:match("^(.-%.)%s") or body)
        end
      end
      lines[#lines + 1] = "Next step: weigh the margin risk against the compliance costs before fixing the price."
      return table.concat(lines, "\n")
    end },
})

local market = agents.research{
  name = "market", model = MODEL or "mock:analysis_market",
  focus = "market size, growth, competitors and their prices", max_points = 4,
}
local marketing = weft.agent{
  name = "marketing", model = MODEL or "mock:analysis_marketing",
  description = "positioning, messages and channels",
  instructions = "You are a creative marketing strategist. For the product brief you are given, "
    .. "propose a positioning, the key message and the three best channels, in four sentences.",
}
local legal = weft.agent{
  name = "legal", model = MODEL or "mock:analysis_legal",
  description = "regulations and compliance risks",
  instructions = "You are a legal and compliance reviewer. For the product brief you are given, "
    .. "list the regulations that apply and the main compliance risks, in four sentences. "
    .. "Say which points need a lawyer's check.",
  llm = { retries = 0 },
}
local synthesizer = agents.summarizer{
  name = "synthesizer", model = MODEL or "mock:analysis_synthesis", max_words = 150,
}

local wf = patterns.concurrent{
  name = "concurrent_analysis",
  agents = { market, marketing, legal },
  aggregator = patterns.aggregators.synthesize(synthesizer, {
    prompt = "Three analysts studied the same product brief. Merge their answers into one briefing "
      .. "for the launch team: one line per analyst with their key point, then the next step.",
  }),
}

-- `weft run` without --input gives "": use the sample task then.
return wf:set_defaults{ input = BRIEF }
