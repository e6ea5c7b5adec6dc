--- weft.serve.mcp — `weft serve` as an MCP server (streamable HTTP
-- transport, docs/interop.md "MCP"): `POST /mcp` takes one JSON-RPC
-- message and answers with JSON (`initialize` opens a session: the
-- Mcp-Session-Id header, required on every later request; `ping`;
-- `tools/list`; `tools/call`; notifications and client responses get 202);
-- `DELETE /mcp` ends the session; `GET /mcp` is 405 (this server sends
-- nothing unasked). The tools are the app's agents (`agent_<id>`,
-- arguments `{message}`) and workflows (`workflow_<id>`, arguments
-- `{input}`); a call runs it as `POST /v1/chat/completions` does (the
-- "chat" pool call, so on a worker when there is a pool; a workflow given
-- non-string input runs here) and answers its text, or `isError` with the
-- failure. API keys: the security layer admits the request; tools/call
-- also needs the run scope. Uses weft.json, weft.urandom, weft.pool,
-- weft.serve.{errors, security, openai}.
local json = require "weft.json"
local errors = require "weft.serve.errors"

local type, ipairs, tostring, pcall = type, ipairs, tostring, pcall
local fmt = string.format

local _M = {}

--- Protocol versions served, newest first (a client asking for another
-- gets the first).
_M.VERSIONS = { "2025-06-18", "2025-03-26", "2024-11-05" }

--- Sessions kept at most (the oldest is dropped beyond).
_M.MAX_SESSIONS = 10000

local PARSE, INVALID, NOT_FOUND, PARAMS = -32700, -32600, -32601, -32602

-- A JSON-RPC response body.
local function result(id, r) return { jsonrpc = "2.0", id = id, result = r } end
local function rpc_error(id, code, msg)
  return { jsonrpc = "2.0", id = id == nil and json.null or id, error = { code = code, message = msg } }
end

-- The app's agents and workflows as MCP tools.
local function list_tools(app)
  local tools = json.array()
  for _, d in ipairs(app:def_list("agent")) do
    tools[#tools + 1] = {
      name = "agent_" .. tostring(d.id),
      description = (type(d.description) == "string" and d.description ~= "" and d.description)
        or fmt("weft agent '%s': sends it a message and answers its reply", tostring(d.id)),
      inputSchema = { type = "object", required = json.array({ "message" }), properties = {
        message = { type = "string", description = "the user message" } } },
    }
  end
  -- the workflow list route knows both declarative and script workflows
  for _, r in ipairs(app.routes) do
    if r.method == "GET" and r.pattern == "/api/v1/workflows" then
      local _, page = r.fn(app, { query = { limit = tostring(require("weft.serve.app").MAX_LIMIT) } }, {})
      for _, d in ipairs(page and page.items or {}) do
        tools[#tools + 1] = {
          name = "workflow_" .. tostring(d.id),
          description = (type(d.description) == "string" and d.description ~= "" and d.description)
            or fmt("weft workflow '%s': runs it on the input and answers its outputs", tostring(d.id)),
          inputSchema = { type = "object", required = json.array({ "input" }), properties = {
            input = { description = "the workflow's input: a string, or any JSON value" } } },
        }
      end
    end
  end
  return tools
end

-- Run tool name with args: text, or nil, err (a tool failure); raises
-- {rpc = code, msg} for a call that is not valid.
local function call_tool(app, name, args)
  local kind, id = tostring(name):match("^(%a+)_(.+)$")
  if (kind ~= "agent" and kind ~= "workflow") or not require("weft.serve.app").valid_id(id) then
    error({ rpc = PARAMS, msg = fmt("unknown tool '%s' (tools are agent_<id> and workflow_<id>: tools/list)",
                                    tostring(name)) }, 0)
  end
  local field = kind == "agent" and "message" or "input"
  local v = type(args) == "table" and args[field]
  if v == nil or v == false or (kind == "agent" and type(v) ~= "string") then
    error({ rpc = PARAMS, msg = fmt("tool '%s': arguments.%s is required%s", name, field,
                                    kind == "agent" and " (a string)" or "") }, 0)
  end
  local openai = require "weft.serve.openai"
  local model = kind .. ":" .. id
  local ok, tk, target = pcall(openai.target, app, model)
  if not ok then
    if errors.is_error(tk) and tk.status == 404 then error({ rpc = PARAMS, msg = fmt("unknown tool '%s'", name) }, 0) end
    return nil, tostring(errors.is_error(tk) and tk.message or tk)
  end
  if tk == "workflow" and type(v) ~= "string" then
    local rok, res = pcall(target.run, target, v, { events = false })
    if not rok then return nil, tostring(res) end
    if res.status ~= "completed" then
      return nil, fmt("workflow '%s' %s: %s", id, tostring(res.status), tostring(res.error or "no error message"))
    end
    return require("weft.agent").outputs_text(res.outputs)
  end
  local pool = require "weft.pool"
  local cargs = { model = model, messages = v, stream = false }
  local rok, r
  if app.pool then
    rok, r = pcall(pool.call, app.store, "chat", cargs, { pool = app.pool })
  else
    rok, r = pcall(pool.call_fn("chat"), app, cargs)
  end
  if not rok then return nil, tostring(errors.is_error(r) and r.message or r) end
  return tostring(r.text or "")
