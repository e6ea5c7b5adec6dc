--- weft.llm.openai — the OpenAI chat completions protocol (also any
-- OpenAI-compatible server: vLLM, llama.cpp, Ollama's /v1, and weft's own
-- mock provider): builds the request from normalised messages and tools,
-- parses a response, and decodes stream events (SSE `data:` JSON chunks,
-- tool calls as fragments by index, usage in the last chunk thanks to
-- stream_options.include_usage, then `[DONE]`). Uses weft.json,
-- weft.llm.common.
local json = require "weft.json"
local common = require "weft.llm.common"

local type, ipairs, tostring = type, ipairs, tostring
local nn, str, list = common.nn, common.str, common.list

local _M = {
  name = "openai",
  key_env = "OPENAI_API_KEY",
  base_env = "OPENAI_BASE_URL",
  default_base = "https://api.openai.com/v1",
  needs_key = true,
  framing = "sse",
  terminal = "[DONE]",
}

-- Normalised message -> OpenAI message.
local function message(m)
  if m.role == "tool" then
    return { role = "tool", tool_call_id = m.tool_call_id, content = m.content }
  end
  local o = { role = m.role, content = m.content, name = m.name }
  if m.role == "assistant" and m.tool_calls and #m.tool_calls > 0 then
    local calls = json.array()
    for i, c in ipairs(m.tool_calls) do
      calls[i] = { id = c.id or ("call_" .. i), type = "function",
                   ["function"] = { name = c.name, arguments = common.encode_args(c.arguments) } }
    end
    o.tool_calls = calls
    if o.content == "" then o.content = json.null end
  end
  return o
end

--- The OpenAI `tools` list for normalised tools.
function _M.tools(tools)
  local out = json.array()
  for i, t in ipairs(tools) do
    out[i] = { type = "function", ["function"] = {
      name = t.name, description = t.description,
      parameters = t.parameters or { type = "object", properties = json.object() } } }
  end
  return out
end

--- The OpenAI `tool_choice` for a normalised one.
function _M.tool_choice(tc)
  if type(tc) == "table" then return { type = "function", ["function"] = { name = tc.name } } end
  return tc
end

--- The request body (a table) for a normalised request.
function _M.body(call)
  local msgs = json.array()
  for i, m in ipairs(call.messages) do msgs[i] = message(m) end
  local b = {
    model = call.model, messages = msgs,
    temperature = call.temperature, max_tokens = call.max_tokens,
  }
  if call.tools then
    b.tools = _M.tools(call.tools)
    b.tool_choice = _M.tool_choice(call.tool_choice)
  end
  if call.stream then
    b.stream = true
    b.stream_options = { include_usage = true }
  end
  return b
end

--- The HTTP request {url, headers, body (table)} for a normalised request
-- and config {api_key, base_url}.
function _M.build(call, cfg)
  return common.http_request(cfg.base_url .. "/chat/completions", common.bearer(cfg.api_key),
    _M.body(call), call.stream)
end

local FINISH = { function_call = "tool_calls" }

--- A normalised finish reason.
function _M.finish_reason(r) return common.finish_reason(FINISH, r) end

-- The message of an {"error": ...} payload, or nil.
local function payload_error(d) return common.payload_error(d, "type") end

--- The message of an {"error": ...} payload (a decoded table), or nil.
_M.payload_error = payload_error

--- Normalise a decoded response: {text, tool_calls, usage, finish_reason}
-- or nil, err.
function _M.parse(d)
  local choice = type(d) == "table" and type(d.choices) == "table" and d.choices[1]
  local rerr, rcode = common.response_error("openai", d, "type",
    type(choice) == "table" and type(choice.message) == "table", "choices[1].message")
  if rerr then return nil, rerr, rcode end
  local m = choice.message
  local calls = json.array()
  local wire = list(nn(m.tool_calls))
  local cerr = common.calls_error("openai", #wire)
  if cerr then return nil, cerr end
  for i, c in ipairs(wire) do
    local f = type(c) == "table" and c["function"] or {}
    local args, err = common.decode_args("openai", str(f.name), nn(f.arguments))
    if not args then return nil, err end
    calls[#calls + 1] = { id = str(c.id) or ("call_" .. i), name = str(f.name) or "", arguments = args }
  end
  local u = type(d.usage) == "table" and d.usage or {}
  local fr = _M.finish_reason(choice.finish_reason) or (#calls > 0 and "tool_calls" or "stop")
  return {
    text = str(nn(m.content)) or "",
    tool_calls = calls,
    usage = common.usage(u.prompt_tokens, u.completion_tokens, u.total_tokens),
    finish_reason = fr,
  }
end

--- Feed one SSE event to the assembler: returns nil, or err and a code
-- (nil: "protocol"). A tool call's index must be an integer from 0 to
-- common.MAX_TOOL_CALLS - 1.
function _M.stream_event(asm, ev, provider)
  provider = provider or "openai"
  local data = type(ev) == "table" and ev.data or ev
  if type(data) ~= "string" then return nil end
  if data:match("^%s*%[DONE%]%s*$") then asm:terminate(); return nil end
  local d, err, ecode = common.stream_data(provider, asm, ev, "type")
  if not d then return err, ecode end
  for _, ch in ipairs(list(nn(d.choices))) do
    if type(ch) == "table" and (ch.index == nil or ch.index == 0) then
      local delta = nn(ch.delta)
      if type(delta) == "table" then
        local err, code = asm:text(str(nn(delta.content)))
        if err then return err, code end
        for _, tc in ipairs(list(nn(delta.tool_calls))) do
          if type(tc) == "table" then
            local f = type(tc["function"]) == "table" and tc["function"] or {}
            local raw = nn(tc.index)
            local idx = common.wire_index(raw or 0)
            if not idx then
              return provider .. ": tool call index " .. tostring(raw) .. " is not an integer from 0 to "
                .. (common.MAX_TOOL_CALLS - 1)
            end
            err, code = asm:tool_delta(idx + 1, nn(tc.id), nn(f.name), nn(f.arguments))
            if err then return err, code end
          end
        end
      end
      asm:finish(_M.finish_reason(nn(ch.finish_reason)))
    end
  end
  local u = nn(d.usage)
  if type(u) == "table" then asm:set_usage(u.prompt_tokens, u.completion_tokens, u.total_tokens) end
  return nil
end

return _M
