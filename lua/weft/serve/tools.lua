--- weft.serve.tools — /api/v1/tools: the tools registered with
-- app:register_tool (list, get) and their direct execution
-- (`POST /api/v1/tools/{name}/execute {arguments}`): arguments are
-- validated by the tool's schema (400 naming the problem), the handler runs
-- in the request's task, its result comes back as JSON. `load(app, path)`
-- registers the tools of a Lua file or of the *.lua files of a directory
-- (`weft serve --tools FILE_OR_DIR`): each file returns a weft.tool, a
-- table weft.tool accepts, or a list of them (so a file returning
-- `weft.tool.mcp{...}` serves an MCP server's tools).
-- Uses weft.json, weft.schema, weft.tool, weft.host (find), weft.serve.{app, errors}.
local json = require "weft.json"
local errors = require "weft.serve.errors"

local throw = errors.throw

local _M = {}

--- The body of POST /tools/{name}/execute (weft.check object schema).
_M.EXECUTE = errors.schema("tool execute", { properties = {
  arguments = { type = "object", expect = "a JSON object", aliases = { "args", "input", "parameters" } },
} })

-- The public description of tool t.
local function describe(t)
  return { name = t.name, description = t.description, parameters = t.parameters }
end

-- The tools a tools file returned (v): a list of weft.tool objects, or
-- nil, err.
local function tools_of(v)
  local tool = require "weft.tool"
  if tool.is_tool(v) then return { v } end
  if type(v) ~= "table" then return nil, "returned " .. type(v) .. ", not a tool or a list of tools" end
  local list = v
  if v[1] == nil then list = { v } end -- one tool table {name, handler, ...}
  local out = {}
  for i, t in ipairs(list) do
    if not tool.is_tool(t) then
      if type(t) ~= "table" then return nil, ("tool %d is a %s, not a tool"):format(i, type(t)) end
      local ok, r = pcall(tool.new, t)
      if not ok then return nil, ("tool %d: %s"):format(i, tostring(r)) end
      t = r
    end
    out[#out + 1] = t
  end
  return out
end

--- Register the tools of the Lua file path, or of the *.lua files of the
-- directory path (in name order), with app. Returns the number of tools,
-- or nil, err naming the file (nothing is registered then); a name that
-- two tools share is an error.
function _M.load(app, path)
  if type(path) ~= "string" or path == "" then return nil, "expects a file or directory path" end
  local paths = { path }
  if require("weft.core.proc").listdir(path) then -- a directory: its *.lua files
    paths = require("weft.host").find(path, "*.lua", 1)
  end
  local found, from = {}, {}
  for _, p in ipairs(paths) do
    local chunk, lerr = loadfile(p)
    if not chunk then return nil, tostring(lerr) end
    local ok, v = pcall(chunk)
    if not ok then return nil, ("%s: %s"):format(p, tostring(v)) end
    local list, terr = tools_of(v)
    if not list then return nil, ("%s: %s"):format(p, terr) end
    for _, t in ipairs(list) do
      if from[t.name] then
        return nil, ("%s: tool '%s' is defined in %s too"):format(p, t.name, from[t.name])
      end
      from[t.name] = p
      found[#found + 1] = t
    end
  end
  for _, t in ipairs(found) do app:register_tool(t) end
  return #found
end

--- Install the tool routes on app.
function _M.install(app)
  app:route("GET", "/api/v1/tools", function(self, req)
    local limit, offset = self:page(req)
    local list = {}
    for _, t in pairs(self.tools) do list[#list + 1] = describe(t) end
    table.sort(list, function(a, b) return a.name < b.name end)
    return 200, require("weft.serve.app").paginate(list, limit, offset)
  end)

  app:route("GET", "/api/v1/tools/{name}", function(self, _, p)
    local t = self.tools[p.name]
    if not t then errors.not_found("tool", p.name) end
    return 200, describe(t)
  end)

  app:route("POST", "/api/v1/tools/{name}/execute", function(self, req, p)
    local t = self.tools[p.name]
    if not t then errors.not_found("tool", p.name) end
    local body = self:body(req) or {}
    errors.check_body(_M.EXECUTE, body, "validation_error")
    local args = body.arguments
    if args == nil or args == json.null then args = json.object() end
    local verr = require("weft.schema").validate(t.parameters, args, "arguments")
    if verr then throw(400, "validation_error", ("invalid arguments for tool '%s': %s"):format(t.name, verr), { tool = t.name }) end
    local ok, text = t:invoke(args, { agent = nil, call_id = "api" })
    local v = json.decode(text)
    if v == nil then v = text end
    if not ok then
      local msg = type(v) == "table" and v.error or tostring(text)
      throw(500, "tool_failed", tostring(msg), { tool = t.name })
    end
    return 200, { tool = t.name, result = v }
  end)
end

return _M
