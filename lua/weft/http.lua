--- weft.http — the HTTP client of docs/io.md: `http.request{...}` yields
-- the calling executor or `weft.go` task while libcurl (driven by the weft
-- loop) does the transfer; on the main thread it runs the loop until done.
-- Expected failures return `nil, err, code`; misuse raises.
--
-- Uses weft.core.http (runtime/lua_http.c) for the transfer, SSE/NDJSON
-- framing and per-host queueing; this module checks options, builds the
-- request headers, JSON-encodes table bodies, folds response headers and
-- runs the stream callback in the calling coroutine (so it may yield).
-- Values of secret headers (core.SECRET_HEADERS and the caller's
-- secret_headers) are registered with weft.secrets, so that they are
-- redacted from everything weft writes.
local core = require "weft.core.http"
local json = require "weft.json"
local secrets = require "weft.secrets"

local type, pairs, ipairs, tostring, error, pcall = type, pairs, ipairs, tostring, error, pcall
local floor, huge = math.floor, math.huge
local lower, upper, find, match = string.lower, string.upper, string.find, string.match

local _M = {}

local FRAMINGS = { raw = true, sse = true, ndjson = true }
local NUMBERS = { "timeout", "connect_timeout", "idle_timeout" }
local KNOWN = {
  method = true, url = true, headers = true, body = true, timeout = true,
  connect_timeout = true, idle_timeout = true, max_body = true,
  stream = true, framing = true, max_redirects = true,
  cross_origin_redirects = true, secret_headers = true,
}

-- Lower-cased names of the headers that always count as secret.
local SECRET = {}
for _, n in ipairs(core.SECRET_HEADERS) do SECRET[n] = true end

--- The header names that always count as secret (lower-case list).
_M.SECRET_HEADERS = core.SECRET_HEADERS

local CROSS_ORIGIN = { strip = true, refuse = true }

-- Raise a misuse error at the caller of request().
local function misuse(msg) error("http.request: " .. msg, 3) end

--- Response header lines ("Name: value") -> { name = value }, names
-- lower-cased, repeated headers joined with ", ".
local function fold_headers(lines)
  local h = {}
  for i = 1, #lines do
    local name, value = match(lines[i], "^([^:]+):[ \t]*(.-)[ \t]*$")
    if name then
      name = lower(name)
      local old = h[name]
      h[name] = old and (old .. ", " .. value) or value
    end
  end
  return h
end

-- Register a secret header's value (and the credential after an auth
-- scheme such as "Bearer ") with weft.secrets.
local function register_secret(v)
  secrets.add(v)
  local cred = match(v, "^[%w%-]+[ \t]+(%S+)%s*$")
  if cred then secrets.add(cred) end
end

-- The caller's secret_headers (a list of names) -> the same list and a set
-- of the lower-cased names.
local function secret_names(list)
  if list == nil then return nil, {} end
  if type(list) ~= "table" then
    misuse("secret_headers must be a list of header names, got " .. type(list))
  end
  local set = {}
  for i = 1, #list do
    local n = list[i]
    if type(n) ~= "string" or not find(n, "^[!#$%%&'*+%-.^_`|~%w]+$") then
      misuse("secret_headers[" .. i .. "] must be a header name, got " .. tostring(n))
    end
    set[lower(n)] = true
  end
  return list, set
end

