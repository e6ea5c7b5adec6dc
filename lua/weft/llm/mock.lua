--- weft.llm.mock — the offline, deterministic provider ("mock:echo" is
-- the default model). It speaks the OpenAI protocol through a fake
-- transport: llm.chat builds the OpenAI request as for a real server, the
-- mock answers with an OpenAI-shaped JSON body (or SSE chunks when
-- streaming) and the same parser and stream assembler normalise it; so
-- scripted failures go through the real retry path too.
--
-- Replies: scripted rules first, then the echo behaviour of the provider
-- test server — "tool said: <content>" after tool results ("; "-joined
-- when several), a call of TOOL for each `call TOOL {json}` (or `call
-- TOOL`) in the last user message naming an offered tool (a forced
-- tool_choice calls its tool anyway, "none" never calls), else "echo: <last
-- user message>" cut to max_tokens words (finish "length"). Usage counts
-- are word counts (a call counts its name and JSON arguments).
--
-- Rules: {match = "lua pattern on the last user message" | when =
-- fn(messages), reply = "text" | fn(messages, captures...), tool_calls =
-- {{name, arguments}}, replies = {"first", {reply = ..., tool_calls = ...},
-- ...} (answered in turn, the last one repeats), latency = seconds, fail =
-- {status = 429, times = 1, retry_after = 0} or {error = "connect" |
-- "timeout", times = n}, finish_reason = "..."}. A rule without match and
-- when matches every call. Install with script(rules) (model "mock:echo"),
-- register(name, rules) (model "mock:name"), load(path) or the
-- WEFT_MOCK_SCRIPT environment variable (a JSON file: a list of rules, or
-- an object of name -> rules where "echo" is the default script).
-- Uses weft.json, weft.llm.common, weft.llm.openai, weft.core.loop (sleep).
local json = require "weft.json"
local common = require "weft.llm.common"
local openai = require "weft.llm.openai"

local type, ipairs, pairs, pcall, error, tostring, min =
  type, ipairs, pairs, pcall, error, tostring, math.min
local sformat, unpack, concat = string.format, unpack, table.concat

local _M = {
  name = "mock",
  needs_key = false,
  framing = "sse",
  terminal = "[DONE]",
  default_base = "mock://local",
}

--- Sleep used for simulated latency (weft.sleep: yields the caller).
function _M.sleep(s) return require("weft.core.loop").sleep(s) end

local global_rules      -- compiled rules of script() (model "mock:echo")
local named = {}        -- name -> compiled rules
local env_loaded        -- path of the WEFT_MOCK_SCRIPT file loaded

-- Validate a list of tool calls of a rule; returns a copy or raises.
local function check_calls(calls, where)
  if type(calls) == "function" then return calls end
  if type(calls) ~= "table" then error(where .. " must be a list", 0) end
  local out = {}
  for i, c in ipairs(calls) do
    local w = where .. "[" .. i .. "]"
    if type(c) ~= "table" or type(c.name) ~= "string" then error(w .. ".name must be a string", 0) end
    local a = c.arguments
    if a ~= nil and type(a) ~= "table" and type(a) ~= "string" then
      error(w .. ".arguments must be a table or a JSON string", 0)
    end
    out[i] = { id = c.id, name = c.name, arguments = a }
  end
  return out
end

