--- spec/support/http_server.lua — a small HTTP/1.1 server on weft's TCP
-- cosockets, for specs and benches (the provider test server is built on
-- it). Each connection runs in its own `weft.go` task: requests are parsed
-- (request line, headers, Content-Length or chunked bodies, `Expect:
-- 100-continue`), handed to `handler(req, res)`, and the connection is kept
-- alive (HTTP/1.1 default) until the client closes or asks to. Malformed
-- requests get a 400 and the connection is closed.
--
--     local hs = require "support.http_server"
--     local srv = hs.start{ port = 0, handler = function(req, res)
--       res:send(200, { ["Content-Type"] = "text/plain" }, "hi")
--     end }
--     ... srv.port, srv.url, srv:stats(), srv:stop()
--
-- req = { method, target, path, query (raw string or ""), version ("1.1"),
--         headers (lower-case names; repeats joined with ", "), body }.
-- res:send(status, headers, body) — a whole response (Content-Length);
-- res:start(status, headers) / res:write(data) / res:finish() — chunked;
-- res:raw(bytes) — bytes as they are; res:abort() — close the connection.
-- res.bytewise (one byte per write, yielding between writes) applies to
-- every write. srv:pause(s) is a sleep that srv:stop() interrupts. A write
-- to a connection the peer closed, or a pause cut by srv:stop(), ends the
-- handler (it raises the internal sentinel GONE, which the server catches).
local weft = require "weft"
local tcp = require "weft.tcp"

local type, tostring, tonumber, pairs, ipairs, error, pcall, xpcall, setmetatable =
  type, tostring, tonumber, pairs, ipairs, error, pcall, xpcall, setmetatable
local concat, sort = table.concat, table.sort
local format, lower, sub = string.format, string.lower, string.sub
local traceback = debug.traceback

local _M = {}

--- Reason phrases of the status codes the test servers use.
_M.reasons = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted",
  [204] = "No Content", [301] = "Moved Permanently", [302] = "Found",
  [304] = "Not Modified", [400] = "Bad Request", [401] = "Unauthorized",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [408] = "Request Timeout", [409] = "Conflict", [413] = "Payload Too Large",
  [414] = "URI Too Long", [417] = "Expectation Failed",
  [422] = "Unprocessable Entity", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
  [529] = "Overloaded",
}

--- Decode %XX escapes (and "+" as a space when query is true).
function _M.unescape(s, query)
  if query then s = s:gsub("%+", " ") end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Parse a query string into a table (last value wins).
function _M.parse_query(q)
  local t = {}
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    t[_M.unescape(k, true)] = _M.unescape(v, true)
  end
  return t
end

local MAX_HEADERS = 100
local MAX_HEADER_BYTES = 64 * 1024
local MAX_BODY = 256 * 1024 * 1024

-- Raised (as the error value) when the connection is gone or the server
-- stops: the connection task ends quietly.
local GONE = setmetatable({}, { __tostring = function() return "connection gone" end })
_M.GONE = GONE

-- A request that cannot be parsed: status and message for the 4xx reply.
local function bad(status, msg) return { bad = true, status = status, msg = msg } end

