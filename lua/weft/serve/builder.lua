--- weft.serve.builder — the Agent Builder of `weft serve`: an LLM turns a
-- natural-language request into declarative actions on agents and
-- workflows. `GET /api/v1/builder/capabilities` (read) describes what it
-- can create; `POST /api/v1/builder/execute {request, context, dry_run}`
-- (admin) asks the builder model for `{"actions": [{op, id, definition}],
-- "summary"}`, parses the reply (a fenced JSON block or bare JSON),
-- refuses code (fields named code/lua/script/handler, Lua-looking strings),
-- validates every action with the validators of the REST endpoints against
-- a view of the definitions as the earlier actions leave them, and only
-- then applies them all (unless dry_run): one bad action applies nothing.
-- The model: app.new{builder_model}, env WEFT_BUILDER_MODEL, "mock:builder".
-- Uses weft, weft.json, weft.llm, weft.serve.{app, errors, agents, workflows}.
local json = require "weft.json"
local errors = require "weft.serve.errors"

local type, pairs, ipairs, tostring, pcall, next, setmetatable =
  type, pairs, ipairs, tostring, pcall, next, setmetatable
local fmt, concat, sort = string.format, table.concat, table.sort
local throw = errors.throw

local _M = {}

_M.DEFAULT_MODEL = "mock:builder"
_M.MAX_ACTIONS = 50
_M.MAX_REQUEST = 20000
_M.EXCERPT = 300

_M.OPS = { "create_agent", "update_agent", "delete_agent", "create_workflow", "delete_workflow" }
local OPS = {}
for _, op in ipairs(_M.OPS) do OPS[op] = true end

-- What an agent definition holds (told to the model; agents.validate
-- checks): from the one schema, weft.serve.agents.SCHEMA.
_M.AGENT_FIELDS = {}
do
  local props = require("weft.serve.agents").SCHEMA.properties
  for i, name in ipairs(require("weft.serve.agents").ORDER) do
    local p = props[name]
    _M.AGENT_FIELDS[i] = { name = name, type = p.type == "array" and "list of registered tool names" or p.type,
                           required = p.required, description = p.description }
  end
end
_M.CONDITION_OPERATORS = { "equals", "not_equals", "exists", "in" }

-- Field names that carry code, refused anywhere in an action.
local CODE_KEYS = { code = true, lua = true, script = true, handler = true }

-- Lua-looking fragments refused in any string of a definition.
local LUA_PATTERNS = {
  "function%s*[%w_.:]*%s*%(", "%f[%w_]require%s*%(?%s*['\"]", "%f[%w_]os%.execute", "%f[%w_]os%.remove",
  "%f[%w_]io%.open", "%f[%w_]io%.popen", "%f[%w_]loadstring%s*%(", "%f[%w_]load%s*%(",
  "%f[%w_]dofile%s*%(", "%f[%w_]setfenv%s*%(", "%f[%w_]debug%.[%a_]+%s*%(", "%f[%w_]ffi%.[%a_]+",
  "%f[%w_]package%.loaded", "%f[%w_]local%s+[%a_][%w_]*%s*=", "%f[%w_]_G%s*[%.%[]",
}

--- The builder model of app: opts.builder_model, env WEFT_BUILDER_MODEL,
-- else "mock:builder".
function _M.model(app)
  if app.builder_model then return app.builder_model end
  local env = os.getenv("WEFT_BUILDER_MODEL")
  if env and env ~= "" then return env end
  return _M.DEFAULT_MODEL
end

-- Sorted keys of a table.
local keys = require("weft.serve.app").sorted_keys