-- Request headers table -> list of "Name: value" lines; also whether a
-- content-type was given. Values of secret headers (SECRET or extra, a
-- set of lower-cased names) are registered with weft.secrets.
local function header_lines(headers, extra)
  local out, has_ct = {}, false
  if headers == nil then return out, false end
  if type(headers) ~= "table" then
    misuse("headers must be a table of name = value, got " .. type(headers))
  end
  for k, v in pairs(headers) do
    if type(k) ~= "string" or not find(k, "^[!#$%%&'*+%-.^_`|~%w]+$") then
      misuse("bad header name " .. (type(k) == "string" and ("'" .. k .. "'") or tostring(k)))
    end
    local tv = type(v)
    if tv == "number" then
      v = tostring(v)
    elseif tv ~= "string" then
      misuse("header '" .. k .. "' must be a string, got " .. tv)
    end
    if find(v, "[\r\n%z]") then
      misuse("header '" .. k .. "' contains a line break or NUL")
    end
    local lk = lower(k)
    if lk == "content-type" then has_ct = true end
    if SECRET[lk] or extra[lk] then register_secret(v) end
    out[#out + 1] = k .. ": " .. v
  end
  return out, has_ct
end

-- Check opts and build what weft.core.http.start takes.
local function build(opts)
  if type(opts) ~= "table" then misuse("expects a table of options, got " .. type(opts)) end
  for k in pairs(opts) do
    if not KNOWN[k] then misuse("unknown option '" .. tostring(k) .. "'") end
  end
  local url = opts.url
  if type(url) ~= "string" then misuse("url must be a string, got " .. type(url)) end
  local method = opts.method
  if method ~= nil then
    if type(method) ~= "string" or not find(method, "^[%a%-]+$") then
      misuse("method must be a name such as \"GET\" or \"POST\", got " .. tostring(method))
    end
    method = upper(method)
  end
  local secret_list, secret_set = secret_names(opts.secret_headers)
  local headers, has_ct = header_lines(opts.headers, secret_set)
  local body = opts.body
  local tb = type(body)
  if tb == "table" then
    local ok, s = pcall(json.encode, body, { root = "body" })
    if not ok then misuse(tostring(s)) end
    body = s
    if not has_ct then headers[#headers + 1] = "Content-Type: application/json" end
  elseif body ~= nil and tb ~= "string" then
    misuse("body must be a string or a table, got " .. tb)
  end
  local o = {
    method = method or (body and "POST" or "GET"), url = url, headers = headers,
    body = body, secret_headers = secret_list,
  }
  local redirects = opts.max_redirects
  if redirects ~= nil then
    if type(redirects) ~= "number" or redirects < 0 or floor(redirects) ~= redirects
      or redirects > 1000 then
      misuse("max_redirects must be an integer from 0 to 1000, got " .. tostring(redirects))
    end
    o.max_redirects = redirects
  end
  local xo = opts.cross_origin_redirects
  if xo ~= nil then
    if not CROSS_ORIGIN[xo] then
      misuse("cross_origin_redirects must be \"strip\" or \"refuse\", got " .. tostring(xo))
    end
    o.cross_origin = xo
  end
  for i = 1, #NUMBERS do
    local k = NUMBERS[i]
    local v = opts[k]
    if v ~= nil then
      if type(v) ~= "number" or not (v > 0) or v == huge then
        misuse(k .. " must be a number of seconds > 0, got " .. tostring(v))
      end
      o[k] = v
    end
  end
  local max_body = opts.max_body
  if max_body ~= nil then
    if type(max_body) ~= "number" or max_body < 1 or floor(max_body) ~= max_body
      or max_body == huge then
      misuse("max_body must be a positive integer, got " .. tostring(max_body))
    end
    o.max_body = max_body
  end
  local stream, framing = opts.stream, opts.framing
  if stream ~= nil and type(stream) ~= "function" then
    misuse("stream must be a function, got " .. type(stream))
  end
  if framing ~= nil then
    if not FRAMINGS[framing] then
      misuse("framing must be \"raw\", \"sse\" or \"ndjson\", got " .. tostring(framing))
    end
    if not stream then misuse("framing needs a stream callback") end
  end
  o.framing = stream and (framing or "raw") or "buffer"
  return o, stream
end

-- next() until it returns something (a wake-up returns nothing).
local function wait(req)
  local a, b, c = req:next()
  while a == nil and b == nil do a, b, c = req:next() end
  return a, b, c
end

-- Feed records to the user's callback until the end, a failure or false.
local function run_stream(req, stream)
  while true do
    local a, b, c = wait(req)
    if type(a) == "table" then
      for i = 1, #a do
        local ok, more = pcall(stream, a[i])
        if not ok then
          req:cancel()
          error(more, 0)
        end
        if more == false then
          local status, lines = req:cancel()
          return { status = status, headers = fold_headers(lines) }
        end
      end
    elseif a then -- a non-2xx reply comes with its body (not streamed)
      return { status = a, headers = fold_headers(b), body = c }
    else
      return nil, b, c
    end
  end
end

local perform -- below

--- request{method, url, headers, body, timeout, connect_timeout,
-- idle_timeout, max_body, stream, framing, max_redirects,
-- cross_origin_redirects, secret_headers} -> res | nil, err, code.
-- res = {status, headers, body}; see docs/io.md.
function _M.request(opts)
  local o, stream = build(opts)
  -- journaled in durable runs: a re-executed invocation gets this result
  return require("weft.durable").call("http", perform, o, stream)
end

-- Start request o and wait for its result (streaming to stream if given).
perform = function(o, stream)
  local req, err, code = core.start(o)
  if not req then return nil, err, code end
  if stream then return run_stream(req, stream) end
  local status, lines, body = wait(req)
  if not status then return nil, lines, body end
  return { status = status, headers = fold_headers(lines), body = body }
end

--- configure{max_per_host = n}: at most n transfers at once per host
-- (default 64); the others wait in a FIFO queue.
function _M.configure(opts)
  if type(opts) ~= "table" then
    error("http.configure: expects a table, got " .. type(opts), 2)
  end
  for k in pairs(opts) do
    if k ~= "max_per_host" then
      error("http.configure: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local n = opts.max_per_host
  if n ~= nil then
    if type(n) ~= "number" or n < 1 or floor(n) ~= n or n > 1000000 then
      error("http.configure: max_per_host must be a positive integer, got " .. tostring(n), 2)
    end
    core.configure(n)
  end
end

--- stats() -> {running = n, queued = n}: transfers of this Lua state.
function _M.stats()
  local running, queued = core.stats()
  return { running = running, queued = queued }
end

return _M
