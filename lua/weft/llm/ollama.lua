--- weft.llm.ollama — Ollama's native /api/chat: messages with tool_calls
-- whose arguments are JSON objects, tool results as role "tool" (with
-- tool_name), tools in the OpenAI function format, options.temperature and
-- options.num_predict, and an explicit `stream` flag (Ollama streams by
-- default); streamed replies are NDJSON lines, the last with done = true.
-- No key is needed (an api_key, when given, is sent as a bearer token for
-- proxies). Ollama gives no call ids: they are generated, "call_1", ....
-- Uses weft.json, weft.llm.common, weft.llm.openai (tool declarations).
local json = require "weft.json"
local common = require "weft.llm.common"
local openai = require "weft.llm.openai"

local type, ipairs = type, ipairs
local nn, str, list = common.nn, common.str, common.list

local _M = {
  name = "ollama",
  key_env = nil,
  base_env = "OLLAMA_HOST",
  default_base = "http://127.0.0.1:11434",
  needs_key = false,
  framing = "ndjson",
  terminal = "done",
}

--- A base URL from OLLAMA_HOST's forms, as Ollama reads them: without a
-- scheme ("127.0.0.1", "host:port") it is http and the port defaults to
-- 11434; with a scheme it is used as is.
function _M.normalise_base(u)
  u = u:match("^%s*(.-)%s*$")
  if u:match("^%a[%w+.-]*://") then return u end
  local hostport, rest = u:match("^([^/]*)(.*)$")
  if not hostport:match(":%d+$") and not hostport:match("^%[.*%]:%d+$") then
    hostport = hostport .. ":11434"
  end
  return "http://" .. hostport .. rest
end

--- The request body (a table) for a normalised request.
function _M.body(call)
  local msgs, names = json.array(), {}
  for i, m in ipairs(call.messages) do
    local o = { role = m.role, content = m.content }
    if m.role == "assistant" and m.tool_calls and #m.tool_calls > 0 then
      local calls = json.array()
      for j, c in ipairs(m.tool_calls) do
        names[c.id or ("call_" .. j)] = c.name
        calls[j] = { ["function"] = { name = c.name, arguments = common.object_args(c.arguments) } }
      end
      o.tool_calls = calls
    elseif m.role == "tool" then
      o.tool_name = m.name or names[m.tool_call_id]
    end
    msgs[i] = o
  end
  local b = { model = call.model, messages = msgs, stream = call.stream and true or false }
  if call.tools and call.tool_choice ~= "none" then b.tools = openai.tools(call.tools) end
  if call.temperature or call.max_tokens then
    b.options = { temperature = call.temperature, num_predict = call.max_tokens }
  end
  return b
end

--- The HTTP request {url, headers, body (table)}.
function _M.build(call, cfg)
  return common.http_request(cfg.base_url .. "/api/chat", common.bearer(cfg.api_key), _M.body(call))
end

--- A normalised finish reason for a done_reason.
function _M.finish_reason(r) return common.finish_reason({}, r) end

--- Normalise a decoded response, or nil, err.
function _M.parse(d)
  local rerr, rcode = common.response_error("ollama", d, nil,
    type(d) == "table" and type(d.message) == "table", "message")
  if rerr then return nil, rerr, rcode end
  local m = d.message
  local calls = json.array()
  local wire = list(nn(m.tool_calls))
  local cerr = common.calls_error("ollama", #wire)
  if cerr then return nil, cerr end
  for _, c in ipairs(wire) do
    local f = type(c) == "table" and nn(c["function"])
    if type(f) == "table" then
      local n = #calls + 1
      local args, err = common.decode_args("ollama", str(f.name), nn(f.arguments))
      if not args then return nil, err end
      calls[n] = { id = str(c.id) or ("call_" .. n), name = str(f.name) or "", arguments = args }
    end
  end
  local fr = _M.finish_reason(d.done_reason) or "stop"
  if #calls > 0 and fr == "stop" then fr = "tool_calls" end
  return {
    text = str(nn(m.content)) or "",
    tool_calls = calls,
    usage = common.usage(d.prompt_eval_count, d.eval_count),
    finish_reason = fr,
  }
end

--- Feed one NDJSON line to the assembler: nil, or an error text and a
-- code (nil: "protocol").
function _M.stream_event(asm, line)
  local d, err, ecode = common.stream_data("ollama", asm, line)
  if not d then return err, ecode end
  local m = nn(d.message)
  if type(m) == "table" then
    local aerr, code = asm:text(str(nn(m.content)))
    if aerr then return aerr, code end
    for _, c in ipairs(list(nn(m.tool_calls))) do
      local f = type(c) == "table" and nn(c["function"])
      if type(f) == "table" then
        local args = nn(f.arguments)
        if type(args) == "string" then
          local err
          args, err = common.decode_args("ollama", str(f.name), args)
          if not args then return err end
        end
        aerr, code = asm:tool_call(str(c.id), str(f.name), args)
        if aerr then return aerr, code end
      end
    end
  end
  if d.done == true then
    asm:set_usage(d.prompt_eval_count, d.eval_count)
    asm:finish(_M.finish_reason(d.done_reason) or "stop")
    asm:terminate()
  end
  return nil
end

return _M
