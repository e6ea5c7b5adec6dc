--- weft.serve.workflows — /api/v1/workflows: declarative JSON workflows
-- turned into weft workflows, and read-only Lua workflows from
-- opts.scripts_dir. A definition:
--   {id, name, description, start, max_supersteps,
--    nodes = {{id, agent = "agent-id"} | {id, builtin = "code_assembler" |
--             "passthrough" | "output" | "approval", options = {...}}},
--    edges = {{from, to, condition}                 -- direct / conditional
--             {from, to = {ids...}}                 -- fan-out
--             {from = {ids...}, to}                 -- fan-in
--             {from, cases = {{to, condition}...}, default}}}   -- switch
-- condition = {field = "a.b", equals | not_equals | exists | in = ...}.
-- Nodes without outgoing edges send to an implicit "__output" executor
-- whose messages are the run's outputs. `guardrails` (on the workflow: every
-- node; on a node: that node) is a list of guard specs {"type": "pii",
-- "action": "mask"} or the guardrails configuration shape
-- (docs/guardrails.md). Kept in the store (namespace
-- "defs", key "workflow/<id>"); build errors are 400 with weft's message.
-- Uses weft, weft.json, weft.std, weft.script (load), weft.serve.*.
local json = require "weft.json"
local errors = require "weft.serve.errors"

local type, pairs, ipairs, tostring, pcall, next = type, pairs, ipairs, tostring, pcall, next
local fmt = string.format
local throw = errors.throw

local _M = {}

_M.OUTPUT = "__output"

--- A declarative workflow definition, a node, an edge and a condition:
-- object schemas checked by weft.check (errors.check_body); served by
-- GET /api/v1/schemas. `limits` are the run limits (docs/api.md).
_M.SCHEMA = errors.schema("workflow", { properties = {
  id = { type = "string" }, name = { type = "string" }, description = { type = "string" },
  start = { type = "string", expect = "a node id", aliases = { "entry", "start_node" } },
  max_supersteps = { type = "integer", minimum = 1 },
  limits = { type = "object", noun = "limit", expect = "an object of run limits",
             properties = require("weft.run").OPTIONS.properties.limits.properties },
  nodes = { type = "array", required = true, minItems = 1, expect = "a non-empty list",
            test = function(v) return v[1] ~= nil end, aliases = { "executors", "steps" } },
  edges = { type = "array", expect = "a list", aliases = { "links", "connections" } },
  guardrails = { type = { "array", "object" }, expect = 'a list of guard specs {"type": "pii", ...} or a '
    .. "guardrails configuration", aliases = { "guards" } },
} })
_M.NODE = errors.schema("node", { properties = {
  id = { type = "string" }, agent = { type = "string", expect = "an agent id" },
  builtin = { type = "string" }, options = { type = "object" },
  guardrails = { type = { "array", "object" }, expect = 'a list of guard specs {"type": "pii", ...} or a '
    .. "guardrails configuration", aliases = { "guards" } },
} })
_M.CONDITION = errors.schema("condition", { noun = "key", properties = {
  field = { type = "string", minLength = 1 }, equals = { type = "any" }, not_equals = { type = "any" },
  exists = { type = "boolean" }, ["in"] = { type = "array", expect = "a list of values" },
} })
_M.EDGE = errors.schema("edge", { properties = {
  from = { type = { "string", "array" } }, to = { type = { "string", "array" } },
  condition = { type = "object" }, name = { type = "string" },
  cases = { type = "array", expect = "a list of {to, condition}" }, default = { type = "string", expect = "a node id" },
} })

-- Raise a 400 validation error at path.
local function invalid(path, msg)
  throw(400, "invalid_workflow", fmt("%s: %s", path, msg), { path = path })
end

-- The guards of a declarative guardrails field at path (what: its owner).
local function guards_of(v, path, what)
  local ok, g = pcall(require("weft.guardrails").guards, v, what)
  if not ok then invalid(path, tostring(g)) end
  return g
end

local function is_list(v) return type(v) == "table" and (next(v) == nil or json.is_array(v)) end

-- Check t against schema s at path (400 invalid_workflow naming the field,
-- "did you mean" for unknown ones).
local function checked(s, t, path)
  errors.check_body(s, t, "invalid_workflow", path, path == "workflow" and "" or path .. ".")
end

-- The value at dotted field path of msg (nil when absent).
local function field_of(msg, path)
  if path == nil then return msg end
  local v = msg
  for part in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  if v == json.null then return nil end
  return v
end