end

-- The response body of one JSON-RPC request m (session s known), or nil
-- for a notification or a client response.
local function answer(app, req, m, s)
  local id, method = m.id, m.method
  if method == nil then return nil end -- a client's response (to nothing we asked)
  if id == nil then return nil end     -- notifications: initialized, cancelled, ...
  if method == "ping" then return result(id, json.object()) end
  if method == "tools/list" then return result(id, { tools = list_tools(app) }) end
  if method == "tools/call" then
    local auth = req.weft_auth
    local sec = require "weft.serve.security"
    if auth and auth.level < sec.SCOPES.run then
      return rpc_error(id, INVALID, fmt("API key '%s' lacks the 'run' scope for tools/call", tostring(auth.id)))
    end
    local p = type(m.params) == "table" and m.params or {}
    local ok, text, err = pcall(call_tool, app, p.name, p.arguments)
    if not ok then
      if type(text) == "table" and text.rpc then return rpc_error(id, text.rpc, text.msg) end
      text, err = nil, tostring(text)
    end
    if text == nil then
      return result(id, { isError = true, content = json.array({ { type = "text", text = tostring(err) } }) })
    end
    return result(id, { content = json.array({ { type = "text", text = text } }) })
  end
  if s == nil then return rpc_error(id, INVALID, "no session") end
  return rpc_error(id, NOT_FOUND, fmt("method '%s' is not offered by weft serve", tostring(method)))
end

-- A new session id (visible ASCII, as the protocol asks).
local function new_session()
  return require("weft.urandom").hex(16) or fmt("%x%x", os.time(), math.random(0, 0x7fffffff))
end

--- Install POST/GET/DELETE /mcp on app.
function _M.install(app)
  app.mcp_sessions, app.mcp_order = {}, {}
  local function session_of(self, req)
    local sid = req.headers and req.headers["mcp-session-id"]
    if sid == nil then return nil, 400, "Bad Request: the Mcp-Session-Id header is required (initialize first)" end
    local s = self.mcp_sessions[sid]
    if not s then return nil, 404, "session not found (initialize again)" end
    return s, sid
  end

  app:route("POST", "/mcp", function(self, req, _, res)
    local ok, m = pcall(self.body, self, req, { required = true, any = true })
    if not ok then
      if errors.is_error(m) and m.status == 415 then error(m, 0) end
      return 400, rpc_error(nil, PARSE, "invalid JSON-RPC message: " .. tostring(errors.is_error(m) and m.message or m))
    end
    if type(m) ~= "table" or json.is_array(m) or m.jsonrpc ~= "2.0" then
      return 400, rpc_error(nil, INVALID, "expected one JSON-RPC 2.0 message (batches are not supported)")
    end
    if m.method == "initialize" then
      if m.id == nil then return 400, rpc_error(nil, INVALID, "initialize must be a request (with an id)") end
      local p = type(m.params) == "table" and m.params or {}
      local v = _M.VERSIONS[1]
      for _, sv in ipairs(_M.VERSIONS) do if p.protocolVersion == sv then v = sv end end
      local sid = new_session()
      local order = self.mcp_order
      order[#order + 1] = sid
      self.mcp_sessions[sid] = { version = v }
      if #order > _M.MAX_SESSIONS then self.mcp_sessions[table.remove(order, 1)] = nil end
      return 200, result(m.id, {
        protocolVersion = v, capabilities = { tools = { listChanged = false } },
        serverInfo = { name = "weft", version = tostring(require("weft").version or "0") },
        instructions = "Agents (agent_<id>) and workflows (workflow_<id>) of this weft server, as tools.",
      }), { ["Mcp-Session-Id"] = sid }
    end
    local s, code, msg = session_of(self, req)
    if not s then return code, rpc_error(m.id, INVALID, msg) end
    local body = answer(self, req, m, s)
    if body == nil then
      res:status(202)
      res:send("")
      return
    end
    return 200, body
  end)

  app:route("GET", "/mcp", function()
    return 405, rpc_error(nil, INVALID, "this server sends no messages unasked: no SSE stream on GET /mcp"),
           { Allow = "POST, DELETE" }
  end)

  app:route("DELETE", "/mcp", function(self, req, _, res)
    local s, sid, msg = session_of(self, req)
    if not s then return sid, rpc_error(nil, INVALID, msg) end
    self.mcp_sessions[sid] = nil
    res:status(200)
    res:send("")
  end)
end

return _M