-- Read a chunked request body; returns the body or a bad() table.
local function read_chunked(c, timeout)
  local parts, total = {}, 0
  while true do
    local line, err = c:receive("*l", timeout)
    if not line then return nil, err end
    local size = tonumber(line:match("^%s*(%x+)%s*;?.-$") or "", 16)
    if not size then return bad(400, "malformed chunk size line") end
    if size == 0 then
      repeat -- trailers, up to the empty line
        line, err = c:receive("*l", timeout)
        if not line then return nil, err end
      until line == ""
      return concat(parts)
    end
    total = total + size
    if total > MAX_BODY then return bad(413, "request body too large") end
    local data
    data, err = c:receive(size, timeout)
    if not data then return nil, err end
    parts[#parts + 1] = data
    line, err = c:receive("*l", timeout)
    if not line then return nil, err end
    if line ~= "" then return bad(400, "chunk not followed by CRLF") end
  end
end

-- Read one request from c. Returns req; or bad(status, msg); or nil, err
-- when the connection ended (cleanly between requests or not).
local function read_request(c, timeout)
  local line, err
  repeat -- RFC 9112: ignore empty lines before a request line
    line, err = c:receive("*l", timeout)
    if not line then
      if err == "line too long" then return bad(414, "request line too long") end
      return nil, err
    end
  until line ~= ""
  local method, target, major, minor = line:match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
  if not method then return bad(400, "malformed request line: " .. line:sub(1, 80)) end
  if major ~= "1" then return bad(505, "unsupported HTTP version") end
  local req = { method = method, target = target, version = major .. "." .. minor,
                headers = {}, header_list = {} }
  local headers, n, bytes = req.headers, 0, #line
  while true do
    line, err = c:receive("*l", timeout)
    if not line then
      if err == "line too long" then return bad(431, "header line too long") end
      return nil, err
    end
    if line == "" then break end
    n, bytes = n + 1, bytes + #line
    if n > MAX_HEADERS or bytes > MAX_HEADER_BYTES then
      return bad(431, "too many header bytes")
    end
    local name, value = line:match("^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
    if not name then return bad(400, "malformed header line: " .. line:sub(1, 80)) end
    name = lower(name)
    req.header_list[#req.header_list + 1] = { name, value }
    if headers[name] then
      headers[name] = headers[name] .. ", " .. value
    else
      headers[name] = value
    end
  end
  if req.version == "1.1" and not headers.host then
    return bad(400, "missing Host header")
  end
  local path, query = target:match("^([^?]*)%??(.*)$")
  if sub(path, 1, 1) ~= "/" then
    -- absolute-form (proxies): keep the path part
    path = path:match("^%a[%w+.-]*://[^/]*(/.*)$") or path
    if sub(path, 1, 1) ~= "/" then return bad(400, "malformed request target") end
  end
  req.path, req.query = path, query
  local conn = lower(headers.connection or "")
  if req.version == "1.1" then
    req.keepalive = not conn:find("close", 1, true)
  else
    req.keepalive = conn:find("keep-alive", 1, true) ~= nil
  end
  -- the body
  local te, cl = headers["transfer-encoding"], headers["content-length"]
  if te and cl then return bad(400, "both Transfer-Encoding and Content-Length") end
  local expect = lower(headers.expect or "")
  if expect ~= "" and expect ~= "100-continue" then
    return bad(417, "unsupported Expect: " .. headers.expect)
  end
  local function continue()
    if expect == "100-continue" then
      local ok, werr = c:send("HTTP/1.1 100 Continue\r\n\r\n")
      if not ok then return nil, werr end
    end
    return true
  end
  if te then
    if lower(te) ~= "chunked" then return bad(400, "unsupported Transfer-Encoding: " .. te) end
    local ok, cerr = continue()
    if not ok then return nil, cerr end
    local body, berr = read_chunked(c, timeout)
    if body == nil then return nil, berr end
    if type(body) == "table" then return body end
    req.body = body
  elseif cl then
    if not cl:match("^%d+$") then return bad(400, "malformed Content-Length: " .. cl) end
    local len = tonumber(cl)
    if len > MAX_BODY then return bad(413, "request body too large") end
    if len > 0 then
      local ok, cerr = continue()
      if not ok then return nil, cerr end
      local body, berr = c:receive(len, timeout)
      if not body then return nil, berr end
      req.body = body
    else
      req.body = ""
    end
  else
    req.body = ""
  end
  return req
end

--------------------------------------------------------------------------
-- Responses

local Response = {}
Response.__index = Response

-- Write bytes to the connection, honouring bytewise; raises GONE when the
-- peer is gone.
function Response:raw(data)
  if self.gone then error(GONE, 0) end
  local c = self.conn
  if self.bytewise and #data > 1 then
    for i = 1, #data do
      if not c:send(sub(data, i, i)) then
        self.gone = true
        error(GONE, 0)
      end
      self.server:pause(0) -- let the byte leave on its own
    end
    return
  end
  if not c:send(data) then
    self.gone = true
    error(GONE, 0)
  end
end

-- The head of a response: status line and sorted headers.
local function head(status, headers, extra)
  local names, lines = {}, {}
  for k in pairs(headers or {}) do names[#names + 1] = k end
  sort(names)
  lines[1] = format("HTTP/1.1 %d %s", status, _M.reasons[status] or "Status")
  for _, k in ipairs(names) do lines[#lines + 1] = k .. ": " .. tostring(headers[k]) end
  for _, h in ipairs(extra) do lines[#lines + 1] = h end
  return concat(lines, "\r\n") .. "\r\n\r\n"
end

--- Send a whole response with a Content-Length (body may be nil).
function Response:send(status, headers, body)
  if self.started then error("response already started", 2) end
  self.started, self.status = true, status
  body = body or ""
  local extra = {}
  local nobody = status == 204 or status == 304 or (status >= 100 and status < 200)
  if not nobody then extra[1] = "Content-Length: " .. #body end
  if not self.keepalive then extra[#extra + 1] = "Connection: close" end
  local h = head(status, headers, extra)
  if nobody or self.req.method == "HEAD" then
    self:raw(h)
  elseif self.cut_body then
    -- a fault: announce the whole body, send (at most) part of it, hang up
    self:raw(h .. sub(body, 1, self.cut_body))
    self:abort()
  else
    self:raw(h .. body)
  end
  self.finished = true
end

--- Start a chunked response; then res:write(...) and res:finish().
function Response:start(status, headers)
  if self.started then error("response already started", 2) end
  self.started, self.status, self.chunked = true, status, true
  local extra = { "Transfer-Encoding: chunked" }
  if not self.keepalive then extra[2] = "Connection: close" end
  self:raw(head(status, headers, extra))
end

--- Send one chunk of a chunked response (empty data is skipped).
function Response:write(data)
  if not self.chunked then error("write: response not started with res:start", 2) end
  if data == "" then return end
  self:raw(format("%x\r\n", #data) .. data .. "\r\n")
end

--- End a chunked response.
function Response:finish()
  if not self.chunked then error("finish: response not started with res:start", 2) end
  self:raw("0\r\n\r\n")
  self.finished = true
end

--- Close the connection now (no more response bytes); ends the handler.
function Response:abort()
  self.gone = true
  self.conn:close()
  error(GONE, 0)
end

--------------------------------------------------------------------------
-- The server

local Server = {}
Server.__index = Server

-- Traceback handler that lets the GONE sentinel through.
local function on_error(e)
  if e == GONE then return e end
  return traceback(tostring(e), 2)
end

-- Serve one connection until it closes.
local function serve_conn(srv, c)
  while not srv.stopping do
    local req, err = read_request(c, srv.idle_timeout)
    if not req then break end -- closed, reset or idle: nothing to answer
    if req.bad then
      local body = req.msg .. "\n"
      c:send(format("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        .. "Connection: close\r\n\r\n%s", req.status, _M.reasons[req.status] or "Bad Request",
        #body, body))
      -- lingering close: closing with unread input would send a reset that
      -- can destroy the response before the client reads it
      c:shutdown()
      c:receive("*a", 1)
      break
    end
    local st = srv.counts
    st.requests = st.requests + 1
    st.by_path[req.path] = (st.by_path[req.path] or 0) + 1
    local res = setmetatable({ conn = c, req = req, server = srv,
                               keepalive = req.keepalive }, Response)
    local ok, e = xpcall(srv.handler, on_error, req, res)
    if not ok then
      if e ~= GONE then
        io.stderr:write("http_server: handler error for ", req.method, " ", req.target,
                        ": ", tostring(e), "\n")
        if not res.started and not res.gone then
          res.keepalive = false
          pcall(res.send, res, 500, { ["Content-Type"] = "text/plain" },
                "internal error: " .. tostring(e):match("^[^\n]*") .. "\n")
        end
      end
      break
    end
    if res.gone or not res.finished or not res.keepalive then break end
  end
  c:close()
  srv.conns[c] = nil
  srv.active = srv.active - 1
  if srv.active == 0 then srv.idle:signal() end
end

-- Accept connections until the listening socket is closed.
local function accept_loop(srv)
  local lsock = srv.sock
  while true do
    local c, err = lsock:accept()
    if c then
      srv.counts.connections = srv.counts.connections + 1
      srv.conns[c] = true
      srv.active = srv.active + 1
      weft.go(function()
        local ok, e = xpcall(serve_conn, on_error, srv, c)
        if not ok then
          io.stderr:write("http_server: connection error: ", tostring(e), "\n")
          c:close()
        end
      end)
    elseif err == "closed" or srv.stopping then
      break
    else
      -- e.g. "Too many open files": back off instead of spinning
      io.stderr:write("http_server: accept: ", tostring(err), "\n")
      srv:pause(0.05)
    end
  end
  srv.accepting = false
  srv.idle:signal()
end

--- Start serving: opts = {host = "127.0.0.1", port = 0, backlog, handler,
-- idle_timeout (seconds a kept-alive connection may stay silent; nil:
-- forever)}. Returns the server: srv.port, srv.url.
function _M.start(opts)
  opts = opts or {}
  if type(opts.handler) ~= "function" then error("http_server.start: handler must be a function", 2) end
  local host = opts.host or "127.0.0.1"
  local sock, err = tcp.listen(host, opts.port or 0, opts.backlog or 4096)
  if not sock then error("http_server.start: " .. err, 2) end
  local srv = setmetatable({
    sock = sock, host = host, port = sock:port(), handler = opts.handler,
    idle_timeout = opts.idle_timeout, conns = {}, active = 0, accepting = true,
    idle = weft.cond(), stop_cond = weft.cond(), stopping = false,
    counts = { connections = 0, requests = 0, by_path = {} },
  }, Server)
  srv.url = "http://" .. (host == "0.0.0.0" and "127.0.0.1" or host) .. ":" .. srv.port
  weft.go(accept_loop, srv)
  return srv
end

--- Wait s seconds unless the server stops meanwhile (then raises GONE, so
-- a handler sleeping in a fault ends with the server).
function Server:pause(s)
  if self.stopping or self.stop_cond:wait(s) or self.stopping then error(GONE, 0) end
end

--- Counters: {connections = n, requests = n, by_path = {[path] = n}} (a copy).
function Server:stats()
  local c = self.counts
  local by = {}
  for k, v in pairs(c.by_path) do by[k] = v end
  return { connections = c.connections, requests = c.requests, by_path = by,
           open = self.active }
end

--- Zero the counters.
function Server:reset()
  self.counts = { connections = 0, requests = 0, by_path = {} }
end

--- Stop: close the listening socket and every connection, and wait until
-- every connection task has ended.
function Server:stop()
  if self.stopping then return end
  self.stopping = true
  self.sock:close()
  for c in pairs(self.conns) do c:close() end
  self.stop_cond:signal()
  while self.active > 0 or self.accepting do self.idle:wait() end
end

--- Serve until the process is killed (for process mode).
function Server:run_forever()
  while not self.stopping do self.idle:wait() end
end

return _M
