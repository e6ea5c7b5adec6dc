--- spec/support/provider_formats.lua — the LLM wire formats of the provider
-- test server (spec/support/provider_server.lua): request parsing and
-- validation, the deterministic reply, and the JSON / streamed responses of
-- OpenAI chat completions, Anthropic messages, Gemini generateContent and
-- Ollama /api/chat, shaped as the real APIs send them.
--
-- The reply (docs/io.md): from the last message — a tool result (OpenAI and
-- Ollama role "tool", Anthropic tool_result blocks, Gemini functionResponse
-- parts) gives "tool said: <content>" (several trailing results joined with
-- "; "); otherwise the last user text T gives "echo: T", unless tools are
-- offered and T contains `call NAME {json}` or `call NAME` for an offered
-- tool NAME: then the reply calls it (each such mention is one call). A
-- forced tool choice without a mention calls the forced (or first) tool with
-- {}; tool choice "none" never calls. A max-token limit below the reply's
-- word count truncates it and reports the provider's "length" reason.
-- Usage counts words: input = words of every message text (system
-- included), output = words of the reply (a call: its name and arguments).
--
-- Auth is checked like the real APIs do (presence only): OpenAI
-- `Authorization: Bearer KEY`, Anthropic `x-api-key` and `anthropic-version`,
-- Gemini `x-goog-api-key` or `?key=`; the key "invalid" gets a 401.
-- Streamed text is split per word (each piece keeps its leading space), tool
-- arguments in pieces of 4 bytes, so clients must assemble.
local json = require "weft.json"

local type, tostring, pairs, ipairs, error, next = type, tostring, pairs, ipairs, error, next
local format, sub, find, match, gmatch, byte = string.format, string.sub, string.find,
  string.match, string.gmatch, string.byte
local concat = table.concat
local null, array, object = json.null, json.array, json.object

local _M = {}

local ARG_PIECE = 4

--------------------------------------------------------------------------
-- Errors in each provider's format

local OPENAI_TYPES = { [400] = "invalid_request_error", [401] = "invalid_request_error",
  [403] = "permission_error", [404] = "invalid_request_error", [405] = "invalid_request_error",
  [429] = "requests" }
local ANTHROPIC_TYPES = { [400] = "invalid_request_error", [401] = "authentication_error",
  [403] = "permission_error", [404] = "not_found_error", [405] = "invalid_request_error",
  [413] = "request_too_large", [429] = "rate_limit_error", [529] = "overloaded_error" }
local GEMINI_STATUS = { [400] = "INVALID_ARGUMENT", [401] = "UNAUTHENTICATED",
  [403] = "PERMISSION_DENIED", [404] = "NOT_FOUND", [405] = "INVALID_ARGUMENT",
  [409] = "ABORTED", [429] = "RESOURCE_EXHAUSTED", [499] = "CANCELLED", [500] = "INTERNAL",
  [501] = "UNIMPLEMENTED", [503] = "UNAVAILABLE", [504] = "DEADLINE_EXCEEDED" }

--- The JSON error body a provider (nil: a plain endpoint) sends with status.
function _M.error_body(provider, status, msg, code)
  if provider == "openai" then
    local t = OPENAI_TYPES[status] or (status >= 500 and "server_error" or "invalid_request_error")
    return json.encode({ error = { message = msg, type = t, param = null,
      code = code or (status == 429 and "rate_limit_exceeded" or null) } })
  elseif provider == "anthropic" then
    local t = ANTHROPIC_TYPES[status] or (status >= 500 and "api_error" or "invalid_request_error")
    return json.encode({ type = "error", error = { type = t, message = msg } })
  elseif provider == "gemini" then
    local st = GEMINI_STATUS[status] or (status >= 500 and "INTERNAL" or "FAILED_PRECONDITION")
    return json.encode({ error = { code = status, message = msg, status = st } })
  elseif provider == "ollama" then
    return json.encode({ error = msg })
  end
  return json.encode({ error = { message = msg, status = status } })
end

-- Raised inside a parser: a 4xx for the client (caught in handle).
local function reject(status, msg, code)
  error({ reject = true, status = status, msg = msg, code = code }, 0)
end

--------------------------------------------------------------------------
-- Small helpers

--- Number of words (whitespace-separated) of s.
function _M.words(s)
  local n = 0
  for _ in gmatch(s or "", "%S+") do n = n + 1 end
  return n
