--- weft.serve.a2a — `weft serve` publishes each agent and each workflow as
-- an A2A agent (protocol 1.0, JSON-RPC binding; wire shapes in weft.a2a):
-- `GET /a2a/{id}/.well-known/agent-card.json` (the card: its JSON-RPC URL,
-- a skill, streaming, the security schemes of the API keys) and `POST
-- /a2a/{id}` with SendMessage, SendStreamingMessage (server-sent events),
-- GetTask, SubscribeToTask and CancelTask. An id names an agent first,
-- else a workflow. An agent's task runs the agent (streamed: its text
-- arrives as artifact chunks) on the thread of the task's context, kept in
-- this process; a workflow's task is an execution (the REST routes of
-- weft.serve.executions run it: durable, listed, cancellable there too),
-- its outputs become artifacts, a request of the run (ctx:request_info)
-- makes the task input-required and the next message on the task answers
-- it. Keys and scopes are the REST API's: reading a task needs `read`,
-- sending and cancelling `run`. Tasks live in this process (the last
-- MAX_TASKS; a workflow's execution is also in the store, and runs on
-- a worker with weft serve --workers).
-- Uses weft, weft.json, weft.a2a, weft.thread, weft.serve.{errors,
-- agents, workflows, security} and the execution routes.
local json = require "weft.json"
local a2a = require "weft.a2a"
local errors = require "weft.serve.errors"

local type, ipairs, tostring, tonumber, pcall, error = type, ipairs, tostring, tonumber, pcall, error
local fmt = string.format
local throw = errors.throw
local E, TERMINAL, INTERRUPTED = a2a.ERRORS, a2a.TERMINAL, a2a.INTERRUPTED

local _M = {}

--- How many tasks stay in memory (the oldest ended ones go first), and
-- how many contexts keep their thread (a message to a forgotten context
-- starts a new thread under its id).
_M.MAX_TASKS = 1000
--- Seconds without an update after which a stream gets a comment line.
_M.HEARTBEAT = 15

-- The scope each method needs.
local SCOPE = { SendMessage = "run", SendStreamingMessage = "run", CancelTask = "run", GetTask = "read",
                SubscribeToTask = "read" }

-- A JSON-RPC error (raised through the method, answered by the route).
local function rpc_fail(code, msg, data)
  error({ rpc = true, code = code, message = msg, data = data }, 0)
end

-- What id names: "agent", definition | "workflow", built workflow | nil.
local function target(app, id)
  local d = app:def_get("agent", id)
  if d then return "agent", d end
  local ok, wf = pcall(require("weft.serve.workflows").get, app, id)
  if ok then return "workflow", wf end
  if errors.is_error(wf) and wf.status == 404 then return nil end
  error(wf, 0)
end

-- The A2A state of app: tasks by id (and their order), contexts by id.
local function state(app)
  local s = app.a2a
  if not s then
    s = { tasks = {}, order = { head = 1, tail = 0 }, contexts = {}, ctx_order = { head = 1, tail = 0 } }
    app.a2a = s
  end
  return s
end

-- The base URL of the server as the client reached it.
local function base_url(req)
  local h = req.headers or {}
  local proto = h["x-forwarded-proto"] == "https" and "https" or "http"
  return proto .. "://" .. tostring(h.host or "127.0.0.1")
end

--- The agent card of id (kind "agent" with definition d, or "workflow").
function _M.card(app, req, id, kind, d)
  local desc
  if kind == "agent" then
    desc = d.description or d.instructions or ("agent " .. id)
  else
    desc = (type(d) == "table" and type(d.description) == "string" and d.description) or ("workflow " .. id)
  end
  local card = {
    name = id, description = desc, version = tostring(require("weft").version),
    supportedInterfaces = json.array({ { url = base_url(req) .. "/a2a/" .. id, protocolBinding = "JSONRPC",
                                         protocolVersion = a2a.VERSION } }),
    provider = { organization = "weft", url = base_url(req) },
    capabilities = { streaming = true, pushNotifications = false },
    defaultInputModes = json.array({ "text/plain", "application/json" }),
    defaultOutputModes = json.array({ "text/plain", "application/json" }),
    skills = json.array({ { id = id, name = id, description = desc, tags = json.array({ "weft", kind }) } }),
  }
  if app.security and app.security.enabled then
    card.securitySchemes = {
      bearer = { httpAuthSecurityScheme = { scheme = "Bearer", description = "a weft serve API key" } },
      apiKey = { apiKeySecurityScheme = { location = "header", name = "X-API-Key",
                                          description = "a weft serve API key" } },
    }
    card.securityRequirements = json.array({ { schemes = { bearer = json.object() } },
                                             { schemes = { apiKey = json.object() } } })
  end
  return card
