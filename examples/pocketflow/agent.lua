-- examples/pocketflow/agent.lua — PocketFlow's cookbook "pocketflow-agent"
-- ported to weft.flow: a research agent that decides whether to search the
-- web or answer, searches, decides again, then answers.
--
--   weft run examples/pocketflow/agent.lua                                  # offline
--   weft run examples/pocketflow/agent.lua --input "Who won the Nobel Prize in Physics 2024?"
--   weft run examples/pocketflow/agent.lua -- openai:gpt-4o-mini            # a real model
--
-- Graph (as in the cookbook):   decide -(search)-> search -(decide)-> decide
--                               decide -(answer)-> answer
--
-- What changed in the port (docs/agents.md, "Porting PocketFlow code"):
-- the classes DecideAction, SearchWeb and AnswerQuestion are tables given
-- to flow.Node; `decide - "search" >> search` is `decide:on("search",
-- search)`; `call_llm(prompt)` is weft.llm.chat; the decision is JSON
-- (weft.json) instead of YAML; a reply that does not parse raises in exec,
-- so `max_retries = 3` asks the model again. The web search is an offline
-- stand-in for DuckDuckGo: a few pages searched by word overlap.
--
-- Offline, the mock model "pf_agent" decides to search when there is no
-- research yet, to answer once there is (with the first snippet found),
-- and writes the final answer from that. Output: the shared table {question, search_query,
-- context, answer}; one flow_step event per node run.
local weft = require "weft"
local llm = require "weft.llm"
local flow = require "weft.flow"

local MODEL = ... -- an optional "provider:model"
local DEFAULT_QUESTION = "Who won the Nobel Prize in Physics 2024?"

--- call_llm of the cookbook's utils.py: one user message, the reply's text
-- (a failed call raises, as the Python client does, so the node retries).
local function call_llm(prompt)
  local res, err = llm.chat{ model = MODEL or "mock:pf_agent",
                             messages = { { role = "user", content = prompt } } }
  if not res then error(err, 0) end
  return res.text
end

-- The offline "web": pages searched by the words they share with a query.
local WEB = {
  { title = "The Nobel Prize in Physics 2024 - NobelPrize.org",
    url = "https://www.nobelprize.org/prizes/physics/2024/summary/",
    body = "The Nobel Prize in Physics 2024 was awarded jointly to John J. Hopfield and Geoffrey E. Hinton "
      .. "for foundational discoveries and inventions that enable machine learning with artificial neural networks." },
  { title = "Nobel Prize in Chemistry 2024 - NobelPrize.org",
    url = "https://www.nobelprize.org/prizes/chemistry/2024/summary/",
    body = "The Nobel Prize in Chemistry 2024 was divided, one half awarded to David Baker for computational "
      .. "protein design, the other half jointly to Demis Hassabis and John Jumper for protein structure prediction." },
  { title = "Why is the sky blue? - Met Office",
    url = "https://www.metoffice.gov.uk/weather/learn-about/weather/optical-effects/why-is-the-sky-blue",
    body = "Sunlight is scattered by the molecules of the air, and blue light is scattered more than red light: "
      .. "Rayleigh scattering." },
}

