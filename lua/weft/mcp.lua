--- weft.mcp — the Model Context Protocol client behind `weft.tool.mcp`
-- (docs/interop.md, "MCP"): JSON-RPC 2.0 over either transport of the
-- protocol, the handshake (initialize, protocol version negotiation,
-- notifications/initialized), tools/list with pagination, tools/call, and
-- the weft tools made of the server's tools (names, descriptions and input
-- schemas as the server gives them).
--
-- stdio: the server is a weft.sandbox child (bubblewrap, rlimits, a
-- supervisor that kills it when weft dies). Its stdin and stdout are one
-- loopback TCP connection that a small bash bridge opens before it execs
-- the command (weft's runtime has no streaming pipes to a sandboxed
-- child); the bridge first sends a random token, so no other local process
-- can pose as the server. Messages are single lines (at most
-- weft.tcp.max_line bytes). A dead child is started again on the next call.
--
-- Streamable HTTP: each message is a POST (Accept: JSON or SSE); the reply
-- is a JSON body or an SSE stream read until the response; the session id
-- and the negotiated protocol version go in the headers of later requests;
-- a 404 for a session re-initializes and sends the request again once.
--
-- Requests to one server are serialized (one in flight); a request the
-- server does not answer in `timeout` seconds fails and is cancelled
-- (notifications/cancelled). tools/call runs through weft.journal (kind
-- "mcp"), so durable runs replay its result. Uses weft.json, weft.tcp,
-- weft.http, weft.sandbox, weft.task, weft.journal, weft.schema,
-- weft.urandom, weft.check, weft.tool (the Tool class).
local json = require "weft.json"
local check = require "weft.check"
local schema = require "weft.schema"
local task = require "weft.task"
local journal = require "weft.journal"

local type, pairs, ipairs, tostring, error, pcall, setmetatable, next, require =
  type, pairs, ipairs, tostring, error, pcall, setmetatable, next, require
local sformat, concat, huge = string.format, table.concat, math.huge
local clock = require("weft.core.loop").clock

local _M = {}

--- Protocol versions this client speaks, newest first (the first is asked for).
_M.VERSIONS = { "2025-06-18", "2025-03-26", "2024-11-05" }
local SUPPORTED = {}
for _, v in ipairs(_M.VERSIONS) do SUPPORTED[v] = true end

--- JSON-RPC error codes used here.
_M.METHOD_NOT_FOUND = -32601

--- Defaults: seconds per request, seconds to start and initialize, pages
-- of tools/list followed, bytes of an HTTP reply.
_M.DEFAULTS = { timeout = 60, connect_timeout = 30, max_pages = 100, max_message = 16 * 1024 * 1024 }

local function seconds()
  return { type = "number", expect = "a number of seconds > 0", test = function(v) return v > 0 and v ~= huge end }
end

--- The spec of weft.tool.mcp options (weft.check).
_M.OPTIONS = check.spec("weft.tool.mcp", { properties = {
  command = { type = "table", expect = "a non-empty list of strings (argv)", aliases = { "cmd", "argv" } },
  url = { type = "string", expect = "an http(s) URL", test = function(v) return v:match("^https?://") ~= nil end },
  name = { type = "string", minLength = 1 },
  prefix = { type = "string", test = function(v) return v:match("^[%w_%-]*$") ~= nil end,
             expect = "letters, digits, '_' or '-'" },
  env = { type = "table", expect = "a table of name = value strings", aliases = { "environment" } },
  headers = { type = "table", expect = "a table of name = value" },
  cwd = { type = "string", minLength = 1 },
  ro_paths = { type = "table", expect = "a list of absolute paths" },
  memory_mb = { type = "integer", minimum = 1 },
  isolation = { enum = { "bwrap", "none" } },
  timeout = seconds(), connect_timeout = seconds(),
  max_message = { type = "integer", minimum = 1024, expect = "an integer >= 1024 (bytes)" },
} })

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- JSON-RPC framing --------------------------------------------------------

--- The text of a JSON-RPC request (id given) or notification (id nil).
function _M.encode(method, params, id)
  return json.encode({ jsonrpc = "2.0", id = id, method = method, params = params })
end

