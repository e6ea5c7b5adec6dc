--- weft.serve.agents — /api/v1/agents: declarative agent definitions
-- `{id, name, instructions, model, temperature, max_tokens, tools =
-- {names of registered tools}, description, max_tool_rounds, guardrails}`
-- (guardrails: a list of guard specs `{"type": "pii", "action": "mask"}`
-- or the guardrails configuration shape, docs/guardrails.md) kept in the
-- store (namespace "defs", key "agent/<id>"), validated by building the
-- weft.agent; `build(app, id)` makes the agent for workflows.
-- Uses weft.agent, weft.json, weft.serve.{app, errors}.
local json = require "weft.json"
local errors = require "weft.serve.errors"

local type, pairs, ipairs, tostring, pcall = type, pairs, ipairs, tostring, pcall
local throw = errors.throw

local _M = {}

--- The agent definition (request body of POST/PUT, merged body of
-- PATCH): an object schema checked by weft.check (errors.check_body);
-- served by GET /api/v1/schemas and told to the builder model.
_M.SCHEMA = errors.schema("agent", { properties = {
  id = { type = "string", description = "1-64 of A-Z a-z 0-9 _ . - (default: the name)" },
  name = { type = "string", minLength = 1, required = true },
  instructions = { type = "string", description = "system prompt of the agent",
                   aliases = { "system", "system_prompt", "prompt", "instruction" } },
  model = { type = "string", description = "provider:model, e.g. openai:gpt-4o-mini" },
  temperature = { type = "number" },
  max_tokens = { type = "integer", minimum = 1 },
  tools = { type = "array", expect = "a list of tool names", description = "names of registered tools",
            aliases = { "functions" } },
  description = { type = "string" },
  max_tool_rounds = { type = "integer", minimum = 0, aliases = { "max_rounds", "max_iterations", "max_turns" } },
  guardrails = { type = { "array", "object" }, expect = 'a list of guard specs {"type": "pii", ...} or a '
    .. "guardrails configuration", description = "guards on the agent's model calls (docs/guardrails.md)",
    aliases = { "guards" } },
} })
local FIELDS = _M.SCHEMA.properties
--- The fields of a definition in the order they are told (name first).
_M.ORDER = { "name", "instructions", "model", "temperature", "max_tokens", "tools", "description", "max_tool_rounds",
              "guardrails" }
local AGENT_OPTS = { "name", "instructions", "model", "temperature", "max_tokens", "description", "max_tool_rounds" }

-- The weft.agent options of definition d, with tools resolved in app.
local function agent_opts(app, d)
  local o = {}
  for _, k in ipairs(AGENT_OPTS) do o[k] = d[k] end
  if d.tools ~= nil then
    o.tools = {}
    for i, name in ipairs(d.tools) do
      if type(name) ~= "string" then
        throw(400, "validation_error", ("tools[%d] must be a tool name (string)"):format(i), { field = "tools" })
      end
      local t = app.tools[name]
      if not t then
        throw(400, "unknown_tool", ("tools[%d]: unknown tool '%s'"):format(i, name), { field = "tools", tool = name })
      end
      o.tools[i] = t
    end
  end
  if d.guardrails ~= nil then
    local ok, g = pcall(require("weft.guardrails").guards, d.guardrails, "an agent")
    if not ok then throw(400, "validation_error", "guardrails: " .. tostring(g), { field = "guardrails" }) end
    o.guards = g
  end
  return o
end

--- Validate definition d (raises a 400 error object naming the field) and
-- return the built weft.agent.
function _M.validate(app, d)
  errors.check_body(_M.SCHEMA, d, "validation_error")
  local o = agent_opts(app, d)
  local ok, a = pcall(require("weft.agent").new, o)
  if not ok then
    throw(400, "validation_error", (tostring(a):gsub("^weft%.agent: ", "")))
  end
  return a
end

--- The weft.agent of stored definition id (raises 404 / 400 error objects).
function _M.build(app, id)
  local d = app:def_get("agent", id)
  if not d then errors.not_found("agent", id) end
  d.created_at, d.updated_at = nil, nil
  return _M.validate(app, d)
end

-- An id for a new definition: body.id, else the name when it is a valid id.
local function new_id(app, body)
  if body.id ~= nil then return require("weft.serve.app").check_id(body.id, "id") end
  if require("weft.serve.app").valid_id(body.name) then return body.name end
  throw(400, "validation_error", "id is required when the name is not a valid id", { field = "id" })
end

-- Store d under id with timestamps; returns the stored document.
local function save(app, id, d, created)
  local weft = require "weft"
  local doc = {}
  for k, v in pairs(d) do doc[k] = v end
  doc.id = id
  doc.created_at = created or weft.now()
  doc.updated_at = weft.now()
  app:def_put("agent", id, doc)
  app.built = {} -- workflows are rebuilt with the new definition
  return doc
end

-- Fields of a stored doc that a client may send back.
local function editable(doc)
  local d = {}
  for k, v in pairs(doc) do if FIELDS[k] then d[k] = v end end
  return d
end

--- Install the agent routes on app.
function _M.install(app)
  app:route("POST", "/api/v1/agents", function(self, req)
    local body = self:body(req, { required = true })
    if body.name == nil and body.id ~= nil then body.name = body.id end
    local id = new_id(self, body)
    body.id = nil
    _M.validate(self, body)
    if self:def_get("agent", id) then errors.conflict(("agent '%s' already exists"):format(id), { id = id }) end
    return 201, save(self, id, body), { location = "/api/v1/agents/" .. id }
  end)

  app:route("GET", "/api/v1/agents", function(self, req)
    local limit, offset = self:page(req)
    return 200, require("weft.serve.app").paginate(self:def_list("agent"), limit, offset)
  end)

  app:route("GET", "/api/v1/agents/{id}", function(self, _, p)
    local d = self:def_get("agent", p.id)
    if not d then errors.not_found("agent", p.id) end
    return 200, d
  end)

  -- PUT replaces the definition, PATCH merges fields into it.
  local function update(merge)
    return function(self, req, p)
      local old = self:def_get("agent", p.id)
      if not old then errors.not_found("agent", p.id) end
      local body = self:body(req, { required = true })
      if body.id ~= nil and body.id ~= p.id then
        throw(400, "validation_error", ("id '%s' does not match the path id '%s'"):format(tostring(body.id), p.id), { field = "id" })
      end
      body.id = nil
      local d = merge and editable(old) or {}
      d.id = nil
      for k, v in pairs(body) do d[k] = v end
      if merge then
        for k, v in pairs(body) do if v == json.null then d[k] = nil end end
      end
      if d.name == nil then d.name = old.name end
      _M.validate(self, d)
      return 200, save(self, p.id, d, old.created_at)
    end
  end
  app:route("PUT", "/api/v1/agents/{id}", update(false))
  app:route("PATCH", "/api/v1/agents/{id}", update(true))

  app:route("DELETE", "/api/v1/agents/{id}", function(self, _, p)
    if not self:def_get("agent", p.id) then errors.not_found("agent", p.id) end
    for _, w in ipairs(self:def_list("workflow")) do
      for _, n in ipairs(w.nodes or {}) do
        if type(n) == "table" and n.agent == p.id then
          errors.conflict(("agent '%s' is used by workflow '%s'"):format(p.id, tostring(w.id)),
                          { workflow = w.id })
        end
      end
    end
    self:def_del("agent", p.id)
    self.built = {}
    return 204
  end)
end

return _M
