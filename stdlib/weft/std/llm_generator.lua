--- Built-in executor: generates code with an LLM.
-- Input: a prompt string, `{prompt, language, context?, previous_errors?}`,
-- or the feedback of a validator `{passed = false, errors, feedback, code,
-- task}` (then it asks the model to fix its previous attempt). Sends
-- `{code, language, prompt, task, tokens_used, attempt}`.
-- Uses weft, weft.llm, weft.std.code.
local weft = require "weft"
local llm = require "weft.llm"
local code = require "weft.std.code"

local type, error, concat = type, error, table.concat

local SYSTEM = "You are a careful %s programmer. Reply with exactly one fenced code block "
  .. "containing the complete code, and nothing else."

-- The normalised request of an input message: prompt, language, errors...
local function request_of(id, msg, default_lang, default_prompt)
  if msg == nil or msg == "" then msg = default_prompt end
  if type(msg) == "string" then return { prompt = msg, language = default_lang, attempt = 1 } end
  if type(msg) ~= "table" then
    error(("executor '%s': expects a prompt string or a table, got %s (give a prompt, or set the prompt option)"):format(
      id, msg == nil and "no input" or type(msg)), 0)
  end
  local prompt = msg.task or msg.prompt
  if type(prompt) ~= "string" or prompt == "" then
    error(("executor '%s': the message has no 'prompt' (or 'task') string"):format(id), 0)
  end
  local errors = msg.previous_errors or msg.errors
  return {
    prompt = prompt, language = msg.language or default_lang, context = msg.context,
    previous_code = msg.passed == false and msg.code or nil,
    errors = type(errors) == "table" and errors or (errors and { tostring(errors) }) or nil,
    feedback = msg.feedback, attempt = (msg.attempt or 0) + 1,
  }
end

--- Create the executor: `llm_generator(id, {model, system, language,
-- prompt (used when the input is empty), temperature, max_tokens,
-- max_attempts = 3})`.
return function(id, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("llm_generator: options must be a table", 2) end
  local lang = opts.language or "c"
  code.language(id, lang)
  local max_attempts = opts.max_attempts or 3
  return weft.executor(id, {
    kind = "worker",
    description = "generates " .. lang .. " code with an LLM",
    handle = function(msg, ctx)
      local req = request_of(id, msg, lang, opts.prompt)
      if req.attempt > max_attempts then
        error(("executor '%s': still failing after %d attempts: %s"):format(
          id, max_attempts, concat(req.errors or { req.feedback or "unknown error" }, "; ")), 0)
      end
      local user = { req.prompt }
      if req.context then user[#user + 1] = "Context: " .. tostring(req.context) end
      if req.previous_code then
        user[#user + 1] = "The previous attempt failed:\n```" .. req.language .. "\n" .. req.previous_code .. "```"
        if req.errors and #req.errors > 0 then user[#user + 1] = "Errors:\n" .. concat(req.errors, "\n") end
        if req.feedback then user[#user + 1] = "Feedback: " .. tostring(req.feedback) end
        user[#user + 1] = "Fix the code."
      end
      local res, err = llm.chat{
        model = opts.model,
        messages = {
          { role = "system", content = opts.system or SYSTEM:format(req.language) },
          { role = "user", content = concat(user, "\n\n") },
        },
        temperature = opts.temperature, max_tokens = opts.max_tokens,
      }
      if not res then error(("executor '%s': %s"):format(id, err), 0) end
      ctx:send({
        code = code.extract(res.text), language = req.language, prompt = req.prompt,
        task = req.prompt, attempt = req.attempt,
        tokens_used = res.usage and res.usage.total_tokens or 0,
      })
    end,
  })
end
