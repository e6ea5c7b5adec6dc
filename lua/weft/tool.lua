--- weft.tool — function tools for agents (see docs/agents.md, Tools):
-- `weft.tool{name, description, parameters, handler}` checks the JSON
-- schema of the parameters when the tool is created (errors name the tool
-- and the schema path); `tool:invoke(args, ctx)` validates the arguments,
-- runs the handler (which may yield: weft.sleep, weft.http, ...) and turns
-- every outcome into the text of a tool result — the JSON-encoded return
-- value (a string as is), or `{"error": "..."}` for invalid arguments, a
-- handler that raises or returns nil, err, and a value JSON cannot hold
-- (invalid UTF-8 included: every result can be stored and read back).
-- It never raises. Uses weft.json, weft.schema, weft.journal (tool calls are
-- observed, not journaled).
local json = require "weft.json"
local schema = require "weft.schema"
local check = require "weft.check"
local journal = require "weft.journal"

local type, tostring, error, setmetatable, getmetatable, pcall, select =
  type, tostring, error, setmetatable, getmetatable, pcall, select
local sformat = string.format

local _M = {}

local Tool = {}
Tool.__index = Tool
Tool.__tostring = function(t) return "tool '" .. t.name .. "'" end
_M.Tool = Tool

local OPTIONS = check.spec("weft.tool", { properties = {
  name = { type = "string" },
  description = { type = "string" },
  parameters = { type = "table", expect = "a JSON schema of an object", aliases = { "schema", "input_schema", "args" } },
  handler = { type = "callable", required = true, expect = "a function(args, ctx)",
              aliases = { "handle", "fn", "func", "run", "call" } },
  strict = { type = "any" },
} })

--- True when v is a tool made by weft.tool.
function _M.is_tool(v) return getmetatable(v) == Tool end

--- Create a tool: new{name, description, parameters = JSON schema of an
-- object (default: no parameters), handler = fn(args, ctx) -> value}.
-- Raises naming the tool and the field on bad options.
function _M.new(opts, level)
  level = (level or 1) + 1
  if type(opts) ~= "table" then error("weft.tool: expects a table {name, description, parameters, handler}", level) end
  local name = opts.name
  if type(name) ~= "string" or not name:match("^[%w_%-]+$") or #name > 64 then
    error(sformat("weft.tool: name must be 1-64 letters, digits, '_' or '-', got %s",
                  type(name) == "string" and sformat("%q", name) or type(name)), level)
  end
  local function bad(msg) error(sformat("tool '%s': %s", name, msg), level + 1) end
  check.options(OPTIONS, opts, level, sformat("tool '%s'", name))
  local params = opts.parameters
  if params == nil then
    params = { type = "object", properties = json.object() }
  else
    local ok, err = schema.check(params, "parameters")
    if not ok then bad(err) end
    if params.type ~= "object" then bad("parameters.type: must be 'object' (tools take named arguments)") end
    local jerr = json.check(params, "parameters")
    if jerr then bad(jerr) end
  end
  return setmetatable({ name = name, description = opts.description, parameters = params,
                        handler = opts.handler }, Tool)
end

--- The tool as weft.llm.chat wants it: {name, description, parameters}.
function Tool:spec()
  return { name = self.name, description = self.description, parameters = self.parameters }
end

--- The text of an error tool result: {"error": msg} (bytes of msg that are
-- not UTF-8, e.g. from a handler's error, come out as U+FFFD).
function _M.error_result(msg)
  return json.encode({ error = msg }, { invalid_utf8 = "replace" })
end

-- The text of a handler's return values (ok, text) or (false, message).
local function result_text(name, n, v, err)
  if v == nil and n >= 2 and err ~= nil then
    return false, sformat("tool '%s' failed: %s", name, tostring(err))
  end
  if type(v) == "string" then
    local e = json.check(v, "result")
    if e then return false, sformat("tool '%s' returned text that is not UTF-8: %s", name, e) end
    return true, v
  end
  if v == nil then v = json.null end
  local ok, text = pcall(json.encode, v, { root = "result" })
  if not ok then return false, sformat("tool '%s' returned a value that is not JSON: %s", name, tostring(text)) end
  return true, text
end

-- Catch the handler's results with their count.
local function pack_call(ok, ...)
  return ok, select("#", ...), ...
end

-- Run tool's handler on checked args: true, text or false, error result.
local function run_handler(tool, args, ctx)
  local name = tool.name
  local ok, n, v, err = pack_call(pcall(tool.handler, args, ctx))
  if not ok then
    return false, _M.error_result(sformat("tool '%s' failed: %s", name, tostring(v)))
  end
  local good, text = result_text(name, n, v, err)
  if not good then return false, _M.error_result(text) end
  return true, text
end

--- Validate args and run the handler: returns ok, text where text is the
-- tool result to send to the model (`{"error": "..."}` when not ok).
-- args may be a table or a JSON string; ctx = {agent, thread, call_id}.
function Tool:invoke(args, ctx)
  local name = self.name
  if type(args) == "string" then
    local v, err = json.decode(args ~= "" and args or "{}")
    if type(v) ~= "table" then
      return false, _M.error_result(sformat("invalid arguments for tool '%s': not a JSON object (%s)",
                                            name, tostring(err or json.encode(v))))
    end
    args = v
  elseif args == nil or args == json.null then
    args = {}
  end
  local verr = schema.validate(self.parameters, args, "arguments")
  if verr then
    return false, _M.error_result(sformat("invalid arguments for tool '%s': %s", name, verr))
  end
  -- observed (weft.otel's spans), never journaled: a re-executed durable
  -- invocation runs its tools again (docs/durability.md, "Tool calls")
  return journal.observed("tool", { what = "tool " .. name, args = args }, run_handler, self, args, ctx)
end

--- weft.tool.mcp{command = {argv} | url = ..., prefix, name, env, headers,
-- timeout, ...}: the tools of an MCP server as a list of weft tools (the
-- server's names, descriptions and schemas), or nil, err, code when the
-- server cannot be reached (weft.mcp, docs/interop.md). Raises on bad options.
function _M.mcp(opts)
  local tools, err, code = require("weft.mcp").tools(opts, 2)
  return tools, err, code
end

return check.constructor(_M)