--- Decode one JSON-RPC message: a table with jsonrpc = "2.0", or nil, err.
function _M.decode(text)
  local m, err = json.decode(text)
  if type(m) ~= "table" or m[1] ~= nil then
    return nil, err and ("not JSON: " .. tostring(err)) or "not a JSON-RPC message (not an object)"
  end
  if m.jsonrpc ~= "2.0" then return nil, "not a JSON-RPC 2.0 message (jsonrpc is not \"2.0\")" end
  return m
end

-- The reply a client gives to a request of the server: ping is answered,
-- anything else (sampling, roots, elicitation) is not offered by this client.
local function answer_text(m)
  if m.method == "ping" then return json.encode({ jsonrpc = "2.0", id = m.id, result = json.object() }) end
  return json.encode({ jsonrpc = "2.0", id = m.id, error = { code = _M.METHOD_NOT_FOUND,
    message = "weft's MCP client does not offer " .. tostring(m.method) } })
end

-- stdio transport ---------------------------------------------------------

local Stdio = {}
Stdio.__index = Stdio

-- Opens the loopback connection, sends the token, unsets it and becomes the
-- command with the connection as its stdin and stdout.
local BRIDGE = [[exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 70
printf '%s\n' "$WEFT_MCP_TOKEN" >&3
unset WEFT_MCP_TOKEN
shift
exec "$@" <&3 >&3 3>&-]]

-- Start the server: its process and connection, or nil, err.
function Stdio:open(deadline)
  local tcp = require "weft.tcp"
  local sandbox = require "weft.sandbox"
  local srv, lerr = tcp.listen("127.0.0.1", 0)
  if not srv then return nil, "cannot listen on loopback: " .. tostring(lerr) end
  local token = require("weft.urandom").hex(16)
  if not token then srv:close(); return nil, "cannot read /dev/urandom" end
  local o = self.opts
  local env = { PATH = sandbox.ENV.PATH, LANG = sandbox.ENV.LANG, HOME = o.cwd or "/tmp" }
  for k, v in pairs(o.env or {}) do env[k] = v end
  env.WEFT_MCP_TOKEN = token
  local argv = { "bash", "-c", BRIDGE, "weft-mcp", tostring(srv:port()) }
  for i, a in ipairs(o.command) do argv[5 + i] = a end
  local proc = { done = false, ended = task.cond() }
  self.proc = proc
  proc.task = task.go_detached(function()
    local ok, r, err = pcall(sandbox.run, {
      argv = argv, env = env, cwd = o.cwd, ro_paths = o.ro_paths, network = true,
      isolation = o.isolation, memory_mb = o.memory_mb or 4096, timeout = 1e9, max_output = 64 * 1024,
    })
    proc.done = true
    if not ok then proc.err = tostring(r)
    elseif not r then proc.err = tostring(err)
    else
      proc.err = r.timed_out and "timed out" or r.signal and ("killed by signal " .. r.signal)
        or ("exited with code " .. tostring(r.exit_code))
      local tail = (r.stderr or ""):gsub("%s+$", ""):sub(-300)
      if tail ~= "" then proc.err = proc.err .. " (stderr: " .. tail .. ")" end
    end
    srv:close()
    if proc.sock then proc.sock:close() end
    proc.ended:signal()
  end)
  while true do
    local left = deadline - clock()
    if proc.done or left <= 0 then break end
    local c = srv:accept(left)
    if not c then break end
    local line = c:receive("*l", math.max(deadline - clock(), 0.001))
    if line == token then
      proc.sock = c
      break
    end
    c:close()
  end
  srv:close()
  if not proc.sock then
    self:close()
    return nil, proc.err and ("the server " .. proc.err) or "the server did not start in time"
  end
  if proc.done then proc.sock:close() end
  return true
end

-- True while the child runs and its connection is open.
function Stdio:alive()
  local p = self.proc
  return p ~= nil and not p.done and p.sock ~= nil and not p.sock:is_closed()
end

-- Kill the child (its supervisor kills whatever it started).
function Stdio:close()
  local p = self.proc
  if not p then return end
  self.proc = nil
  if p.sock then p.sock:close() end
  -- closing its stdin and stdout ends a well-behaved server; the sandbox's
  -- supervisor kills the rest when weft exits