-- Ids of the Lua workflow scripts of app (scripts_dir/*.lua).
local function script_ids(app)
  local out = {}
  if not app.scripts_dir then return out end
  local ok, lfs = pcall(require, "lfs")
  if not ok then return out end
  local iok, iter, st = pcall(lfs.dir, app.scripts_dir)
  if not iok then return out end
  local appmod = require "weft.serve.app"
  for f in iter, st do
    local id = f:match("^(.*)%.lua$")
    if id and appmod.valid_id(id) then out[id] = true end
  end
  return out
end

--- The capabilities document: actions, agent fields, node builtins,
-- condition operators, tools, existing agents and workflows, the model.
function _M.capabilities(app)
  local tools = json.array()
  for _, name in ipairs(keys(app.tools)) do
    local t = app.tools[name]
    tools[#tools + 1] = { name = name, description = t.description or "" }
  end
  local agents, workflows = json.array(), json.array()
  for _, d in ipairs(app:def_list("agent")) do agents[#agents + 1] = d.id end
  for _, d in ipairs(app:def_list("workflow")) do workflows[#workflows + 1] = d.id end
  for _, id in ipairs(keys(script_ids(app))) do workflows[#workflows + 1] = id end
  local builtins = json.array(keys(require("weft.serve.workflows").BUILTINS))
  return {
    model = _M.model(app),
    actions = json.array(_M.OPS),
    agent = { fields = _M.AGENT_FIELDS },
    workflow = {
      fields = json.array { "id", "name", "description", "start", "max_supersteps", "nodes", "edges" },
      nodes = json.array { "{id, agent = <agent id>}", "{id, builtin = <builtin>, options = {...}}" },
      builtins = builtins,
      edges = json.array { "{from, to}", "{from, to, condition}", "{from, to = [ids]} (fan-out)",
                           "{from = [ids], to} (fan-in)", "{from, cases = [{to, condition}], default}" },
      condition = "{field = \"a.b\", <operator> = value}",
      condition_operators = json.array(_M.CONDITION_OPERATORS),
    },
    tools = tools,
    agents = agents,
    workflows = workflows,
  }
end

-- The system prompt: the action format and the capabilities.
local function system_prompt(caps)
  return concat({
    "You are the weft Agent Builder. You turn the user's request into declarative changes to",
    "the agents and workflows of a weft server. Answer with ONE JSON object and nothing else:",
    '{"actions": [{"op": "create_agent" | "update_agent" | "delete_agent" | "create_workflow" |',
    '"delete_workflow", "id": "<id>", "definition": {...}}], "summary": "<one sentence>"}.',
    "Ids are 1-64 characters of A-Z a-z 0-9 _ . -. create_agent and create_workflow need a full",
    "definition; update_agent merges its definition into the agent (null removes a field);",
    "deletes need only the id. Actions run in order, so a workflow may use an agent created",
    "earlier in the same list. An agent definition has the fields in capabilities.agent.fields;",
    "a workflow definition has nodes ({id, agent} or {id, builtin, options}), edges and start.",
    "Never write code: no Lua, no scripts, no handlers, no fields named code/lua/script/handler.",
    "Only use the registered tools listed below.",
    "Capabilities: " .. json.encode(caps),
  }, "\n")
end

-- Excerpt of s for error messages.
local function excerpt(s)
  s = tostring(s or "")
  if #s > _M.EXCERPT then return s:sub(1, _M.EXCERPT) .. "..." end
  return s
end

--- The JSON object of an LLM reply: a fenced ```json block, the whole text,
-- or the outermost {...}; nil, err when none decodes to an object.
function _M.parse_reply(text)
  if type(text) ~= "string" or text:match("^%s*$") then return nil, "the reply is empty" end
  local candidates = {}
  for block in text:gmatch("```[%w_%-]*[ \t]*\r?\n(.-)```") do candidates[#candidates + 1] = block end
  candidates[#candidates + 1] = text
  local first, last = text:find("{", 1, true), nil
  for i = #text, 1, -1 do if text:sub(i, i) == "}" then last = i; break end end
  if first and last and last > first then candidates[#candidates + 1] = text:sub(first, last) end
  local lasterr
  for _, c in ipairs(candidates) do
    local v, err = json.decode(c)
    if type(v) == "table" and not (json.is_array(v) and next(v) ~= nil) then return v end
    lasterr = err or "not a JSON object"
  end
  return nil, "the reply is not a JSON object: " .. tostring(lasterr)
end

-- Problems found by the code check, appended to out: {index, op, id, field, code, message}.
local function scan_code(v, path, add, depth)
  depth = depth or 0
  if depth > 64 then add(path, "nesting too deep") return end
  if type(v) == "string" then
    for _, p in ipairs(LUA_PATTERNS) do
      local s, e = v:find(p)
      if s then
        add(path, fmt("looks like Lua code (%q); the builder only accepts declarative definitions", excerpt(v:sub(s, e))))
        return
      end
    end
  elseif type(v) == "table" then
    for k, x in pairs(v) do
      local kp = type(k) == "number" and fmt("%s[%d]", path, k) or (path == "" and tostring(k) or path .. "." .. tostring(k))
      if type(k) == "string" and CODE_KEYS[k:lower()] then
        add(kp, fmt("field '%s' is not allowed: the builder never accepts code", k))
      else
        scan_code(x, kp, add, depth + 1)
      end
    end
  end
end

-- A deep copy of a JSON value.
local function copy(v) return json.decode(json.encode(v)) end

-- A view of app whose definitions are the stored ones as changed by the
-- pending actions (pending[kind][id] = definition | false for deleted);
-- nothing is stored and the app's built workflows are untouched.
local function view_of(app, pending)
  local view = setmetatable({ built = {} }, { __index = app })
  function view:def_get(kind, id)
    local p = pending[kind][id]
    if p == false then return nil end
    if p ~= nil then return copy(p) end
    return app:def_get(kind, id)
  end
  function view:def_list(kind)
    local out, seen = {}, {}
    for _, d in ipairs(app:def_list(kind)) do
      seen[d.id] = true
      local p = pending[kind][d.id]
      if p ~= false then out[#out + 1] = p and copy(p) or d end
    end
    for id, p in pairs(pending[kind]) do
      if p and not seen[id] then out[#out + 1] = copy(p) end
    end
    sort(out, function(a, b) return tostring(a.id) < tostring(b.id) end)
    return out
  end
  return view
end

local ACTION_FIELDS = { op = true, id = true, definition = true }

-- The id of action a (a.id, else definition.id, else a valid definition.name).
local function action_id(a)
  local appmod = require "weft.serve.app"
  local d = type(a.definition) == "table" and a.definition or {}
  local id = a.id
  if id == nil then id = d.id end
  if id == nil and appmod.valid_id(d.name) then id = d.name end
  appmod.check_id(id, "id")
  if d.id ~= nil and d.id ~= id then
    throw(400, "validation_error", fmt("definition.id '%s' does not match the action id '%s'", tostring(d.id), id),
          { field = "definition.id" })
  end
  return id
end

-- The definition of action a, which must be an object.
local function definition(a, required)
  local d = a.definition
  if d == nil then
    if required then throw(400, "validation_error", "definition is required", { field = "definition" }) end
    return nil
  end
  if type(d) ~= "table" or (next(d) ~= nil and json.is_array(d)) then
    throw(400, "validation_error", "definition must be an object", { field = "definition" })
  end
  return copy(d)
end

-- Validate action a against view (and record its effect in pending);
-- returns the planned change {op, id, kind, doc}. Raises error objects.
local function plan(app, view, pending, a)
  local agents = require "weft.serve.agents"
  local workflows = require "weft.serve.workflows"
  local op = a.op
  local id = action_id(a)
  if op == "create_agent" then
    local d = definition(a, true)
    d.id = nil
    if d.name == nil then d.name = id end
    if view:def_get("agent", id) then errors.conflict(fmt("agent '%s' already exists", id), { id = id }) end
    agents.validate(view, d)
    pending.agent[id] = d
    return { op = op, id = id, kind = "agent", doc = d, status = "created" }
  elseif op == "update_agent" then
    local old = view:def_get("agent", id)
    if not old then errors.not_found("agent", id) end
    local body = definition(a, true)
    body.id = nil
    local d = {}
    for _, f in ipairs(_M.AGENT_FIELDS) do d[f.name] = old[f.name] end
    for k, v in pairs(body) do
      if v == json.null then d[k] = nil else d[k] = v end
    end
    if d.name == nil then d.name = old.name end
    agents.validate(view, d)
    pending.agent[id] = d
    return { op = op, id = id, kind = "agent", doc = d, created_at = old.created_at, status = "updated" }
  elseif op == "delete_agent" then
    if not view:def_get("agent", id) then errors.not_found("agent", id) end
    for _, w in ipairs(view:def_list("workflow")) do
      for _, n in ipairs(type(w.nodes) == "table" and w.nodes or {}) do
        if type(n) == "table" and n.agent == id then
          errors.conflict(fmt("agent '%s' is used by workflow '%s'", id, tostring(w.id)), { workflow = w.id })
        end
      end
    end
    pending.agent[id] = false
    return { op = op, id = id, kind = "agent", status = "deleted" }
  elseif op == "create_workflow" then
    local d = definition(a, true)
    d.id = id
    if view:def_get("workflow", id) or script_ids(app)[id] then
      errors.conflict(fmt("workflow '%s' already exists", id), { id = id })
    end
    workflows.build(view, d)
    pending.workflow[id] = d
    return { op = op, id = id, kind = "workflow", doc = d, status = "created" }
  elseif op == "delete_workflow" then
    if not view:def_get("workflow", id) then
      if script_ids(app)[id] then
        throw(403, "read_only", fmt("workflow '%s' is a Lua script and cannot be deleted", id), { id = id })
      end
      errors.not_found("workflow", id)
    end
    pending.workflow[id] = false
    return { op = op, id = id, kind = "workflow", status = "deleted" }
  end
end

--- Check the parsed reply v: the code check, then every action against a
-- view of the definitions; returns the plan (a list of changes) and the
-- summary, or raises 400 (code_not_allowed | invalid_actions) with
-- details.problems = {{index, op, id, field, code, message}}.
function _M.validate(app, v)
  if v.op ~= nil and v.actions == nil then v = { actions = { v }, summary = v.summary } end
  local actions = v.actions
  if type(actions) ~= "table" or (next(actions) ~= nil and not json.is_array(actions)) then
    return nil, "the reply has no \"actions\" list"
  end
  if #actions > _M.MAX_ACTIONS then
    throw(400, "invalid_actions", fmt("too many actions (%d, at most %d)", #actions, _M.MAX_ACTIONS))
  end
  local problems, has_code = json.array(), false
  local function problem(i, a, field, code, msg)
    problems[#problems + 1] = { index = i, op = type(a) == "table" and a.op or json.null,
                                id = type(a) == "table" and type(a.id) == "string" and a.id or json.null,
                                field = field or json.null, code = code, message = fmt("actions[%d]: %s", i, msg) }
  end
  -- code first: never validated, never applied
  for i, a in ipairs(actions) do
    scan_code(a, "", function(path, msg)
      has_code = true
      problem(i, a, path, "code_not_allowed", (path ~= "" and path .. ": " or "") .. msg)
    end)
  end
  if has_code then
    throw(400, "code_not_allowed", fmt("the builder refuses code: %s", problems[1].message), { problems = problems })
  end
  local pending = { agent = {}, workflow = {} }
  local view = view_of(app, pending)
  local steps = {}
  for i, a in ipairs(actions) do
    if type(a) ~= "table" or json.is_array(a) and next(a) ~= nil then
      problem(i, a, nil, "validation_error", "must be an object {op, id, definition}")
    elseif not OPS[a.op] then
      problem(i, a, "op", "validation_error",
              fmt("unknown op '%s' (%s)", tostring(a.op), concat(_M.OPS, ", ")))
    else
      local bad
      for k in pairs(a) do
        if not ACTION_FIELDS[k] then bad = k; break end
      end
      if bad then
        problem(i, a, tostring(bad), "validation_error", fmt("unknown field '%s' (op, id, definition)", tostring(bad)))
      else
        local ok, res = pcall(plan, app, view, pending, a)
        if ok then
          steps[#steps + 1] = res
        elseif errors.is_error(res) then
          local d = type(res.details) == "table" and res.details or {}
          local field = d.field or d.path
          if field and a.op ~= "delete_agent" and a.op ~= "delete_workflow" and field ~= "id"
             and not tostring(field):match("^definition") then
            field = "definition." .. tostring(field)
          end
          problem(i, a, field and tostring(field), res.code, fmt("%s %s: %s", a.op, tostring(a.id or "?"), res.message))
        else
          problem(i, a, nil, "validation_error", tostring(res))
        end
      end
    end
  end
  if #problems > 0 then
    throw(400, "invalid_actions",
          fmt("%d of %d actions are invalid, nothing was applied: %s", #problems, #actions, problems[1].message),
          { problems = problems })
  end
  return steps, type(v.summary) == "string" and v.summary or ""
end

-- Apply the planned steps to app (store writes); raises 503 naming what
-- was applied when the store fails midway.
local function apply(app, steps)
  local weft = require "weft"
  local done = json.array()
  for _, s in ipairs(steps) do
    local ok, err = pcall(function()
      if s.status == "deleted" then
        app:def_del(s.kind, s.id)
      else
        local doc = copy(s.doc)
        doc.id = s.id
        doc.created_at = s.created_at or weft.now()
        doc.updated_at = weft.now()
        app:def_put(s.kind, s.id, doc)
      end
    end)
    app.built = {}
    if not ok then
      local msg = errors.is_error(err) and err.message or tostring(err)
      throw(503, "store_unavailable", fmt("%s %s failed after %d applied actions: %s", s.op, s.id, #done, msg),
            { applied = done })
    end
    done[#done + 1] = { op = s.op, id = s.id }
  end
end

--- The body of POST /builder/execute (weft.check object schema).
_M.BODY = errors.schema("builder", { properties = {
  request = { type = "string", required = true, maxLength = _M.MAX_REQUEST, aliases = { "prompt", "message", "query" },
              expect = "a non-empty string of at most " .. _M.MAX_REQUEST .. " bytes",
              test = function(v) return v:match("^%s*$") == nil end },
  context = { type = "object", description = "sent to the model as JSON" },
  dry_run = { type = "boolean", aliases = { "dryrun", "dry" } },
} })

-- Ask the builder model; returns the reply text or raises 502 / 422.
local function ask(app, request, context, caps)
  local llm = require "weft.llm"
  local model = _M.model(app)
  local user = request
  if context ~= nil then user = user .. "\n\nContext (JSON): " .. json.encode(context) end
  local ok, res, err, code = pcall(llm.chat, {
    model = model, temperature = 0, retries = app.builder_retries,
    messages = { { role = "system", content = system_prompt(caps) }, { role = "user", content = user } },
  })
  if not ok then err, res = tostring(res), nil end
  if not res then
    throw(502, "llm_error", fmt("builder model %s failed: %s", model, tostring(err)),
          { model = model, provider = model:match("^([^:]+):") or json.null, reason = code or json.null })
  end
  if type(res.text) ~= "string" or res.text:match("^%s*$") then
    throw(422, "invalid_llm_reply", fmt("builder model %s returned no text", model),
          { model = model, excerpt = "" })
  end
  return res.text
end

--- Run one builder request {request, context, dry_run}: the response body
-- {summary, actions = {{op, id, status}}, applied, dry_run, model}.
function _M.execute(app, body)
  errors.check_body(_M.BODY, body, "validation_error")
  local request = body.request
  local context = body.context
  if context == json.null then context = nil end
  local dry = body.dry_run
  if dry == json.null then dry = nil end
  local caps = _M.capabilities(app)
  local text = ask(app, request, context, caps)
  local v, perr = _M.parse_reply(text)
  if not v then
    throw(422, "invalid_llm_reply", fmt("the builder model's reply is not valid JSON (%s): %s", perr, excerpt(text)),
          { model = caps.model, excerpt = excerpt(text) })
  end
  local steps, summary = _M.validate(app, v)
  if not steps then
    throw(422, "invalid_llm_reply", fmt("the builder model's reply is not an action list (%s): %s", summary, excerpt(text)),
          { model = caps.model, excerpt = excerpt(text) })
  end
  if not dry then apply(app, steps) end
  local out = json.array()
  for i, s in ipairs(steps) do
    out[i] = { op = s.op, id = s.id, status = dry and ("would_be_" .. s.status) or s.status }
  end
  return { summary = summary, actions = out, applied = not dry and #steps > 0, dry_run = dry == true,
           model = caps.model }
end

-- A builder request on a worker of the pool (weft.pool.call "builder").
require("weft.pool").register_call("builder", function(app, body) return _M.execute(app, body) end)

--- Install the builder routes on app; opts: builder_model, builder_retries.
function _M.install(app, opts)
  opts = opts or {}
  if opts.builder_model ~= nil and (type(opts.builder_model) ~= "string" or opts.builder_model == "") then
    error("app.new: builder_model must be a 'provider:model' string", 3)
  end
  app.builder_model = opts.builder_model
  app.builder_retries = opts.builder_retries
  app:route("GET", "/api/v1/builder/capabilities", function(self)
    return 200, _M.capabilities(self)
  end)
  app:route("POST", "/api/v1/builder/execute", function(self, req)
    local body = self:body(req, { required = true })
    if self.pool then
      errors.check_body(_M.BODY, body, "validation_error") -- refused here, not on a worker
      return 200, require("weft.pool").call(self.store, "builder", body, { pool = self.pool })
    end
    return 200, _M.execute(self, body)
  end)
end

return _M
