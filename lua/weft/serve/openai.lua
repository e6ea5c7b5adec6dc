--- weft.serve.openai — an OpenAI-compatible face of `weft serve`, so that
-- OpenAI client libraries work unchanged: `GET /v1/models` lists the app's
-- agents (`agent:<id>`) and workflows (`workflow:<id>`);
-- `POST /v1/chat/completions {model, messages, stream}` runs the agent
-- (built from its stored definition) or the workflow as an agent
-- (`workflow:as_agent`) on the messages and answers a `chat.completion`,
-- or with `stream = true` server-sent `chat.completion.chunk` deltas then
-- `data: [DONE]`. Errors under /v1/ take OpenAI's shape `{error =
-- {message, type, param, code}}` (install sets app.send_error).
-- Uses weft, weft.json, weft.serve.{errors, agents, workflows}.
local json = require "weft.json"
local errors = require "weft.serve.errors"

local type, pairs, ipairs, tostring, tonumber, pcall, error = type, pairs, ipairs, tostring, tonumber, pcall, error
local fmt, concat = string.format, table.concat
local throw = errors.throw

local _M = {}

--- The body of POST /v1/chat/completions (weft.check object schema; open:
-- other OpenAI fields are accepted and ignored).
_M.CHAT = errors.schema("chat completion", { additionalProperties = true, properties = {
  model = { type = "string", required = true, expect = "agent:<id> or workflow:<id>" },
  messages = { type = "array", required = true, expect = "a non-empty list of {role, content}" },
  stream = { type = "boolean" },
  stream_options = { type = "object" },
  n = { type = "integer", enum = { 1 }, expect = "1 (only n = 1 is supported)" },
} })

-- OpenAI error types by HTTP status.
local TYPES = { [400] = "invalid_request_error", [401] = "authentication_error", [403] = "permission_error",
                [404] = "invalid_request_error", [405] = "invalid_request_error", [409] = "invalid_request_error",
                [413] = "invalid_request_error", [415] = "invalid_request_error", [429] = "rate_limit_error" }

--- The OpenAI error body of error object e.
function _M.error_body(e)
  local d = type(e.details) == "table" and e.details or {}
  local code = e.code
  if e.status == 401 then code = "invalid_api_key" end
  return { error = { message = e.message, type = TYPES[e.status] or (e.status >= 500 and "server_error")
                     or "invalid_request_error", param = d.field or json.null, code = code } }
end

--- Write error object e for req: OpenAI's shape under /v1/, else the
-- REST shape.
function _M.send_error(res, e, req)
  if req and type(req.path) == "string" and req.path:sub(1, 4) == "/v1/" then
    if e.headers then for k, v in pairs(e.headers) do res:header(k, v) end end
    res:json(e.status, _M.error_body(e))
  else
    errors.send(res, e)
  end
end

local counter = 0

-- A new completion id.
local function new_id()
  counter = counter + 1
  return fmt("chatcmpl-%x%04x%04x%x", os.time(), math.random(0, 0xffff), math.random(0, 0xffff), counter)
end

-- The weft messages of OpenAI messages msgs (raises 400 naming the index).
local function messages(msgs)
  if type(msgs) ~= "table" or not json.is_array(msgs) or #msgs == 0 then
    throw(400, "invalid_messages", "messages must be a non-empty list of {role, content}", { field = "messages" })
  end
  local out = {}
  for i, m in ipairs(msgs) do
    local where = fmt("messages[%d]", i - 1)
    if type(m) ~= "table" then throw(400, "invalid_messages", where .. " must be an object", { field = "messages" }) end
    local role = m.role
    if role ~= "system" and role ~= "developer" and role ~= "user" and role ~= "assistant" and role ~= "tool" then
      throw(400, "invalid_messages", fmt("%s.role must be system, user, assistant or tool, got %s", where,
            type(role) == "string" and ("'" .. role .. "'") or type(role)), { field = "messages" })
    end
    local c = m.content
    if type(c) == "table" then
      local parts = {}
      for j, p in ipairs(c) do
        if type(p) ~= "table" or (p.type ~= "text" and p.type ~= "input_text") or type(p.text) ~= "string" then
          throw(400, "invalid_messages", fmt("%s.content[%d]: only text parts are supported", where, j - 1),
                { field = "messages" })
        end
        parts[#parts + 1] = p.text
      end
      c = concat(parts)
    elseif c == nil or c == json.null then
      c = ""
    elseif type(c) ~= "string" then
      throw(400, "invalid_messages", where .. ".content must be a string or a list of text parts",
            { field = "messages" })
    end
    if role == "developer" then role = "system" end
    if role == "tool" then
      -- tool results of the client's own tools are not ours to replay: keep the text
      role, c = "user", "[tool result] " .. c
    end
    if not (role == "assistant" and c == "") then out[#out + 1] = { role = role, content = c } end
  end
  return out
end

--- The target of model name m ("agent:<id>" | "workflow:<id>"): "agent",
-- the built agent, or "workflow", the workflow. Raises 404
-- model_not_found.
function _M.target(app, m)
  if type(m) ~= "string" then throw(400, "invalid_model", "model is required", { field = "model" }) end
  local kind, id = m:match("^(%a+):(.+)$")
  local appmod = require "weft.serve.app"
  if (kind ~= "agent" and kind ~= "workflow") or not appmod.valid_id(id) then
    throw(404, "model_not_found", fmt("the model '%s' does not exist: use agent:<id> or workflow:<id> (GET /v1/models)", m),
          { field = "model" })
  end
  if kind == "agent" then
    if not app:def_get("agent", id) then
      throw(404, "model_not_found", fmt("the model '%s' does not exist (no agent '%s')", m, id), { field = "model" })
    end
    return "agent", require("weft.serve.agents").build(app, id)
  end
  local ok, wf = pcall(require("weft.serve.workflows").get, app, id)
  if not ok then
    if errors.is_error(wf) and wf.status == 404 then
      throw(404, "model_not_found", fmt("the model '%s' does not exist (no workflow '%s')", m, id), { field = "model" })
    end
    error(wf, 0)
  end
  return "workflow", wf
end

-- The agent object for model name m (see target).
local function resolve(app, m)
  local kind, t = _M.target(app, m)
  if kind == "agent" then return t end
  return t:as_agent(m:sub(10))
end

-- OpenAI usage of a weft usage.
local function usage(u)
  u = u or {}
  local i, o = u.input_tokens or 0, u.output_tokens or 0
  return { prompt_tokens = i, completion_tokens = o, total_tokens = u.total_tokens or (i + o) }
end

-- The finish reason of a result, in OpenAI's words.
local function finish(r)
  local f = r and r.finish_reason
  if f == "length" or f == "tool_calls" or f == "content_filter" then return f end
  return "stop"
end

-- One SSE chunk.
local function chunk(base, delta, fin, u)
  local c = { id = base.id, object = "chat.completion.chunk", created = base.created, model = base.model,
              system_fingerprint = json.null,
              choices = json.array({ { index = 0, delta = delta, logprobs = json.null,
                                       finish_reason = fin or json.null } }) }
  if u then c.choices = json.array(); c.usage = u end
  return "data: " .. json.encode(c) .. "\n\n"
end

-- Run the chat completion args = {model, messages, stream} on app (in
-- this process, or on a worker: weft.pool.call "chat"): {text, usage,
-- finish_reason}; chunk(text) gets the pieces of a streamed reply. Raises
-- an API error (404 model_not_found, 500 agent_failed).
local function chat_call(app, args, chunk)
  local agent = resolve(app, args.model)
  local ok, r, err, code
  if args.stream then
    ok, r, err, code = pcall(agent.stream, agent, args.messages, nil, function(c)
      if type(c) == "table" and type(c.text) == "string" and c.text ~= "" then chunk(c.text) end
    end)
  else
    ok, r, err, code = pcall(agent.run, agent, args.messages)
  end
  if not ok then
    if errors.is_error(r) then error(r, 0) end
    r, err, code = nil, tostring(r), nil
  end
  if not r then
    -- a provider's 4xx is the client's 4xx (not retried), its 5xx a 502, a timeout a 504
    if code == "paused" then throw(409, "workflow_paused", tostring(err)) end
    local st = require("weft.serve.responses").status_of(code)
    throw(st, st == 500 and "agent_failed" or (code or "agent_failed"), tostring(err))
  end
  return { text = r.text, usage = r.usage, finish_reason = r.finish_reason }
end
require("weft.pool").register_call("chat", chat_call)

-- Do chat completion args here, or with a worker pool on a worker.
local function complete(app, args, chunk)
  if app.pool then
    return require("weft.pool").call(app.store, "chat", args, { pool = app.pool, on_chunk = chunk })
  end
  return chat_call(app, args, chunk)
end

-- Answer a streamed completion: run it (complete) in a task of its own,
-- write the text chunks it produces as they come.
local function stream(app, res, args, base, include_usage)
  local weft = require "weft"
  local q, done, result, rerr, eobj = {}, false, nil, nil, nil
  local cond = weft.cond()
  local streamed = false
  local runner = weft.go(function()
    local ok, r = pcall(complete, app, args, function(text)
      q[#q + 1] = text
      streamed = true
      cond:signal()
    end)
    if ok then result = r else rerr = errors.is_error(r) and r.message or tostring(r) end
    if not ok and errors.is_error(r) then eobj = r end
    done = true
    cond:signal()
  end)
  -- the status line waits for the first piece: a failure before it is an error status
  while #q == 0 and not done do cond:wait() end
  if done and eobj and #q == 0 then error(eobj, 0) end
  local w = res:stream(200, { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" })
  res.streaming = true
  local function put(s)
    local ok = w:write(s)
    if not ok then
      pcall(runner.cancel, runner) -- the client left
      return false
    end
    return true
  end
  if not put(chunk(base, { role = "assistant", content = "" })) then return end
  local n = 0
  while true do
    while n < #q do
      n = n + 1
      if not put(chunk(base, { content = q[n] })) then return end
    end
    if done then break end
    cond:wait()
  end
  if not result then
    local e = eobj or errors.new(500, "agent_failed", tostring(rerr))
    put("data: " .. json.encode(_M.error_body(e)) .. "\n\n")
  else
    if not streamed and result.text and result.text ~= "" then
      if not put(chunk(base, { content = result.text })) then return end
    end
    if not put(chunk(base, json.object(), finish(result))) then return end
    if include_usage then
      if not put(chunk(base, nil, nil, usage(result.usage))) then return end
    end
  end
  put("data: [DONE]\n\n")
  w:close()
end

-- The model objects of app: its agents and workflows.
local function models(app)
  local data = json.array()
  for _, d in ipairs(app:def_list("agent")) do
    data[#data + 1] = { id = "agent:" .. tostring(d.id), object = "model",
                        created = math.floor(d.created_at or 0), owned_by = "weft" }
  end
  -- the workflow list route knows both declarative and script workflows
  for _, r in ipairs(app.routes) do
    if r.method == "GET" and r.pattern == "/api/v1/workflows" then
      local _, page = r.fn(app, { query = { limit = tostring(require("weft.serve.app").MAX_LIMIT) } }, {})
      for _, d in ipairs(page and page.items or {}) do
        data[#data + 1] = { id = "workflow:" .. tostring(d.id), object = "model",
                            created = math.floor(tonumber(d.created_at) or 0), owned_by = "weft" }
      end
    end
  end
  return data
end

-- The client's answers to calls of a paused run at the end of raw
-- OpenAI messages msgs: the paused response and its outputs, or nil.
local function tool_answers(app, msgs)
  local outs, n = {}, #msgs
  while n > 0 and type(msgs[n]) == "table" and msgs[n].role == "tool" do n = n - 1 end
  for i = n + 1, #msgs do
    local m = msgs[i]
    local c = m.content
    if type(c) ~= "string" then
      local ok, t = pcall(json.encode, c)
      c = ok and t or ""
    end
    outs[#outs + 1] = { call_id = m.tool_call_id, output = c }
  end
  local b = app._responses
  local first = outs[1]
  if not (b and first and type(first.call_id) == "string") then return nil end
  local rec = b.calls[first.call_id]
  if not rec then return nil end
  return rec, outs
end

-- The chat.completion message of response rec: its text and its
-- function calls as tool_calls.
local function rec_message(rec)
  local text, calls = {}, json.array()
  for _, it in ipairs(rec.output) do
    if it.type == "message" then
      for _, p in ipairs(it.content) do text[#text + 1] = p.text end
    elseif it.type == "function_call" then
      calls[#calls + 1] = { id = it.call_id, type = "function", ["function"] = { name = it.name, arguments = it.arguments } }
    end
  end
  return concat(text), calls
end

-- Answer a chat completion through a Responses session (a workflow
-- model, or the answers to a paused run's calls): the run's requests come
-- back as tool calls of weft_request (finish_reason "tool_calls"), the
-- client answers them with tool messages.
local function session_chat(app, res, t, base, stream_it, include_usage)
  local rsp = require "weft.serve.responses"
  t.stream = stream_it
  local rec = rsp.begin(app, t)
  if not stream_it then
    rsp.wait(rec)
    if rec.status == "failed" then error(rsp.failure(rec), 0) end
    local text, calls = rec_message(rec)
    local msg = { role = "assistant", content = text, refusal = json.null }
    if #calls > 0 then msg.tool_calls = calls end
    return 200, {
      id = base.id, object = "chat.completion", created = base.created, model = base.model,
      system_fingerprint = json.null,
      choices = json.array({ { index = 0, message = msg, logprobs = json.null,
                               finish_reason = #calls > 0 and "tool_calls" or "stop" } }),
      usage = usage(rec.usage),
    }
  end
  local w = res:stream(200, { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" })
  res.streaming = true
  if not w:write(chunk(base, { role = "assistant", content = "" })) then return end
  local ok = rsp.follow(rec, -1, function(ev)
    if ev.type == "response.output_text.delta" then return w:write(chunk(base, { content = ev.delta })) end
    return true
  end)
  rec.events = nil
  if not ok then return end
  if rec.status == "failed" then
    w:write("data: " .. json.encode(_M.error_body(rsp.failure(rec))) .. "\n\n")
  else
    local _, calls = rec_message(rec)
    local fin = "stop"
    if #calls > 0 then
      fin = "tool_calls"
      for i, c in ipairs(calls) do c.index = i - 1 end
      if not w:write(chunk(base, { tool_calls = calls })) then return end
    end
    if not w:write(chunk(base, json.object(), fin)) then return end
    if include_usage and not w:write(chunk(base, nil, nil, usage(rec.usage))) then return end
  end
  w:write("data: [DONE]\n\n")
  w:close()
end

--- Install the /v1 routes on app and the OpenAI error writer.
function _M.install(app)
  app.send_error = _M.send_error
  require("weft.serve.responses").install(app)

  app:route("GET", "/v1/models", function(self)
    return 200, { object = "list", data = models(self) }
  end)

  -- GET /v1/models/{id}: ids hold ':' (agent:<id>), which route parameters
  -- refuse; sent unescaped by the SDK or as %3A (req.path is decoded once)
  app.before[#app.before + 1] = function(self, req, res)
    if req.method ~= "GET" then return false end
    local id = type(req.path) == "string" and req.path:match("^/v1/models/([^/]+)/?$")
    if not id then return false end
    for _, m in ipairs(models(self)) do
      if m.id == id then
        res:json(200, m)
        return true
      end
    end
    throw(404, "model_not_found", fmt("the model '%s' does not exist: use agent:<id> or workflow:<id> (GET /v1/models)",
          id), { field = "model" })
  end

  app:route("POST", "/v1/chat/completions", function(self, req, _, res)
    local body = self:body(req, { required = true })
    if body.n ~= nil and body.n ~= 1 and body.n ~= json.null then
      throw(400, "unsupported", "only n = 1 is supported", { field = "n" })
    end
    if body.model ~= nil and body.messages ~= nil then errors.check_body(_M.CHAT, body, "invalid_request") end
    local msgs = messages(body.messages)
    local base = { id = new_id(), created = os.time(), model = body.model }
    local so = body.stream_options
    local with_usage = type(so) == "table" and so.include_usage == true
    local prev, outs = tool_answers(self, body.messages)
    if prev then
      if prev.model ~= body.model then
        throw(400, "invalid_messages", fmt("tool call '%s' belongs to model '%s'", outs[1].call_id, prev.model),
              { field = "messages" })
      end
      return session_chat(self, res, { model = body.model, msgs = {}, outs = outs, prev = prev }, base,
                          body.stream == true, with_usage)
    end
    -- an unknown model is a 404 before anything runs; a workflow model is a
    -- session (its requests answered as tool calls) in this process, and a
    -- call on a worker with a pool (a request it makes is then a 409)
    if _M.target(self, body.model) == "workflow" and not self.pool then
      return session_chat(self, res, { model = body.model, msgs = msgs, outs = {} }, base, body.stream == true,
                          with_usage)
    end
    -- one user message goes in as a string
    if #msgs == 1 and msgs[1].role == "user" then msgs = msgs[1].content end
    local args = { model = body.model, messages = msgs, stream = body.stream == true }
    if body.stream then
      stream(self, res, args, base, with_usage)
      return
    end
    local r = complete(self, args)
    return 200, {
      id = base.id, object = "chat.completion", created = base.created, model = base.model,
      system_fingerprint = json.null,
      choices = json.array({ { index = 0, message = { role = "assistant", content = r.text or "", refusal = json.null },
                               logprobs = json.null, finish_reason = finish(r) } }),
      usage = usage(r.usage),
    }
  end)
end

return _M
