--- weft.server — the HTTP/1.1 server of docs/server.md, on the weft loop.
--
--     local server = require "weft.server"
--     local srv = assert(server.listen{
--       port = 0,
--       handler = function(req, res)
--         if req.path == "/hello" then return res:json(200, { hi = req.query.name }) end
--         res:status(404); res:send("not found")
--       end,
--     })
--     print(srv.port)
--
-- Each request runs `handler(req, res)` in its own task (it may use every
-- yielding weft primitive). req = {method, path (percent-decoded once; may
-- hold any byte, NUL included), raw_path (as sent), query, raw_query,
-- headers (lower-case names), body, server}. res:status / res:header / res:send / res:json
-- answer once; res:stream(code, headers) returns a writer for chunked
-- responses and server-sent events: w:write(chunk) yields until the chunk is
-- taken by the connection and returns nil, "closed" once the client left;
-- w:close() ends the stream. srv:drain() ends every open stream first (an
-- SSE stream gets a last `event: shutdown`). A handler error becomes a 500 JSON error (the
-- message and traceback go to stderr, never to the client); a handler that
-- returns without answering gets a 500 too; an open stream is ended.
--
-- The C side (weft.core.server: runtime/lua/lua_server.c, runtime/server/server.c)
-- runs libmicrohttpd on the loop and enforces the limits: 413 (body), 431
-- (headers), 408 (header/body deadline), 503 (connection cap).
local core = require "weft.core.server"
local loop = require "weft.core.loop"
local json = require "weft.json"

local type, pairs, ipairs, tostring, error, setmetatable, xpcall =
  type, pairs, ipairs, tostring, error, setmetatable, xpcall
local floor, char, tonumber = math.floor, string.char, tonumber
local find, gsub, lower, gmatch = string.find, string.gsub, string.lower, string.gmatch
local traceback, go, clock = debug.traceback, loop.go, loop.clock
local AGAIN = core.AGAIN
local raw_accept, raw_wait, raw_write, raw_flush, raw_pending = core.accept, core.wait, core.write, core.flush, core.pending

local _M = {}

local OPTIONS = {
  host = "string", port = "number", handler = "function",
  max_connections = "number", max_header_bytes = "number", max_body_bytes = "number",
  header_timeout = "number", body_timeout = "number", idle_timeout = "number",
}

-- The byte of two hex digits.
local function hex_byte(h) return char(tonumber(h, 16)) end

-- Percent-decoding (malformed escapes are kept as they are).
local function pct_decode(s)
  if not find(s, "%", 1, true) then return s end
  return (gsub(s, "%%(%x%x)", hex_byte))
end

-- Percent-decoding of a query component ("+" is a space).
local function unescape(s)
  return pct_decode((gsub(s, "+", " ")))
end

--- Percent-decode a raw path once ("+" stays "+"; malformed escapes stay).
_M.decode_path = pct_decode