-- Validate and copy one rule (raises "rules[i]....").
local function compile_rule(r, where)
  if type(r) ~= "table" then error(where .. " must be a table", 0) end
  local c = { match = r.match, when = r.when, reply = r.reply, latency = r.latency,
              finish_reason = r.finish_reason, served = 0, failed = 0 }
  if r.match ~= nil then
    if type(r.match) ~= "string" then error(where .. ".match must be a string (a Lua pattern)", 0) end
    local ok, e = pcall(string.find, "", r.match)
    if not ok then error(where .. ".match is not a valid Lua pattern: " .. tostring(e), 0) end
  end
  if r.when ~= nil and type(r.when) ~= "function" then error(where .. ".when must be a function", 0) end
  if r.reply ~= nil and type(r.reply) ~= "string" and type(r.reply) ~= "function" then
    error(where .. ".reply must be a string or a function", 0)
  end
  if r.tool_calls ~= nil then c.tool_calls = check_calls(r.tool_calls, where .. ".tool_calls") end
  if r.replies ~= nil then
    if type(r.replies) ~= "table" or r.replies[1] == nil then error(where .. ".replies must be a non-empty list", 0) end
    c.replies = {}
    for i, item in ipairs(r.replies) do
      local w = where .. ".replies[" .. i .. "]"
      if type(item) == "string" then
        c.replies[i] = { reply = item }
      elseif type(item) == "table" then
        if item.reply ~= nil and type(item.reply) ~= "string" and type(item.reply) ~= "function" then
          error(w .. ".reply must be a string or a function", 0)
        end
        c.replies[i] = { reply = item.reply, finish_reason = item.finish_reason,
                         tool_calls = item.tool_calls and check_calls(item.tool_calls, w .. ".tool_calls") }
      else
        error(w .. " must be a string or a table", 0)
      end
    end
  end
  if r.latency ~= nil and (type(r.latency) ~= "number" or r.latency < 0) then
    error(where .. ".latency must be a non-negative number (seconds)", 0)
  end
  if r.fail ~= nil then
    local f = r.fail
    if type(f) ~= "table" then error(where .. ".fail must be a table", 0) end
    if f.status ~= nil and (type(f.status) ~= "number" or f.status < 100 or f.status > 599) then
      error(where .. ".fail.status must be an HTTP status", 0)
    end
    if f.error ~= nil and f.error ~= "connect" and f.error ~= "timeout" then
      error(where .. ".fail.error must be 'connect' or 'timeout'", 0)
    end
    if f.status == nil and f.error == nil then error(where .. ".fail needs status or error", 0) end
    if f.times ~= nil and (type(f.times) ~= "number" or f.times < 0) then
      error(where .. ".fail.times must be a non-negative number", 0)
    end
    c.fail = { status = f.status, error = f.error, times = f.times, retry_after = f.retry_after, body = f.body }
  end
  return c
end

-- Compile a list of rules (raises naming the rule).
local function compile(rules, what)
  if type(rules) ~= "table" then error(what .. ": expects a list of rules", 0) end
  local out = {}
  for i, r in ipairs(rules) do out[i] = compile_rule(r, what .. ": rules[" .. i .. "]") end
  return out
end

--- Install rules for "mock:echo" (and any default model); nil removes them.
function _M.script(rules)
  if rules == nil then global_rules = nil; return end
  local ok, r = pcall(compile, rules, "mock.script")
  if not ok then error(r, 2) end
  global_rules = r
end

--- Register rules for model "mock:<name>" (nil removes them).
function _M.register(name, rules)
  if type(name) ~= "string" or name == "" then error("mock.register: name must be a non-empty string", 2) end
  if rules == nil then named[name] = nil; return end
  local ok, r = pcall(compile, rules, "mock.register '" .. name .. "'")
  if not ok then error(r, 2) end
  if name == "echo" then global_rules = r else named[name] = r end
end

--- Load rules from a JSON file: a list of rules (for "mock:echo") or an
-- object {name = rules, ...}. Returns true or nil, err.
function _M.load(path)
  if type(path) ~= "string" then error("mock.load: path must be a string", 2) end
  local f, err = io.open(path, "rb")
  if not f then return nil, "mock: cannot read script: " .. tostring(err) end
  local text = f:read("*a")
  f:close()
  local v, jerr = json.decode(text)
  if v == nil then return nil, sformat("mock: script %s: %s", path, tostring(jerr)) end
  if type(v) ~= "table" then return nil, sformat("mock: script %s: expected a list or an object of rules", path) end
  local ok, e = pcall(function()
    if json.is_array(v) then
      global_rules = compile(v, path)
    else
      for name, rules in pairs(v) do
        local r = compile(rules, path .. ": '" .. tostring(name) .. "'")
        if name == "echo" then global_rules = r else named[name] = r end
      end
    end
  end)
  if not ok then return nil, "mock: script " .. tostring(e) end
  return true
end

--- Forget every script (and the loaded WEFT_MOCK_SCRIPT file).
function _M.reset()
  global_rules, named, env_loaded = nil, {}, nil
end