end

-- Why the transport failed (the child's exit when known: its end of the
-- connection closes just before the sandbox reports the exit).
local function stdio_failure(self, err)
  local p = self.proc
  if p and not p.done and err ~= "timeout" then p.ended:wait(2) end
  if p and p.done and p.err then return "the server " .. p.err end
  if err == "closed" then return "the server closed its stdout" end
  return tostring(err)
end

-- Send a message (text), no reply expected: true or nil, err.
function Stdio:notify(text, deadline)
  local p = self.proc
  if not self:alive() then return nil, stdio_failure(self, "closed") end
  local ok, err = p.sock:send(text .. "\n", math.max(deadline - clock(), 0.001))
  if not ok then return nil, stdio_failure(self, err) end
  return true
end

-- Send request id (text) and read until its response: the message, or
-- nil, err, code ("timeout", "transport").
function Stdio:request(text, id, deadline)
  local ok, err = self:notify(text, deadline)
  if not ok then return nil, err, "transport" end
  local sock = self.proc.sock
  while true do
    local left = deadline - clock()
    if left <= 0 then return nil, "timeout", "timeout" end
    local line, rerr = sock:receive("*l", left)
    if not line then
      if rerr == "timeout" then return nil, "timeout", "timeout" end
      if rerr == "line too long" then
        self:close()
        return nil, sformat("a message longer than %d bytes (weft.tcp.max_line)",
                            require("weft.tcp").max_line), "too_large"
      end
      return nil, stdio_failure(self, rerr), "transport"
    end
    local m = _M.decode(line)
    -- other lines (a server's log lines on stdout) are skipped
    if m then
      if m.method ~= nil and m.id ~= nil then
        self:notify(answer_text(m), deadline)
      elseif m.method == nil and m.id == id then
        return m
      end
    end
  end
end

-- Streamable HTTP transport ---------------------------------------------

local Http = {}
Http.__index = Http

function Http:open()
  self.session, self.version = nil, nil
  return true
end

function Http:alive() return true end

-- The headers of a POST (the caller's, then the protocol's).
local function http_headers(self)
  local h = {}
  for k, v in pairs(self.opts.headers or {}) do h[k] = v end
  h["Content-Type"] = "application/json"
  h["Accept"] = "application/json, text/event-stream"
  if self.session then h["Mcp-Session-Id"] = self.session end
  if self.version then h["MCP-Protocol-Version"] = self.version end
  return h
end

-- The messages of an SSE body so far: feeds text, calls on_msg(data) for
-- each complete event's data; returns the unparsed rest.
local function sse_events(buf, on_msg)
  local pos = 1
  while true do
    local s, e = buf:find("\r?\n\r?\n", pos)
    if not s then break end
    local data = {}
    for line in (buf:sub(pos, s - 1) .. "\n"):gmatch("([^\n]*)\n") do
      line = line:gsub("\r$", "")
      local v = line:match("^data: ?(.*)$")
      if v then data[#data + 1] = v end
    end
    pos = e + 1
    if #data > 0 and on_msg(concat(data, "\n")) == false then return nil end
  end
  return buf:sub(pos)
end

-- POST text; for a request (id), the response message or nil, err, code
-- ("timeout", "transport", "session" for a 404 of a session, "http").
function Http:post(text, id, deadline)
  local http = require "weft.http"
  local max = self.opts.max_message or _M.DEFAULTS.max_message
  local parts, size, mode, rest, found, ferr = {}, 0, nil, "", nil, nil
  local function on_msg(data)
    local m = _M.decode(data)
    if not m then return true end
    if m.method ~= nil and m.id ~= nil then
      -- a request of the server (e.g. ping) within the stream: answered by a POST of its own
      local me = self
      task.go_detached(function() me:post(answer_text(m), nil, deadline) end)
    elseif m.method == nil and m.id == id then
      found = m
      return false
    end
    return true
  end
  local left = deadline - clock()
  if left <= 0 then return nil, "timeout", "timeout" end
  local res, err, code = http.request {
    method = "POST", url = self.opts.url, headers = http_headers(self), body = text, timeout = left,
    stream = function(chunk)
      size = size + #chunk
      if size > max then ferr = sformat("a reply longer than %d bytes (max_message)", max); return false end
      if not mode then
        local c = chunk:match("^%s*(.)")
        if not c then return true end
        mode = (c == "{" or c == "[") and "json" or "sse"
      end
      if mode == "json" then parts[#parts + 1] = chunk; return true end
      rest = sse_events(rest .. chunk, on_msg)
      return rest ~= nil
    end,
  }
  if not res then return nil, err, code == "timeout" and "timeout" or "transport" end
  if ferr then return nil, ferr, "too_large" end
  local st = res.status
  if res.headers["mcp-session-id"] and not self.session then self.session = res.headers["mcp-session-id"] end
  -- 404 is the protocol's answer for a session the server forgot; the
  -- reference servers of the SDK answer 400 "No valid session ID"
  if self.session and (st == 404 or (st == 400 and (res.body or ""):find("[Ss]ession"))) then
    return nil, sformat("session expired (HTTP %d)", st), "session"
  end
  if st < 200 or st >= 300 then
    local body = (res.body or ""):sub(1, 300)
    return nil, sformat("HTTP %d: %s", st, body), "http"
  end
  if id == nil then return true end
  if found then return found end
  if mode == "json" then
    local m, derr = _M.decode(concat(parts))
    if not m then return nil, "a reply that is " .. derr, "transport" end
    if m.id == id then return m end
    return nil, "a reply without the response to request " .. tostring(id), "transport"
  end
  return nil, "the reply ended without the response to request " .. tostring(id), "transport"
end

function Http:notify(text, deadline)
  local ok, err = self:post(text, nil, deadline)
  if not ok then return nil, err end
  return true
end

function Http:request(text, id, deadline)
  return self:post(text, id, deadline)
end

-- End the session (DELETE, as the protocol asks).
function Http:close()
  local s = self.session
  self.session = nil
  if s then
    local h = {}
    for k, v in pairs(self.opts.headers or {}) do h[k] = v end
    h["Mcp-Session-Id"] = s
    pcall(require("weft.http").request, { method = "DELETE", url = self.opts.url, headers = h, timeout = 5 })
  end
end

-- Client -------------------------------------------------------------------

local Client = {}
Client.__index = Client
Client.__tostring = function(c) return "mcp server '" .. c.name .. "'" end
_M.Client = Client

-- Take the request lock (one request in flight per server).
local function lock(self)
  while self.busy do self.cond:wait() end
  self.busy = true
end

local function unlock(self)
  self.busy = false
  self.cond:signal()
end

-- One request on the open transport: result or nil, err, code.
local function request(self, method, params, timeout)
  self.next_id = self.next_id + 1
  local id = self.next_id
  local deadline = clock() + (timeout or self.timeout)
  local m, err, code = self.transport:request(_M.encode(method, params, id), id, deadline)
  if not m then
    if code == "timeout" then
      self.transport:notify(_M.encode("notifications/cancelled", { requestId = id, reason = "timeout" }),
                            clock() + 1)
      err = sformat("no answer to %s in %g s", method, timeout or self.timeout)
    end
    return nil, err, code
  end
  if m.error ~= nil then
    local e = type(m.error) == "table" and m.error or {}
    return nil, sformat("%s failed: %s (code %s)", method, tostring(e.message), tostring(e.code)), "rpc"
  end
  if type(m.result) ~= "table" then return nil, method .. ": the response has no result object", "protocol" end
  return m.result
end

-- Start the transport and do the handshake: true or nil, err, code.
local function connect(self)
  local deadline = clock() + self.connect_timeout
  local tr = self.transport
  local ok, err = tr:open(deadline)
  if not ok then return nil, err, "connect" end
  local res, rerr, code = request(self, "initialize", {
    protocolVersion = _M.VERSIONS[1], capabilities = json.object(),
    clientInfo = { name = "weft", version = tostring(require("weft").version or "0") },
  }, math.max(deadline - clock(), 0.001))
  if not res then
    tr:close()
    return nil, "initialize: " .. tostring(rerr), code == "transport" and "connect" or code
  end
  local v = res.protocolVersion
  if not SUPPORTED[v] then
    tr:close()
    return nil, sformat("protocol version %s is not one this client speaks (%s)", tostring(v),
                        concat(_M.VERSIONS, ", ")), "protocol"
  end
  tr.version = v
  self.version, self.info = v, res.serverInfo
  if self.name_auto and type(res.serverInfo) == "table" and type(res.serverInfo.name) == "string" then
    self.name = res.serverInfo.name
  end
  local nok, nerr = tr:notify(_M.encode("notifications/initialized"), deadline)
  if not nok then tr:close(); return nil, "notifications/initialized: " .. tostring(nerr), "transport" end
  self.connected = true
  return true
end

-- A request with (re)connection: a closed transport is opened again; an
-- HTTP session the server forgot (404) is initialized again and the
-- request sent once more.
function Client:call(method, params, timeout)
  lock(self)
  local res, err, code
  for _ = 1, 2 do
    if not (self.connected and self.transport:alive()) then
      self.connected = false
      res, err, code = connect(self)
      if not res then break end
    end
    res, err, code = request(self, method, params, timeout)
    if code == "session" then self.connected = false
    else break end
  end
  if not res and (code == "transport" or code == "too_large" or code == "timeout") then
    -- the next call starts afresh (a new child, a new session)
    self.connected = false
    self.transport:close()
  end
  unlock(self)
  if not res then return nil, sformat("mcp server '%s': %s", self.name, tostring(err)), code end
  return res
end

--- Every tool of the server (tools/list, all pages): a list of the server's
-- tool descriptions, or nil, err, code.
function Client:list_tools()
  local out, cursor = {}, nil
  for _ = 1, _M.DEFAULTS.max_pages do
    local res, err, code = self:call("tools/list", cursor and { cursor = cursor } or json.object())
    if not res then return nil, err, code end
    if type(res.tools) ~= "table" then
      return nil, sformat("mcp server '%s': tools/list: the result has no list of tools", self.name), "protocol"
    end
    for _, t in ipairs(res.tools) do out[#out + 1] = t end
    cursor = res.nextCursor
    if type(cursor) ~= "string" then return out end
  end
  return nil, sformat("mcp server '%s': tools/list: more than %d pages", self.name, _M.DEFAULTS.max_pages),
         "protocol"
end

--- Stop the server (stdio) or end the session (HTTP); a later call starts again.
function Client:close()
  lock(self)
  self.connected = false
  self.transport:close()
  unlock(self)
end

-- The text a tools/call result gives the model: the text blocks joined,
-- other blocks described, structured content as JSON when there is no text.
local function content_text(res)
  local parts = {}
  for _, b in ipairs(type(res.content) == "table" and res.content or {}) do
    if type(b) == "table" then
      local t = b.type
      if t == "text" and type(b.text) == "string" then
        parts[#parts + 1] = b.text
      elseif t == "resource" and type(b.resource) == "table" and type(b.resource.text) == "string" then
        parts[#parts + 1] = b.resource.text
      elseif t == "image" or t == "audio" then
        parts[#parts + 1] = sformat("[%s %s, %d bytes of base64]", t, tostring(b.mimeType),
                                    type(b.data) == "string" and #b.data or 0)
      elseif t == "resource_link" or t == "resource" then
        local r = t == "resource" and b.resource or b
        parts[#parts + 1] = sformat("[resource %s]", tostring(type(r) == "table" and r.uri))
      end
    end
  end
  if #parts == 0 and res.structuredContent ~= nil then
    return json.encode(res.structuredContent, { invalid_utf8 = "replace" })
  end
  return concat(parts, "\n")
end
_M.content_text = content_text

--- Call a tool: the result text (for the model), or nil, err, code
-- (code "tool" when the server reports isError). Journaled as "mcp".
function Client:call_tool(name, args, timeout)
  if type(args) ~= "table" or next(args) == nil then args = json.object() end
  local function run()
    local res, err, code = self:call("tools/call", { name = name, arguments = args }, timeout)
    if not res then return nil, err, code end
    local text = content_text(res)
    if res.isError == true then
      return nil, sformat("mcp server '%s': tool '%s' reported an error: %s", self.name, name, text), "tool"
    end
    return text
  end
  return journal.call("mcp", { what = self.name .. " " .. name, arguments = args }, run)
end

-- Tools ---------------------------------------------------------------------

-- The lenient validation of a server's schema: keywords weft.schema does
-- not know are left to the server; a schema weft cannot read is not checked.
local function validate(params, args)
  local ok, err = pcall(schema.validate, params, args, "arguments")
  if ok then return err end
  return nil
end

local PERMISSIVE = { type = "object" }

-- A weft tool of server tool d (a description from tools/list).
local function make_tool(client, d, prefix, i)
  local Tool = require("weft.tool").Tool
  if type(d) ~= "table" or type(d.name) ~= "string" then
    return nil, sformat("mcp server '%s': tools/list: tool %d has no name", client.name, i)
  end
  local name = prefix .. d.name
  if not name:match("^[%w_%-]+$") or #name > 64 then
    return nil, sformat("mcp server '%s': tool '%s': the name '%s' is not 1-64 letters, digits, '_' or '-' "
      .. "(what model APIs accept)", client.name, d.name, name)
  end
  local params = d.inputSchema
  if type(params) ~= "table" or params.type ~= "object" then
    return nil, sformat("mcp server '%s': tool '%s': inputSchema must be a JSON schema of type object",
                        client.name, d.name)
  end
  local remote = d.name
  local desc = type(d.description) == "string" and d.description or nil
  local t = setmetatable({ name = name, description = desc, parameters = params,
                           mcp = { server = client.name, tool = remote, client = client } }, Tool)
  t.handler = function(args) return client:call_tool(remote, args) end
  -- weft.tool's invoke (argument decoding, result text), the server's
  -- schema checked leniently first
  local proxy = setmetatable({ name = name, parameters = PERMISSIVE, handler = t.handler }, Tool)
  t.invoke = function(_, args, ctx)
    if type(args) == "string" then
      local v = json.decode(args ~= "" and args or "{}")
      if type(v) == "table" then args = v end
    end
    if type(args) == "table" then
      local verr = validate(params, args)
      if verr then
        return false, require("weft.tool").error_result(sformat("invalid arguments for tool '%s': %s", name, verr))
      end
    end
    return Tool.invoke(proxy, args, ctx)
  end
  return t
end

--- weft.tool.mcp{command | url, ...}: connect, list the server's tools and
-- return them as a list of weft tools (field `client`: the Client), or nil,
-- err, code. Raises on bad options.
function _M.tools(opts, level)
  level = (level or 1) + 1
  check.options(_M.OPTIONS, opts, level)
  if (opts.command == nil) == (opts.url == nil) then
    error("weft.tool.mcp: give either command = {argv} (stdio) or url = ... (streamable HTTP)", level)
  end
  local tr
  if opts.command then
    local c = opts.command
    if #c == 0 then error("weft.tool.mcp: command must be a non-empty list of strings", level) end
    for i = 1, #c do
      if type(c[i]) ~= "string" then error(sformat("weft.tool.mcp: command[%d] must be a string", i), level) end
    end
    tr = setmetatable({ opts = opts }, Stdio)
  else
    tr = setmetatable({ opts = opts }, Http)
  end
  for _, k in ipairs(sorted_keys(opts.env or {})) do
    if type(k) ~= "string" or type(opts.env[k]) ~= "string" then
      error("weft.tool.mcp: env must map names to strings (" .. tostring(k) .. ")", level)
    end
  end
  local client = setmetatable({
    name = opts.name or (opts.command and opts.command[1]:match("[^/]*$")) or opts.url,
    name_auto = opts.name == nil, transport = tr, next_id = 0, busy = false, cond = task.cond(),
    timeout = opts.timeout or _M.DEFAULTS.timeout, connect_timeout = opts.connect_timeout or _M.DEFAULTS.connect_timeout,
  }, Client)
  local list, err, code = client:list_tools()
  if not list then client:close(); return nil, err, code end
  local out, seen = {}, {}
  for i, d in ipairs(list) do
    local t, terr = make_tool(client, d, opts.prefix or "", i)
    if not t then client:close(); return nil, terr, "protocol" end
    if seen[t.name] then client:close(); return nil, sformat("mcp server '%s': two tools named '%s'", client.name, t.name), "protocol" end
    seen[t.name] = true
    out[i] = t
  end
  out.client = client
  return out
end

return _M