end

-- Tasks ------------------------------------------------------------------------

-- The Task object of t (the last history_length messages of its history).
local function task_json(t, history_length)
  local hist = t.history
  if history_length and history_length >= 0 and history_length < #hist then
    hist = json.array()
    for i = #t.history - history_length + 1, #t.history do hist[#hist + 1] = t.history[i] end
  end
  return { id = t.id, contextId = t.context_id, status = { state = t.state, message = t.message, timestamp = t.ts },
           artifacts = t.artifacts, history = hist, metadata = { kind = t.kind, target = t.target,
           execution = t.execution } }
end

-- Publish a stream payload of t (every stream reads t.events).
local function publish(t, payload)
  t.events[#t.events + 1] = payload
  t.cond:signal()
end

-- Move t to state, with an optional agent message value (a string or a
-- JSON value).
local function set_state(t, st, value)
  t.state, t.ts = st, a2a.timestamp()
  t.message = nil
  if value ~= nil then
    t.message = a2a.message("ROLE_AGENT", { a2a.part(value) }, t.context_id, t.id)
    t.history[#t.history + 1] = t.message
  end
  publish(t, { statusUpdate = { taskId = t.id, contextId = t.context_id,
                                status = { state = t.state, message = t.message, timestamp = t.ts } } })
end

-- Add (or extend, append) artifact a of t.
local function artifact(t, a, append, last)
  local cur
  for _, x in ipairs(t.artifacts) do if x.artifactId == a.artifactId then cur = x end end
  if cur and append then
    for _, p in ipairs(a.parts) do
      if p.text ~= "" then cur.parts[#cur.parts + 1] = p end -- (the empty closing chunk is not kept)
    end
  elseif cur then
    cur.parts = json.array()
    for i, p in ipairs(a.parts) do cur.parts[i] = p end
  else
    -- a copy: later chunks extend it, not the event published now
    local parts = json.array()
    for i, p in ipairs(a.parts) do parts[i] = p end
    t.artifacts[#t.artifacts + 1] = { artifactId = a.artifactId, name = a.name, parts = parts }
  end
  publish(t, { artifactUpdate = { taskId = t.id, contextId = t.context_id, append = append or false,
                                  lastChunk = last or false,
                                  artifact = { artifactId = a.artifactId, name = a.name, parts = json.array(a.parts) } } })
end

-- A new task of kind/target in context ctx.
local function new_task(app, kind, id, ctx)
  local s = state(app)
  local t = { id = a2a.new_id(), context_id = ctx.id, kind = kind, target = id, state = "TASK_STATE_SUBMITTED",
              ts = a2a.timestamp(), history = json.array(), artifacts = json.array(), events = {},
              cond = require("weft").cond() }
  s.tasks[t.id] = t
  local o = s.order
  o.tail = o.tail + 1
  o[o.tail] = t.id
  -- forget the oldest tasks that ended (and their contexts' threads)
  while o.tail - o.head + 1 > _M.MAX_TASKS do
    local old = s.tasks[o[o.head]]
    if old and not TERMINAL[old.state] then break end
    if old then s.tasks[old.id] = nil end
    o[o.head] = nil
    o.head = o.head + 1
  end
  return t
end

-- Call the REST route method pattern of app with params and a JSON body:
-- its status and body; raises a JSON-RPC error for an API error.
local function route(app, method, pattern, params, body)
  for _, r in ipairs(app.routes) do
    if r.method == method and r.pattern == pattern then
      local req = { method = method, path = pattern, query = {}, headers = { ["content-type"] = "application/json" },
                    body = body ~= nil and json.encode(body) or nil }
      local ok, st, b = pcall(r.fn, app, req, params, {})
      if ok then return st, b end
      if errors.is_error(st) then
        rpc_fail(st.status == 404 and E.invalid_params or E.internal, st.message, { status = st.status, code = st.code })
      end
      error(st, 0)
    end
  end
  error("weft.serve.a2a: no route " .. method .. " " .. pattern, 0)
end

-- Run agent task t on input (a string) in a task of its own: the reply
-- streams as chunks of the artifact "reply".
local function run_agent(app, t, input, th)
  local weft = require "weft"
  weft.go(function()
    set_state(t, "TASK_STATE_WORKING")
    local ok, agent = pcall(require("weft.serve.agents").build, app, t.target)
    local res, err
    local streamed = false
    if ok then
      ok, res, err = pcall(agent.stream, agent, input, th, function(c)
        if type(c) == "table" and type(c.text) == "string" and c.text ~= "" and not TERMINAL[t.state] then
          artifact(t, { artifactId = "reply", name = "reply", parts = { { text = c.text } } }, streamed, false)
          streamed = true
        end
      end)
    else
      res, err = nil, agent
    end
    if TERMINAL[t.state] then return end -- cancelled meanwhile: the result is dropped
    if not ok then res, err = nil, errors.is_error(res) and res.message or tostring(res) end
    if not res then
      set_state(t, "TASK_STATE_FAILED", tostring(err))
      return
    end
    -- the last chunk: the whole reply when nothing streamed, else an empty
    -- piece that closes the artifact
    artifact(t, { artifactId = "reply", name = "reply", parts = { { text = streamed and "" or (res.text or "") } } },
             streamed, true)
    set_state(t, "TASK_STATE_COMPLETED", res.text or "")
  end)
end

-- The A2A state of an execution status.
local X_STATE = { running = "TASK_STATE_WORKING", pending = "TASK_STATE_SUBMITTED", idle = "TASK_STATE_INPUT_REQUIRED",
                  completed = "TASK_STATE_COMPLETED", failed = "TASK_STATE_FAILED", cancelled = "TASK_STATE_CANCELED" }

-- The next events of workflow task t's execution (after t.seen) and its
-- summary {status, requests, error}: from this process (x.events), or
-- with a worker pool from the store (pool.events); wait() waits for more.
local function source(app, id)
  if not app.pool then
    local x = app.executions[id]
    if not x then return nil end
    return {
      next = function(seen)
        local out = {}
        for n = seen + 1, #x.events do out[#out + 1] = { n = n, event = x.events[n] } end
        return out
      end,
      summary = function() return x end,
      wait = function() x.cond:wait() end,
      done = function() end,
    }
  end
  local pool = require "weft.pool"
  local nt = app.pool.notices
  local poll = pool.poller(nil, nt and nt.wait_cond(id))
  local last
  return {
    next = function(seen) return pool.events(app.store, id, seen + 1) or {} end,
    summary = function() last = pool.get(app.store, id) or last; return last end,
    wait = function() poll(false) end,
    done = function() if nt then nt.done(id) end end,
  }
end

-- Follow workflow task t (its execution) in a task of its own until the
-- run ends or pauses on a request: outputs become artifacts, a request
-- the task's question.
local function follow(app, t)
  if t.following then return end
  t.following = true
  require("weft").go(function()
    local src = source(app, t.execution)
    local x
    while src do
      local list = src.next(t.seen)
      for _, e in ipairs(list) do
        t.seen = e.n
        local ev = e.event
        if type(ev) == "table" and ev.type == "output" then
          t.outputs = t.outputs + 1
          artifact(t, { artifactId = "output-" .. t.outputs, name = "output", parts = { a2a.part(ev.data) } }, false, true)
        end
      end
      x = src.summary()
      local st = x and x.status
      if not st or TERMINAL[X_STATE[st] or ""] or st == "idle" then
        if #list == 0 then break end -- else read the last events first
      elseif #list == 0 then
        src.wait()
      end
    end
    if src then src.done() end
    t.following = false
    if not x then set_state(t, "TASK_STATE_FAILED", "the execution is not available any more"); return end
    if TERMINAL[t.state] then return end
    if x.status == "idle" then
      local q = (x.requests or {})[1] or {}
      t.request_id = q.request_id
      local req = q.request
      if type(req) == "table" and type(req.question) == "string" then req = req.question end
      set_state(t, "TASK_STATE_INPUT_REQUIRED", req)
    elseif x.status == "completed" then
      set_state(t, "TASK_STATE_COMPLETED")
    else
      set_state(t, X_STATE[x.status] or "TASK_STATE_FAILED", x.error ~= nil and tostring(x.error) or nil)
    end
  end)
end

-- Start workflow task t with input (a value).
local function run_workflow(app, t, input)
  local _, b = route(app, "POST", "/api/v1/workflows/{id}/execute", { id = t.target }, { input = input, async = true })
  t.execution, t.seen, t.outputs = b.id, 0, 0
  set_state(t, "TASK_STATE_WORKING")
  follow(app, t)
end

-- Answer input-required workflow task t with value.
local function answer(app, t, value)
  route(app, "POST", "/api/v1/executions/{id}/responses", { id = t.execution },
        { request_id = t.request_id, value = value })
  t.request_id = nil
  set_state(t, "TASK_STATE_WORKING")
  follow(app, t)
end

-- Methods ------------------------------------------------------------------------

-- The task of params (params.id), or a TaskNotFound error.
local function find_task(app, id, params)
  local tid = params.id
  local t = type(tid) == "string" and state(app).tasks[tid] or nil
  if not t or t.target ~= id then rpc_fail(E.task_not_found, fmt("task not found: %s", tostring(tid))) end
  return t
end

-- Start or continue a task with params.message: returns the task.
local function send(app, id, kind, params)
  local m = params.message
  if type(m) ~= "table" or type(m.parts) ~= "table" or #m.parts == 0 then
    rpc_fail(E.invalid_params, "params.message must be a message with a non-empty list of parts")
  end
  local s = state(app)
  local t
  if m.taskId ~= nil and m.taskId ~= json.null and m.taskId ~= "" then
    t = find_task(app, id, { id = m.taskId })
    if not INTERRUPTED[t.state] then
      rpc_fail(E.unsupported, fmt("task %s is %s: it takes no message", t.id, t.state))
    end
  end
  local cid = t and t.context_id or m.contextId
  if type(cid) ~= "string" or cid == "" then cid = a2a.new_id() end
  local ctx = s.contexts[cid]
  if ctx and ctx.target ~= id then
    rpc_fail(E.invalid_params, fmt("context %s belongs to another agent (%s)", cid, ctx.target))
  end
  if not ctx then
    ctx = { id = cid, target = id, thread = require("weft.thread").new() }
    s.contexts[cid] = ctx
    -- keep the threads of the last MAX_TASKS contexts
    local o = s.ctx_order
    o.tail = o.tail + 1
    o[o.tail] = cid
    if o.tail - o.head + 1 > _M.MAX_TASKS then
      s.contexts[o[o.head]] = nil
      o[o.head] = nil
      o.head = o.head + 1
    end
  end
  m.contextId = cid
  if not t then t = new_task(app, kind, id, ctx) end
  m.taskId = t.id
  t.history[#t.history + 1] = m
  local value = a2a.parts_value(m.parts)
  if INTERRUPTED[t.state] then
    answer(app, t, value)
  elseif kind == "agent" then
    run_agent(app, t, a2a.parts_text(m.parts), ctx.thread)
  else
    run_workflow(app, t, value)
  end
  return t
end

-- Write the stream of t from event n on until it ends or pauses; first
-- the task itself.
local function stream(res, t, rid, n)
  local w = res:stream(200, { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" })
  res.streaming = true
  local function put(result)
    return w:write("data: " .. json.encode({ jsonrpc = "2.0", id = rid, result = result }) .. "\n\n")
  end
  if not put({ task = task_json(t) }) then return end
  while true do
    while n < #t.events do
      n = n + 1
      if not put(t.events[n]) then return end -- the client left
    end
    if TERMINAL[t.state] or INTERRUPTED[t.state] then break end
    if not t.cond:wait(_M.HEARTBEAT) and n >= #t.events then
      if not w:write(": keep-alive\n\n") then return end
    end
  end
  w:close()
end

-- Wait until t ends or pauses.
local function settle(t)
  while not (TERMINAL[t.state] or INTERRUPTED[t.state]) do t.cond:wait() end
end

local METHODS = {}

METHODS.SendMessage = function(app, id, kind, params)
  local t = send(app, id, kind, params)
  local c = type(params.configuration) == "table" and params.configuration or {}
  if c.returnImmediately ~= true then settle(t) end
  return { task = task_json(t, tonumber(c.historyLength)) }
end

METHODS.SendStreamingMessage = function(app, id, kind, params, res, rid)
  local t = send(app, id, kind, params)
  stream(res, t, rid, 0)
end

METHODS.SubscribeToTask = function(app, id, _, params, res, rid)
  local t = find_task(app, id, params)
  if TERMINAL[t.state] then rpc_fail(E.unsupported, fmt("task %s has ended (%s)", t.id, t.state)) end
  stream(res, t, rid, #t.events)
end

METHODS.GetTask = function(app, id, _, params)
  return task_json(find_task(app, id, params), tonumber(params.historyLength))
end

METHODS.CancelTask = function(app, id, _, params)
  local t = find_task(app, id, params)
  if TERMINAL[t.state] then
    rpc_fail(E.task_not_cancelable, fmt("task %s cannot be cancelled: it is %s", t.id, t.state))
  end
  if t.kind == "workflow" and t.execution then
    route(app, "DELETE", "/api/v1/executions/{id}", { id = t.execution })
    follow(app, t)
    settle(t)
  end
  if not TERMINAL[t.state] then set_state(t, "TASK_STATE_CANCELED") end
  return task_json(t)
end

-- The JSON-RPC error response of request id.
local function rpc_error(rid, code, msg, data)
  return { jsonrpc = "2.0", id = rid == nil and json.null or rid, error = { code = code, message = msg, data = data } }
end

--- Install the A2A routes on app.
function _M.install(app)
  app:route("GET", "/a2a/{id}/.well-known/agent-card.json", function(self, req, p)
    local kind, d = target(self, p.id)
    if not kind then errors.not_found("agent or workflow", p.id) end
    return 200, _M.card(self, req, p.id, kind, d), { ["cache-control"] = "no-cache" }
  end)

  app:route("POST", "/a2a/{id}", function(self, req, p, res)
    local kind, d = target(self, p.id)
    if not kind then errors.not_found("agent or workflow", p.id) end
    local app_mod = require("weft.serve.app")
    local body, derr = json.decode(req.body or "", { max_depth = app_mod.MAX_BODY_DEPTH,
                                                     max_strings = app_mod.MAX_BODY_STRINGS })
    if type(body) ~= "table" or json.is_array(body) then
      return 200, rpc_error(nil, body == nil and E.parse or E.invalid_request,
                            body == nil and ("invalid JSON: " .. tostring(derr)) or "a JSON-RPC request must be an object")
    end
    local rid = body.id
    if body.jsonrpc ~= "2.0" or type(body.method) ~= "string" then
      return 200, rpc_error(rid, E.invalid_request, 'a JSON-RPC 2.0 request needs jsonrpc = "2.0" and a method')
    end
    local v = req.headers and req.headers["a2a-version"]
    if v ~= nil and v ~= "" and not tostring(v):match("^1%.0") then
      return 200, rpc_error(rid, E.version, fmt("A2A version %s is not supported (supported: %s)", tostring(v), a2a.VERSION))
    end
    local fn = METHODS[body.method]
    if not fn then
      return 200, rpc_error(rid, E.method_not_found, fmt("method not found: %s (methods: CancelTask, GetTask, "
        .. "SendMessage, SendStreamingMessage, SubscribeToTask)", body.method))
    end
    local auth = req.weft_auth
    local need = SCOPE[body.method]
    if auth and require("weft.serve.security").SCOPES[need] > auth.level then
      throw(403, "forbidden", fmt("API key '%s' lacks the '%s' scope for %s", auth.id, need, body.method),
            { required_scope = need })
    end
    local params = body.params
    if params == nil or params == json.null then params = {} end
    if type(params) ~= "table" then return 200, rpc_error(rid, E.invalid_params, "params must be an object") end
    local ok, r = pcall(fn, self, p.id, kind, params, res, rid)
    if not ok then
      if type(r) == "table" and r.rpc then return 200, rpc_error(rid, r.code, r.message, r.data) end
      if errors.is_error(r) then return 200, rpc_error(rid, E.internal, r.message) end
      error(r, 0)
    end
    if r == nil then return end -- streamed
    return 200, { jsonrpc = "2.0", id = rid, result = r }
  end)
end

return _M