--- Names of the registered scripts (sorted), "echo" first.
function _M.names()
  local out = {}
  for k in pairs(named) do out[#out + 1] = k end
  table.sort(out)
  table.insert(out, 1, "echo")
  return out
end

-- Load WEFT_MOCK_SCRIPT once per path; nil, err when it is unreadable.
local function load_env()
  local path = common.getenv("WEFT_MOCK_SCRIPT")
  if not path or path == "" or path == env_loaded then return true end
  local ok, err = _M.load(path)
  if not ok then return nil, err .. " (WEFT_MOCK_SCRIPT)" end
  env_loaded = path
  return true
end

--- The OpenAI request for a normalised request (the mock's own URL).
function _M.build(call, cfg)
  return openai.build(call, { base_url = cfg.base_url or _M.default_base })
end

--- Responses are OpenAI responses.
_M.parse = openai.parse

--- Stream events are OpenAI chunks.
function _M.stream_event(asm, ev) return openai.stream_event(asm, ev, "mock") end

-- Text of the last message of role (or nil).
local function last_of(messages, role)
  for i = #messages, 1, -1 do
    if messages[i].role == role then return messages[i].content end
  end
end

-- The tool calls a text asks for: each `call NAME {json}` / `call NAME`
-- naming an offered tool (the set `offered`).
local function asked_calls(text, offered)
  local calls, pos = {}, 1
  while true do
    local s, e, name = text:find("call%s+([%w_%-%.]+)", pos)
    if not s then break end
    pos = e + 1
    if s == 1 or text:sub(s - 1, s - 1):match("[^%w_]") then
      local args = {}
      local j = text:find("%S", e + 1)
      if j and text:sub(j, j) == "{" then
        local obj = text:match("^%b{}", j)
        local v = obj and json.decode(obj)
        if type(v) == "table" and not json.is_array(v) then args, pos = v, j + #obj end
      end
      if offered[name] then calls[#calls + 1] = { name = name, arguments = args } end
    end
  end
  return calls
end

-- The built-in echo reply {text, tool_calls, finish_reason}, as the
-- provider test server answers: "tool said: r1; r2" after trailing tool
-- results; calls of offered tools the last user message asks for (or of
-- the forced tool); else "echo: <last user message>", cut to max_tokens
-- words (finish "length").
local function echo(call)
  local msgs = call.messages
  local results, i = {}, #msgs
  while i >= 1 and msgs[i].role == "tool" do
    table.insert(results, 1, msgs[i].content)
    i = i - 1
  end
  local text
  if #results > 0 then
    text = "tool said: " .. concat(results, "; ")
  else
    local user = last_of(msgs, "user") or ""
    local choice = call.tool_choice or "auto"
    if call.tools and choice ~= "none" then
      local offered = {}
      for _, t in ipairs(call.tools) do offered[t.name] = true end
      local calls = asked_calls(user, offered)
      if #calls == 0 and choice ~= "auto" then
        local forced = type(choice) == "table" and choice.name or call.tools[1].name
        if offered[forced] then calls[1] = { name = forced, arguments = {} } end
      end
      if #calls > 0 then return { tool_calls = calls } end
    end
    text = "echo: " .. user
  end
  local max = call.max_tokens
  if max and common.words(text) > max then
    local kept = {}
    for w in text:gmatch("%S+") do
      if #kept >= max then break end
      kept[#kept + 1] = w
    end
    return { text = concat(kept, " "), finish_reason = "length" }
  end
  return { text = text }
end

-- Whether rule r matches; returns true and the pattern's captures.
local function matches(r, call, user)
  local caps = {}
  if r.match then
    caps = { user:find(r.match) }
    if caps[1] == nil then return false end
    caps = { unpack(caps, 3) }
  end
  if r.when and not r.when(call.messages) then return false end
  return true, caps
end

-- The reply of a matched rule {text, tool_calls, finish_reason}.
local function answer(r, call, caps)
  local item = r
  if r.replies then item = r.replies[min(r.served + 1, #r.replies)] end
  r.served = r.served + 1
  local text = item.reply
  if type(text) == "function" then text = text(call.messages, unpack(caps)) end
  if text ~= nil and type(text) ~= "string" then text = tostring(text) end
  local calls = item.tool_calls
  if type(calls) == "function" then calls = check_calls(calls(call.messages, unpack(caps)), "tool_calls") end
  if text == nil and calls == nil then return echo(call) end
  return { text = text, tool_calls = calls, finish_reason = item.finish_reason or r.finish_reason }
end

-- The rules that apply to a model name (nil, err for an unknown name).
local function rules_for(name)
  if name == "echo" then return global_rules or {} end
  local r = named[name]
  if not r then
    return nil, sformat("mock: no script named '%s' (known: %s); register one with llm.mock.register",
                        name, concat(_M.names(), ", "))
  end
  return r
end

-- OpenAI tool calls of a reply.
local function wire_calls(calls)
  local out = json.array()
  for i, c in ipairs(calls or {}) do
    out[i] = { id = c.id or ("call_" .. i), type = "function",
               ["function"] = { name = c.name, arguments = common.encode_args(c.arguments) } }
  end
  return out
end

-- The OpenAI response body (a table) of a reply.
local function response(call, rep, usage)
  local calls = wire_calls(rep.tool_calls)
  local msg = { role = "assistant", content = rep.text or json.null }
  if #calls > 0 then msg.tool_calls = calls end
  return {
    id = "mock-1", object = "chat.completion", created = 0, model = call.model,
    choices = json.array { { index = 0, message = msg,
                             finish_reason = rep.finish_reason or (#calls > 0 and "tool_calls" or "stop") } },
    usage = usage,
  }
end

-- Deliver the reply as OpenAI SSE chunks to stream(ev); false from it stops.
local function stream_reply(call, rep, usage, stream)
  local function chunk(choices, extra)
    local c = { id = "mock-1", object = "chat.completion.chunk", created = 0, model = call.model,
                choices = choices }
    if extra then for k, v in pairs(extra) do c[k] = v end end
    return stream({ event = "message", data = json.encode(c) }) ~= false
  end
  local function delta(d, finish)
    return chunk(json.array { { index = 0, delta = d, finish_reason = finish or json.null } })
  end
  if not delta({ role = "assistant", content = "" }) then return end
  local text = rep.text or ""
  local any = false
  for piece in text:gmatch("%s*%S+%s*") do
    any = true
    if not delta({ content = piece }) then return end
  end
  if not any and text ~= "" and not delta({ content = text }) then return end
  for i, c in ipairs(wire_calls(rep.tool_calls)) do
    if not delta({ tool_calls = json.array { { index = i - 1, id = c.id, type = "function",
                    ["function"] = { name = c["function"].name, arguments = "" } } } }) then return end
    if not delta({ tool_calls = json.array { { index = i - 1,
                    ["function"] = { arguments = c["function"].arguments } } } }) then return end
  end
  local n = rep.tool_calls and #rep.tool_calls or 0
  if not delta(json.object(), rep.finish_reason or (n > 0 and "tool_calls" or "stop")) then return end
  if not chunk(json.array(), { usage = usage }) then return end
  stream({ event = "message", data = "[DONE]" })
end

--- The fake transport: answers req (the HTTP request weft.llm built) for
-- the normalised call like http.request would: {status, headers, body}
-- (body nil when req.stream is set), or nil, err, code for a scripted
-- connection failure.
function _M.transport(req, call)
  local ok, err = load_env()
  if not ok then return nil, err, "config" end
  local rules, rerr = rules_for(call.model)
  if not rules then return nil, rerr, "config" end
  -- the request went through the OpenAI encoder: read it back like a server
  if type(req.body) ~= "string" or not json.decode(req.body) then
    return { status = 400, headers = {}, body = '{"error":{"message":"mock: body is not JSON"}}' }
  end
  local user = last_of(call.messages, "user") or ""
  local rule, caps
  for _, r in ipairs(rules) do
    local hit, c = matches(r, call, user)
    if hit then rule, caps = r, c; break end
  end
  if rule and rule.latency and rule.latency > 0 then
    if req.timeout and req.timeout > 0 and rule.latency > req.timeout then
      _M.sleep(req.timeout)
      return nil, sformat("mock: request timed out after %g s", req.timeout), "timeout"
    end
    _M.sleep(rule.latency)
  end
  local f = rule and rule.fail
  if f and (f.times == nil or rule.failed < f.times) then
    rule.failed = rule.failed + 1
    if f.error then
      return nil, sformat("mock: simulated %s failure", f.error), f.error
    end
    local headers = { ["content-type"] = "application/json" }
    if f.retry_after then headers["retry-after"] = tostring(f.retry_after) end
    return { status = f.status, headers = headers,
             body = f.body or sformat('{"error":{"message":"mock: scripted failure (HTTP %d)","type":"mock_error"}}', f.status) }
  end
  local rep = rule and answer(rule, call, caps) or echo(call)
  local words_in = 0
  for _, m in ipairs(call.messages) do words_in = words_in + common.words(m.content) end
  local words_out = common.words(rep.text)
  for _, c in ipairs(rep.tool_calls or {}) do
    words_out = words_out + common.words(c.name) + common.words(common.encode_args(c.arguments))
  end
  local usage = { prompt_tokens = words_in, completion_tokens = words_out, total_tokens = words_in + words_out }
  if req.stream then
    stream_reply(call, rep, usage, req.stream)
    return { status = 200, headers = { ["content-type"] = "text/event-stream" } }
  end
  return { status = 200, headers = { ["content-type"] = "application/json" },
           body = json.encode(response(call, rep, usage)) }
end

return _M