--- search_web_duckduckgo of the cookbook, offline: the pages sharing the
-- most words with the query (at most two), as "Title/URL/Snippet" text.
local function search_web(query)
  local words = {}
  for w in query:lower():gmatch("%w+") do if #w > 3 then words[w] = true end end
  local scored = {}
  for i, page in ipairs(WEB) do
    local score, text = 0, (page.title .. " " .. page.body):lower()
    for w in pairs(words) do if text:find(w, 1, true) then score = score + 1 end end
    if score > 0 then scored[#scored + 1] = { score = score, i = i, page = page } end
  end
  table.sort(scored, function(a, b) if a.score ~= b.score then return a.score > b.score end; return a.i < b.i end)
  local out = {}
  for k = 1, math.min(2, #scored) do
    local p = scored[k].page
    out[k] = ("Title: %s\nURL: %s\nSnippet: %s"):format(p.title, p.url, p.body)
  end
  return #out > 0 and table.concat(out, "\n\n") or "No results."
end

-- The scripted model: decide (search without research, answer with it) and
-- answer (from the first snippet of the research).
llm.mock.register("pf_agent", {
  { match = "^### CONTEXT\nYou are a research assistant.-\nQuestion: (.-)\nPrevious Research: No previous search\n",
    reply = function(_, question)
      return weft.json.encode({ action = "search", reason = "I have no research yet.", search_query = question })
    end },
  { match = "^### CONTEXT\nYou are a research assistant.-\nQuestion: .-\nPrevious Research: (.*)$",
    reply = function(_, research)
      local snippet = research:match("Snippet: ([^\n]+)")
      return weft.json.encode({ action = "answer", reason = "I have searched once.",
                                answer = snippet or "Nothing found on the web about it." })
    end },
  { match = "^### CONTEXT\nBased on the following information.-\nResearch: (.-)\n\n## YOUR ANSWER",
    reply = function(_, research) return "According to my research: " .. research end },
})

-- DecideAction: search or answer? The reply must be a JSON object with an
-- action; anything else raises, and the node asks again (max_retries).
local decide = flow.Node{
  name = "decide", max_retries = 3,
  prep = function(shared)
    return { question = shared.question, context = shared.context or "No previous search" }
  end,
  exec = function(inputs)
    local reply = call_llm(table.concat({
      "### CONTEXT",
      "You are a research assistant that can search the web.",
      "Question: " .. inputs.question,
      "Previous Research: " .. inputs.context,
      "",
      "### ACTION SPACE",
      "[1] search: look up more information on the web (give search_query)",
      "[2] answer: answer the question with current knowledge (give answer)",
      "",
      "## NEXT ACTION",
      'Reply with one JSON object only: {"action": "search" or "answer", "reason": "...",'
        .. ' "search_query": "...", "answer": "..."}',
    }, "\n"))
    local decision = weft.json.decode(reply:match("%b{}") or reply)
    if type(decision) ~= "table" or (decision.action ~= "search" and decision.action ~= "answer") then
      error("the model's decision is not a JSON object with an action: " .. reply:sub(1, 200), 0)
    end
    return decision
  end,
  post = function(shared, _, decision)
    if decision.action == "search" then
      shared.search_query = decision.search_query
    else
      shared.context = decision.answer -- answered without (more) searching
    end
    return decision.action
  end,
}

-- SearchWeb: search, add the results to the context, decide again.
local search = flow.Node{
  name = "search",
  prep = function(shared) return shared.search_query end,
  exec = function(query) return search_web(query) end,
  post = function(shared, _, results)
    shared.context = (shared.context or "") .. "\n\nSEARCH: " .. shared.search_query .. "\nRESULTS: " .. results
    return "decide"
  end,
}

-- AnswerQuestion: the final answer from the question and the research.
local answer = flow.Node{
  name = "answer",
  prep = function(shared) return { question = shared.question, context = shared.context or "" } end,
  exec = function(inputs)
    return call_llm("### CONTEXT\nBased on the following information, answer the question.\nQuestion: "
      .. inputs.question .. "\nResearch: " .. inputs.context
      .. "\n\n## YOUR ANSWER:\nProvide a comprehensive answer using the research results.")
  end,
  post = function(shared, _, text)
    shared.answer = text
    return "done"
  end,
}

decide:on("search", search)   -- decide - "search" >> search
decide:on("answer", answer)   -- decide - "answer" >> answer
search:on("decide", decide)   -- search - "decide" >> decide

-- The flow, as a one-executor workflow; a plain input is the question.
local agent = flow.Flow{
  name = "agent", start = decide,
  prep = function(shared)
    local input = shared.input ~= "" and shared.input or nil
    shared.question, shared.input = shared.question or input or DEFAULT_QUESTION, nil
  end,
}
return agent:as_workflow("pocketflow_agent")