--- Parse a raw query string into {name = value} (the last one wins for a
-- repeated name; a name without "=" maps to "").
function _M.parse_query(raw)
  local q = {}
  for pair in gmatch(raw, "[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if k ~= "" then q[unescape(k)] = unescape(v) end
  end
  return q
end

-- Header names already found valid (responses set the same few; at most
-- GOOD_NAMES_MAX are remembered, so names made from request data cannot
-- grow it without bound).
local good_names, n_good, GOOD_NAMES_MAX = {}, 0, 256

-- Header table {name = value} -> flat list for the C side; raises on bad
-- names/values (CR/LF would split the response).
local function header_list(list, headers, level)
  if headers == nil then return list end
  if type(headers) ~= "table" then error("headers must be a table", level) end
  for k, v in pairs(headers) do
    if not good_names[k] then
      if type(k) ~= "string" or not find(k, "^[!#$%%&'*+%-.^_`|~%w]+$") then
        error("bad header name " .. tostring(k), level)
      end
      if n_good < GOOD_NAMES_MAX then good_names[k], n_good = true, n_good + 1 end
    end
    if type(v) == "number" then v = tostring(v) end
    if type(v) ~= "string" or find(v, "[\r\n%z]") then
      error("bad value for header '" .. k .. "'", level)
    end
    list[#list + 1] = k
    list[#list + 1] = v
  end
  return list
end

local function check_status(code, level)
  if type(code) ~= "number" or code < 100 or code > 999 or floor(code) ~= code then
    error("status must be an integer in 100..999, got " .. tostring(code), level)
  end
end

-- ---- responses ------------------------------------------------------------

local Response = {}
Response.__index = Response

--- Set the status code of the response (default 200).
function Response:status(code)
  check_status(code, 3)
  self._status = code
  return self
end

--- Set a response header.
function Response:header(name, value)
  header_list({}, { [name] = value }, 3)
  self._headers[name] = value
  return self
end

--- Send the complete response with body (a string, default ""). Returns
-- true, or nil, err, code: "closed" when the client left, "error" for
-- "response already sent".
function Response:send(body)
  if body ~= nil and type(body) ~= "string" then
    error("res:send: body must be a string, got " .. type(body), 2)
  end
  local h = self._headers
  local has_ct = false
  for k in pairs(h) do if lower(k) == "content-type" then has_ct = true end end
  local list = header_list({}, h, 3)
  if not has_ct then
    list[#list + 1] = "Content-Type"
    list[#list + 1] = "text/plain; charset=utf-8"
  end
  self._sent = true
  return core.respond(self._r, self._status, list, body or "")
end

--- Send value as JSON with the given status code.
function Response:json(code, value)
  check_status(code, 3)
  local body = json.encode(value)
  self._status = code
  self._headers["Content-Type"] = "application/json"
  return self:send(body)
end

local Writer = {}
Writer.__index = Writer

--- Write a chunk; yields until the connection took it. true, or nil, err,
-- code ("closed", "closed" when the client is gone).
function Writer:write(chunk)
  if type(chunk) ~= "string" then
    error("w:write: chunk must be a string, got " .. type(chunk), 2)
  end
  local r = self._r
  local ok, err, code = raw_write(r, chunk)
  if not ok then return nil, err, code end
  while true do
    local n, perr, pcode = raw_pending(r)
    if not n then return nil, perr, pcode end
    if n == 0 then return true end
    raw_flush(r)
  end
end

--- Write one server-sent event: data (a string, or a table sent as JSON)
-- and an optional event name.
function Writer:event(data, name)
  if type(data) == "table" then data = json.encode(data) end
  if type(data) ~= "string" then error("w:event: data must be a string or a table", 2) end
  local out = name and ("event: " .. name .. "\n") or ""
  out = out .. "data: " .. gsub(data, "\n", "\ndata: ") .. "\n\n"
  return self:write(out)
end

--- End the stream. true, or nil, err, code ("closed" when the client left).
function Writer:close()
  if self._closed then return true end
  self._closed = true
  if self._open then self._open[self] = nil end
  return core.finish(self._r)
end

-- The last event of an SSE stream ended by a drain.
local SHUTDOWN_EVENT = 'event: shutdown\ndata: {"reason":"server shutting down"}\n\n'

-- End w at the start of a drain: its last bytes are queued without waiting
-- (its handler may be writing or waiting); its next write gets nil, err.
local function end_for_drain(w)
  if w._closed then return end
  w._closed = true
  if w._open then w._open[w] = nil end
  if w._sse then raw_write(w._r, SHUTDOWN_EVENT) end
  core.finish(w._r)
end

--- Start a streamed (chunked) response: returns a writer, or nil, err, code.
function Response:stream(code, headers)
  check_status(code, 3)
  local h = {}
  for k, v in pairs(self._headers) do h[k] = v end
  if headers ~= nil then
    if type(headers) ~= "table" then error("res:stream: headers must be a table", 2) end
    for k, v in pairs(headers) do h[k] = v end
  end
  local list = header_list({}, h, 3)
  self._sent = true
  local ok, err, ecode = core.stream(self._r, code, list)
  if not ok then return nil, err, ecode end
  local sse = false
  for k, v in pairs(h) do
    if lower(k) == "content-type" and find(lower(v), "^%s*text/event%-stream") then sse = true end
  end
  local w = setmetatable({ _r = self._r, _sse = sse, _open = self._open }, Writer)
  self._writer = w
  if w._open then w._open[w] = true end
  return w
end

-- ---- serving ---------------------------------------------------------------

local ERR500 = '{"error":{"code":"internal","message":"internal server error"}}'

-- Run the handler for one request of server srv, in its own task.
local function serve(srv, handler, r, method, raw_path, raw_query, headers, body)
  local req = {
    method = method, path = pct_decode(raw_path), raw_path = raw_path, raw_query = raw_query,
    query = _M.parse_query(raw_query), headers = headers, body = body, server = srv,
  }
  local res = setmetatable({ _r = r, _status = 200, _headers = {}, _open = srv._streams }, Response)
  local ok, err = xpcall(handler, traceback, req, res)
  if not ok then
    io.stderr:write("weft.server: handler error on ", method, " ", raw_path, ": ",
                    tostring(err), "\n")
    if not res._sent then
      core.respond(r, 500, { "Content-Type", "application/json" }, ERR500)
    end
  end
  if res._writer then res._writer:close() end
  core.release(r) -- an unanswered request gets a 500 from the C side
end

local Server = {}
Server.__index = Server

-- The accept loop: one task per server, hands each request to a new task.
local function accept_loop(self)
  local s, handler = self._s, self._handler
  while true do
    local r, method, path, q, headers, body = raw_accept(s)
    if r == nil then return end
    if r == AGAIN then
      raw_wait(s)
    else
      go(serve, self, handler, r, method, path, q, headers, body)
    end
  end
end

--- Listen and serve: opts = {host = "127.0.0.1", port = 0, handler,
-- max_connections, max_header_bytes, max_body_bytes, header_timeout,
-- body_timeout, idle_timeout}. Returns the server (srv.port is the bound
-- port) or nil, err, "io".
function _M.listen(opts)
  if type(opts) ~= "table" then error("server.listen: expects a table of options", 2) end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then error("server.listen: unknown option '" .. tostring(k) .. "'", 2) end
    if type(v) ~= want then
      error("server.listen: " .. k .. " must be a " .. want .. ", got " .. type(v), 2)
    end
  end
  if not opts.handler then error("server.listen: handler is required", 2) end
  local port = opts.port or 0
  if port < 0 or port > 65535 or floor(port) ~= port then
    error("server.listen: port must be an integer in 0..65535, got " .. tostring(port), 2)
  end
  for _, k in pairs({ "max_connections", "max_header_bytes", "max_body_bytes",
                      "header_timeout", "body_timeout", "idle_timeout" }) do
    local v = opts[k]
    if v ~= nil and not (v > 0) then error("server.listen: " .. k .. " must be > 0", 2) end
  end
  local s, err, code = core.listen{
    host = opts.host or "127.0.0.1", port = port,
    max_connections = opts.max_connections, max_header_bytes = opts.max_header_bytes,
    max_body_bytes = opts.max_body_bytes, header_timeout = opts.header_timeout,
    body_timeout = opts.body_timeout, idle_timeout = opts.idle_timeout,
  }
  if not s then return nil, err, code end
  local self = setmetatable({ _s = s, _handler = opts.handler, port = core.port(s),
                              _streams = setmetatable({}, { __mode = "k" }) }, Server)
  go(accept_loop, self)
  return self
end

--- Stop accepting connections; requests in flight (and new requests on open
-- keep-alive connections) are still served, with "Connection: close".
function Server:close()
  core.close(self._s)
end

--- Requests received and not yet completed.
function Server:inflight() return core.inflight(self._s) end

--- Open connections.
function Server:connections() return core.connections(self._s) end

--- Open streams (responses started with res:stream and not yet ended).
function Server:streams()
  local n = 0
  for _ in pairs(self._streams) do n = n + 1 end
  return n
end

--- Close, end every open stream (an SSE stream gets a last `event:
-- shutdown` with data {"reason": "server shutting down"}; a stream may
-- never end by itself), wait up to timeout seconds (default 30) for the
-- other requests in flight, then stop: every connection is closed.
-- Returns true, or false, "timeout" when requests were cut.
function Server:drain(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("srv:drain: timeout must be a number of seconds >= 0", 2)
  end
  local s = self._s
  core.close(s)
  local open = {}
  for w in pairs(self._streams) do open[#open + 1] = w end
  for _, w in ipairs(open) do end_for_drain(w) end
  local deadline = clock() + (timeout or 30)
  local cut = false
  -- the server wakes waiters whenever the in-flight count drops
  while core.inflight(s) > 0 do
    local left = deadline - clock()
    if left <= 0 then cut = true break end
    raw_wait(s, left)
  end
  core.stop(s)
  if cut then return false, "timeout" end
  return true
end

return _M
