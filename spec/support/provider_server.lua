--- spec/support/provider_server.lua — the provider test server (docs/io.md,
-- "The provider test server"): a local HTTP/1.1 server that speaks the wire
-- formats of OpenAI, Anthropic, Gemini and Ollama (spec/support/
-- provider_formats.lua), plain test endpoints, and injected faults. Never
-- the internet: it listens on 127.0.0.1.
--
-- In-process:
--     local ps = require "support.provider_server"
--     local srv = ps.start{ host = "127.0.0.1", port = 0 }
--     srv.port, srv.url, srv:stats(), srv:reset(), srv:stop()
--     srv:last_request([path]) -- the last request seen ({method, path,
--                               -- target, headers, body, json}), for specs
--     ps.start{ count_bodies = true }: srv:body_counts() -- {[body] = n}, how
--                               -- many times each request body came
-- As a process (serves until killed; raises the open-files limit first):
--     weft exec spec/support/provider_server.lua [--port N] [--host H]
--     -> prints "listening PORT" on stdout
--
-- Endpoints (any method unless stated):
--   POST /v1/chat/completions                OpenAI (JSON, or SSE when "stream": true)
--   POST /v1/messages                        Anthropic (JSON, or SSE)
--   POST /v1beta/models/M:generateContent    Gemini JSON
--   POST /v1beta/models/M:streamGenerateContent?alt=sse   Gemini SSE
--   POST /api/chat                           Ollama (NDJSON unless "stream": false)
--   /echo      JSON {method, path, target, query, headers, body}
--   /status/CODE[?retry_after=S]  that status, JSON {"status": CODE}
--   /sleep/MS  answers {"slept_ms": MS} after MS milliseconds
--   /sse/N     N events "id: i" / "data: {"i":i}" (text/event-stream, chunked)
--   /ndjson/N  N lines {"i":i} (application/x-ndjson, chunked)
--   /chunks/N  N chunks "chunk i\n" (text/plain, chunked)
--   /bytes/N   N bytes (Content-Length): "0123456789abcdef" repeated
--   /redirect?to=URL[&status=CODE]  a redirect (default 302) to URL
--   /hang      reads the request, never answers (until the client leaves)
--   /close     closes the connection without a response
--   /stats     the counters as JSON
-- Faults: a path prefix /_f/<spec>/ before any of these, spec a comma list
-- of latency=MS, status=CODE, times=N, retry_after=S, cut=N, malformed=N,
-- bytewise, chunk_delay=MS (see docs/io.md). `times` counts requests per
-- spec string (srv:reset() forgets the counts). For a response that is not
-- streamed, cut=N sends the head and the first N body bytes then closes,
-- and malformed=N (any N) sends a body that is not JSON.
-- Hostile faults (a server that attacks its client):
--   redirect=TARGET     answer with a redirect (redirect_status=CODE, default
--                       301) to the same path and query without the fault
--                       prefix on TARGET: HOST (this server's port, e.g.
--                       "localhost": another origin than 127.0.0.1),
--                       HOST:PORT, or "file" (file:///etc/hostname)
--   endless             a streamed provider reply whose text never ends
--   tool_calls=N        the reply (streamed or not) calls tool "add" N times
--   tool_index=N        OpenAI and Anthropic streams: the first tool call's
--                       wire index (OpenAI) or content block index
--                       (Anthropic) is N (the reply must call a tool)
-- Run as a script, find the sibling modules without LUA_PATH help.
do
  local dir = debug.getinfo(1, "S").source:match("^@(.-)support[/\\]provider_server%.lua$")
  if dir and not package.path:find(dir .. "?.lua", 1, true) then
    package.path = dir .. "?.lua;" .. package.path
  end
end

local weft = require "weft"
local json = require "weft.json"
local hs = require "support.http_server"
local formats = require "support.provider_formats"

local type, tostring, tonumber, pairs, error, setmetatable =
  type, tostring, tonumber, pairs, error, setmetatable
local format, sub, rep, floor = string.format, string.sub, string.rep, math.floor
local concat = table.concat

local _M = {}

local JSON_CT = { ["Content-Type"] = "application/json" }

local unescape = hs.unescape

--- Parse a query string into a table (last value wins).
_M.parse_query = hs.parse_query

local NUMERIC = { latency = true, status = true, times = true, retry_after = true,
                  cut = true, malformed = true, chunk_delay = true, redirect_status = true,
                  tool_calls = true, tool_index = true }

--- Parse a fault spec ("status=429,times=2,retry_after=1"): a table, or
-- nil and an error naming the bad item.
function _M.parse_faults(spec)
  local f = {}
  for item in spec:gmatch("[^,]+") do
    local k, v = item:match("^([%w_]+)=(.*)$")
    if not k then k = item end
    if (k == "bytewise" or k == "endless") and v == nil then
      f[k] = true
    elseif k == "redirect" and v and (v == "file" or v:match("^[%w%.%-]+$")
                                      or v:match("^[%w%.%-]+:%d+$")) then
      f.redirect = v
    elseif NUMERIC[k] and v and v:match("^%d+%.?%d*$") then
      f[k] = tonumber(v)
    else
      return nil, "unknown or malformed fault '" .. item .. "' (expected latency=MS, "
        .. "status=CODE, times=N, retry_after=S, cut=N, malformed=N, bytewise, chunk_delay=MS, "
        .. "redirect=HOST[:PORT]|file, redirect_status=CODE, endless, tool_calls=N, tool_index=N)"
    end
  end
  if f.status and (f.status < 100 or f.status > 599) then
    return nil, "fault status must be in 100..599"
  end
  return f
end

-- Corrupt one event's data so that it is not JSON any more.
local function corrupt(data)
  return sub(data, 1, floor(#data / 2)) .. "<not json"
end

--------------------------------------------------------------------------
-- Streams: framed events on a chunked response, with the stream faults.

local Stream = {}
Stream.__index = Stream

-- framing: "sse" (LF), "sse_crlf" (Gemini's CRLF), "ndjson", "raw".
local function new_stream(srv, res, faults, status, headers, framing)
  res:start(status, headers)
  return setmetatable({ srv = srv, res = res, framing = framing, n = 0,
                        cut = faults.cut, malformed = faults.malformed,
                        delay = faults.chunk_delay }, Stream)
end

--- Send one event (SSE data with an optional event name and id; an NDJSON
-- line; raw bytes).
function Stream:event(data, name, id)
  self.n = self.n + 1
  if self.cut and self.n > self.cut then self.res:abort() end
  if self.malformed == self.n then data = corrupt(data) end
  if self.delay and self.n > 1 then self.srv.http:pause(self.delay / 1000) end
  local fr = self.framing
  local out
  if fr == "sse" or fr == "sse_crlf" then
    local nl = fr == "sse" and "\n" or "\r\n"
    local parts = {}
    if name then parts[#parts + 1] = "event: " .. name .. nl end
    if id then parts[#parts + 1] = "id: " .. id .. nl end
    for line in (data .. "\n"):gmatch("([^\n]*)\n") do
      parts[#parts + 1] = "data: " .. line .. nl
    end
    parts[#parts + 1] = nl
    out = concat(parts)
  elseif fr == "ndjson" then
    out = data .. "\n"
  else
    out = data
  end
  self.res:write(out)
end

--- End the stream (a cut fault hangs up instead).
function Stream:finish()
  if self.cut then self.res:abort() end
  self.res:finish()
end

--------------------------------------------------------------------------
-- Plain endpoints

local plain = {}

plain.echo = function(srv, req, res, faults, arg)
  if arg ~= "" then return false end
  local body = json.encode({
    method = req.method, path = req.route_path, target = req.target,
    query = json.object(_M.parse_query(req.query)), headers = json.object(req.headers),
    body = req.body,
  })
  srv:reply(res, faults, 200, JSON_CT, body)
end

plain.status = function(srv, req, res, faults, arg)
  local code = tonumber(arg:match("^/(%d%d%d)$") or "")
  if not code or code < 200 or code > 599 then return false end
  local q = _M.parse_query(req.query)
  local h = { ["Content-Type"] = "application/json" }
  if q.retry_after then h["Retry-After"] = q.retry_after end
  srv:reply(res, faults, code, h, json.encode({ status = code }))
end

plain.redirect = function(srv, req, res, faults, arg)
  if arg ~= "" then return false end
  local q = _M.parse_query(req.query)
  local code = tonumber(q.status or "302")
  if not q.to or not code or code < 300 or code > 399 then return false end
  srv:reply(res, faults, code, { Location = q.to, ["Content-Type"] = "text/plain" }, "moved\n")
end

plain.sleep = function(srv, req, res, faults, arg)
  local ms = tonumber(arg:match("^/(%d+)$") or "")
  if not ms then return false end
  srv.http:pause(ms / 1000)
  srv:reply(res, faults, 200, JSON_CT, json.encode({ slept_ms = ms }))
end

-- The count N of /sse/N, /ndjson/N, /chunks/N, /bytes/N.
local function count_of(arg, max)
  local n = tonumber(arg:match("^/(%d+)$") or "")
  if n and n <= max then return n end
end

plain.sse = function(srv, req, res, faults, arg)
  local n = count_of(arg, 1e6)
  if not n then return false end
  local st = new_stream(srv, res, faults, 200,
    { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" }, "sse")
  for i = 1, n do st:event(format('{"i":%d}', i), nil, tostring(i)) end
  st:finish()
end

plain.ndjson = function(srv, req, res, faults, arg)
  local n = count_of(arg, 1e6)
  if not n then return false end
  local st = new_stream(srv, res, faults, 200, { ["Content-Type"] = "application/x-ndjson" }, "ndjson")
  for i = 1, n do st:event(format('{"i":%d}', i)) end
  st:finish()
end

plain.chunks = function(srv, req, res, faults, arg)
  local n = count_of(arg, 1e6)
  if not n then return false end
  local st = new_stream(srv, res, faults, 200,
    { ["Content-Type"] = "text/plain; charset=utf-8" }, "raw")
  for i = 1, n do st:event(format("chunk %d\n", i)) end
  st:finish()
end

--- The body /bytes/N sends: "0123456789abcdef" repeated, cut to n bytes.
function _M.bytes_body(n)
  return sub(rep("0123456789abcdef", floor(n / 16) + 1), 1, n)
end

plain.bytes = function(srv, req, res, faults, arg)
  local n = count_of(arg, 1024 * 1024 * 1024)
  if not n then return false end
  srv:reply(res, faults, 200, { ["Content-Type"] = "application/octet-stream" }, _M.bytes_body(n))
end

plain.hang = function(srv, req, res, faults, arg)
  if arg ~= "" then return false end
  -- never answer; return when the client leaves or the server stops
  res.conn:receive("*a")
  res:abort()
end

plain.close = function(srv, req, res, faults, arg)
  if arg ~= "" then return false end
  res:abort()
end

plain.stats = function(srv, req, res, faults, arg)
  if arg ~= "" then return false end
  local st = srv:stats()
  st.by_path = json.object(st.by_path)
  srv:reply(res, faults, 200, JSON_CT, json.encode(st))
end

--------------------------------------------------------------------------
-- The server

local Server = {}
Server.__index = Server

--- Send a whole (not streamed) response, applying cut and malformed.
function Server:reply(res, faults, status, headers, body)
  if faults.malformed then body = corrupt(body) end
  if faults.cut then res.cut_body = faults.cut end
  res:send(status, headers, body)
end

--- An error reply in the format of the endpoint (provider or plain);
-- code: the provider's error code field, when it has one.
function Server:fail(res, route, status, msg, extra_headers, code)
  local h = { ["Content-Type"] = "application/json" }
  for k, v in pairs(extra_headers or {}) do h[k] = v end
  res:send(status, h, formats.error_body(route and route.provider, status, msg, code))
end

-- Match a provider route: the format table and the model (Gemini), or nil.
local function provider_route(path, query)
  if path == "/v1/chat/completions" then return { provider = "openai" } end
  if path == "/v1/messages" then return { provider = "anthropic" } end
  if path == "/api/chat" then return { provider = "ollama" } end
  local model, method = path:match("^/v1beta/models/([^/:]+):(%a+)$")
  if model and (method == "generateContent" or method == "streamGenerateContent") then
    return { provider = "gemini", model = unescape(model),
             stream = method == "streamGenerateContent", query = query }
  end
end

-- The request handler: faults, then the route.
local function handle(srv, req, res)
  local path = req.path
  local faults = {}
  if srv.bodies then srv.bodies[req.body or ""] = (srv.bodies[req.body or ""] or 0) + 1 end
  srv.last[#srv.last + 1] = req
  if #srv.last > 64 then table.remove(srv.last, 1) end
  local spec, rest = path:match("^/_f/([^/]*)(/.*)$")
  if spec then
    local err
    spec = unescape(spec)
    faults, err = _M.parse_faults(spec)
    if not faults then
      return srv:fail(res, nil, 400, err)
    end
    path = rest
  elseif path:match("^/_f/") then
    return srv:fail(res, nil, 400, "fault prefix without a path: /_f/<spec>/<path>")
  end
  req.route_path = path
  res.bytewise = faults.bytewise
  local route = provider_route(path, req.query)
  if faults.latency then srv.http:pause(faults.latency / 1000) end
  if faults.redirect then
    local t = faults.redirect
    local loc = t == "file" and "file:///etc/hostname"
      or ("http://" .. (t:find(":", 1, true) and t or (t .. ":" .. srv.port)) .. path
          .. (req.query ~= "" and ("?" .. req.query) or ""))
    return srv:reply(res, {}, faults.redirect_status or 301,
                     { Location = loc, ["Content-Type"] = "text/plain" }, "moved\n")
  end
  if faults.status then
    local n = (srv.fault_counts[spec] or 0) + 1
    srv.fault_counts[spec] = n
    if not faults.times or n <= faults.times then
      local h = faults.retry_after and { ["Retry-After"] = tostring(faults.retry_after) } or nil
      return srv:fail(res, route, faults.status, "injected fault: status " .. faults.status, h)
    end
  end
  if route then
    if req.method ~= "POST" then
      return srv:fail(res, route, 405, "method " .. req.method .. " not allowed; use POST")
    end
    return formats.handle(srv, route, req, res, faults)
  end
  local name, arg = path:match("^/(%a+)(.*)$")
  local fn = name and plain[name]
  if fn and fn(srv, req, res, faults, arg) ~= false then return end
  srv:fail(res, nil, 404, "no such endpoint: " .. path)
end

--- Start the server: opts = {host = "127.0.0.1", port = 0, backlog,
-- count_bodies (count the requests per body: srv:body_counts())}.
function _M.start(opts)
  opts = opts or {}
  local srv = setmetatable({ fault_counts = {}, last = {}, bodies = opts.count_bodies and {} or nil }, Server)
  srv.http = hs.start{
    host = opts.host or "127.0.0.1", port = opts.port or 0, backlog = opts.backlog,
    handler = function(req, res) return handle(srv, req, res) end,
  }
  srv.port, srv.url, srv.host = srv.http.port, srv.http.url, srv.http.host
  return srv
end

--- Counters: {connections = n, requests = n, by_path = {[path] = n}, open = n}.
function Server:stats() return self.http:stats() end

--- Zero the counters and the fault counts (`times`), forget past requests.
function Server:reset()
  self.http:reset()
  self.fault_counts = {}
  self.last = {}
  if self.bodies then self.bodies = {} end
end

--- How many requests came with each body ({[body] = n}; started with
-- count_bodies, else empty).
function Server:body_counts() return self.bodies or {} end

--- The last request seen (whose path is `path`, when given), or nil.
function Server:last_request(path)
  for i = #self.last, 1, -1 do
    local r = self.last[i]
    if path == nil or r.path == path or r.route_path == path then return r end
  end
end

--- Stop: close every connection and wait for their tasks to end.
function Server:stop() self.http:stop() end

--- Start the shared stream helper for provider_formats.lua.
function Server:stream(res, faults, status, headers, framing)
  return new_stream(self, res, faults, status, headers, framing)
end

-- The provider formats need these too.
_M.corrupt = corrupt

--------------------------------------------------------------------------
-- Process mode: `weft exec spec/support/provider_server.lua [--port N]`.

local modname = ...
local script = arg and type(arg[0]) == "string" and arg[0]:match("provider_server%.lua$")
if script and (modname == nil or tostring(modname):match("^%-")) then
  local host, port = "127.0.0.1", 0
  local args = { ... }
  local i = 1
  while i <= #args do
    local a = args[i]
    local k, v = a:match("^%-%-(%w+)=(.*)$")
    if not k then k, v, i = a:match("^%-%-(%w+)$"), args[i + 1], i + 1 end
    if k == "port" and tonumber(v) then
      port = tonumber(v)
    elseif k == "host" and v then
      host = v
    else
      io.stderr:write("usage: weft exec spec/support/provider_server.lua [--port N] [--host H]\n")
      os.exit(2)
    end
    i = i + 1
  end
  require("weft.tcp").raise_nofile()
  local srv = _M.start{ host = host, port = port }
  io.stdout:write("listening ", srv.port, "\n")
  io.stdout:flush()
  srv.http:run_forever()
  return
end

return _M