end
local words = _M.words

--- Split text per word: pieces "w1", " w2", ... that concatenate to text.
function _M.split_words(text)
  local out = {}
  for piece in gmatch(text, "%s*%S+") do out[#out + 1] = piece end
  local tail = match(text, "%s+$")
  if tail and #out > 0 then out[#out] = out[#out] .. tail
  elseif tail then out[1] = tail end
  return out
end

-- Split s into pieces of at most n bytes (at least one piece, maybe ""),
-- never inside a UTF-8 character.
local function split_bytes(s, n)
  local out, i = {}, 1
  while i <= #s do
    local j = i + n
    while j <= #s and j > i + 1 and byte(s, j) >= 0x80 and byte(s, j) < 0xC0 do j = j - 1 end
    out[#out + 1] = sub(s, i, j - 1)
    i = j
  end
  if #out == 0 then out[1] = "" end
  return out
end
_M.split_bytes = split_bytes

-- A string field, or nil (JSON null and non-strings count as absent).
local function str(v) if type(v) == "string" then return v end end

-- A list field: a JSON array (possibly empty), or nil.
local function list(v)
  if type(v) == "table" and (json.is_array(v) or next(v) == nil) then return v end
end

-- The index of the closing brace of the JSON object starting at i, or nil.
local function object_end(s, i)
  local depth, in_str, esc = 0, false, false
  for j = i, #s do
    local ch = sub(s, j, j)
    if in_str then
      if esc then esc = false
      elseif ch == "\\" then esc = true
      elseif ch == '"' then in_str = false end
    elseif ch == '"' then in_str = true
    elseif ch == "{" then depth = depth + 1
    elseif ch == "}" then
      depth = depth - 1
      if depth == 0 then return j end
    end
  end
end

--- The tool calls a text asks for: `call NAME {json}` / `call NAME` for
-- each NAME in the set `tools`; a list of {name, args}.
function _M.parse_calls(text, tools)
  local calls, pos = {}, 1
  while true do
    local s, e, name = find(text, "call%s+([%w_%-%.]+)", pos)
    if not s then break end
    pos = e + 1
    if s == 1 or match(sub(text, s - 1, s - 1), "[^%w_]") then
      local args = {}
      local j = e + 1 + #match(text, "^%s*", e + 1)
      if sub(text, j, j) == "{" then
        local k = object_end(text, j)
        local dec = k and json.decode(sub(text, j, k))
        if type(dec) == "table" and not json.is_array(dec) then
          args, pos = dec, k + 1
        end
      end
      if tools[name] then calls[#calls + 1] = { name = name, args = args } end
    end
  end
  return calls
end

-- The JSON string of call arguments (always an object).
local function args_json(args) return json.encode(object(args)) end

--------------------------------------------------------------------------
-- The reply

-- conv = {messages = {{role = "user"|"assistant"|"system"|"tool", text}},
--         tools = {name = true}, tool_list = {names in order},
--         choice = "auto"|"none"|"required"|NAME, max_tokens = n|nil}
-- Returns {text = s | nil, calls = {{name, args, args_json}} | nil,
--          finish = "stop"|"length"|"tool_calls", input = n, output = n}.
local function decide(conv)
  local msgs = conv.messages
  local input = 0
  for _, m in ipairs(msgs) do input = input + words(m.text) end
  local r = { input = input }
  -- trailing tool results
  local results, i = {}, #msgs
  while i >= 1 and msgs[i].role == "tool" do
    table.insert(results, 1, msgs[i].text or "")
    i = i - 1
  end
  local text
  if #results > 0 then
    text = "tool said: " .. concat(results, "; ")
  else
    local user = ""
    for k = #msgs, 1, -1 do
      if msgs[k].role == "user" then user = msgs[k].text or ""; break end
    end
    if conv.choice ~= "none" and next(conv.tools) then
      local calls = _M.parse_calls(user, conv.tools)
      if #calls == 0 and conv.choice ~= "auto" then
        local forced = conv.choice == "required" and conv.tool_list[1] or conv.choice
        if conv.tools[forced] then calls[1] = { name = forced, args = {} } end
      end
      if #calls > 0 then
        local out = 0
        for _, c in ipairs(calls) do
          c.args_json = args_json(c.args)
          out = out + words(c.name) + words(c.args_json)
        end
        r.calls, r.finish, r.output = calls, "tool_calls", out
        return r
      end
    end
    text = "echo: " .. user
  end
  r.finish = "stop"
  local max = conv.max_tokens
  if type(max) == "number" and max >= 0 and words(text) > max then
    local kept, n = {}, 0
    for _, piece in ipairs(_M.split_words(text)) do
      if n >= max then break end
      kept[#kept + 1] = piece
      n = n + 1
    end
    text, r.finish = concat(kept):gsub("%s+$", ""), "length"
  end
  r.text, r.output = text, words(text)
  return r
end
_M.decide = decide

-- Tool-call ids: unique per conversation turn and deterministic.
local function call_id(prefix, conv, k)
  return format("%s_%d_%d", prefix, #conv.messages, k)
end

--------------------------------------------------------------------------
-- OpenAI chat completions

-- Text of OpenAI message content: a string, or parts [{type="text", text}].
local function openai_text(content, where)
  if content == nil or content == null then return "" end
  if type(content) == "string" then return content end
  local parts = list(content)
  if not parts then reject(400, "Invalid type for '" .. where .. "': expected a string or an array.") end
  local out = {}
  for _, p in ipairs(parts) do
    if type(p) == "table" and p.type == "text" then out[#out + 1] = str(p.text) or "" end
  end
  return concat(out, "\n")
end

local function openai_parse(body)
  if str(body.model) == nil then reject(400, "you must provide a model parameter") end
  local msgs = list(body.messages)
  if not msgs or #msgs == 0 then
    reject(400, "Invalid 'messages': empty array. Expected an array with minimum length 1.")
  end
  local conv = { messages = {}, tools = {}, tool_list = {}, choice = "auto" }
  for i, m in ipairs(msgs) do
    local where = "messages[" .. (i - 1) .. "]"
    if type(m) ~= "table" then reject(400, "Invalid type for '" .. where .. "': expected an object.") end
    local role = str(m.role)
    if role == "developer" then role = "system" end
    if role ~= "system" and role ~= "user" and role ~= "assistant" and role ~= "tool" then
      reject(400, "Invalid value for '" .. where .. ".role': " .. tostring(m.role))
    end
    if role == "tool" and not str(m.tool_call_id) then
      reject(400, "Missing required parameter: '" .. where .. ".tool_call_id'.")
    end
    conv.messages[i] = { role = role, text = openai_text(m.content, where .. ".content") }
  end
  if body.tools ~= nil then
    local tools = list(body.tools)
    if not tools then reject(400, "Invalid type for 'tools': expected an array.") end
    for i, t in ipairs(tools) do
      local fn = type(t) == "table" and t["function"]
      local name = type(fn) == "table" and str(fn.name)
      if not name then
        reject(400, "Missing required parameter: 'tools[" .. (i - 1) .. "].function.name'.")
      end
      conv.tools[name] = true
      conv.tool_list[#conv.tool_list + 1] = name
    end
  end
  local tc = body.tool_choice
  if tc == "none" or tc == "required" or tc == "auto" then
    conv.choice = tc
  elseif type(tc) == "table" and type(tc["function"]) == "table" then
    conv.choice = str(tc["function"].name) or "required"
  end
  conv.max_tokens = body.max_completion_tokens or body.max_tokens
  conv.model, conv.stream = body.model, body.stream == true
  conv.include_usage = type(body.stream_options) == "table" and body.stream_options.include_usage == true
  return conv
end

local function openai_usage(r)
  return { prompt_tokens = r.input, completion_tokens = r.output,
           total_tokens = r.input + r.output,
           prompt_tokens_details = { cached_tokens = 0, audio_tokens = 0 },
           completion_tokens_details = { reasoning_tokens = 0, audio_tokens = 0,
             accepted_prediction_tokens = 0, rejected_prediction_tokens = 0 } }
end

local function openai_respond(srv, conv, r, res, faults, id)
  local created = os.time()
  local finish = r.finish
  if not conv.stream then
    local msg = { role = "assistant", content = r.text or null, refusal = null,
                  annotations = array() }
    if r.calls then
      local tcs = {}
      for k, c in ipairs(r.calls) do
        tcs[k] = { id = call_id("call", conv, k), type = "function",
                   ["function"] = { name = c.name, arguments = c.args_json } }
      end
      msg.tool_calls = tcs
    end
    return srv:reply(res, faults, 200, { ["Content-Type"] = "application/json" }, json.encode({
      id = "chatcmpl-" .. id, object = "chat.completion", created = created, model = conv.model,
      choices = { { index = 0, message = msg, logprobs = null, finish_reason = finish } },
      usage = openai_usage(r), service_tier = "default", system_fingerprint = "fp_weft",
    }))
  end
  local st = srv:stream(res, faults, 200, { ["Content-Type"] = "text/event-stream; charset=utf-8",
    ["Cache-Control"] = "no-cache" }, "sse")
  local function chunk(delta, fin)
    local c = { id = "chatcmpl-" .. id, object = "chat.completion.chunk", created = created,
      model = conv.model, system_fingerprint = "fp_weft",
      choices = { { index = 0, delta = object(delta), logprobs = null, finish_reason = fin or null } } }
    if conv.include_usage then c.usage = null end
    st:event(json.encode(c))
  end
  if r.calls then
    for k, c in ipairs(r.calls) do
      local head = { index = k == 1 and faults.tool_index or k - 1, id = call_id("call", conv, k),
                     type = "function", ["function"] = { name = c.name, arguments = "" } }
      if k == 1 then
        chunk({ role = "assistant", content = null, tool_calls = { head }, refusal = null })
      else
        chunk({ tool_calls = { head } })
      end
      for _, piece in ipairs(split_bytes(c.args_json, ARG_PIECE)) do
        chunk({ tool_calls = { { index = k - 1, ["function"] = { arguments = piece } } } })
      end
    end
  else
    chunk({ role = "assistant", content = "", refusal = null })
    for _, piece in ipairs(_M.split_words(r.text)) do chunk({ content = piece }) end
  end
  chunk({}, finish)
  if conv.include_usage then
    st:event(json.encode({ id = "chatcmpl-" .. id, object = "chat.completion.chunk",
      created = created, model = conv.model, system_fingerprint = "fp_weft",
      choices = array(), usage = openai_usage(r) }))
  end
  st:event("[DONE]")
  st:finish()
end

--------------------------------------------------------------------------
-- Anthropic messages

-- Text of Anthropic content: a string or blocks (text blocks joined).
local function anthropic_text(content)
  if type(content) == "string" then return content end
  local out = {}
  for _, b in ipairs(list(content) or {}) do
    if type(b) == "table" and b.type == "text" then out[#out + 1] = str(b.text) or "" end
  end
  return concat(out, "\n")
end

local function anthropic_parse(body)
  if str(body.model) == nil then reject(400, "model: Field required") end
  if type(body.max_tokens) ~= "number" then reject(400, "max_tokens: Field required") end
  local msgs = list(body.messages)
  if not msgs then reject(400, "messages: Field required") end
  local conv = { messages = {}, tools = {}, tool_list = {}, choice = "auto" }
  if body.system ~= nil then
    conv.messages[1] = { role = "system", text = anthropic_text(body.system) }
  end
  for i, m in ipairs(msgs) do
    local where = "messages." .. (i - 1)
    if type(m) ~= "table" or (m.role ~= "user" and m.role ~= "assistant") then
      reject(400, where .. ".role: Input should be 'user' or 'assistant'")
    end
    if type(m.content) ~= "string" and not list(m.content) then
      reject(400, where .. ".content: Input should be a valid list")
    end
    local results = {}
    for j, b in ipairs(type(m.content) == "table" and m.content or {}) do
      if type(b) ~= "table" or type(b.type) ~= "string" then
        reject(400, where .. ".content." .. (j - 1) .. ": Input should be a valid dictionary")
      end
      if b.type == "tool_result" then
        if not str(b.tool_use_id) then
          reject(400, where .. ".content." .. (j - 1) .. ".tool_use_id: Field required")
        end
        results[#results + 1] = anthropic_text(b.content)
      end
    end
    if #results > 0 and m.role == "user" then
      for _, t in ipairs(results) do conv.messages[#conv.messages + 1] = { role = "tool", text = t } end
    else
      conv.messages[#conv.messages + 1] = { role = m.role, text = anthropic_text(m.content) }
    end
  end
  if body.tools ~= nil then
    for i, t in ipairs(list(body.tools) or reject(400, "tools: Input should be a valid list")) do
      local name = type(t) == "table" and str(t.name)
      if not name then reject(400, "tools." .. (i - 1) .. ".name: Field required") end
      if type(t.input_schema) ~= "table" then
        reject(400, "tools." .. (i - 1) .. ".custom.input_schema: Field required")
      end
      conv.tools[name] = true
      conv.tool_list[#conv.tool_list + 1] = name
    end
  end
  local tc = body.tool_choice
  if type(tc) == "table" then
    if tc.type == "none" then conv.choice = "none"
    elseif tc.type == "any" then conv.choice = "required"
    elseif tc.type == "tool" then conv.choice = str(tc.name) or "required" end
  end
  conv.max_tokens, conv.model, conv.stream = body.max_tokens, body.model, body.stream == true
  return conv
end

local ANTHROPIC_STOP = { stop = "end_turn", length = "max_tokens", tool_calls = "tool_use" }

local function anthropic_respond(srv, conv, r, res, faults, id)
  local stop = ANTHROPIC_STOP[r.finish]
  local blocks = {}
  if r.calls then
    for k, c in ipairs(r.calls) do
      blocks[k] = { type = "tool_use", id = call_id("toolu", conv, k), name = c.name,
                    input = object(c.args) }
    end
  else
    blocks[1] = { type = "text", text = r.text }
  end
  if not conv.stream then
    return srv:reply(res, faults, 200, { ["Content-Type"] = "application/json" }, json.encode({
      id = "msg_" .. id, type = "message", role = "assistant", model = conv.model,
      content = blocks, stop_reason = stop, stop_sequence = null,
      usage = { input_tokens = r.input, output_tokens = r.output,
                cache_creation_input_tokens = 0, cache_read_input_tokens = 0 },
    }))
  end
  local st = srv:stream(res, faults, 200, { ["Content-Type"] = "text/event-stream; charset=utf-8",
    ["Cache-Control"] = "no-cache" }, "sse")
  local function ev(name, data) st:event(json.encode(data), name) end
  ev("message_start", { type = "message_start", message = {
    id = "msg_" .. id, type = "message", role = "assistant", model = conv.model,
    content = array(), stop_reason = null, stop_sequence = null,
    usage = { input_tokens = r.input, output_tokens = 1,
              cache_creation_input_tokens = 0, cache_read_input_tokens = 0 } } })
  for i, b in ipairs(blocks) do
    local idx = i == 1 and faults.tool_index or i - 1
    if b.type == "text" then
      ev("content_block_start", { type = "content_block_start", index = idx,
                                  content_block = { type = "text", text = "" } })
      if i == 1 then ev("ping", { type = "ping" }) end
      for _, piece in ipairs(_M.split_words(b.text)) do
        ev("content_block_delta", { type = "content_block_delta", index = idx,
                                    delta = { type = "text_delta", text = piece } })
      end
    else
      ev("content_block_start", { type = "content_block_start", index = idx,
        content_block = { type = "tool_use", id = b.id, name = b.name, input = object() } })
      if i == 1 then ev("ping", { type = "ping" }) end
      local pieces = split_bytes(r.calls[i].args_json, ARG_PIECE)
      table.insert(pieces, 1, "") -- the API starts with an empty partial_json
      for _, piece in ipairs(pieces) do
        ev("content_block_delta", { type = "content_block_delta", index = idx,
                                    delta = { type = "input_json_delta", partial_json = piece } })
      end
    end
    ev("content_block_stop", { type = "content_block_stop", index = idx })
  end
  ev("message_delta", { type = "message_delta", delta = { stop_reason = stop, stop_sequence = null },
                        usage = { output_tokens = r.output } })
  ev("message_stop", { type = "message_stop" })
  st:finish()
end

--------------------------------------------------------------------------
-- Gemini generateContent / streamGenerateContent

-- Text of a functionResponse's response object.
local function gemini_result(resp)
  if type(resp) ~= "table" then return tostring(resp or "") end
  return str(resp.content) or str(resp.result) or str(resp.output) or json.encode(resp)
end

local function gemini_parse(body, route)
  local contents = list(body.contents)
  if not contents or #contents == 0 then
    reject(400, "* GenerateContentRequest.contents: contents is not specified")
  end
  local conv = { messages = {}, tools = {}, tool_list = {}, choice = "auto" }
  local si = body.systemInstruction or body.system_instruction
  if type(si) == "table" then
    local out = {}
    for _, p in ipairs(list(si.parts) or {}) do out[#out + 1] = type(p) == "table" and str(p.text) or "" end
    conv.messages[1] = { role = "system", text = concat(out, "\n") }
  end
  for i, c in ipairs(contents) do
    local where = "contents[" .. (i - 1) .. "]"
    local parts = type(c) == "table" and list(c.parts)
    if not parts or #parts == 0 then
      reject(400, "* GenerateContentRequest." .. where .. ".parts: contents.parts must not be empty.")
    end
    local role = c.role == nil and "user" or c.role
    if role ~= "user" and role ~= "model" and role ~= "function" and role ~= "tool" then
      reject(400, "Please use a valid role: user, model.")
    end
    local texts, results = {}, {}
    for _, p in ipairs(parts) do
      if type(p) ~= "table" then reject(400, "* GenerateContentRequest." .. where .. ".parts: invalid part") end
      if str(p.text) then texts[#texts + 1] = p.text end
      local fr = p.functionResponse or p.function_response
      if type(fr) == "table" then
        if not str(fr.name) then
          reject(400, "* GenerateContentRequest." .. where .. ".parts.function_response.name: Name cannot be empty.")
        end
        results[#results + 1] = gemini_result(fr.response)
      end
    end
    if #results > 0 then
      for _, t in ipairs(results) do conv.messages[#conv.messages + 1] = { role = "tool", text = t } end
    else
      conv.messages[#conv.messages + 1] = { role = role == "model" and "assistant" or "user",
                                            text = concat(texts) }
    end
  end
  if body.tools ~= nil then
    for _, t in ipairs(list(body.tools) or reject(400, "Invalid JSON payload: tools must be a list")) do
      local decls = type(t) == "table" and (t.functionDeclarations or t.function_declarations)
      for j, d in ipairs(list(decls) or {}) do
        local name = type(d) == "table" and str(d.name)
        if not name then
          reject(400, "* GenerateContentRequest.tools[0].function_declarations[" .. (j - 1)
            .. "].name: Name cannot be empty.")
        end
        conv.tools[name] = true
        conv.tool_list[#conv.tool_list + 1] = name
      end
    end
  end
  local tcfg = body.toolConfig or body.tool_config
  local fcc = type(tcfg) == "table" and (tcfg.functionCallingConfig or tcfg.function_calling_config)
  if type(fcc) == "table" then
    if fcc.mode == "NONE" then conv.choice = "none"
    elseif fcc.mode == "ANY" then
      local allowed = list(fcc.allowedFunctionNames or fcc.allowed_function_names)
      conv.choice = allowed and str(allowed[1]) or "required"
    end
  end
  local gc = body.generationConfig or body.generation_config
  if type(gc) == "table" then conv.max_tokens = gc.maxOutputTokens or gc.max_output_tokens end
  conv.model, conv.stream = route.model, route.stream
  return conv
end

local GEMINI_FINISH = { stop = "STOP", length = "MAX_TOKENS", tool_calls = "STOP" }

local function gemini_respond(srv, conv, r, res, faults, id, route)
  local q = require("support.http_server").parse_query(route.query)
  local function candidate(parts, finish)
    local c = { content = { parts = parts, role = "model" }, index = 0 }
    if finish then c.finishReason = finish end
    return c
  end
  local function usage(out)
    return { promptTokenCount = r.input, candidatesTokenCount = out,
             totalTokenCount = r.input + out,
             promptTokensDetails = { { modality = "TEXT", tokenCount = r.input } } }
  end
  local finish = GEMINI_FINISH[r.finish]
  local parts = {}
  if r.calls then
    for k, c in ipairs(r.calls) do
      parts[k] = { functionCall = { name = c.name, args = object(c.args) } }
    end
  else
    parts[1] = { text = r.text }
  end
  local rid = id
  if not conv.stream then
    return srv:reply(res, faults, 200, { ["Content-Type"] = "application/json; charset=UTF-8" },
      json.encode({ candidates = { candidate(parts, finish) }, usageMetadata = usage(r.output),
                    modelVersion = conv.model, responseId = rid }))
  end
  -- the chunks: one per word (text), or the whole call(s) at once
  local chunks = {}
  if r.calls then
    chunks[1] = { parts = parts, out = r.output }
  else
    local pieces, done = _M.split_words(r.text), 0
    if #pieces == 0 then pieces[1] = "" end
    for _, piece in ipairs(pieces) do
      done = done + words(piece)
      chunks[#chunks + 1] = { parts = { { text = piece } }, out = done }
    end
  end
  local sse = q.alt == "sse"
  local st = srv:stream(res, faults, 200, { ["Content-Type"] = sse and "text/event-stream"
    or "application/json; charset=UTF-8" }, sse and "sse_crlf" or "raw")
  for i, ch in ipairs(chunks) do
    local last = i == #chunks
    local data = json.encode({ candidates = { candidate(ch.parts, last and finish or nil) },
      usageMetadata = usage(ch.out), modelVersion = conv.model, responseId = rid })
    if sse then
      st:event(data)
    else -- without alt=sse: one JSON array, streamed element by element
      st:event((i == 1 and "[" or "\n,\r\n") .. data .. (last and "\n]" or ""))
    end
  end
  st:finish()
end

--------------------------------------------------------------------------
-- Ollama /api/chat

local function ollama_parse(body)
  if str(body.model) == nil then reject(400, "model is required") end
  local msgs = body.messages == nil and {} or list(body.messages)
  if not msgs then reject(400, "json: cannot unmarshal messages into []api.Message") end
  local conv = { messages = {}, tools = {}, tool_list = {}, choice = "auto" }
  for i, m in ipairs(msgs) do
    local role = type(m) == "table" and str(m.role)
    if role ~= "system" and role ~= "user" and role ~= "assistant" and role ~= "tool" then
      reject(400, "invalid role in messages[" .. (i - 1) .. "]: " .. tostring(role))
    end
    conv.messages[i] = { role = role, text = str(m.content) or "" }
  end
  if body.tools ~= nil then
    for _, t in ipairs(list(body.tools) or reject(400, "json: cannot unmarshal tools")) do
      local fn = type(t) == "table" and t["function"]
      local name = type(fn) == "table" and str(fn.name)
      if name then
        conv.tools[name] = true
        conv.tool_list[#conv.tool_list + 1] = name
      end
    end
  end
  if type(body.options) == "table" then conv.max_tokens = body.options.num_predict end
  conv.model = body.model
  conv.stream = body.stream ~= false -- Ollama streams unless told not to
  return conv
end

local function ollama_respond(srv, conv, r, res, faults)
  local created = os.date("!%Y-%m-%dT%H:%M:%S.000000Z")
  local function final(msg)
    return { model = conv.model, created_at = created, message = msg, done = true,
             done_reason = r.finish == "length" and "length" or "stop",
             total_duration = 1000000, load_duration = 100000,
             prompt_eval_count = r.input, prompt_eval_duration = 200000,
             eval_count = r.output, eval_duration = 700000 }
  end
  local tcs
  if r.calls then
    tcs = {}
    for k, c in ipairs(r.calls) do
      tcs[k] = { ["function"] = { name = c.name, arguments = object(c.args) } }
    end
  end
  if not conv.stream then
    return srv:reply(res, faults, 200, { ["Content-Type"] = "application/json; charset=utf-8" },
      json.encode(final({ role = "assistant", content = r.text or "", tool_calls = tcs })))
  end
  local st = srv:stream(res, faults, 200, { ["Content-Type"] = "application/x-ndjson" }, "ndjson")
  local function line(msg)
    st:event(json.encode({ model = conv.model, created_at = created, message = msg, done = false }))
  end
  if tcs then
    line({ role = "assistant", content = "", tool_calls = tcs })
  else
    for _, piece in ipairs(_M.split_words(r.text)) do line({ role = "assistant", content = piece }) end
  end
  st:event(json.encode(final({ role = "assistant", content = "" })))
  st:finish()
end

--------------------------------------------------------------------------
-- Dispatch

-- Check the credentials the real API requires; returns status, msg or nil.
local function check_auth(provider, req, route)
  local h = req.headers
  if provider == "openai" then
    local key = match(h.authorization or "", "^[Bb]earer%s+(%S+)")
    if not key then
      return 401, "You didn't provide an API key. You need to provide your API key in an "
        .. "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", null
    end
    if key == "invalid" then return 401, "Incorrect API key provided: invalid.", "invalid_api_key" end
  elseif provider == "anthropic" then
    local key = h["x-api-key"]
    if not key then return 401, "x-api-key header is required" end
    if key == "invalid" then return 401, "invalid x-api-key" end
    if not h["anthropic-version"] then return 400, "anthropic-version: header is required" end
  elseif provider == "gemini" then
    local key = h["x-goog-api-key"]
    if not key then key = require("support.http_server").parse_query(route.query).key end
    if not key then
      return 403, "Method doesn't allow unregistered callers (callers without established "
        .. "identity). Please use API Key or other form of API consumer identity to call this API."
    end
    if key == "invalid" then return 400, "API key not valid. Please pass a valid API key." end
  end
end

-- One text event of each provider's stream format, for endless().
local ENDLESS = {
  openai = function(text)
    return json.encode({ object = "chat.completion.chunk", model = "m",
                         choices = { { index = 0, delta = { content = text }, finish_reason = null } } })
  end,
  anthropic = function(text)
    return json.encode({ type = "content_block_delta", index = 0,
                         delta = { type = "text_delta", text = text } }), "content_block_delta"
  end,
  gemini = function(text)
    return json.encode({ candidates = { { content = { parts = { { text = text } }, role = "model" },
                                          index = 0 } } })
  end,
  ollama = function(text)
    return json.encode({ model = "m", message = { role = "assistant", content = text }, done = false })
  end,
}

--- A hostile streamed reply (fault `endless`): text events of about 1 KiB
-- in provider p's format, forever; ends when the client leaves or the
-- server stops.
function _M.endless(srv, p, conv, res, faults)
  local framing = p == "ollama" and "ndjson" or (p == "gemini" and "sse_crlf" or "sse")
  local st = srv:stream(res, faults, 200, { ["Content-Type"] = p == "ollama"
    and "application/x-ndjson" or "text/event-stream" }, framing)
  if p == "anthropic" then
    st:event(json.encode({ type = "message_start", message = { id = "msg_endless", type = "message",
      role = "assistant", model = conv.model, content = array(),
      usage = { input_tokens = 1, output_tokens = 1 } } }), "message_start")
    st:event(json.encode({ type = "content_block_start", index = 0,
                           content_block = { type = "text", text = "" } }), "content_block_start")
  end
  local text = string.rep("endless ", 128)
  local n = 0
  while true do -- st:event raises GONE once the client has left
    st:event(ENDLESS[p](text))
    n = n + 1
    if n % 64 == 0 then srv.http:pause(0) end
  end
end

local PARSE = { openai = openai_parse, anthropic = anthropic_parse, gemini = gemini_parse,
                ollama = ollama_parse }
local RESPOND = { openai = openai_respond, anthropic = anthropic_respond,
                  gemini = gemini_respond, ollama = ollama_respond }

--- Answer a provider request: route = {provider, model, stream, query}.
function _M.handle(srv, route, req, res, faults)
  local p = route.provider
  local status, msg, code = check_auth(p, req, route)
  if status then return srv:fail(res, route, status, msg, nil, code) end
  local body, jerr = json.decode(req.body or "")
  if type(body) ~= "table" or json.is_array(body) then
    local m = body == nil and ("invalid JSON body: " .. tostring(jerr))
      or "the request body must be a JSON object"
    if p == "openai" then
      m = "We could not parse the JSON body of your request. (HINT: This likely means you "
        .. "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
        .. "but what was sent was not valid JSON.)"
    end
    return srv:fail(res, route, 400, m)
  end
  req.json = body
  local ok, conv = pcall(PARSE[p], body, route)
  if not ok then
    if type(conv) == "table" and conv.reject then
      return srv:fail(res, route, conv.status, conv.msg, nil, conv.code)
    end
    error(conv, 0)
  end
  srv.seq = (srv.seq or 0) + 1
  if faults.endless and conv.stream then return _M.endless(srv, p, conv, res, faults) end
  local r = decide(conv)
  if faults.tool_calls then -- a hostile reply: N calls of "add"
    local calls = {}
    for k = 1, faults.tool_calls do calls[k] = { name = "add", args = {}, args_json = "{}" } end
    r.calls, r.text, r.finish, r.output = calls, nil, "tool_calls", faults.tool_calls
  end
  return RESPOND[p](srv, conv, r, res, faults, format("weft%06d", srv.seq), route)
end

return _M