-- Equality of JSON values.
local function same(a, b)
  if type(a) == "table" and type(b) == "table" then
    local ok1, ea = pcall(json.encode, a)
    local ok2, eb = pcall(json.encode, b)
    return ok1 and ok2 and ea == eb
  end
  return a == b
end

--- Compile a condition table into fn(msg) -> bool (raises 400 at path).
function _M.condition(c, path)
  if type(c) ~= "table" or is_list(c) and next(c) ~= nil then invalid(path, "must be an object {field, equals | not_equals | exists | in}") end
  checked(_M.CONDITION, c, path)
  local ops = {}
  for k in pairs(c) do
    if k ~= "field" then ops[#ops + 1] = k end
  end
  if #ops ~= 1 then invalid(path, "needs exactly one of equals, not_equals, exists, in") end
  local field = c.field
  local op, want = ops[1], c[ops[1]]
  if op == "exists" then
    return function(msg) return (field_of(msg, field) ~= nil) == want end
  elseif op == "in" then
    return function(msg)
      local v = field_of(msg, field)
      for _, w in ipairs(want) do if same(v, w) then return true end end
      return false
    end
  end
  if want == json.null then want = nil end
  if op == "equals" then
    return function(msg) return same(field_of(msg, field), want) end
  end
  return function(msg) return not same(field_of(msg, field), want) end
end

-- Built-in node kinds: id, options -> executor.
local BUILTINS = {
  code_assembler = function(id, o) return require("weft.std").code_assembler(id, o) end,
  passthrough = function(id)
    return require("weft").executor(id, function(m, ctx) ctx:send(m) end)
  end,
  output = function(id)
    return require("weft").executor(id, function(m, ctx) ctx:yield_output(m) end)
  end,
  -- asks a human (request_info {prompt, input}) and sends the answer
  approval = function(id, o)
    return require("weft").executor(id, function(m, ctx)
      ctx:send(ctx:request_info({ prompt = o.prompt or "approve?", input = m }))
    end)
  end,
}
_M.BUILTINS = BUILTINS

-- The executor of node n (at path); agents come from the app's definitions.
local function node_executor(app, n, path)
  if n.agent ~= nil then
    if app:def_get("agent", n.agent) == nil then
      invalid(path .. ".agent", fmt("unknown agent '%s'", n.agent))
    end
    local a = require("weft.serve.agents").build(app, n.agent)
    return a:as_executor(n.id)
  elseif n.builtin ~= nil then
    local mk = BUILTINS[n.builtin]
    if not mk then
      local names = {}
      for k in pairs(BUILTINS) do names[#names + 1] = k end
      table.sort(names)
      invalid(path .. ".builtin", fmt("unknown builtin '%s' (known: %s)", tostring(n.builtin), table.concat(names, ", ")))
    end
    local o = n.options or {}
    local ok, ex = pcall(mk, n.id, o)
    if not ok then invalid(path, tostring(ex)) end
    return ex
  end
  invalid(path, "needs 'agent' (an agent id) or 'builtin'")
end

--- Validate definition d and build its weft workflow (raises 400 error
-- objects naming the path, or carrying weft's build message).
function _M.build(app, d)
  local weft = require "weft"
  checked(_M.SCHEMA, d, "workflow")
  local appmod = require "weft.serve.app"
  local execs, has_out = {}, {}
  for i, n in ipairs(d.nodes) do
    local path = fmt("nodes[%d]", i)
    if type(n) ~= "table" then invalid(path, "must be an object") end
    checked(_M.NODE, n, path)
    if not appmod.valid_id(n.id) or n.id:sub(1, 2) == "__" then
      invalid(path .. ".id", "must be 1-64 characters of A-Z a-z 0-9 _ . - (not starting with '__')")
    end
    if execs[n.id] then invalid(path .. ".id", fmt("duplicate node id '%s'", n.id)) end
    execs[n.id] = node_executor(app, n, path)
    if n.guardrails ~= nil then
      local own = guards_of(n.guardrails, path .. ".guardrails", "a node")
      execs[n.id].guards = require("weft.guard").concat(execs[n.id].guards, own)
    end
  end
  local start = d.start or d.nodes[1].id
  if type(start) ~= "string" then invalid("start", "must be a node id") end
  local ok, res = pcall(function()
    local b = weft.workflow(type(d.name) == "string" and d.name ~= "" and d.name or d.id or "workflow")
    b:start(execs[start] or start)
    if d.guardrails ~= nil then b:guards(guards_of(d.guardrails, "guardrails", "a workflow")) end
    for _, n in ipairs(d.nodes) do b:add(execs[n.id]) end
    local function ref(id) return execs[id] or id end
    local function refs(list) local o = {} for i, v in ipairs(list) do o[i] = ref(v) end return o end
    for i, e in ipairs(d.edges or {}) do
      local path = fmt("edges[%d]", i)
      if type(e) ~= "table" then invalid(path, "must be an object") end
      checked(_M.EDGE, e, path)
      local from, to = e.from, e.to
      if e.cases ~= nil then
        if type(from) ~= "string" then invalid(path .. ".from", "must be a node id") end
        if not is_list(e.cases) then invalid(path .. ".cases", "must be a list of {to, condition}") end
        local cases = {}
        for j, c in ipairs(e.cases) do
          local cp = fmt("%s.cases[%d]", path, j)
          if type(c) ~= "table" or type(c.to) ~= "string" then invalid(cp .. ".to", "must be a node id") end
          cases[j] = { to = ref(c.to), when = _M.condition(c.condition, cp .. ".condition") }
        end
        if e.default ~= nil then
          if type(e.default) ~= "string" then invalid(path .. ".default", "must be a node id") end
          cases[#cases + 1] = { default = ref(e.default) }
        end
        b:switch(ref(from), cases)
        has_out[from] = true
      elseif type(from) == "string" and type(to) == "string" then
        local when = e.condition ~= nil and _M.condition(e.condition, path .. ".condition") or nil
        b:edge(ref(from), ref(to), when and { when = when, name = e.name } or nil)
        has_out[from] = true
      elseif type(from) == "string" and is_list(to) then
        b:fan_out(ref(from), refs(to))
        has_out[from] = true
      elseif is_list(from) and type(to) == "string" then
        b:fan_in(refs(from), ref(to))
        for _, f in ipairs(from) do has_out[f] = true end
      else
        invalid(path, "needs from and to (node ids; a list of ids in to for a fan-out, in from for a fan-in) or from and cases")
      end
    end
    local out
    for _, n in ipairs(d.nodes) do
      if not has_out[n.id] and n.builtin ~= "output" then
        out = out or weft.executor(_M.OUTPUT, function(m, ctx) ctx:yield_output(m) end)
        b:edge(execs[n.id], out)
      end
    end
    if d.max_supersteps ~= nil or d.limits ~= nil then
      b:defaults{ max_supersteps = d.max_supersteps, limits = d.limits }
    end
    return b:build()
  end)
  if not ok then
    if errors.is_error(res) then error(res, 0) end
    throw(400, "invalid_workflow", (tostring(res):gsub("^[^:]*%.lua:%d+: ", "")))
  end
  return res
end

-- Lua scripts --------------------------------------------------------------

-- File names (*.lua) at the top level of dir.
local function lua_files(dir)
  local out = {}
  for _, f in ipairs(require("weft.host").find(dir, "*.lua", 1)) do
    out[#out + 1] = f:match("([^/]+)$")
  end
  return out
end

-- The script ids of app's scripts_dir: id -> path, listed afresh.
local function scripts(app)
  local out = {}
  if not app.scripts_dir then return out end
  for _, f in ipairs(lua_files(app.scripts_dir)) do
    local id = f:gsub("%.lua$", "")
    if require("weft.serve.app").valid_id(id) then out[id] = app.scripts_dir .. "/" .. f end
  end
  app.script_paths = out
  return out
end

-- The path of script id: from the last listing when it has the id and the
-- file is still there (a listing runs `find`: not once per execution),
-- else from a new one (a script added or removed since).
local function script_path(app, id)
  local path = app.script_paths and app.script_paths[id]
  local f = path and io.open(path, "r")
  if f then
    f:close()
    return path
  end
  return scripts(app)[id]
end

-- The built workflow of script id at path (cached), or nil, err. With a
-- watching host (weft serve --watch), its current version.
local function load_script(app, id, path)
  if app.host then
    -- a watching host loads every script in its own module namespace;
    -- one created after the start is added (and watched) on first use
    if not app.host:has(id) then
      local ok, err = app.host:add(id, path)
      if not ok then return nil, err end
    end
    return app.host:workflow(id)
  end
  local key = "lua/" .. id
  if app.built[key] then return app.built[key] end
  local wf, err = require("weft.script").load(path)
  if not wf then return nil, err end
  app.built[key] = wf
  return wf
end

-- The public document of script id (its file name, never the server's
-- path to it; errors scrubbed of paths and tracebacks).
local function script_doc(app, id, path)
  local doc = { id = id, source = "lua", file = path:match("([^/]*)$"), read_only = true }
  local wf, err = load_script(app, id, path)
  if wf then
    local desc = wf:describe()
    doc.name, doc.graph = wf.name, desc
  else
    doc.error = errors.scrub(tostring(err))
  end
  local v = app.host and app.host:info(id)
  if v then doc.version, doc.hash, doc.reload_error = v.version, v.hash, errors.scrub(v.error) end
  return doc
end

--- The weft workflow of id (declarative or Lua), built and cached; raises
-- 404 when there is none.
function _M.get(app, id)
  local raw = app:def_raw("workflow", id)
  if raw then
    -- built once per stored definition: the stored JSON is compared, not
    -- decoded, on every execution (a definition replaced meanwhile, by
    -- this process or another one on the store, is built again)
    local key = "json/" .. id
    local wf = app.built[key]
    if not wf or app.built_src[key] ~= raw then
      local d = app:def_get("workflow", id, raw)
      d.created_at, d.updated_at = nil, nil
      wf = _M.build(app, d)
      app.built[key], app.built_src[key] = wf, raw
    end
    return wf
  end
  local path = script_path(app, id)
  if path then
    local wf, err = load_script(app, id, path)
    if not wf then throw(500, "script_error", ("workflow script '%s': %s"):format(id, tostring(err))) end
    return wf
  end
  errors.not_found("workflow", id)
end

-- Host event ev as the API shows it (a copy): its file named relative to
-- the scripts dir (`file`; the last component when it is elsewhere), never
-- the server's path; messages scrubbed (file:line kept, no traceback).
local function public_event(app, ev)
  local out = {}
  for k, v in pairs(ev) do out[k] = v end
  if type(ev.path) == "string" then
    local dir = app.scripts_dir and app.scripts_dir:gsub("/+$", "")
    local p = ev.path
    out.path = nil
    if dir and dir ~= "" and p:sub(1, #dir + 1) == dir .. "/" then
      out.file = p:sub(#dir + 2):gsub("^%./", "")
    else
      out.file = p:match("([^/]*)$")
    end
  end
  out.error, out.reason = errors.scrub(ev.error), errors.scrub(ev.reason)
  return out
end
_M.public_event = public_event

--- Install the workflow routes on app.
function _M.install(app)
  -- reload events of a watching host (weft serve --watch)
  app:route("GET", "/api/v1/reloads", function(self)
    local list = require("weft.json").array()
    for k, ev in ipairs(self.host and self.host:recent_events() or {}) do list[k] = public_event(self, ev) end
    return 200, { watching = self.host ~= nil, events = list }
  end)
  app:route("POST", "/api/v1/workflows", function(self, req)
    local body = self:body(req, { required = true })
    local appmod = require "weft.serve.app"
    if body.id == nil and appmod.valid_id(body.name) then body.id = body.name end
    appmod.check_id(body.id, "id")
    if self:def_get("workflow", body.id) or scripts(self)[body.id] then
      errors.conflict(("workflow '%s' already exists"):format(body.id), { id = body.id })
    end
    local wf = _M.build(self, body)
    local weft = require "weft"
    body.source = nil
    body.created_at, body.updated_at = weft.now(), weft.now()
    self:def_put("workflow", body.id, body)
    self.built["json/" .. body.id] = wf
    body.source = "json"
    body.graph = wf:describe()
    return 201, body, { location = "/api/v1/workflows/" .. body.id }
  end)

  app:route("GET", "/api/v1/workflows", function(self, req)
    local limit, offset = self:page(req)
    local list = {}
    for _, d in ipairs(self:def_list("workflow")) do
      d.source = "json"
      list[#list + 1] = d
    end
    local sc = scripts(self)
    local ids = {}
    for id in pairs(sc) do ids[#ids + 1] = id end
    table.sort(ids)
    for _, id in ipairs(ids) do
      list[#list + 1] = { id = id, source = "lua", file = sc[id]:match("([^/]*)$"), read_only = true }
    end
    return 200, require("weft.serve.app").paginate(list, limit, offset)
  end)

  app:route("GET", "/api/v1/workflows/{id}", function(self, _, p)
    local d = self:def_get("workflow", p.id)
    if d then
      d.source = "json"
      return 200, d
    end
    local path = scripts(self)[p.id]
    if path then return 200, script_doc(self, p.id, path) end
    errors.not_found("workflow", p.id)
  end)

  app:route("DELETE", "/api/v1/workflows/{id}", function(self, _, p)
    if not self:def_get("workflow", p.id) then
      if scripts(self)[p.id] then
        throw(403, "read_only", ("workflow '%s' is a Lua script and cannot be deleted through the API"):format(p.id), { id = p.id })
      end
      errors.not_found("workflow", p.id)
    end
    self:def_del("workflow", p.id)
    self.built["json/" .. p.id] = nil
    return 204
  end)
end

return _M
