--- weft.a2a — the Agent2Agent protocol (A2A 1.0, JSON-RPC binding, as the
-- official SDK @a2a-js/sdk speaks it): the wire shapes shared by the
-- client and `weft serve` (messages, parts, task states, JSON-RPC errors),
-- and the client side: `weft.agent.remote{url = BASE}` makes a RemoteAgent
-- (a ProxyAgent) with the agent interface (run, stream, new_thread,
-- as_executor) that reads the remote agent card at
-- BASE/.well-known/agent-card.json, sends messages (SendMessage), streams
-- them (SendStreamingMessage: server-sent status and artifact updates),
-- follows the task it gets (GetTask until it ends or asks for input),
-- answers `input-required` (a request of the caller: ctx:request_info in
-- an executor, the `on_input` option, else the next run on the thread) and
-- cancels (CancelTask). A thread keeps the remote context id (and the task
-- waiting for input) in thread.metadata.a2a[<agent name>]. Everything from
-- the wire is bounded (card and replies by max_bytes, a stream by
-- max_bytes in all and per event). Expected failures return nil, err,
-- code ("card", "protocol", "rpc", "http_<status>", "too_large",
-- "input_required", or a weft.http code); misuse raises.
-- Uses weft.http, weft.json, weft.thread, weft.check, weft.urandom,
-- weft.invocation, weft.core.loop (sleep).
local json = require "weft.json"
local thread_mod = require "weft.thread"
local check = require "weft.check"

local type, ipairs, pairs, tostring, error, setmetatable, getmetatable, pcall, require, tonumber =
  type, ipairs, pairs, tostring, error, setmetatable, getmetatable, pcall, require, tonumber
local sformat, concat, find, sub = string.format, table.concat, string.find, string.sub
local running = coroutine.running

local _M = {}

--- The protocol version spoken (A2A-Version header, card interfaces).
_M.VERSION = "1.0"
--- Where an agent card is, under an agent's base URL.
_M.CARD_PATH = "/.well-known/agent-card.json"
--- The default cap on a card, a reply and a whole stream (bytes).
_M.MAX_BYTES = 4 * 1024 * 1024
--- The default cap on one server-sent event of a stream (bytes).
_M.MAX_EVENT = 1024 * 1024

