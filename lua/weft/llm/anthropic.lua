--- weft.llm.anthropic — the Anthropic Messages API: system prompt as a
-- top-level field, content blocks (text, tool_use, tool_result in a user
-- turn), consecutive turns of one role merged, a required max_tokens
-- (default 1024), `x-api-key` and `anthropic-version: 2023-06-01` headers;
-- parses responses and decodes stream events (message_start,
-- content_block_start/delta/stop with text_delta and input_json_delta,
-- message_delta, message_stop). Uses weft.json, weft.llm.common.
local json = require "weft.json"
local common = require "weft.llm.common"

local type, ipairs, tostring, concat = type, ipairs, tostring, table.concat
local nn, str = common.nn, common.str

local _M = {
  name = "anthropic",
  key_env = "ANTHROPIC_API_KEY",
  base_env = "ANTHROPIC_BASE_URL",
  default_base = "https://api.anthropic.com",
  needs_key = true,
  framing = "sse",
  terminal = "message_stop",
  version = "2023-06-01",
  default_max_tokens = 1024,
}

-- Append blocks as a turn of role, merging with the previous turn of the
-- same role (the API wants alternating turns).
local function push(turns, role, blocks)
  local last = turns[#turns]
  if last and last.role == role then
    for _, b in ipairs(blocks) do last.content[#last.content + 1] = b end
  else
    turns[#turns + 1] = { role = role, content = blocks }
  end
end

--- The request body (a table) for a normalised request.
function _M.body(call)
  local system, turns = {}, json.array()
  for _, m in ipairs(call.messages) do
    if m.role == "system" then
      system[#system + 1] = m.content
    elseif m.role == "user" then
      push(turns, "user", json.array { { type = "text", text = m.content } })
    elseif m.role == "assistant" then
      local blocks = json.array()
      if m.content ~= "" then blocks[1] = { type = "text", text = m.content } end
      for i, c in ipairs(m.tool_calls or {}) do
        blocks[#blocks + 1] = { type = "tool_use", id = c.id or ("call_" .. i), name = c.name,
                                input = common.object_args(c.arguments) }
      end
      if #blocks == 0 then blocks[1] = { type = "text", text = "" } end
      push(turns, "assistant", blocks)
    else -- tool
      push(turns, "user", json.array { { type = "tool_result", tool_use_id = m.tool_call_id,
                                          content = m.content } })
    end
  end
  local b = {
    model = call.model, messages = turns,
    max_tokens = call.max_tokens or _M.default_max_tokens,
    temperature = call.temperature,
  }
  if #system > 0 then b.system = concat(system, "\n\n") end
  if call.tools then
    local tools = json.array()
    for i, t in ipairs(call.tools) do
      tools[i] = { name = t.name, description = t.description,
                   input_schema = t.parameters or { type = "object", properties = json.object() } }
    end
    b.tools = tools
    local tc = call.tool_choice
    if type(tc) == "table" then b.tool_choice = { type = "tool", name = tc.name }
    elseif tc == "required" then b.tool_choice = { type = "any" }
    elseif tc then b.tool_choice = { type = tc } end
  end
  if call.stream then b.stream = true end
  return b
end

--- The HTTP request {url, headers, body (table)}.
function _M.build(call, cfg)
  return common.http_request(cfg.base_url .. "/v1/messages",
    { ["anthropic-version"] = _M.version, ["x-api-key"] = cfg.api_key }, _M.body(call), call.stream)
end

local FINISH = { end_turn = "stop", stop_sequence = "stop", max_tokens = "length",
                 tool_use = "tool_calls", pause_turn = "pause", refusal = "content_filter" }

--- A normalised finish reason for a stop_reason.
function _M.finish_reason(r) return common.finish_reason(FINISH, r) end

-- The message of an {"type": "error", "error": {...}} payload, or nil.
local function payload_error(d) return common.payload_error(d, "type") end

--- Normalise a decoded response, or nil, err.
function _M.parse(d)
  local rerr, rcode = common.response_error("anthropic", d, "type",
    type(d) == "table" and type(d.content) == "table", "content")
  if rerr then return nil, rerr, rcode end
  local text, calls = {}, json.array()
  local ncalls = 0
  for _, b in ipairs(d.content) do
    if type(b) == "table" and b.type == "tool_use" then ncalls = ncalls + 1 end
  end
  local cerr = common.calls_error("anthropic", ncalls)
  if cerr then return nil, cerr end
  for _, b in ipairs(d.content) do
    if type(b) == "table" then
      if b.type == "text" then
        text[#text + 1] = str(b.text) or ""
      elseif b.type == "tool_use" then
        local args = nn(b.input)
        if type(args) ~= "table" then args = {} end
        calls[#calls + 1] = { id = str(b.id) or ("call_" .. (#calls + 1)), name = str(b.name) or "",
                              arguments = args }
      end
    end
  end
  local u = type(d.usage) == "table" and d.usage or {}
  return {
    text = concat(text),
    tool_calls = calls,
    usage = common.usage(u.input_tokens, u.output_tokens),
    finish_reason = _M.finish_reason(d.stop_reason) or (#calls > 0 and "tool_calls" or "stop"),
  }
end

-- The content block index of an event, or nil, err when it is not an
-- integer (it comes from the wire).
local function block_index(d)
  local i = common.wire_index(nn(d.index))
  if not i then
    return nil, "anthropic: content block index " .. tostring(nn(d.index)) .. " is not an integer"
  end
  return i
end

--- Feed one SSE event to the assembler: nil, or an error text and a code
-- (nil: "protocol").
function _M.stream_event(asm, ev)
  local d, err = common.stream_chunk("anthropic", asm, ev)
  if not d then return err end
  local t = str(d.type) or (type(ev) == "table" and ev.event)
  if t == "error" or (t ~= "message_start" and payload_error(d)) then
    local data = type(ev) == "table" and ev.data or ev
    return "anthropic: error in stream: " .. (payload_error(d) or common.excerpt(data, 200)), "provider"
  end
  local blocks = asm.blocks
  if not blocks then blocks = {}; asm.blocks = blocks end
  if t == "message_start" then
    local u = type(d.message) == "table" and nn(d.message.usage)
    if type(u) == "table" then asm:set_usage(u.input_tokens, u.output_tokens) end
  elseif t == "content_block_start" then
    local b = nn(d.content_block)
    if type(b) == "table" and b.type == "tool_use" then
      local bi, berr = block_index(d)
      if not bi then return berr end
      local i = asm.ncalls + 1
      blocks[bi] = i
      local code
      err, code = asm:tool_delta(i, str(b.id) or ("call_" .. i), str(b.name), nil)
      if err then return err, code end
    end
  elseif t == "content_block_delta" then
    local delta = nn(d.delta)
    if type(delta) == "table" then
      if delta.type == "text_delta" then
        local code
        err, code = asm:text(str(delta.text))
        if err then return err, code end
      elseif delta.type == "input_json_delta" then
        local i = blocks[d.index]
        if not i then
          return "anthropic: input_json_delta for unknown content block " .. tostring(d.index)
        end
        local code
        err, code = asm:tool_delta(i, nil, nil, str(delta.partial_json))
        if err then return err, code end
      end
    end
  elseif t == "message_delta" then
    local delta = nn(d.delta)
    if type(delta) == "table" then asm:finish(_M.finish_reason(nn(delta.stop_reason))) end
    local u = nn(d.usage)
    if type(u) == "table" then asm:set_usage(u.input_tokens, u.output_tokens) end
  elseif t == "message_stop" then
    asm:terminate()
  end
  return nil
end

return _M
