--- weft.llm.gemini — the Gemini generateContent API: contents of parts
-- with roles "user" and "model", systemInstruction, tools as
-- functionDeclarations, functionCall / functionResponse parts (Gemini gives
-- no call ids: they are generated, "call_1", ..., and tool results are
-- matched back to their call's name), generationConfig, the key in the
-- `x-goog-api-key` header; streaming through :streamGenerateContent?alt=sse
-- where each event is a whole response fragment and the one carrying a
-- finishReason ends the stream. Uses weft.json, weft.llm.common.
local json = require "weft.json"
local common = require "weft.llm.common"

local type, ipairs, next, concat = type, ipairs, next, table.concat
local nn, str, list = common.nn, common.str, common.list

local _M = {
  name = "gemini",
  key_env = "GEMINI_API_KEY",
  base_env = "GEMINI_BASE_URL",
  default_base = "https://generativelanguage.googleapis.com",
  needs_key = true,
  framing = "sse",
  terminal = "a finishReason",
}

-- Append parts as a turn of role, merging with a previous turn of that role.
local function push(turns, role, parts)
  local last = turns[#turns]
  if last and last.role == role then
    for _, p in ipairs(parts) do last.parts[#last.parts + 1] = p end
  else
    turns[#turns + 1] = { role = role, parts = parts }
  end
end

-- The response object of a tool result: its content when that is a JSON
-- object, else {content = text}.
local function tool_response(content)
  local v = content:match("^%s*{") and json.decode(content)
  if type(v) == "table" and not json.is_array(v) and next(v) ~= nil then return v end
  return { content = content }
end

--- The request body (a table) for a normalised request.
function _M.body(call)
  local system, turns, names = {}, json.array(), {}
  for _, m in ipairs(call.messages) do
    if m.role == "system" then
      system[#system + 1] = { text = m.content }
    elseif m.role == "user" then
      push(turns, "user", json.array { { text = m.content } })
    elseif m.role == "assistant" then
      local parts = json.array()
      if m.content ~= "" then parts[1] = { text = m.content } end
      for i, c in ipairs(m.tool_calls or {}) do
        names[c.id or ("call_" .. i)] = c.name -- the latest turn wins
        parts[#parts + 1] = { functionCall = { name = c.name, args = common.object_args(c.arguments) } }
      end
      if #parts == 0 then parts[1] = { text = "" } end
      push(turns, "model", parts)
    else -- tool: a functionResponse part in a user turn
      local name = m.name or names[m.tool_call_id] or "tool"
      push(turns, "user", json.array { { functionResponse = { name = name,
                                                              response = tool_response(m.content) } } })
    end
  end
  local b = { contents = turns }
  if #system > 0 then b.systemInstruction = { parts = json.array(system) } end
  if call.tools then
    local decls = json.array()
    for i, t in ipairs(call.tools) do
      decls[i] = { name = t.name, description = t.description, parameters = t.parameters }
    end
    b.tools = json.array { { functionDeclarations = decls } }
    local tc = call.tool_choice
    if type(tc) == "table" then
      b.toolConfig = { functionCallingConfig = { mode = "ANY", allowedFunctionNames = json.array { tc.name } } }
    elseif tc == "required" then
      b.toolConfig = { functionCallingConfig = { mode = "ANY" } }
    elseif tc then
      b.toolConfig = { functionCallingConfig = { mode = tc:upper() } }
    end
  end
  if call.temperature or call.max_tokens then
    b.generationConfig = { temperature = call.temperature, maxOutputTokens = call.max_tokens }
  end
  return b
end

--- The HTTP request {url, headers, body (table)}.
function _M.build(call, cfg)
  local model = call.model:gsub("^models/", "")
  local url = cfg.base_url .. "/v1beta/models/" .. model
  if call.stream then url = url .. ":streamGenerateContent?alt=sse" else url = url .. ":generateContent" end
  return common.http_request(url, { ["x-goog-api-key"] = cfg.api_key }, _M.body(call))
end

local FINISH = { STOP = "stop", MAX_TOKENS = "length", SAFETY = "content_filter",
                 RECITATION = "content_filter", BLOCKLIST = "content_filter",
                 PROHIBITED_CONTENT = "content_filter", SPII = "content_filter",
                 MALFORMED_FUNCTION_CALL = "error" }

--- A normalised finish reason for a finishReason.
function _M.finish_reason(r) return common.finish_reason(FINISH, r, true) end

-- The parts of the first candidate of a response (fragment), or {}.
local function parts_of(d)
  local c = type(d.candidates) == "table" and d.candidates[1]
  if type(c) ~= "table" then return {}, nil end
  local content = nn(c.content)
  return list(type(content) == "table" and nn(content.parts)), c
end

--- Normalise a decoded response, or nil, err.
function _M.parse(d)
  local rerr, rcode = common.response_error("gemini", d, "status",
    type(d) == "table" and type(d.candidates) == "table", "candidates")
  if rerr then return nil, rerr, rcode end
  local parts, cand = parts_of(d)
  local text, calls = {}, json.array()
  local ncalls = 0
  for _, p in ipairs(parts) do
    if type(p) == "table" and type(nn(p.functionCall)) == "table" then ncalls = ncalls + 1 end
  end
  local cerr = common.calls_error("gemini", ncalls)
  if cerr then return nil, cerr end
  for _, p in ipairs(parts) do
    if type(p) == "table" and not p.thought then
      if str(p.text) then text[#text + 1] = p.text end
      local fc = nn(p.functionCall)
      if type(fc) == "table" then
        local n = #calls + 1
        local args = nn(fc.args)
        calls[n] = { id = str(fc.id) or ("call_" .. n), name = str(fc.name) or "",
                     arguments = type(args) == "table" and args or {} }
      end
    end
  end
  local u = type(d.usageMetadata) == "table" and d.usageMetadata or {}
  local fr = _M.finish_reason(cand and nn(cand.finishReason)) or "stop"
  if #calls > 0 and fr == "stop" then fr = "tool_calls" end
  return {
    text = concat(text),
    tool_calls = calls,
    usage = common.usage(u.promptTokenCount, u.candidatesTokenCount, u.totalTokenCount),
    finish_reason = fr,
  }
end

--- Feed one SSE event to the assembler: nil, or an error text and a code
-- (nil: "protocol").
function _M.stream_event(asm, ev)
  local d, err, ecode = common.stream_data("gemini", asm, ev, "status")
  if not d then return err, ecode end
  local parts, cand = parts_of(d)
  for _, p in ipairs(parts) do
    if type(p) == "table" and not p.thought then
      local aerr, code = asm:text(str(p.text))
      if aerr then return aerr, code end
      local fc = nn(p.functionCall)
      if type(fc) == "table" then
        aerr, code = asm:tool_call(str(fc.id), str(fc.name), nn(fc.args))
        if aerr then return aerr, code end
      end
    end
  end
  local u = nn(d.usageMetadata)
  if type(u) == "table" then asm:set_usage(u.promptTokenCount, u.candidatesTokenCount, u.totalTokenCount) end
  local fr = cand and _M.finish_reason(nn(cand.finishReason))
  if fr then
    asm:finish(fr)
    asm:terminate()
  end
  return nil
end

return _M
