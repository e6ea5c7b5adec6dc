-- examples/pocketflow/workflow.lua — PocketFlow's cookbook
-- "pocketflow-workflow" ported to weft.flow: write an article in three
-- steps — an outline, one paragraph per section (a batch node), then a
-- rewrite in a conversational style.
--
--   weft run examples/pocketflow/workflow.lua                          # offline, topic "AI Safety"
--   weft run examples/pocketflow/workflow.lua --input "tide pools"
--   weft run examples/pocketflow/workflow.lua -- openai:gpt-4o-mini    # a real model
--
-- Graph (as in the cookbook):   outline -> write (BatchNode) -> style
--
-- What changed in the port (docs/agents.md, "Porting PocketFlow code"):
-- `outline_node >> write_node >> style_node` is `outline:next(write):next(style)`;
-- the outline is JSON in a ```json fence (weft.json) instead of YAML;
-- WriteSimpleContent kept the section list on `self` to print its
-- progress, but a weft node holds no per-run state (one flow may run many
-- times at once), so prep hands each item its index and the count instead.
-- `flow.AsyncParallelBatchNode` in place of `flow.BatchNode` would write
-- the sections concurrently.
--
-- Offline, the mock model "pf_writer" outlines three sections, writes a
-- paragraph per section and prefixes the draft with a question. Output:
-- the shared table {topic, sections, outline, section_contents, progress,
-- draft, final_article}.
local weft = require "weft"
local llm = require "weft.llm"
local flow = require "weft.flow"

local MODEL = ... -- an optional "provider:model"
local DEFAULT_TOPIC = "AI Safety"

--- call_llm of the cookbook: one user message, the reply's text (a failed
-- call raises, so a node with max_retries asks again).
local function call_llm(prompt)
  local res, err = llm.chat{ model = MODEL or "mock:pf_writer",
                             messages = { { role = "user", content = prompt } } }
  if not res then error(err, 0) end
  return res.text
end

-- The scripted writer.
llm.mock.register("pf_writer", {
  { match = "^Create a simple outline for an article about (.-)%.\n",
    reply = function(_, topic)
      return "Here is the outline:\n```json\n" .. weft.json.encode({ sections = {
        "What " .. topic .. " is", "Why " .. topic .. " matters", "Getting started with " .. topic } })
        .. "\n```"
    end },
  { match = "^Write a short paragraph %(MAXIMUM 100 WORDS%) about this section:\n\n(.-)\n\nRequirements:",
    reply = function(_, section)
      return section .. " comes down to one simple idea, like learning to ride a bike: start small, keep your balance."
    end },
  { match = "^Rewrite the following draft in a conversational, engaging style:\n\n(.-)\n\nMake it:",
    reply = function(_, draft) return "Ever wondered where to begin? Let's walk through it together.\n\n" .. draft end },
})

-- GenerateOutline: at most three sections, as a JSON list.
local outline = flow.Node{
  name = "outline", max_retries = 2,
  prep = function(shared) return shared.topic end,
  exec = function(topic)
    local reply = call_llm("Create a simple outline for an article about " .. topic .. ".\n"
      .. "Include at most 3 main sections (no subsections).\n\n"
      .. 'Output the sections as JSON in a fenced block:\n```json\n{"sections": ["First section", "Second section"]}\n```')
    local body = reply:match("```json%s*(.-)%s*```") or reply
    local parsed, err = weft.json.decode(body)
    if type(parsed) ~= "table" or type(parsed.sections) ~= "table" then
      error("the outline is not JSON with a list of sections: " .. tostring(err or body:sub(1, 200)), 0)
    end
    return parsed
  end,
  post = function(shared, _, parsed)
    shared.sections = parsed.sections
    local lines = {}
    for i, section in ipairs(parsed.sections) do lines[i] = i .. ". " .. section end
    shared.outline = table.concat(lines, "\n")
    return "default"
  end,
}

-- WriteSimpleContent: one short paragraph per section (a batch node:
-- exec runs once per item prep returns, post gets the list of results).
local write = flow.BatchNode{
  name = "write",
  prep = function(shared)
    local items = {}
    for i, section in ipairs(shared.sections or {}) do
      items[i] = { section = section, index = i, total = #shared.sections }
    end
    return items
  end,
  exec = function(item)
    local content = call_llm("Write a short paragraph (MAXIMUM 100 WORDS) about this section:\n\n" .. item.section
      .. "\n\nRequirements:\n- Explain the idea in simple, easy-to-understand terms\n"
      .. "- Use everyday language, avoiding jargon\n- Keep it very concise (no more than 100 words)\n"
      .. "- Include one brief example or analogy")
    return { section = item.section, content = content,
             progress = ("completed section %d/%d: %s"):format(item.index, item.total, item.section) }
  end,
  post = function(shared, _, results)
    local contents, parts, progress = {}, {}, {}
    for i, r in ipairs(results) do
      contents[r.section] = r.content
      parts[i] = "## " .. r.section .. "\n\n" .. r.content .. "\n"
      progress[i] = r.progress
    end
    shared.section_contents, shared.progress = contents, progress
    shared.draft = table.concat(parts, "\n")
    return "default"
  end,
}

-- ApplyStyle: the draft rewritten in a conversational tone.
local style = flow.Node{
  name = "style",
  prep = function(shared) return shared.draft end,
  exec = function(draft)
    return call_llm("Rewrite the following draft in a conversational, engaging style:\n\n" .. draft
      .. "\n\nMake it:\n- Conversational and warm in tone\n- Include rhetorical questions that engage the reader\n"
      .. "- Add analogies and metaphors where appropriate\n- Include a strong opening and conclusion")
  end,
  post = function(shared, _, article)
    shared.final_article = article
    return "default"
  end,
}

outline:next(write):next(style)   -- outline_node >> write_node >> style_node

-- The flow, as a one-executor workflow; a plain input is the topic.
local article = flow.Flow{
  name = "article", start = outline,
  prep = function(shared)
    local input = shared.input ~= "" and shared.input or nil
    shared.topic, shared.input = shared.topic or input or DEFAULT_TOPIC, nil
  end,
}
return article:as_workflow("pocketflow_workflow")
