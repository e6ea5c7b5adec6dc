-- examples/pocketflow/translate.lua — PocketFlow's cookbook
-- "pocketflow-parallel-batch" ported to weft.flow: translate one markdown
-- text into several languages at once (an AsyncParallelBatchNode: one model
-- call per language, all in flight together) and save each translation.
--
--   weft run examples/pocketflow/translate.lua                        # offline, a short sample text
--   weft run examples/pocketflow/translate.lua --input-json '{"text": "# Hi", "languages": ["German"], "output_dir": "out"}'
--   weft run examples/pocketflow/translate.lua -- openai:gpt-4o-mini  # a real model
--
-- Graph (as in the cookbook):   AsyncFlow{start = translate}
--
-- What changed in the port (docs/agents.md, "Porting PocketFlow code"):
-- `async def prep_async/exec_async/post_async` are plain functions under
-- the same names (every weft function may wait on I/O: no async/await);
-- `await call_llm(prompt)` is weft.llm.chat; `asyncio.gather` is what
-- AsyncParallelBatchNode does with weft tasks; `max_retries=3` is a field;
-- `await flow.run_async(shared)` is `flow:run(shared)` (or run_async).
--
-- Offline, the mock model "pf_translator" "translates" by tagging every
-- line with the language. Output: the shared table {text, languages,
-- translations = {language -> text}, files (when output_dir is given)}.
local weft = require "weft"
local llm = require "weft.llm"
local flow = require "weft.flow"

local MODEL = ... -- an optional "provider:model"
local SAMPLE = "# PocketFlow\n\nA 100-line LLM framework. See the [docs](https://the-pocket.github.io/PocketFlow/)."
local LANGUAGES = { "Chinese", "Spanish", "Japanese", "German", "Russian", "Portuguese", "French", "Korean" }

--- call_llm of the cookbook's utils.py (async there; every weft call can
-- wait on I/O, so this is the same function as in the other ports).
local function call_llm(prompt)
  local res, err = llm.chat{ model = MODEL or "mock:pf_translator",
                             messages = { { role = "user", content = prompt } } }
  if not res then error(err, 0) end
  return res.text
end

-- The scripted translator: each line tagged "[language]".
llm.mock.register("pf_translator", {
  { match = "^\nPlease translate the following markdown file into (.-)%.\n.-\nOriginal:\n(.-)\n\nTranslated:$",
    reply = function(_, language, text)
      return (text:gsub("[^\n]+", function(line) return "[" .. language .. "] " .. line end))
    end },
})

-- TranslateTextNodeParallel: one (text, language) item per language, all
-- translated concurrently; post stores them (and writes files).
local translate = flow.AsyncParallelBatchNode{
  name = "translate", max_retries = 3,
  prep_async = function(shared)
    local items = {}
    for i, language in ipairs(shared.languages) do items[i] = { text = shared.text, language = language } end
    return items
  end,
  exec_async = function(item)
    local translation = call_llm("\nPlease translate the following markdown file into " .. item.language .. ".\n"
      .. "But keep the original markdown format, links and code blocks.\n"
      .. "Directly return the translated text, without any other text or comments.\n\n"
      .. "Original:\n" .. item.text .. "\n\nTranslated:")
    return { language = item.language, translation = translation }
  end,
  post_async = function(shared, _, results)
    shared.translations = {}
    for _, r in ipairs(results) do shared.translations[r.language] = r.translation end
    if shared.output_dir then
      shared.files = weft.json.array()
      for _, r in ipairs(results) do
        local path = shared.output_dir .. "/README_" .. r.language:upper() .. ".md"
        local f, err = io.open(path, "w")
        if not f then error("translate: cannot write " .. err, 0) end
        f:write(r.translation)
        f:close()
        shared.files[#shared.files + 1] = path
      end
    end
    return "default"
  end,
}

-- The flow, as a one-executor workflow; a plain input is the text.
local translation = flow.AsyncFlow{
  name = "translation", start = translate,
  prep_async = function(shared)
    local input = shared.input ~= "" and shared.input or nil
    shared.text, shared.input = shared.text or input or SAMPLE, nil
    shared.languages = shared.languages or LANGUAGES
  end,
}
return translation:as_workflow("pocketflow_translate")