--- JSON-RPC error codes (JSON-RPC 2.0 and A2A's own).
_M.ERRORS = {
  parse = -32700, invalid_request = -32600, method_not_found = -32601, invalid_params = -32602,
  internal = -32603, task_not_found = -32001, task_not_cancelable = -32002,
  push_not_supported = -32003, unsupported = -32004, content_type = -32005, version = -32009,
}

--- The task states that end a task (no more updates come).
_M.TERMINAL = { TASK_STATE_COMPLETED = true, TASK_STATE_FAILED = true, TASK_STATE_CANCELED = true,
                TASK_STATE_REJECTED = true }
--- The states in which a task waits for its client (no update comes
-- until the client sends a message).
_M.INTERRUPTED = { TASK_STATE_INPUT_REQUIRED = true, TASK_STATE_AUTH_REQUIRED = true }

local seq = 0
--- A new id (32 hex digits from /dev/urandom; a counter if unreadable).
function _M.new_id()
  local h = require("weft.urandom").hex(16)
  if h then return h end
  seq = seq + 1
  return sformat("%x-%d", os.time(), seq)
end

--- An ISO 8601 UTC timestamp of now.
function _M.timestamp() return os.date("!%Y-%m-%dT%H:%M:%SZ") end

--- A text part (a string) or a data part (any other JSON value).
function _M.part(v)
  if type(v) == "string" then return { text = v } end
  return { data = v }
end

--- A message: role "ROLE_USER" | "ROLE_AGENT", a list of parts, and the
-- optional context and task ids.
function _M.message(role, parts, context_id, task_id)
  return { messageId = _M.new_id(), role = role, parts = json.array(parts), contextId = context_id,
           taskId = task_id }
end

--- The text of a list of parts: text parts as they are, data parts
-- JSON-encoded, file parts by their URL or name; joined with sep
-- (default "\n").
function _M.parts_text(parts, sep)
  local out = {}
  if type(parts) ~= "table" then return "" end
  for _, p in ipairs(parts) do
    if type(p) == "table" then
      if type(p.text) == "string" then out[#out + 1] = p.text
      elseif p.data ~= nil then
        local ok, s = pcall(json.encode, p.data)
        out[#out + 1] = ok and s or "(data)"
      elseif type(p.url) == "string" then out[#out + 1] = p.url
      elseif type(p.filename) == "string" then out[#out + 1] = "(file " .. p.filename .. ")"
      end
    end
  end
  return concat(out, sep or "\n")
end

--- The value of a message's parts for a workflow or a request: the data
-- of a single data part, else the text of the parts.
function _M.parts_value(parts)
  if type(parts) == "table" and #parts == 1 and type(parts[1]) == "table" and parts[1].data ~= nil then
    return parts[1].data
  end
  return _M.parts_text(parts)
end

--- The text a task answered: its artifacts' parts, else its status
-- message's.
function _M.task_text(t)
  local out = {}
  for _, a in ipairs(type(t.artifacts) == "table" and t.artifacts or {}) do
    if type(a) == "table" then out[#out + 1] = _M.parts_text(a.parts, "") end -- chunks of one artifact
  end
  if #out > 0 then return concat(out, "\n") end
  local st = type(t.status) == "table" and t.status or {}
  return type(st.message) == "table" and _M.parts_text(st.message.parts) or ""
end

-- Client ----------------------------------------------------------------------

local RemoteAgent = {}
RemoteAgent.__index = RemoteAgent
RemoteAgent.__tostring = function(a) return "remote agent '" .. a.name .. "' (" .. a.url .. ")" end
_M.RemoteAgent = RemoteAgent

--- The spec of weft.agent.remote options (weft.check).
_M.OPTIONS = check.spec("weft.agent.remote", { properties = {
  url = { type = "string", required = true, expect = "the remote agent's base URL (http:// or https://)",
          aliases = { "base_url", "endpoint" } },
  name = { type = "string", minLength = 1 },
  description = { type = "string" },
  headers = { type = "table", expect = "a table of name = value (e.g. Authorization)" },
  timeout = { type = "number", minimum = 0, unit = "seconds" },
  idle_timeout = { type = "number", minimum = 0, unit = "seconds" },
  max_bytes = { type = "integer", minimum = 1, expect = "a positive integer" },
  max_event = { type = "integer", minimum = 1, expect = "a positive integer" },
  poll_interval = { type = "number", minimum = 0, unit = "seconds" },
  -- the most one exchange (a message and the task it starts) may take
  task_timeout = { type = "number", minimum = 0, unit = "seconds" },
  on_input = { type = "callable", expect = "a function(request) -> answer" },
} })

--- The default task_timeout of a remote agent: an exchange (a message and
-- the task it starts, followed to its end or to a question) that takes
-- longer fails with code "timeout" and its task is cancelled. 0: none.
_M.TASK_TIMEOUT = 600

--- True when v is a remote agent (weft.agent.remote).
function _M.is_remote(v) return getmetatable(v) == RemoteAgent end

--- A remote agent (see the module comment); raises on bad options.
function _M.remote(opts, level)
  level = (level or 1) + 1
  if type(opts) ~= "table" then error("weft.agent.remote: expects a table {url = BASE, ...}", level) end
  check.options(_M.OPTIONS, opts, level)
  local url = opts.url
  if not find(url, "^https?://[^/]") then
    error("weft.agent.remote: url must be an http:// or https:// base URL, got '" .. url .. "'", level)
  end
  url = url:gsub("/+$", "")
  local name = opts.name or url:match("^https?://[^/]+/.-([^/]+)$") or url:match("^https?://([^/]+)")
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  headers["A2A-Version"] = _M.VERSION
  return setmetatable({
    name = name, url = url, description = opts.description, headers = headers,
    timeout = opts.timeout, idle_timeout = opts.idle_timeout or 300, max_bytes = opts.max_bytes or _M.MAX_BYTES,
    max_event = opts.max_event or _M.MAX_EVENT, poll_interval = opts.poll_interval or 0.5,
    task_timeout = opts.task_timeout or _M.TASK_TIMEOUT,
    on_input = opts.on_input, _card = nil, _endpoint = nil,
  }, RemoteAgent)
end

-- The prefix of the agent's error texts.
local function who(self) return sformat("remote agent '%s'", self.name) end

-- One HTTP request of the agent (headers, limits; at most `left` seconds
-- when given): weft.http's results.
local function request(self, o, left)
  o.headers = o.headers or self.headers
  o.timeout = o.timeout or self.timeout
  if left and (not o.timeout or left < o.timeout) then o.timeout = left end
  if o.stream then o.idle_timeout = self.idle_timeout end
  o.max_body = o.max_body or self.max_bytes
  return require("weft.http").request(o)
end

--- The remote agent card (fetched once): the decoded card, or nil, err,
-- code ("card" for a card that is not one, or the HTTP failure's code).
function RemoteAgent:card()
  if self._card then return self._card end
  local url = self.url .. _M.CARD_PATH
  local res, err, code = request(self, { url = url })
  if not res then return nil, sformat("%s: agent card %s: %s", who(self), url, tostring(err)), code end
  if res.status ~= 200 then
    return nil, sformat("%s: agent card %s: HTTP %d", who(self), url, res.status), "card"
  end
  local card = json.decode(res.body or "")
  if type(card) ~= "table" or json.is_array(card) then
    return nil, sformat("%s: agent card %s is not a JSON object", who(self), url), "card"
  end
  local endpoint
  for _, i in ipairs(type(card.supportedInterfaces) == "table" and card.supportedInterfaces or {}) do
    if type(i) == "table" and type(i.url) == "string" and type(i.protocolBinding) == "string"
       and i.protocolBinding:upper() == "JSONRPC" and find(i.url, "^https?://")
       and (endpoint == nil or i.protocolVersion == _M.VERSION) then
      endpoint = i.url
    end
  end
  if not endpoint then
    return nil, sformat("%s: agent card %s lists no JSONRPC interface (supportedInterfaces[].url, protocolBinding)",
                        who(self), url), "card"
  end
  self._card, self._endpoint = card, endpoint
  if type(card.description) == "string" and not self.description then self.description = card.description end
  return card
end

-- The JSON-RPC error of a reply as (err, code).
local function rpc_error(self, method, e)
  local msg = type(e) == "table" and e.message or e
  local c = type(e) == "table" and tonumber(e.code) or nil
  return sformat("%s: %s: %s (JSON-RPC error %s)", who(self), method, tostring(msg), tostring(c)), "rpc"
end

local rpc_seq = 0
-- A JSON-RPC request body (and its id).
local function envelope(method, params)
  rpc_seq = rpc_seq + 1
  return json.encode({ jsonrpc = "2.0", id = rpc_seq, method = method, params = params }), rpc_seq
end

-- Headers of a JSON-RPC POST (accept: the expected reply type).
local function rpc_headers(self, accept)
  local h = {}
  for k, v in pairs(self.headers) do h[k] = v end
  h["Content-Type"] = "application/json"
  h["Accept"] = accept
  return h
end

--- Call method with params (in at most `left` seconds when given): the
-- result, or nil, err, code.
function RemoteAgent:call(method, params, left)
  local _, cerr, ccode = self:card()
  if cerr then return nil, cerr, ccode end
  local body, id = envelope(method, params)
  local res, err, code = request(self, { method = "POST", url = self._endpoint, body = body,
                                         headers = rpc_headers(self, "application/json") }, left)
  if not res then return nil, sformat("%s: %s: %s", who(self), method, tostring(err)), code end
  local d = json.decode(res.body or "")
  if type(d) == "table" and d.error ~= nil and d.error ~= json.null then return nil, rpc_error(self, method, d.error) end
  if res.status < 200 or res.status > 299 then
    return nil, sformat("%s: %s: HTTP %d", who(self), method, res.status), "http_" .. res.status
  end
  if type(d) ~= "table" or d.jsonrpc ~= "2.0" or d.id ~= id or type(d.result) ~= "table" then
    return nil, sformat("%s: %s: the reply is not a JSON-RPC 2.0 result for request %d", who(self), method, id),
           "protocol"
  end
  return d.result
end

--- Stream method with params: on_event(result) for each streamed result
-- (a StreamResponse: {task}, {message}, {statusUpdate}, {artifactUpdate});
-- it returns true to stop; the stream lasts at most `left` seconds when
-- given. true, or nil, err, code.
function RemoteAgent:call_stream(method, params, on_event, left)
  local _, cerr, ccode = self:card()
  if cerr then return nil, cerr, ccode end
  local body, id = envelope(method, params)
  local failure, received, events = nil, 0, 0
  local limit = self.max_bytes
  local res, err, code = request(self, {
    method = "POST", url = self._endpoint, body = body, headers = rpc_headers(self, "text/event-stream"),
    framing = "sse", max_body = self.max_event,
    stream = function(ev)
      local data = ev.data or ""
      received, events = received + #data, events + 1
      if received > limit then
        failure = { sformat("%s: %s: the stream passed max_bytes (%d bytes)", who(self), method, limit), "too_large" }
        return false
      end
      local d = json.decode(data)
      if type(d) ~= "table" or d.jsonrpc ~= "2.0" then
        failure = { sformat("%s: %s: a streamed event is not a JSON-RPC 2.0 response: %q", who(self), method,
                            sub(data, 1, 80)), "protocol" }
        return false
      end
      if d.error ~= nil and d.error ~= json.null then failure = { rpc_error(self, method, d.error) }; return false end
      if d.id ~= id or type(d.result) ~= "table" then
        failure = { sformat("%s: %s: a streamed event is not a result for request %d", who(self), method, id),
                    "protocol" }
        return false
      end
      if on_event(d.result) then return false end
    end,
  }, left)
  if failure then return nil, failure[1], failure[2] end
  if not res then
    if code == "too_large" then
      err = sformat("one event passed max_event (%d bytes)", self.max_event)
    end
    return nil, sformat("%s: %s: %s", who(self), method, tostring(err)), code
  end
  if res.status < 200 or res.status > 299 then
    local d = json.decode(res.body or "")
    if type(d) == "table" and type(d.error) == "table" then return nil, rpc_error(self, method, d.error) end
    return nil, sformat("%s: %s: HTTP %d", who(self), method, res.status), "http_" .. res.status
  end
  local ct = res.headers and res.headers["content-type"] or ""
  if events == 0 and not find(ct, "^text/event%-stream") then
    -- an SDK server answers a stream it refuses with a JSON-RPC error in a
    -- plain JSON body, which the event framing does not read
    return nil, sformat("%s: %s: the server answered %s, not a stream of events (a refused request: "
                        .. "send it with agent:run to read its JSON-RPC error)", who(self), method,
                        ct ~= "" and ct or "without a content type"), "protocol"
  end
  return true
end

--- The task id: the task (GetTask), or nil, err, code.
function RemoteAgent:get_task(id, history_length)
  return self:call("GetTask", { id = id, historyLength = history_length })
end

--- Cancel task id (CancelTask): the task, or nil, err, code ("rpc" for
-- a task that is unknown or cannot be cancelled).
function RemoteAgent:cancel(id)
  return self:call("CancelTask", { id = id })
end

--- A new thread (metadata.agent = the agent's name).
function RemoteAgent:new_thread()
  return thread_mod.new { metadata = { agent = self.name } }
end

-- The A2A state kept in thread th for this agent: {context_id, task_id}.
local function thread_state(self, th)
  local md = th.metadata
  local all = md.a2a
  if type(all) ~= "table" then all = {}; md.a2a = all end
  local s = all[self.name]
  if type(s) ~= "table" then s = {}; all[self.name] = s end
  return s
end

-- The parts of the next message: only the new messages when the remote
-- context knows the conversation, else every message (a part each, with
-- its role and name in the part's metadata).
local function parts_of(msgs)
  local parts = {}
  for i, m in ipairs(msgs) do
    local md = { role = m.role, name = m.name }
    parts[i] = { text = type(m.content) == "string" and m.content or "", metadata = md }
  end
  return parts
end

-- Executor contexts by coroutine (as_executor), for input-required.
local ctx_of = setmetatable({}, { __mode = "k" })

local loop = require "weft.core.loop"

-- The error of an exchange past its task_timeout; task t (when known) is
-- cancelled first, best effort, so that it does not run on unseen.
local function timed_out(self, t)
  local state = "without a task"
  if type(t) == "table" and t.id ~= nil then
    state = sformat("with task %s still %s", tostring(t.id),
                    type(t.status) == "table" and tostring(t.status.state) or "unknown")
    local _, cerr = self:cancel(t.id)
    state = state .. (cerr and " (cancelling it failed: " .. cerr .. ")" or " (cancelled)")
  end
  return nil, sformat("%s: no answer within task_timeout (%g s), %s", who(self), self.task_timeout, state), "timeout"
end

-- Follow task t (a Task object) until it ends or asks for input, or until
-- the clock passes deadline (nil: none).
local function follow(self, t, deadline)
  local wait = self.poll_interval
  while type(t) == "table" and type(t.status) == "table" and not _M.TERMINAL[t.status.state]
        and not _M.INTERRUPTED[t.status.state] do
    if deadline then
      local left = deadline - loop.clock()
      if left <= 0 then return timed_out(self, t) end
      if wait > left then wait = left end
    end
    loop.sleep(wait)
    wait = wait * 2
    if wait > 5 then wait = 5 end
    local nt, err, code = self:call("GetTask", { id = t.id }, deadline and math.max(deadline - loop.clock(), 0.001))
    if not nt then
      if code == "timeout" and deadline and loop.clock() >= deadline then return timed_out(self, t) end
      return nil, err, code
    end
    t = nt
  end
  return t
end

-- An answer of the caller to a question of task t: ctx:request_info in
-- an executor, else on_input; nil when nobody answers here.
local function ask(self, t, text)
  local req = { agent = self.name, task_id = t.id, context_id = t.contextId, question = text,
                state = t.status.state }
  local ctx = ctx_of[running()]
  if ctx then return ctx:request_info(req), true end
  if self.on_input then return self.on_input(req), true end
  return nil, false
end

-- One exchange: send parts (streamed to emit when given) and follow the
-- task to its end; returns the final Task or Message, or nil, err, code.
local function exchange(self, parts, st, emit)
  local msg = _M.message("ROLE_USER", parts, st.context_id, st.task_id)
  local params = { message = msg }
  local deadline = self.task_timeout > 0 and loop.clock() + self.task_timeout or nil
  if not emit then
    local r, err, code = self:call("SendMessage", params, self.task_timeout > 0 and self.task_timeout or nil)
    if not r then
      if code == "timeout" and deadline and loop.clock() >= deadline - 0.001 then return timed_out(self, nil) end
      return nil, err, code
    end
    if type(r.message) == "table" then return r.message end
    if type(r.task) ~= "table" then
      return nil, sformat("%s: SendMessage: the result holds neither a task nor a message", who(self)), "protocol"
    end
    return follow(self, r.task, deadline)
  end
  local task, final = nil, nil
  local by_id = {} -- artifacts of the task by id (a stream may carry many)
  local ok, err, code = self:call_stream("SendStreamingMessage", params, function(ev)
    if type(ev.message) == "table" then final = ev.message; return true end
    if type(ev.task) == "table" then
      task = ev.task
      if type(task.artifacts) ~= "table" then task.artifacts = nil end
      for _, a in ipairs(task.artifacts or {}) do
        if type(a) == "table" then
          if type(a.parts) ~= "table" then a.parts = json.array() end
          by_id[tostring(a.artifactId)] = a
        end
      end
    end
    local su, au = ev.statusUpdate, ev.artifactUpdate
    if type(su) == "table" and type(su.status) == "table" then
      task = task or { id = su.taskId, contextId = su.contextId }
      task.status = su.status
      emit({ status = su.status.state, task_id = task.id })
    elseif type(au) == "table" and type(au.artifact) == "table" then
      task = task or { id = au.taskId, contextId = au.contextId }
      local arts = task.artifacts
      if type(arts) ~= "table" then arts = json.array(); task.artifacts = arts end
      local a = au.artifact
      local parts = json.array()
      for _, p in ipairs(type(a.parts) == "table" and a.parts or {}) do parts[#parts + 1] = p end
      local aid = tostring(a.artifactId)
      local prev = by_id[aid]
      if prev and au.append then
        for _, p in ipairs(parts) do prev.parts[#prev.parts + 1] = p end
      elseif prev then
        prev.parts = parts
      else
        prev = { artifactId = a.artifactId, name = a.name, parts = parts }
        by_id[aid] = prev
        arts[#arts + 1] = prev
      end
      local text = _M.parts_text(parts)
      if text ~= "" then emit({ text = text }) end
    end
    -- a status update ends the stream (not the first task event: the
    -- snapshot of a task that was waiting for this very message)
    local s = type(su) == "table" and task and type(task.status) == "table" and task.status.state
    if s and (_M.TERMINAL[s] or _M.INTERRUPTED[s]) then return true end
  end, self.task_timeout > 0 and self.task_timeout or nil)
  if not ok then
    if code == "timeout" and deadline and loop.clock() >= deadline - 0.001 then return timed_out(self, task) end
    return nil, err, code
  end
  if final then return final end
  if not task or type(task.status) ~= "table" then
    return nil, sformat("%s: SendStreamingMessage: the stream ended without a task or a message", who(self)),
           "protocol"
  end
  return follow(self, task, deadline)
end

-- Shared body of run and stream.
local function run(self, input, th, on_chunk, what)
  if getmetatable(self) ~= RemoteAgent then error(what .. ": call it as agent:" .. what .. "(...)", 3) end
  if th == nil then
    th = self:new_thread()
  elseif not thread_mod.is_thread(th) then
    error(sformat("%s: %s: thread must be a weft.thread (agent:new_thread()), got %s", who(self), what, type(th)), 3)
  end
  local pending
  if input ~= nil then
    local ok, list = pcall(thread_mod.input, input, "input")
    if not ok then error(sformat("%s: %s: %s", who(self), what, tostring(list)), 3) end
    pending = list
  else
    error(sformat("%s: %s: input is required (a remote agent keeps its own history)", who(self), what), 3)
  end
  local st = thread_state(self, th)
  local sendlist = pending
  if not st.context_id then
    sendlist = {}
    for _, m in ipairs(th.messages) do sendlist[#sendlist + 1] = m end
    for _, m in ipairs(pending) do sendlist[#sendlist + 1] = m end
  end
  local emit
  if on_chunk then
    local inv = require("weft.invocation").current()
    emit = function(c)
      if inv then inv:publish_chunk(c) end
      on_chunk(c)
    end
  end
  local parts = parts_of(sendlist)
  local r, err, code
  while true do
    r, err, code = exchange(self, parts, st, emit)
    if not r then return nil, err, code end
    if r.messageId ~= nil or r.status == nil then break end -- a direct message
    st.context_id = r.contextId or st.context_id
    local state = r.status.state
    if not _M.INTERRUPTED[state] then st.task_id = nil; break end
    st.task_id = r.id
    local answer, asked = ask(self, r, _M.task_text(r))
    if not asked then break end
    if answer == nil then
      return nil, sformat("%s: task %s asks for input and no answer came: %s", who(self), tostring(r.id),
                          _M.task_text(r)), "input_required"
    end
    parts = { _M.part(answer) }
    pending[#pending + 1] = { role = "assistant", content = _M.task_text(r) }
    pending[#pending + 1] = { role = "user", content = type(answer) == "string" and answer or json.encode(answer) }
  end
  local text, state
  if r.status == nil then
    text, state = _M.parts_text(r.parts), "TASK_STATE_COMPLETED"
    st.context_id = r.contextId or st.context_id
  else
    text, state = _M.task_text(r), r.status.state
  end
  if state ~= "TASK_STATE_COMPLETED" and not _M.INTERRUPTED[state] then
    local detail = text ~= "" and (": " .. text) or ""
    return nil, sformat("%s: task %s ended %s%s", who(self), tostring(r.id), tostring(state), detail), "task"
  end
  pending[#pending + 1] = { role = "assistant", content = text }
  local msgs = th.messages
  local start = #msgs
  for i = 1, #pending do msgs[start + i] = pending[i] end
  if emit then emit({ done = true, finish_reason = _M.INTERRUPTED[state] and "input_required" or "stop" }) end
  return {
    text = text, tool_calls = json.array(), messages = pending, thread = th, finish_reason = "stop",
    usage = { input_tokens = 0, output_tokens = 0, total_tokens = 0 },
    status = state, task_id = r.status and r.id or nil, context_id = st.context_id,
    input_required = _M.INTERRUPTED[state] and { task_id = r.id, context_id = r.contextId, question = text } or nil,
  }
end

--- Send input (a string, a message or a list of messages) on thread
-- (default: a new one) and wait for the answer: {text, messages, thread,
-- status (the task state), task_id, context_id, input_required = {task_id,
-- context_id, question} when the remote asks and nobody here answered},
-- or nil, err, code. The next run on the thread continues its context
-- (and answers the waiting task).
function RemoteAgent:run(input, th)
  local res, err, code = run(self, input, th, nil, "run")
  return res, err, code
end

--- Like run, streamed: on_chunk receives {text} for artifact updates,
-- {status = state, task_id} for status updates, then {done, finish_reason};
-- inside an executor the chunks are also agent_update events.
function RemoteAgent:stream(input, th, on_chunk)
  if on_chunk == nil and check.callable(th) then th, on_chunk = nil, th end
  if not check.callable(on_chunk) then error(who(self) .. ": stream: on_chunk must be a function", 2) end
  local res, err, code = run(self, input, th, on_chunk, "stream")
  return res, err, code
end

--- An executor running the agent (agent:as_executor of weft.agent, with
-- the same messages in and out); a remote question (input-required)
-- becomes a ctx:request_info of the invocation, its answer goes back to
-- the same task.
function RemoteAgent:as_executor(id, opts)
  local ex = require("weft.agent").Agent.as_executor(self, id, opts)
  local handle = ex.handle
  ex.handle = function(msg, ctx)
    local co = running()
    ctx_of[co] = ctx
    local ok, err = pcall(handle, msg, ctx)
    ctx_of[co] = nil
    if not ok then error(err, 0) end
  end
  return ex
end

return _M
