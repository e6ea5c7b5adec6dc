--- weft.serve.tools — /api/v1/tools: the tools registered with
-- app:register_tool (list, get) and their direct execution
-- (`POST /api/v1/tools/{name}/execute {arguments}`): arguments are
-- validated by the tool's schema (400 naming the problem), the handler runs
-- in the request's task, its result comes back as JSON.
-- Uses weft.json, weft.schema, weft.serve.{app, errors}.
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
